//! An echo server that does other work when the network is quiet, after PyMOTW's
//! `select_echo_server_timeout.py`. The seed passes a one-second timeout to select() and
//! prints `  timed out, do some other work here` when it returns with nothing; here a periodic
//! reactor timer (`Context::call_every`) looks at an activity counter that every handler
//! bumps, and prints the line when no I/O happened since the last tick. The loop itself
//! never polls with a timeout. SIGINT or SIGTERM stops it gracefully, and it prints the
//! reactor's counters on stderr (`timers_fired`: the ticks).
//!
//! `cargo run --example timeout_server -- [--backend select|poll|epoll|kqueue]
//! [--period SECS] [--grace-ms MS] <host> <port>`

mod common;

use std::cell::Cell;
use std::io;
use std::net::TcpListener;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use rawloop::{Acceptor, Context, Event, Handler, Interest, Reactor, Selector, TimerId};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    /// How long without I/O counts as a timeout.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = common::parse_seconds)]
    period: Duration,
    host: String,
    port: u16,
}

/// The seed's line for a quiet period.
const IDLE_LINE: &str = "  timed out, do some other work here";

/// The count of handler calls (accepts, reads, writes), shared by the handlers and the idle
/// timer; cheap to clone.
#[derive(Clone, Debug, Default)]
struct Activity(Rc<Cell<u64>>);

impl Activity {
    /// How many times a handler ran.
    fn events(&self) -> u64 {
        self.0.get()
    }

    fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Registers `listener` (connections are echoed) and the idle timer, which fires every
/// `period` and prints [`IDLE_LINE`] when no handler ran since its last tick. A zero `period`
/// is refused (`InvalidInput`).
fn serve<S: Selector>(
    reactor: &mut Reactor<S>,
    listener: TcpListener,
    period: Duration,
) -> io::Result<()> {
    if period.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the idle period must be longer than zero",
        ));
    }
    let activity = Activity::default();
    let counted = activity.clone();
    let acceptor = Acceptor::tcp(move |stream, addr, cx| {
        log::info!("  connection from {addr}");
        let echo = Counted {
            inner: common::Echo::new(),
            activity: counted.clone(),
        };
        cx.register(stream, Interest::READABLE, echo)?;
        Ok(())
    });
    reactor.register(
        listener,
        Interest::READABLE,
        Counted {
            inner: acceptor,
            activity: activity.clone(),
        },
    )?;
    // The idle timer: compares the activity count with the one at the last tick.
    let mut seen = activity.events();
    reactor.context().call_every(period, move |_| {
        let now = activity.events();
        if now == seen {
            println!("{IDLE_LINE}");
        }
        seen = now;
        Ok(())
    });
    Ok(())
}

/// A handler that counts its calls in the shared [`Activity`], then does what `inner` does.
struct Counted<H> {
    inner: H,
    activity: Activity,
}

impl<Src: 'static, H: Handler<Src>> Handler<Src> for Counted<H> {
    fn ready(&mut self, source: &mut Src, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        self.activity.bump();
        self.inner.ready(source, cx, event)
    }

    fn timeout(
        &mut self,
        source: &mut Src,
        cx: &mut Context<'_>,
        timer: TimerId,
    ) -> io::Result<()> {
        self.inner.timeout(source, cx, timer)
    }

    fn shutdown(&mut self, source: &mut Src, cx: &mut Context<'_>) -> io::Result<()> {
        self.inner.shutdown(source, cx)
    }

    fn closed(&mut self, source: &mut Src, cx: &mut Context<'_>, error: Option<&io::Error>) {
        self.inner.closed(source, cx, error)
    }
}

fn run(args: Args) -> io::Result<()> {
    let listener = common::listen(&args.host, args.port)?;
    let port = listener.local_addr()?.port();
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    serve(&mut reactor, listener, args.period)?;
    reactor.shutdown_on_signals(args.grace.grace())?;
    // Everything it serves with is open: the line says it is ready.
    println!(
        "starting up on {} port {port} ({} backend)",
        args.host,
        reactor.backend()
    );
    reactor.run()?;
    eprintln!("reactor stats: {:?}", reactor.stats());
    println!("shutting down");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("timeout_server", run(Args::parse()))
}
