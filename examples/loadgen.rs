//! A load generator for echo servers and for the Message protocol (`docs/protocol.md`),
//! used by `benches/compare.rs` and usable by hand.
//!
//! It opens `--idle` connections first and leaves them open (each is first checked with a
//! one-byte echo, so the server has really accepted and registered it), then `--connections`
//! active ones. Each active connection runs a closed loop: send one request, wait until the
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

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rawloop::protocol::{request_search, respond, Decoder, Message};
use serde_json::json;

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
    /// Extra connections opened first and held open without traffic (echo mode only).
    #[arg(long, default_value_t = 0)]
    idle: usize,
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

/// What the connections send and what must come back.
enum Workload {
    /// `size`-byte requests cut from `pattern`, echoed unchanged.
    Echo { size: usize, pattern: Vec<u8> },
    /// One Message-protocol request and its exact response frame.
    Message {
        request: Vec<u8>,
        response: Vec<u8>,
        expected: Box<Message>,
        keep_alive: bool,
    },
}

/// The byte sent as an idle connection's check.
const IDLE_PING: &[u8] = b"!";

impl Workload {
    fn echo(size: usize) -> Workload {
        let pattern = (0..size + 251)
            .map(|i| b'0' + (i % 251 % 75) as u8)
            .collect();
        Workload::Echo { size, pattern }
    }

    fn message(keep_alive: bool) -> Result<Workload, String> {
        let request = request_search("morpheus")
            .encode()
            .map_err(|e| e.to_string())?;
        let decoded = decode_one(&request)?;
        let expected = respond(&decoded);
        let response = expected.encode().map_err(|e| e.to_string())?;
        // The expected message as a reader sees it (with its JSON parsed).
        let expected = Box::new(decode_one(&response)?);
        Ok(Workload::Message {
            request,
            response,
            expected,
            keep_alive,
        })
    }

    /// Request number `seq` of connection `conn`.
    fn request(&self, conn: usize, seq: u64) -> &[u8] {
        match self {
            Workload::Echo { size, pattern } => {
                let at = (conn * 31 + seq as usize * 7) % 251;
                &pattern[at..at + size]
            }
            Workload::Message { request, .. } => request,
        }
    }

    /// The reply to request `seq` of connection `conn`, byte for byte.
    fn reply(&self, conn: usize, seq: u64) -> &[u8] {
        match self {
            Workload::Echo { .. } => self.request(conn, seq),
            Workload::Message { response, .. } => response,
        }
    }

    /// Whether a connection carries more than one request.
    fn keep_alive(&self) -> bool {
        match self {
            Workload::Echo { .. } => true,
            Workload::Message { keep_alive, .. } => *keep_alive,
        }
    }

    /// A decoder for replies, where the protocol has frames.
    fn decoder(&self) -> Option<Decoder> {
        match self {
            Workload::Echo { .. } => None,
            Workload::Message { .. } => Some(Decoder::new()),
        }
    }

    /// The check of a whole reply beyond its bytes: the frame decodes to the message expected.
    fn check_reply(&self, decoder: Option<&mut Decoder>) -> Result<(), String> {
        match (self, decoder) {
            (Workload::Message { expected, .. }, Some(decoder)) => match decoder.next_message() {
                Ok(Some(message)) if message == **expected && decoder.is_idle() => Ok(()),
                Ok(Some(message)) => Err(format!("decoded an unexpected reply: {message:?}")),
                Ok(None) => Err("the reply frame is incomplete".into()),
                Err(e) => Err(format!("the reply does not decode: {e}")),
            },
            _ => Ok(()),
        }
    }
}

fn decode_one(frame: &[u8]) -> Result<Message, String> {
    let mut decoder = Decoder::new();
    decoder.feed(frame);
    match decoder.next_message() {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err("incomplete frame".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    /// Checked with one ping, then held open without traffic.
    Idle,
    /// Runs requests in a closed loop.
    Active,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
    /// No new request; the ones in flight finish.
    Drain,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ConnState {
    Connecting,
    /// A request is being sent or its reply received.
    Busy,
    /// Whole reply in, no keep-alive: the server must close now, with no byte more.
    AwaitEof,
    /// Out of the poll set: an idle connection after its ping, or an active one after drain.
    Parked,
}

struct Conn {
    stream: TcpStream,
    role: Role,
    state: ConnState,
    /// Requests completed on this slot (across reconnects without keep-alive).
    seq: u64,
    sent: usize,
    received: usize,
    started: Instant,
    decoder: Option<Decoder>,
}

/// What was measured.
struct Totals {
    /// Requests completed in the measured window.
    measured: u64,
    /// Every request completed (idle pings, warmup, window, drain).
    exchanges: u64,
    connects: u64,
    bytes_checked: u64,
    latency: Histogram<u64>,
}

struct LoadGen<'w> {
    poll: Poll,
    addr: SocketAddr,
    workload: &'w Workload,
    conns: Vec<Conn>,
    phase: Phase,
    totals: Totals,
    buf: Vec<u8>,
}

fn fail<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

impl<'w> LoadGen<'w> {
    /// Starts connection `slot` (a new one, or a reconnect for one-request connections).
    fn connect(&mut self, role: Role, slot: Option<usize>) -> Result<usize, String> {
        let mut stream =
            TcpStream::connect(self.addr).map_err(|e| format!("connect {}: {e}", self.addr))?;
        let slot = slot.unwrap_or(self.conns.len());
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        let conn = Conn {
            stream,
            role,
            state: ConnState::Connecting,
            seq: self.conns.get(slot).map_or(0, |c| c.seq),
            sent: 0,
            received: 0,
            started: Instant::now(),
            decoder: self.workload.decoder(),
        };
        if slot == self.conns.len() {
            self.conns.push(conn);
        } else {
            self.conns[slot] = conn;
        }
        self.totals.connects += 1;
        Ok(slot)
    }

    fn request_of(&self, slot: usize) -> &'w [u8] {
        let conn = &self.conns[slot];
        match conn.role {
            Role::Idle => IDLE_PING,
            Role::Active => self.workload.request(slot, conn.seq),
        }
    }

    fn reply_of(&self, slot: usize) -> &'w [u8] {
        let conn = &self.conns[slot];
        match conn.role {
            Role::Idle => IDLE_PING,
            Role::Active => self.workload.reply(slot, conn.seq),
        }
    }

    fn park(&mut self, slot: usize) -> Result<(), String> {
        let conn = &mut self.conns[slot];
        conn.state = ConnState::Parked;
        self.poll
            .registry()
            .deregister(&mut conn.stream)
            .map_err(|e| format!("deregister: {e}"))
    }

    /// Writes what is left of `slot`'s request, until done or the socket is full.
    fn write_request(&mut self, slot: usize) -> Result<(), String> {
        let request = self.request_of(slot);
        let conn = &mut self.conns[slot];
        while conn.sent < request.len() {
            match conn.stream.write(&request[conn.sent..]) {
                Ok(0) => return fail(format!("connection {slot}: write returned 0")),
                Ok(n) => conn.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return fail(format!("connection {slot}: write: {e}")),
            }
        }
        Ok(())
    }

    /// Handles an event on `slot`: finishes a connect, writes, reads and checks, and starts
    /// the next request when one completes. `closed` says the event reported the peer's end
    /// of stream, so reading must go on until it is seen.
    fn ready(&mut self, slot: usize, closed: bool) -> Result<(), String> {
        if self.conns[slot].state == ConnState::Connecting {
            let conn = &mut self.conns[slot];
            if let Some(e) = conn.stream.take_error().map_err(|e| e.to_string())? {
                return fail(format!("connection {slot}: connect failed: {e}"));
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return fail(format!("connection {slot}: connect failed: {e}")),
            }
            conn.stream
                .set_nodelay(true)
                .map_err(|e| format!("connection {slot}: nodelay: {e}"))?;
            conn.state = ConnState::Busy;
            if conn.role == Role::Active && self.workload.keep_alive() {
                // The latency of a one-request connection includes its connect; of a
                // keep-alive one, only the request.
                conn.started = Instant::now();
            }
        }
        if self.conns[slot].state == ConnState::Busy {
            self.write_request(slot)?;
        }
        loop {
            let reply = self.reply_of(slot);
            let conn = &mut self.conns[slot];
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) if conn.state == ConnState::AwaitEof => {
                    // The server closed after its response, as the protocol says.
                    return self.park(slot);
                }
                Ok(0) => {
                    return fail(format!(
                        "connection {slot} ({:?}): the server closed it with {} of {} reply bytes received",
                        conn.role,
                        conn.received,
                        reply.len()
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return fail(format!("connection {slot}: read: {e}")),
            };
            let got = &self.buf[..n];
            if conn.state != ConnState::Busy || conn.received + n > reply.len() {
                return fail(format!(
                    "connection {slot} ({:?}): {} bytes received beyond the {}-byte reply",
                    conn.role,
                    conn.received + n - reply.len().min(conn.received + n),
                    reply.len()
                ));
            }
            let want = &reply[conn.received..conn.received + n];
            if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                return fail(format!(
                    "connection {slot}: reply {} differs at byte {}: got {:#04x}, expected {:#04x}",
                    conn.seq,
                    conn.received + i,
                    got[i],
                    want[i]
                ));
            }
            if let Some(decoder) = conn.decoder.as_mut() {
                decoder.feed(got);
            }
            conn.received += n;
            self.totals.bytes_checked += n as u64;
            if conn.received == reply.len() {
                self.complete(slot)?;
                match self.conns[slot].state {
                    // The reply to the next request cannot be here before the request:
                    // send it and wait for the edge that its reply raises.
                    ConnState::Busy => return self.write_request(slot),
                    // Read on: the end of stream may already be queued.
                    ConnState::AwaitEof => continue,
                    _ => return Ok(()),
                }
            }
            // A short read drained the socket, and the next byte raises a new edge; unless
            // the peer's end of stream was reported, which raises no further edge.
            if n < self.buf.len() && !closed {
                return Ok(());
            }
        }
    }

    /// A whole reply arrived on `slot`: record it and set up what comes next.
    fn complete(&mut self, slot: usize) -> Result<(), String> {
        let now = Instant::now();
        let conn = &mut self.conns[slot];
        self.workload
            .check_reply(conn.decoder.as_mut())
            .map_err(|e| format!("connection {slot}: reply {}: {e}", conn.seq))?;
        self.totals.exchanges += 1;
        conn.seq += 1;
        conn.sent = 0;
        conn.received = 0;
        if conn.role == Role::Idle {
            return self.park(slot);
        }
        if self.phase == Phase::Measure {
            let nanos = now.duration_since(conn.started).as_nanos() as u64;
            self.totals
                .latency
                .record(nanos.max(1))
                .map_err(|e| format!("latency {nanos} ns out of range: {e}"))?;
            self.totals.measured += 1;
        }
        conn.started = now;
        if !self.workload.keep_alive() {
            conn.state = ConnState::AwaitEof;
            return Ok(());
        }
        if self.phase == Phase::Drain {
            return self.park(slot);
        }
        Ok(())
    }

    /// One-request connections that the server closed are replaced, until the drain.
    fn reconnect_finished(&mut self, slot: usize) -> Result<(), String> {
        let conn = &self.conns[slot];
        if conn.role == Role::Active
            && conn.state == ConnState::Parked
            && !self.workload.keep_alive()
            && self.phase != Phase::Drain
        {
            self.connect(Role::Active, Some(slot))?;
        }
        Ok(())
    }

    /// Runs one poll and its events; returns how many events there were.
    fn turn(&mut self, events: &mut Events, timeout: Duration) -> Result<usize, String> {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return fail(format!("poll: {e}")),
        }
        let mut n = 0;
        for event in events.iter() {
            let slot = event.token().0;
            n += 1;
            if slot >= self.conns.len() || self.conns[slot].state == ConnState::Parked {
                continue;
            }
            self.ready(slot, event.is_read_closed() || event.is_error())?;
            self.reconnect_finished(slot)?;
        }
        Ok(n)
    }

    fn count(&self, role: Role, state: ConnState) -> usize {
        self.conns
            .iter()
            .filter(|c| c.role == role && c.state == state)
            .count()
    }
}

/// User + system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').ok_or("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("no field {i} in /proc/{pid}/stat"))
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let total = ticks(14)? + ticks(15)?;
    Ok(Duration::from_nanos(total * 1_000_000_000 / hz))
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
    let needed = (args.idle + args.connections + 64) as libc::rlim_t;
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

    // Idle connections: at most BATCH connecting at a time, so the listen backlog holds them.
    const BATCH: usize = 64;
    let setup_end = Instant::now() + setup_timeout;
    let mut opened = 0;
    loop {
        let parked = gen.count(Role::Idle, ConnState::Parked);
        if parked == args.idle {
            break;
        }
        let in_flight = opened - parked;
        for _ in 0..(BATCH - in_flight).min(args.idle - opened) {
            gen.connect(Role::Idle, None)?;
            opened += 1;
        }
        if Instant::now() > setup_end {
            return fail(format!(
                "only {parked} of {} idle connections were open and answering after {setup_timeout:?}",
                args.idle
            ));
        }
        gen.turn(&mut events, Duration::from_millis(100))?;
    }
    let idle_slots = gen.conns.len();

    // Active connections; the warmup starts when the last one is connected.
    for _ in 0..args.connections {
        gen.connect(Role::Active, None)?;
    }
    while gen.count(Role::Active, ConnState::Connecting) > 0 {
        if Instant::now() > setup_end {
            return fail(format!(
                "active connections not established after {setup_timeout:?}"
            ));
        }
        gen.turn(&mut events, Duration::from_millis(100))?;
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
    for slot in idle_slots..gen.conns.len() {
        let conn = &gen.conns[slot];
        if conn.state == ConnState::Busy && conn.sent == 0 && conn.received == 0 {
            gen.park(slot)?;
        }
    }
    let drain_end = Instant::now() + drain_timeout;
    while gen.conns[idle_slots..]
        .iter()
        .any(|c| c.state != ConnState::Parked)
    {
        if Instant::now() > drain_end {
            return fail(format!(
                "requests still in flight {drain_timeout:?} after the measurement"
            ));
        }
        gen.turn(&mut events, Duration::from_millis(100))?;
    }

    // The idle connections must still be open: nothing to read, no end of stream.
    for (slot, conn) in gen.conns[..idle_slots].iter_mut().enumerate() {
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

    let t = &gen.totals;
    let secs = elapsed.as_secs_f64();
    let us = |q: f64| t.latency.value_at_quantile(q) as f64 / 1000.0;
    let per_request =
        |cpu: Duration| (t.measured > 0).then(|| cpu.as_secs_f64() * 1e6 / t.measured as f64);
    Ok(json!({
        "mode": match args.mode { Mode::Echo => "echo", Mode::Message => "message" },
        "keep_alive": workload.keep_alive(),
        "connections": args.connections,
        "idle": args.idle,
        "size": match args.mode { Mode::Echo => args.size, Mode::Message => workload.request(0, 0).len() },
        "seconds": secs,
        "requests": t.measured,
        "requests_per_s": t.measured as f64 / secs,
        "p50_us": us(0.5),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "max_us": t.latency.max() as f64 / 1000.0,
        "server_cpu_s": server_cpu.map(|c| c.as_secs_f64()),
        "server_cpu_per_request_us": server_cpu.and_then(per_request),
        "server_cpu_utilisation": server_cpu.map(|c| c.as_secs_f64() / secs),
        "loadgen_cpu_utilisation": own_cpu.as_secs_f64() / secs,
        "exchanges_total": t.exchanges,
        "connects_total": t.connects,
        "bytes_checked": t.bytes_checked,
    }))
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(result) if args.json => println!("{result}"),
        Ok(r) => {
            println!(
                "{} requests in {:.2} s: {:.0} requests/s; latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
                r["requests"], r["seconds"].as_f64().unwrap_or(0.0), r["requests_per_s"].as_f64().unwrap_or(0.0),
                r["p50_us"].as_f64().unwrap_or(0.0), r["p99_us"].as_f64().unwrap_or(0.0), r["p999_us"].as_f64().unwrap_or(0.0),
            );
            match r["server_cpu_per_request_us"].as_f64() {
                Some(cpu) => println!(
                    "server CPU {:.2} us per request ({:.0}% of a core); load generator {:.0}% of a core",
                    cpu,
                    r["server_cpu_utilisation"].as_f64().unwrap_or(0.0) * 100.0,
                    r["loadgen_cpu_utilisation"].as_f64().unwrap_or(0.0) * 100.0
                ),
                None => println!("server CPU not measured (give --server-pid)"),
            }
            println!(
                "{} bytes received and checked, {} exchanges, {} connects",
                r["bytes_checked"], r["exchanges_total"], r["connects_total"]
            );
        }
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
