//! A load generator for echo servers and for the Message protocol (`docs/protocol.md`),
//! used by `benches/compare` and usable by hand.
//!
//! It opens `--idle` connections first and leaves them open (each is first checked with a
//! one-byte echo, so the server has really accepted and registered it), then `--connections`
//! active ones; with `--active-first` the active ones first (each has had a reply before the
//! first idle one connects), then the idle ones, still each checked before the warmup. The
//! order is the server's registration order, which is the order select(2) and poll(2) scan
//! the fds in. Each active connection runs a closed loop: send one request, wait until the
//! whole reply is back, send the next. After `--warmup` seconds it measures for
//! `--duration` seconds: requests completed, their latency (first byte sent to last byte
//! received, in an HDR histogram), and the CPU time the server process used meanwhile
//! (user + system, from `/proc/<--server-pid>/stat`). Then it stops sending, lets every
//! request in flight finish, checks that the idle connections are still open, and closes.
//!
//! Every byte received is checked against the byte expected at that position; any
//! difference, extra byte, early close or error ends the run with a non-zero status. The
//! result is printed as one JSON object (`--json`) or as text.
//!
//! Workloads (`--mode`), each a [`Workload`] value: its request bytes, the exact reply bytes,
//! and whether a connection carries many requests:
//!
//! * `echo`: a request is `--size` bytes of a pattern whose period (251, a prime) matches no
//!   message or buffer size, starting at an offset that changes with the connection and the
//!   request, so that lost, repeated or misplaced bytes show;
//! * `message`: a Message-protocol search request (`request_search("morpheus")`), whose reply
//!   must be the exact response frame and must decode (with `Decoder`) to the expected
//!   message. One request per connection (connect, request, response, the server closes) as
//!   the reference programs do, or many with `--keep-alive`.
//!
//! A new protocol is a new [`Workload`] variant: its request, its reply, and its final check.
//!
//! The load goes to a loopback address only; the run is bounded by `--warmup`,
//! `--duration`, `--setup-timeout` and `--drain-timeout`.
//!
//! `cargo run --release --example loadgen -- --port 65432 --connections 50 --size 64 --duration 3`

mod connection;
mod report;
mod setup;
mod workload;

use std::io::{self, Read};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use mio::{Events, Poll};
use serde_json::json;

use connection::{ConnState, LoadGen, Phase, Role};
use report::{cpu_time, Totals};
use workload::Workload;

#[derive(Parser, Debug)]
#[command(about = "Closed-loop load generator for echo and Message-protocol servers")]
struct Args {
    /// echo: `--size`-byte echoes; message: Message-protocol search requests.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// Server host; must resolve to a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    /// Active connections, each with one request in flight at a time.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Extra connections held open without traffic (echo mode only), opened before the
    /// active ones unless `--active-first`.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Open the active connections first (each has had a reply before the first idle one
    /// connects), then the idle ones; by default the idle ones come first.
    #[arg(long)]
    active_first: bool,
    /// Bytes per echo request.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Message mode: many requests per connection instead of one.
    #[arg(long)]
    keep_alive: bool,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds allowed for opening the connections.
    #[arg(long, default_value_t = 60.0)]
    setup_timeout: f64,
    /// Seconds allowed for the requests in flight to finish after the measurement.
    #[arg(long, default_value_t = 10.0)]
    drain_timeout: f64,
    /// The server's process id, for its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Message,
}

fn fail<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is i64 on FreeBSD
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard as u64;
    }
    soft as u64
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("--{what} {s}: {e}"))
}

fn run(args: &Args) -> Result<serde_json::Value, String> {
    let addr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", args.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", args.host))?;
    if !addr.ip().is_loopback() {
        return fail(format!(
            "{addr} is not a loopback address: the load generator only loads this machine"
        ));
    }
    if args.connections == 0 {
        return fail("--connections must be at least 1");
    }
    let workload = match args.mode {
        Mode::Echo => {
            if args.size == 0 {
                return fail("--size must be at least 1");
            }
            Workload::echo(args.size)
        }
        Mode::Message => {
            if args.idle > 0 {
                return fail(
                    "--idle is for echo mode (a Message server times idle connections out)",
                );
            }
            Workload::message(args.keep_alive)?
        }
    };
    let warmup = seconds(args.warmup, "warmup")?;
    let duration = seconds(args.duration, "duration")?;
    let setup_timeout = seconds(args.setup_timeout, "setup-timeout")?;
    let drain_timeout = seconds(args.drain_timeout, "drain-timeout")?;
    if duration.is_zero() {
        return fail("--duration must be positive");
    }
    let limit = raise_nofile();
    let needed = (args.idle + args.connections + 64) as u64;
    if limit < needed {
        return fail(format!(
            "{} connections need about {needed} open files; the limit is {limit}",
            args.idle + args.connections
        ));
    }

    let mut gen = LoadGen {
        poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
        addr,
        workload: &workload,
        conns: Vec::with_capacity(args.idle + args.connections),
        phase: Phase::Warmup,
        totals: Totals {
            measured: 0,
            exchanges: 0,
            connects: 0,
            bytes_checked: 0,
            latency: Histogram::new_with_bounds(1, 120_000_000_000, 3)
                .map_err(|e| e.to_string())?,
        },
        buf: vec![0u8; 64 * 1024],
    };
    let mut events = Events::with_capacity(1024);

    // Idle first (the default), so that the active connections come last in the server's
    // registration order; or, with --active-first, the active ones first.
    let setup_end = Instant::now() + setup_timeout;
    if args.active_first {
        setup::open_active(&mut gen, &mut events, args.connections, true, setup_end)?;
        setup::open_idle(&mut gen, &mut events, args.idle, setup_end)?;
    } else {
        setup::open_idle(&mut gen, &mut events, args.idle, setup_end)?;
        setup::open_active(&mut gen, &mut events, args.connections, false, setup_end)?;
    }

    let warmup_end = Instant::now() + warmup;
    while Instant::now() < warmup_end {
        gen.turn(
            &mut events,
            warmup_end.saturating_duration_since(Instant::now()),
        )?;
    }
    let server_cpu_start = args.server_pid.map(cpu_time).transpose()?;
    let own_cpu_start = cpu_time(std::process::id())?;
    gen.phase = Phase::Measure;
    let start = Instant::now();
    let end = start + duration;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        gen.turn(&mut events, end - now)?;
    }
    let elapsed = start.elapsed();
    let server_cpu = match (args.server_pid, server_cpu_start) {
        (Some(pid), Some(before)) => Some(cpu_time(pid)?.saturating_sub(before)),
        _ => None,
    };
    let own_cpu = cpu_time(std::process::id())?.saturating_sub(own_cpu_start);

    // Drain: no new requests; every request in flight must finish, and every byte check.
    gen.phase = Phase::Drain;
    for slot in 0..gen.conns.len() {
        let conn = &gen.conns[slot];
        if conn.role == Role::Active
            && conn.state == ConnState::Busy
            && conn.sent == 0
            && conn.received == 0
        {
            gen.park(slot)?;
        }
    }
    let drain_end = Instant::now() + drain_timeout;
    while gen
        .conns
        .iter()
        .any(|c| c.role == Role::Active && c.state != ConnState::Parked)
    {
        if Instant::now() > drain_end {
            return fail(format!(
                "requests still in flight {drain_timeout:?} after the measurement"
            ));
        }
        gen.turn(&mut events, Duration::from_millis(100))?;
    }

    // The idle connections must still be open: nothing to read, no end of stream.
    for (slot, conn) in gen.conns.iter_mut().enumerate() {
        if conn.role != Role::Idle {
            continue;
        }
        match conn.stream.read(&mut gen.buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(0) => return fail(format!("idle connection {slot} was closed by the server")),
            Ok(n) => {
                return fail(format!(
                    "idle connection {slot} received {n} unexpected bytes"
                ))
            }
            Err(e) => return fail(format!("idle connection {slot}: {e}")),
        }
    }

    Ok(report::to_json(
        args,
        &workload,
        &gen.totals,
        elapsed,
        server_cpu,
        own_cpu,
    ))
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(result) if args.json => println!("{result}"),
        Ok(r) => report::print_text(&r),
        Err(e) => {
            if args.json {
                println!("{}", json!({ "error": e }));
            } else {
                eprintln!("loadgen: {e}");
            }
            std::process::exit(1);
        }
    }
}
