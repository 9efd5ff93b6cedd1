//! The reactor embedded in another program's loop: the program owns `main`'s loop, does its
//! own periodic work (a status line every `--tick`), checks its own deadline and counter, and
//! lets the reactor run one round at a time with [`Reactor::run_once`]`(Some(timeout))`. The
//! reactor serves an echo server on a loopback port and a client of it that does round trips
//! (send a line, wait for the whole echo, check it, send the next), both in this process. The
//! program stops by itself after `--rounds` round trips or `--seconds`, whichever comes first,
//! and exits 0 (1 if an echo was wrong or a socket failed).
//!
//! This is the shape of the seeds' `while True: events = sel.select(timeout)` loops when the
//! loop belongs to someone else: a GUI, a game, a simulation, a test.
//!
//! `cargo run --example embed -- [--backend select|poll|epoll|kqueue] [--rounds N]
//! [--seconds SECS] [--tick SECS]`

mod common;

use std::io::{self, Read};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rawloop::buffer::OutBuf;
use rawloop::{Acceptor, Context, Event, Handler, Interest, Reactor, Selector};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Stop after this many round trips.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    rounds: u64,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = common::parse_seconds)]
    seconds: Duration,
    /// How often the program's own loop does its periodic work.
    #[arg(long, value_name = "SECS", default_value = "0.25", value_parser = common::parse_seconds)]
    tick: Duration,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    /// Round trips completed (each echo checked).
    round_trips: u64,
    /// Times the program's own periodic work ran.
    ticks: u64,
    /// Calls of `run_once`.
    rounds_run: u64,
    /// How long the loop ran.
    elapsed: Duration,
}

/// What the pinger shares with the program's loop.
#[derive(Debug, Default)]
struct Progress {
    round_trips: u64,
    /// Set when the pinger failed; the loop stops and reports it.
    error: Option<io::Error>,
}

/// Runs the program's own loop: an echo server and its client on one reactor, driven by
/// `run_once`, until `rounds` round trips are done or `limit` has passed. The periodic work
/// (a status line) runs every `tick`. Fails if a round trip fails.
fn run_embedded<S: Selector>(
    mut reactor: Reactor<S>,
    rounds: u64,
    limit: Duration,
    tick: Duration,
) -> io::Result<Report> {
    let tick = tick.max(Duration::from_millis(1));

    // The server: accept and echo, as examples/echo_server.rs does.
    let listener = common::listen("127.0.0.1", 0)?;
    let addr = listener.local_addr()?;
    let acceptor = Acceptor::tcp(|stream, peer, cx| {
        log::info!("server: accepted {peer}");
        cx.register(stream, Interest::READABLE, common::Echo::new())?;
        Ok(())
    });
    reactor.register(listener, Interest::READABLE, acceptor)?;

    // The client, connecting without blocking.
    // What the pinger shares with this loop: the reactor's shared state.
    reactor.set_data(Progress::default());
    reactor
        .context()
        .connect(addr, Interest::WRITABLE, Pinger::new(rounds))?;

    // The program's own loop.
    let start = Instant::now();
    let deadline = start + limit;
    let mut next_tick = start + tick;
    let mut ticks = 0;
    let mut rounds_run = 0;
    loop {
        if let Some(e) = progress(&mut reactor).error.take() {
            return Err(e);
        }
        let done = progress(&mut reactor).round_trips;
        let now = Instant::now();
        if done >= rounds {
            log::info!("{done} round trips done");
            break;
        }
        if now >= deadline {
            log::info!("time is up after {done} round trips");
            break;
        }
        if now >= next_tick {
            // "Do some other work here": whatever the host program does between rounds.
            ticks += 1;
            next_tick += tick;
            log::info!(
                "tick {ticks}: {done} round trips in {:.1} s, {} sources registered",
                now.duration_since(start).as_secs_f64(),
                reactor.len()
            );
        }
        // Wait for I/O at most until the program's next own deadline.
        let wait = next_tick.min(deadline).saturating_duration_since(now);
        reactor.run_once(Some(wait))?;
        rounds_run += 1;
    }
    let report = Report {
        round_trips: progress(&mut reactor).round_trips,
        ticks,
        rounds_run,
        elapsed: start.elapsed(),
    };
    // Dropping the reactor closes the listener and both ends of the connection.
    drop(reactor);
    Ok(report)
}

/// The loop's view of the shared [`Progress`].
fn progress<S: Selector>(reactor: &mut Reactor<S>) -> &mut Progress {
    reactor.data().expect("run_embedded set the progress")
}

/// A handler's view of the shared [`Progress`].
fn progress_of<'a>(cx: &'a mut Context<'_>) -> &'a mut Progress {
    cx.data().expect("run_embedded set the progress")
}

/// The client's state machine: sends one line, reads until its echo is complete, checks it,
/// counts the round trip, sends the next.
struct Pinger {
    rounds: u64,
    sent: u64,
    line: Vec<u8>,
    got: Vec<u8>,
    out: OutBuf,
}

impl Pinger {
    fn new(rounds: u64) -> Pinger {
        Pinger {
            rounds,
            sent: 0,
            line: Vec::new(),
            got: Vec::new(),
            out: OutBuf::new(common::OUTPUT_LIMIT),
        }
    }

    /// Starts the next round trip, if any are left.
    fn send_next(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if self.sent >= self.rounds {
            return Ok(());
        }
        self.sent += 1;
        self.line = format!("round trip {} of {}\n", self.sent, self.rounds).into_bytes();
        self.got.clear();
        log::debug!("client: sending {}", common::show(&self.line));
        self.out.write_or_queue(stream, &self.line)
    }

    fn step(
        &mut self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        if event.is_writable() {
            self.out.flush_to(stream)?;
        }
        if self.sent == 0 {
            self.send_next(stream)?;
        }
        if event.is_readable() {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection",
                        ))
                    }
                    Ok(n) => self.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if !self.line.starts_with(&self.got) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "sent {} but got {} back",
                        common::show(&self.line),
                        common::show(&self.got)
                    ),
                ));
            }
            if !self.got.is_empty() && self.got.len() == self.line.len() {
                log::debug!("client: received {}", common::show(&self.got));
                progress_of(cx).round_trips += 1;
                self.send_next(stream)?;
            }
        }
        cx.set_interest(if self.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })
    }
}

impl Handler<TcpStream> for Pinger {
    fn connected(
        &mut self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        match &result {
            Ok(()) => log::info!("client: connected from {}", stream.local_addr()?),
            Err(e) => progress_of(cx).error = Some(io::Error::new(e.kind(), e.to_string())),
        }
        result
    }

    fn ready(
        &mut self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        let result = self.step(stream, cx, event);
        if let Err(e) = &result {
            progress_of(cx).error = Some(io::Error::new(e.kind(), e.to_string()));
        }
        // An error also closes the registration (and is logged by the reactor).
        result
    }
}

fn run(args: Args) -> io::Result<Report> {
    let reactor = Reactor::with_backend(args.backend.backend)?;
    println!(
        "embedding a reactor ({} backend): up to {} round trips or {:?}",
        reactor.backend(),
        args.rounds,
        args.seconds
    );
    run_embedded(reactor, args.rounds, args.seconds, args.tick)
}

fn main() -> ExitCode {
    common::init_logging();
    match run(Args::parse()) {
        Ok(r) => {
            println!(
                "{} round trips in {:.3} s ({:.0}/s), {} ticks of other work, {} reactor rounds",
                r.round_trips,
                r.elapsed.as_secs_f64(),
                r.round_trips as f64 / r.elapsed.as_secs_f64().max(1e-9),
                r.ticks,
                r.rounds_run
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}
