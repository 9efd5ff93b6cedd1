//! An echo server that does other work when the network is quiet, after PyMOTW's
//! `select_echo_server_timeout.py`. The seed passes a one-second timeout to select() and
//! prints `  timed out, do some other work here` when it returns with nothing; here a reactor
//! timer ([`Reactor::call_after`], re-armed every period) looks at an activity counter that
//! every handler bumps, and prints the line when no I/O happened since the last tick. The
//! loop itself never polls with a timeout.
//!
//! `cargo run --example timeout_server -- [--backend select|poll|epoll|kqueue]
//! [--period SECS] <host> <port>`

mod common;

use std::cell::Cell;
use std::io;
use std::net::TcpListener;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use rawloop::{Context, Event, Handler, Interest, Reactor, Selector, TimerId, WithSelector};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// How long without I/O counts as a timeout.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = common::parse_seconds)]
    period: Duration,
    host: String,
    port: u16,
}

/// The seed's line for a quiet period.
pub const IDLE_LINE: &str = "  timed out, do some other work here";

/// Counters shared by the handlers and the idle timer; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    /// Handler calls (accepts, reads, writes) so far.
    events: Rc<Cell<u64>>,
    /// Periods that passed without any.
    idle: Rc<Cell<u64>>,
}

impl Activity {
    /// How many periods passed without I/O (how many times the idle line was printed).
    pub fn idle_periods(&self) -> u64 {
        self.idle.get()
    }

    /// How many times a handler ran.
    pub fn events(&self) -> u64 {
        self.events.get()
    }

    fn bump(&self) {
        self.events.set(self.events.get() + 1);
    }
}

/// Registers `listener` (connections are echoed) and the idle timer, which fires every
/// `period` and prints [`IDLE_LINE`] when no handler ran since its last tick. Returns the
/// counters, for a caller (a test) to watch. A zero `period` is refused (`InvalidInput`).
pub fn serve<S: Selector>(
    reactor: &mut Reactor<S>,
    listener: TcpListener,
    period: Duration,
) -> io::Result<Activity> {
    if period.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the idle period must be longer than zero",
        ));
    }
    let activity = Activity::default();
    let counted = activity.clone();
    reactor.register(
        listener,
        Interest::READABLE,
        Counted {
            inner: move |listener: &mut TcpListener, cx: &mut Context<'_>, _: Event| {
                let activity = counted.clone();
                common::accept_all(listener, cx, move |stream, addr, cx| {
                    log::info!("  connection from {addr}");
                    let echo = Counted {
                        inner: common::Echo::new(addr),
                        activity: activity.clone(),
                    };
                    cx.register(stream, Interest::READABLE, echo).map(drop)
                })
            },
            activity: activity.clone(),
        },
    )?;
    let seen = activity.events();
    let idle = activity.clone();
    reactor.call_after(period, move |cx| {
        tick(cx, idle, seen, period);
        Ok(())
    });
    Ok(activity)
}

/// The idle timer: compares the activity count with the one at the last tick, then sets
/// itself again.
fn tick(cx: &mut Context<'_>, activity: Activity, seen: u64, period: Duration) {
    let now = activity.events();
    if now == seen {
        println!("{IDLE_LINE}");
        activity.idle.set(activity.idle.get() + 1);
    }
    cx.call_after(period, move |cx| {
        tick(cx, activity, now, period);
        Ok(())
    });
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

    fn closed(&mut self, source: &mut Src, error: Option<&io::Error>) {
        self.inner.closed(source, error)
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
        serve(&mut reactor, listener, args.period)?;
        common::stop_on_signals(&mut reactor)?;
        reactor.run()?;
        println!("shutting down");
        Ok(())
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend.backend;
    match backend
        .run(Main(args))
        .expect("parsed backends are compiled")
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timeout_server: {e}");
            ExitCode::FAILURE
        }
    }
}
