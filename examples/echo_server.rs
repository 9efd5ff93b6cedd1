//! A TCP echo server in callback style, after PyMOTW's `selectors_echo_server.py`: the
//! listener's callback accepts and registers each connection with an echo handler. Unlike
//! the seed it keeps serving after a client leaves; SIGINT or SIGTERM stops it cleanly.
//!
//! `cargo run --example echo_server -- [--backend select|poll|epoll|kqueue] <host> <port>`

pub mod common;

use std::io;
use std::net::TcpListener;
use std::time::Duration;

use clap::Parser;
use rawloop::{Context, Event, Interest, Reactor, Selector, WithSelector};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    host: String,
    port: u16,
}

/// Registers `listener` so that every connection it accepts is echoed.
pub fn serve<S: Selector>(reactor: &mut Reactor<S>, listener: TcpListener) -> io::Result<()> {
    reactor.register(listener, Interest::READABLE, accept)?;
    Ok(())
}

/// The listener's callback: accept every pending connection and register it.
fn accept(listener: &mut TcpListener, cx: &mut Context<'_>, _: Event) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, addr)) => {
                log::info!("accept({addr})");
                stream.set_nodelay(true)?;
                cx.register(
                    stream,
                    Interest::READABLE,
                    common::Echo::new(addr.to_string()),
                )?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            // Out of fds or memory: the pending connection stays queued and the listener
            // stays readable, so pause accepting for a while instead of spinning on it.
            Err(e) => {
                log::warn!("accept: {e}; pausing accepts for 100 ms");
                let me = cx.token().expect("a handler has a token");
                cx.set_interest(Interest::empty())?;
                cx.call_after(Duration::from_millis(100), move |cx| {
                    cx.set_interest_of(me, Interest::READABLE)
                });
                return Ok(());
            }
        }
    }
}

struct Main(Args);

impl WithSelector for Main {
    type Output = io::Result<()>;
    fn run<S: Selector + 'static>(self) -> io::Result<()> {
        let args = self.0;
        let mut reactor = Reactor::<S>::new()?;
        let listener = TcpListener::bind((args.host.as_str(), args.port))?;
        println!(
            "starting up on {} port {} ({} backend)",
            args.host,
            listener.local_addr()?.port(),
            S::name()
        );
        serve(&mut reactor, listener)?;
        common::stop_on_signals(&mut reactor)?;
        reactor.run()?;
        eprintln!("reactor stats: {:?}", reactor.stats());
        println!("shutting down");
        Ok(())
    }
}

fn main() -> io::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend.backend;
    backend
        .run(Main(args))
        .expect("parsed backends are compiled")
}
