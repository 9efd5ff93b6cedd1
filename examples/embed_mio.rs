//! A mio program with a rawloop reactor nested in it, on one thread.
//!
//! The program owns a mio `Poll` loop and serves its own TCP echo service on `<port>+1`
//! with mio's types (`common/mio_echo.rs`). In the same loop, a rawloop reactor serves an
//! echo server on `<port>`: its readiness fd ([`Reactor::readiness_fd`]) is registered with
//! mio like any source, mio's wait is bounded by the reactor's next deadline
//! ([`Reactor::next_deadline`]), and when either says so the program runs the reactor's
//! pending rounds ([`Reactor::run_pending`]), which never wait. mio is edge-triggered, so
//! while `run_pending` says more is pending the program polls mio without waiting.
//!
//! SIGINT or SIGTERM reach the reactor: it shuts down gracefully, the program notices
//! [`Reactor::stop_requested`] and exits 0.
//!
//! `cargo run --example embed_mio -- [--backend epoll|kqueue] [--grace-ms MS] <host> <port>`

mod common;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use common::mio_echo::MioEcho;
use mio::unix::SourceFd;
use mio::{Events, Poll, Token};
use rawloop::{Acceptor, Reactor};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    host: String,
    port: u16,
}

/// mio tokens of the reactor's fd and of the mio listener (connections count up from 0).
const REACTOR: Token = Token(usize::MAX);
const MIO_LISTENER: Token = Token(usize::MAX - 1);

/// At most this many reactor rounds run before mio's sources get their turn.
const ROUNDS_PER_TURN: usize = 64;

fn run(args: Args) -> io::Result<()> {
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let fd = reactor
        .readiness_fd()
        .map(|fd| fd.as_raw_fd())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the {} backend waits on no fd another loop could watch; use epoll or kqueue",
                    reactor.backend()
                ),
            )
        })?;
    let listener = common::listen(&args.host, args.port)?;
    let rawloop_addr = listener.local_addr()?;
    let acceptor = Acceptor::tcp(|stream, peer, cx| {
        log::info!("rawloop: accepted {peer}");
        cx.register(stream, rawloop::Interest::READABLE, common::Echo::new())?;
        Ok(())
    });
    reactor.register(listener, rawloop::Interest::READABLE, acceptor)?;
    reactor.shutdown_on_signals(args.grace.grace())?;

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    poll.registry()
        .register(&mut SourceFd(&fd), REACTOR, mio::Interest::READABLE)?;
    let mio_addr = SocketAddr::new(rawloop_addr.ip(), rawloop_addr.port() + 1);
    let mio_listener = mio::net::TcpListener::bind(mio_addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {mio_addr}: {e}")))?;
    let mut echo = MioEcho::new(mio_listener, poll.registry(), MIO_LISTENER)?;
    println!(
        "rawloop ({} backend) echoes on {rawloop_addr}, mio on {mio_addr}",
        reactor.backend()
    );

    let mut reactor_busy = false;
    while !reactor.stop_requested() {
        let timeout = if reactor_busy {
            Some(Duration::ZERO)
        } else {
            reactor
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut reactor_ready = reactor_busy;
        for event in events.iter() {
            if event.token() == REACTOR {
                reactor_ready = true;
            } else {
                echo.handle(poll.registry(), event)?;
            }
        }
        let due = reactor.next_deadline().is_some_and(|d| d <= Instant::now());
        if reactor_ready || due {
            reactor_busy = !reactor.run_pending(ROUNDS_PER_TURN)?;
        }
    }
    // The reactor's fd leaves mio before the reactor closes it.
    poll.registry().deregister(&mut SourceFd(&fd))?;
    println!("shutting down");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("embed_mio", run(Args::parse()))
}
