//! The soak benchmark's load: std threads with blocking sockets (timeouts on every call) or
//! non-blocking ones polled at a fixed pace. Every loop checks the shared stop flag at least
//! every few seconds, so the whole load stops by itself.
//!
//! A wrong byte or answer, a good connection that is refused, reset, closed or stalled, or an
//! abusive connection the server keeps too long, is a failure. A reset of a connection the
//! load abused itself (garbage, a request cut short, a request timeout) is expected and only
//! counted.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rawloop::protocol;

use crate::splitmix64;

/// Connect timeout for every client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Read and write timeout of a well-behaved client: an answer slower than this is a failure.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the load is asked to do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub echo_addr: SocketAddr,
    pub app_addr: SocketAddr,
    /// Closed-loop echo connections.
    pub echo_conns: usize,
    /// Pause between one echo and the next on a connection.
    pub echo_pause: Duration,
    /// One-request Message clients per second.
    pub message_rate: f64,
    /// Connect/close churn, connections per second (both servers together).
    pub churn_rate: f64,
    /// Garbage frames to app_server per second.
    pub garbage_rate: f64,
    /// Slow-reader connections to echo_server.
    pub slow_readers: usize,
    /// Slowloris writers to echo_server (one byte every few seconds).
    pub slowloris: usize,
    /// Idle connections held open to echo_server.
    pub idle_echo: usize,
    /// Idle connections to app_server, which closes them at its request timeout.
    pub idle_app: usize,
    /// Connections to app_server that send a request one byte every two seconds.
    pub partial_app: usize,
    /// app_server's request timeout.
    pub app_request_timeout: Duration,
}

// ---------------------------------------------------------------------------------------------
// Shared counters
// ---------------------------------------------------------------------------------------------

/// The counters of one server; the monitor reads and differences them every window.
pub struct Counters {
    /// Latencies in µs of this window's echoes (echo_server) or requests (app_server).
    pub latency: Mutex<Histogram<u64>>,
    /// Echo round trips or Message requests answered and checked.
    pub ops: AtomicU64,
    /// Bytes received and checked (echoes, slow readers, slowloris).
    pub checked_bytes: AtomicU64,
    /// Churn connections opened and closed.
    pub churn: AtomicU64,
    /// Abusive connections finished: garbage frames, slow-reader sessions, slowloris
    /// connections, request-timeout closes.
    pub abuse: AtomicU64,
    /// Resets of connections the load abused (expected).
    pub resets: AtomicU64,
    /// Failed checks.
    pub failures: AtomicU64,
    /// Idle connections open at the last check.
    pub idle_open: AtomicU64,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            latency: Mutex::new(new_histogram()),
            ops: AtomicU64::new(0),
            checked_bytes: AtomicU64::new(0),
            churn: AtomicU64::new(0),
            abuse: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            idle_open: AtomicU64::new(0),
        }
    }

    fn record(&self, started: Instant) {
        let us = started.elapsed().as_micros().max(1) as u64;
        self.latency.lock().unwrap().saturating_record(us);
        self.ops.fetch_add(1, Relaxed);
    }
}

/// A latency histogram in µs, 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Which server a counter or failure belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Echo,
    App,
}

/// The state every load thread shares with the monitor.
pub struct Shared {
    pub stop: AtomicBool,
    pub started: Instant,
    pub echo: Counters,
    pub app: Counters,
    /// The first failures, with when they happened, for the final report.
    pub first_failures: Mutex<Vec<String>>,
    /// Closes at app_server's request timeout: count, and the shortest and longest age.
    pub app_timeouts: Mutex<(u64, Duration, Duration)>,
}

/// How many failures are printed as they happen, and kept for the final report.
const FAILURES_SHOWN: usize = 30;

impl Shared {
    pub fn new() -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            started: Instant::now(),
            echo: Counters::new(),
            app: Counters::new(),
            first_failures: Mutex::new(Vec::new()),
            app_timeouts: Mutex::new((0, Duration::MAX, Duration::ZERO)),
        }
    }

    pub fn counters(&self, target: Target) -> &Counters {
        match target {
            Target::Echo => &self.echo,
            Target::App => &self.app,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Counts and reports a failed check.
    fn fail(&self, target: Target, what: String) {
        self.counters(target).failures.fetch_add(1, Relaxed);
        let mut first = self.first_failures.lock().unwrap();
        if first.len() < FAILURES_SHOWN {
            let name = match target {
                Target::Echo => "echo_server",
                Target::App => "app_server",
            };
            let line = format!(
                "{:>6.1}s {name}: FAILURE: {what}",
                self.started.elapsed().as_secs_f64()
            );
            println!("{line}");
            first.push(line);
        }
    }

    fn reset(&self, target: Target) {
        self.counters(target).resets.fetch_add(1, Relaxed);
    }

    /// Sleeps until `until` or the stop, whichever comes first; false if stopped.
    fn sleep_until(&self, until: Instant) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            sleep((until - now).min(Duration::from_millis(100)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Byte `offset` of the pseudo-random stream `seed`: any chunking gives the same bytes.
fn pattern(seed: u64, offset: u64) -> u8 {
    (splitmix64(seed ^ (offset / 8).wrapping_mul(0x2545_f491_4f6c_dd1d)) >> ((offset % 8) * 8))
        as u8
}

fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(seed, offset + i as u64);
    }
}

/// The offset of the first byte of `got` that differs from the stream `seed` at `offset`.
fn first_wrong(seed: u64, offset: u64, got: &[u8]) -> Option<u64> {
    got.iter()
        .enumerate()
        .find(|&(i, &b)| b != pattern(seed, offset + i as u64))
        .map(|(i, _)| offset + i as u64)
}

/// A blocking connection with the well-behaved client's timeouts.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// SO_LINGER 0: the close that follows sends RST instead of FIN.
fn set_rst_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &linger);
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// How a connection the load abused ended, read until the server closes it or `limit` passes.
enum Ending {
    /// FIN, after this many bytes.
    Closed(usize),
    /// RST, after this many bytes.
    Reset(usize),
    /// Still open at the limit.
    Open,
    Error(io::Error),
}

fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Ending {
    let deadline = Instant::now() + limit;
    let mut got = 0;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ending::Open;
        }
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut buf) {
            Ok(0) => return Ending::Closed(got),
            Ok(n) => got += n,
            Err(e) if is_reset(&e) => return Ending::Reset(got),
            Err(e) if is_timeout(&e) => return Ending::Open,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Ending::Error(e),
        }
    }
}

/// Paces a loop at `rate` per second (never bursting to catch up more than a second).
struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    fn new(rate: f64, phase: f64) -> Pacer {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        Pacer {
            next: Instant::now() + interval.mul_f64(phase),
            interval,
        }
    }

    /// Waits for the next tick; false if stopped.
    fn wait(&mut self, shared: &Shared) -> bool {
        let now = Instant::now();
        if self.next + Duration::from_secs(1) < now {
            self.next = now;
        }
        let ok = shared.sleep_until(self.next);
        self.next += self.interval;
        ok
    }
}

// ---------------------------------------------------------------------------------------------
// The loads
// ---------------------------------------------------------------------------------------------

/// Starts every load thread; they return once `shared.stop` is set.
pub fn start(plan: &Plan, shared: &'static Shared) -> Vec<thread::JoinHandle<()>> {
    let mut handles = Vec::new();
    let mut spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        let h = thread::Builder::new()
            .name(name.clone())
            .stack_size(256 * 1024)
            .spawn(f)
            .unwrap_or_else(|e| panic!("cannot start load thread {name}: {e}"));
        handles.push(h);
    };
    for i in 0..plan.echo_conns {
        let p = plan.clone();
        spawn(
            format!("echo-{i}"),
            Box::new(move || echo_client(&p, shared, i as u64)),
        );
    }
    // Two message threads, each at half the rate, half a period apart.
    for i in 0..2 {
        let p = plan.clone();
        spawn(
            format!("message-{i}"),
            Box::new(move || message_client(&p, shared, i as f64 / 2.0)),
        );
    }
    let p = plan.clone();
    spawn("churn".into(), Box::new(move || churn(&p, shared)));
    let p = plan.clone();
    spawn("garbage".into(), Box::new(move || garbage(&p, shared)));
    for i in 0..plan.slow_readers {
        let p = plan.clone();
        spawn(
            format!("slow-reader-{i}"),
            Box::new(move || slow_reader(&p, shared, i as u64)),
        );
    }
    let p = plan.clone();
    spawn("slowloris".into(), Box::new(move || slowloris(&p, shared)));
    let p = plan.clone();
    spawn("idle-echo".into(), Box::new(move || idle_echo(&p, shared)));
    let p = plan.clone();
    spawn("idle-app".into(), Box::new(move || idle_app(&p, shared)));
    handles
}

/// Echo at one connection, closed loop: 64-byte messages, every fourth one 4 KiB, each
/// written whole and read back whole and checked byte for byte, then a pause. The connection
/// is kept for the whole run; at the stop it half-closes and expects the server to close.
fn echo_client(plan: &Plan, shared: &Shared, id: u64) {
    let c = &shared.echo;
    let seed = splitmix64(0xec40 + id);
    let mut out = vec![0u8; 4096];
    let mut inp = vec![0u8; 4096];
    let mut offset = 0u64;
    let mut n = id; // stagger the 4 KiB messages across connections
                    // Spread the first exchanges over the first pause.
    let start = Instant::now()
        + plan
            .echo_pause
            .mul_f64(id as f64 / plan.echo_conns.max(1) as f64);
    if !shared.sleep_until(start) {
        return;
    }
    'connection: while !shared.stopped() {
        let mut s = match connect(plan.echo_addr) {
            Ok(s) => s,
            Err(e) => {
                shared.fail(Target::Echo, format!("echo client {id}: connect: {e}"));
                shared.sleep_until(Instant::now() + Duration::from_secs(1));
                continue;
            }
        };
        while !shared.stopped() {
            let len = if n % 4 == 3 { 4096 } else { 64 };
            n += 1;
            fill(seed, offset, &mut out[..len]);
            let t = Instant::now();
            if let Err(e) = s.write_all(&out[..len]) {
                shared.fail(Target::Echo, format!("echo client {id}: write: {e}"));
                continue 'connection;
            }
            if let Err(e) = s.read_exact(&mut inp[..len]) {
                let what = if e.kind() == io::ErrorKind::UnexpectedEof {
                    "the server closed the connection".to_string()
                } else {
                    e.to_string()
                };
                shared.fail(
                    Target::Echo,
                    format!("echo client {id}: reading a {len}-byte echo: {what}"),
                );
                continue 'connection;
            }
            c.record(t);
            if let Some(at) = first_wrong(seed, offset, &inp[..len]) {
                shared.fail(
                    Target::Echo,
                    format!(
                        "echo client {id}: wrong echo: byte {} of a {len}-byte message differs",
                        at - offset
                    ),
                );
                continue 'connection;
            }
            c.checked_bytes.fetch_add(len as u64, Relaxed);
            offset += len as u64;
            sleep(plan.echo_pause);
        }
        // The stop: half-close; the server must send nothing more and close.
        let _ = s.shutdown(Shutdown::Write);
        match read_until_closed(&mut s, IO_TIMEOUT) {
            Ending::Closed(0) => {}
            Ending::Closed(n) => shared.fail(
                Target::Echo,
                format!("echo client {id}: {n} unexpected bytes after the last echo"),
            ),
            Ending::Reset(n) => shared.fail(
                Target::Echo,
                format!("echo client {id}: reset after a half-close ({n} bytes before)"),
            ),
            Ending::Open => shared.fail(
                Target::Echo,
                format!("echo client {id}: not closed {IO_TIMEOUT:?} after a half-close"),
            ),
            Ending::Error(e) => shared.fail(
                Target::Echo,
                format!("echo client {id}: after a half-close: {e}"),
            ),
        }
    }
}

/// One-request Message clients at a steady rate: connect, send `request_search("morpheus")`,
/// read to the end, check the one response, close.
fn message_client(plan: &Plan, shared: &Shared, phase: f64) {
    let c = &shared.app;
    let request = protocol::request_search("morpheus")
        .encode()
        .expect("the search request encodes");
    let answer = protocol::codec::search("morpheus").expect("morpheus is in the table");
    let expected = serde_json::json!({ "result": answer });
    let mut pacer = Pacer::new(plan.message_rate / 2.0, phase);
    let mut response = Vec::with_capacity(4096);
    while pacer.wait(shared) {
        let t = Instant::now();
        let mut s = match connect(plan.app_addr) {
            Ok(s) => s,
            Err(e) => {
                shared.fail(Target::App, format!("message client: connect: {e}"));
                continue;
            }
        };
        if let Err(e) = s.write_all(&request) {
            shared.fail(Target::App, format!("message client: write: {e}"));
            continue;
        }
        response.clear();
        // A response is about 150 bytes: 64 KiB is plenty, and bounds the read.
        if let Err(e) = (&mut s).take(64 * 1024).read_to_end(&mut response) {
            shared.fail(
                Target::App,
                format!(
                    "message client: reading the response: {e} ({} bytes so far)",
                    response.len()
                ),
            );
            continue;
        }
        c.record(t);
        let mut decoder = protocol::Decoder::new();
        decoder.feed(&response);
        let verdict = match (decoder.finish(), decoder.finish()) {
            (Ok(Some(m)), Ok(None)) => {
                if m.json.as_ref() == Some(&expected)
                    && m.content_type == protocol::codec::TEXT_JSON
                {
                    Ok(())
                } else {
                    Err(format!(
                        "wrong answer: {} {:?}",
                        m.content_type,
                        String::from_utf8_lossy(&m.content)
                    ))
                }
            }
            (Ok(None), _) => Err("no response before the close".into()),
            (Ok(Some(_)), Ok(Some(_))) => Err("more than one response".into()),
            (Err(e), _) | (_, Err(e)) => Err(format!(
                "undecodable response ({} bytes): {e}",
                response.len()
            )),
        };
        match verdict {
            Ok(()) => {
                c.checked_bytes.fetch_add(response.len() as u64, Relaxed);
            }
            Err(what) => shared.fail(Target::App, format!("message client: {what}")),
        }
    }
}

/// Connect/close churn on both servers in turn. Of every four connections to a server: two
/// close at once and two exchange a little first (an echo of 32 bytes, checked; to
/// app_server, the first 5 bytes of a request, which the server must drop); one of each pair
/// closes with FIN, the other with RST.
fn churn(plan: &Plan, shared: &Shared) {
    let seed = splitmix64(0xc4c4);
    let request = protocol::request_search("morpheus")
        .encode()
        .expect("the search request encodes");
    let mut pacer = Pacer::new(plan.churn_rate, 0.25);
    let mut i = 0u64;
    let mut buf = [0u8; 32];
    let mut back = [0u8; 32];
    while pacer.wait(shared) {
        let target = if i % 2 == 0 {
            Target::Echo
        } else {
            Target::App
        };
        let rst = (i / 2) % 2 == 1;
        let talk = (i / 4) % 2 == 1;
        i += 1;
        let addr = match target {
            Target::Echo => plan.echo_addr,
            Target::App => plan.app_addr,
        };
        let mut s = match connect(addr) {
            Ok(s) => s,
            Err(e) => {
                shared.fail(target, format!("churn: connect: {e}"));
                continue;
            }
        };
        if talk {
            match target {
                Target::Echo => {
                    fill(seed, i * 32, &mut buf);
                    let r = s.write_all(&buf).and_then(|()| s.read_exact(&mut back));
                    match r {
                        Err(e) => shared.fail(target, format!("churn: 32-byte echo: {e}")),
                        Ok(()) if back != buf => {
                            shared.fail(target, "churn: wrong 32-byte echo".into())
                        }
                        Ok(()) => {
                            shared.echo.checked_bytes.fetch_add(32, Relaxed);
                        }
                    }
                }
                Target::App => {
                    if let Err(e) = s.write_all(&request[..5]) {
                        shared.fail(target, format!("churn: writing a partial request: {e}"));
                    }
                }
            }
        }
        if rst {
            set_rst_on_close(&s);
        }
        drop(s);
        shared.counters(target).churn.fetch_add(1, Relaxed);
    }
}

/// Garbage to app_server, three kinds in turn; each must close its own connection, and
/// promptly (the request timeout never comes into it):
/// * random bytes (1 to 512), then a half-close;
/// * a well-formed header announcing 1 TiB of content, then 1 KiB of it;
/// * a length prefix and a header that is not JSON.
fn garbage(plan: &Plan, shared: &Shared) {
    const PROMPT: Duration = Duration::from_secs(3);
    let mut pacer = Pacer::new(plan.garbage_rate, 0.5);
    let mut rng = splitmix64(0x6a4ba6e);
    let mut kind = 0u32;
    while pacer.wait(shared) {
        kind = (kind + 1) % 3;
        let (bytes, half_close, what) = match kind {
            0 => {
                rng = splitmix64(rng);
                let len = 1 + (rng % 512) as usize;
                let mut b = vec![0u8; len];
                fill(rng, 0, &mut b);
                (b, true, "random bytes")
            }
            1 => {
                let header = format!(
                    "{{\"byteorder\": \"little\", \"content-type\": \"text/json\", \
                     \"content-encoding\": \"utf-8\", \"content-length\": {}}}",
                    1u64 << 40
                );
                let mut b = (header.len() as u16).to_be_bytes().to_vec();
                b.extend_from_slice(header.as_bytes());
                b.extend(std::iter::repeat_n(b'x', 1024));
                (b, false, "a 1 TiB content-length")
            }
            _ => {
                let header = b"this header is not JSON at all {";
                let mut b = (header.len() as u16).to_be_bytes().to_vec();
                b.extend_from_slice(header);
                (b, false, "a header that is not JSON")
            }
        };
        let mut s = match connect(plan.app_addr) {
            Ok(s) => s,
            Err(e) => {
                shared.fail(Target::App, format!("garbage ({what}): connect: {e}"));
                continue;
            }
        };
        match s.write_all(&bytes) {
            Ok(()) => {}
            Err(e) if is_reset(&e) => {}
            Err(e) => {
                shared.fail(Target::App, format!("garbage ({what}): write: {e}"));
                continue;
            }
        }
        if half_close {
            let _ = s.shutdown(Shutdown::Write);
        }
        match read_until_closed(&mut s, PROMPT) {
            Ending::Closed(_) => {}
            Ending::Reset(_) => shared.reset(Target::App),
            Ending::Open => shared.fail(
                Target::App,
                format!("garbage ({what}): connection still open after {PROMPT:?}"),
            ),
            Ending::Error(e) => shared.fail(Target::App, format!("garbage ({what}): {e}")),
        }
        shared.app.abuse.fetch_add(1, Relaxed);
    }
}

/// A slow reader on echo_server: writes 2 MiB as fast as the server takes it (from a second
/// thread) while reading 16 KiB every 40 ms (about 400 KB/s), checking every byte; then
/// half-closes and expects the server to close once everything is back. Then again.
fn slow_reader(plan: &Plan, shared: &Shared, id: u64) {
    const TOTAL: u64 = 2 * 1024 * 1024;
    const SESSION_LIMIT: Duration = Duration::from_secs(60);
    let mut session = 0u64;
    // Stagger the sessions.
    if !shared.sleep_until(Instant::now() + Duration::from_millis(700 * id)) {
        return;
    }
    while !shared.stopped() {
        session += 1;
        let seed = splitmix64((id << 32) + session + 0x5105);
        let mut s = match connect(plan.echo_addr) {
            Ok(s) => s,
            Err(e) => {
                shared.fail(Target::Echo, format!("slow reader {id}: connect: {e}"));
                shared.sleep_until(Instant::now() + Duration::from_secs(1));
                continue;
            }
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
        let Ok(mut w) = s.try_clone() else {
            shared.fail(Target::Echo, format!("slow reader {id}: try_clone failed"));
            continue;
        };
        let aborted = AtomicBool::new(false);
        let outcome = thread::scope(|scope| {
            let writer = thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn_scoped(scope, || -> io::Result<()> {
                    let mut chunk = vec![0u8; 64 * 1024];
                    let mut off = 0;
                    while off < TOTAL {
                        fill(seed, off, &mut chunk);
                        w.write_all(&chunk)?;
                        off += chunk.len() as u64;
                    }
                    w.shutdown(Shutdown::Write)
                })
                .expect("writer thread starts");
            let deadline = Instant::now() + SESSION_LIMIT;
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = 0u64;
            let result = loop {
                if shared.stopped() {
                    aborted.store(true, Relaxed);
                    break Ok(());
                }
                if Instant::now() > deadline {
                    break Err(format!(
                        "session not done within {SESSION_LIMIT:?} ({got} of {TOTAL} bytes back)"
                    ));
                }
                match s.read(&mut buf) {
                    Ok(0) if got == TOTAL => break Ok(()),
                    Ok(0) => break Err(format!("closed after {got} of {TOTAL} bytes")),
                    Ok(n) if got + n as u64 > TOTAL => {
                        break Err(format!(
                            "{} bytes more than were sent",
                            got + n as u64 - TOTAL
                        ))
                    }
                    Ok(n) => {
                        if let Some(at) = first_wrong(seed, got, &buf[..n]) {
                            break Err(format!("wrong byte at offset {at}"));
                        }
                        got += n as u64;
                        shared.echo.checked_bytes.fetch_add(n as u64, Relaxed);
                        if got < TOTAL {
                            sleep(Duration::from_millis(40));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(format!("read after {got} of {TOTAL} bytes: {e}")),
                }
            };
            if result.is_err() || aborted.load(Relaxed) {
                // Wakes the writer if it is blocked.
                let _ = s.shutdown(Shutdown::Both);
            }
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("panicked")));
            match (result, written) {
                (Err(e), _) => Err(e),
                (Ok(()), Err(e)) if !aborted.load(Relaxed) => Err(format!("write: {e}")),
                (Ok(()), _) => Ok(()),
            }
        });
        match outcome {
            Ok(()) if !aborted.load(Relaxed) => {
                shared.echo.abuse.fetch_add(1, Relaxed);
            }
            Ok(()) => {}
            Err(e) => shared.fail(Target::Echo, format!("slow reader {id}: {e}")),
        }
    }
}

/// Slowloris writers on echo_server: each connection writes one byte every 3 s and reads it
/// back (checked), for 60 s; then it closes (every other one with RST) and another starts.
fn slowloris(plan: &Plan, shared: &Shared) {
    const EVERY: Duration = Duration::from_secs(3);
    const LIFETIME: Duration = Duration::from_secs(60);
    struct Conn {
        s: TcpStream,
        opened: Instant,
        next: Instant,
        sent: u64,
        seed: u64,
    }
    let n = plan.slowloris;
    let mut made = 0u64;
    let mut open = |stagger: Duration| -> Option<Conn> {
        made += 1;
        match connect(plan.echo_addr) {
            Ok(s) => Some(Conn {
                s,
                opened: Instant::now(),
                next: Instant::now() + stagger,
                sent: 0,
                seed: splitmix64(0x5101 + made),
            }),
            Err(e) => {
                shared.fail(Target::Echo, format!("slowloris: connect: {e}"));
                None
            }
        }
    };
    let mut conns: Vec<Option<Conn>> = (0..n)
        .map(|i| open(EVERY.mul_f64(i as f64 / n.max(1) as f64)))
        .collect();
    while shared.sleep_until(Instant::now() + Duration::from_millis(50)) {
        for (i, slot) in conns.iter_mut().enumerate() {
            let Some(c) = slot else {
                *slot = open(Duration::ZERO);
                continue;
            };
            let now = Instant::now();
            if now < c.next {
                continue;
            }
            if now - c.opened > LIFETIME {
                if i % 2 == 1 {
                    set_rst_on_close(&c.s);
                }
                shared.echo.abuse.fetch_add(1, Relaxed);
                *slot = open(Duration::ZERO);
                continue;
            }
            let byte = [pattern(c.seed, c.sent)];
            let mut back = [0u8; 1];
            let r =
                c.s.write_all(&byte)
                    .and_then(|()| c.s.read_exact(&mut back));
            match r {
                Ok(()) if back == byte => {
                    c.sent += 1;
                    c.next = now + EVERY;
                    shared.echo.checked_bytes.fetch_add(1, Relaxed);
                }
                Ok(()) => {
                    shared.fail(
                        Target::Echo,
                        format!("slowloris: wrong echo of byte {}", c.sent),
                    );
                    *slot = None;
                }
                Err(e) => {
                    shared.fail(
                        Target::Echo,
                        format!(
                            "slowloris: byte {} after {:.0?}: {e}",
                            c.sent,
                            now - c.opened
                        ),
                    );
                    *slot = None;
                }
            }
        }
    }
}

/// Whether a non-blocking connection is still open: `Ok(true)` open and silent, `Ok(false)`
/// closed by the peer (FIN; a reset is counted as expected by the caller as it sees fit),
/// `Err` for data or another error.
fn still_open(s: &mut TcpStream) -> Result<bool, io::Error> {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => Ok(false),
        Ok(n) => Err(io::Error::other(format!("{n} unexpected bytes"))),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(e),
    }
}

fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Idle connections held open to echo_server for the whole run (opened 50 at a time), each
/// checked every 2 s: echo_server has no idle timeout by default, so a close is a failure.
fn idle_echo(plan: &Plan, shared: &Shared) {
    let mut conns: Vec<Option<TcpStream>> = (0..plan.idle_echo).map(|_| None).collect();
    while !shared.stopped() {
        let mut opened = 0;
        for (i, slot) in conns.iter_mut().enumerate() {
            match slot {
                None if opened < 50 => {
                    opened += 1;
                    match connect_nonblocking(plan.echo_addr) {
                        Ok(s) => *slot = Some(s),
                        Err(e) => shared.fail(Target::Echo, format!("idle {i}: connect: {e}")),
                    }
                }
                None => {}
                Some(s) => match still_open(s) {
                    Ok(true) => {}
                    Ok(false) => {
                        shared.fail(Target::Echo, format!("idle {i}: closed by the server"));
                        *slot = None;
                    }
                    Err(e) => {
                        shared.fail(Target::Echo, format!("idle {i}: {e}"));
                        *slot = None;
                    }
                },
            }
        }
        let open = conns.iter().filter(|c| c.is_some()).count();
        shared.echo.idle_open.store(open as u64, Relaxed);
        let pause = if open < conns.len() { 200 } else { 2000 };
        shared.sleep_until(Instant::now() + Duration::from_millis(pause));
    }
}

/// Connections to app_server that never complete a request: some idle, some sending a search
/// request one byte every 2 s. The server must close each at its request timeout: one still
/// open 5 s after it is a failure, one that gets an answer is a failure. Each closed one is
/// replaced at once. The first ones open spread over one request timeout, so that they do not
/// all time out (and leave the server's fd count) in the same instant ever after.
fn idle_app(plan: &Plan, shared: &Shared) {
    const DRIP: Duration = Duration::from_secs(2);
    let late = plan.app_request_timeout + Duration::from_secs(5);
    let request = protocol::request_search("morpheus")
        .encode()
        .expect("the search request encodes");
    struct Conn {
        s: TcpStream,
        opened: Instant,
        sent: usize,
        next_drip: Instant,
    }
    let total = plan.idle_app + plan.partial_app;
    let mut conns: Vec<Option<Conn>> = (0..total).map(|_| None).collect();
    let start = Instant::now();
    // Idle ones at 0, 1/n, 2/n, ... of the timeout; partial ones likewise, half a step later.
    let first_open: Vec<Instant> = (0..total)
        .map(|i| {
            let (k, n, half) = if i < plan.idle_app {
                (i, plan.idle_app, 0.0)
            } else {
                (i - plan.idle_app, plan.partial_app, 0.5)
            };
            start
                + plan
                    .app_request_timeout
                    .mul_f64((k as f64 + half) / n as f64)
        })
        .collect();
    while shared.sleep_until(Instant::now() + Duration::from_millis(100)) {
        let mut open = 0;
        for (i, slot) in conns.iter_mut().enumerate() {
            let partial = i >= plan.idle_app;
            let Some(c) = slot else {
                if Instant::now() < first_open[i] {
                    continue;
                }
                match connect_nonblocking(plan.app_addr) {
                    Ok(s) => {
                        *slot = Some(Conn {
                            s,
                            opened: Instant::now(),
                            sent: 0,
                            next_drip: Instant::now(),
                        })
                    }
                    Err(e) => shared.fail(Target::App, format!("idle/partial: connect: {e}")),
                }
                continue;
            };
            let now = Instant::now();
            let age = now - c.opened;
            let mut closed = false;
            let mut reset = false;
            if partial && now >= c.next_drip && c.sent < request.len() {
                match c.s.write(&request[c.sent..c.sent + 1]) {
                    Ok(_) => {
                        c.sent += 1;
                        c.next_drip = now + DRIP;
                    }
                    Err(e) if is_reset(&e) => (closed, reset) = (true, true),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        shared.fail(Target::App, format!("partial request: write: {e}"));
                        *slot = None;
                        continue;
                    }
                }
            }
            if !closed {
                match still_open(&mut c.s) {
                    Ok(true) => {}
                    Ok(false) => closed = true,
                    Err(e) if is_reset(&e) => (closed, reset) = (true, true),
                    Err(e) => {
                        let kind = if partial { "partial" } else { "idle" };
                        shared.fail(Target::App, format!("{kind} connection: {e}"));
                        *slot = None;
                        continue;
                    }
                }
            }
            if closed {
                if reset {
                    shared.reset(Target::App);
                }
                shared.app.abuse.fetch_add(1, Relaxed);
                let mut t = shared.app_timeouts.lock().unwrap();
                t.0 += 1;
                t.1 = t.1.min(age);
                t.2 = t.2.max(age);
                *slot = None;
            } else if age > late {
                let kind = if partial {
                    "partial request"
                } else {
                    "idle connection"
                };
                shared.fail(
                    Target::App,
                    format!(
                        "{kind} still open after {age:.1?} (request timeout {:?})",
                        plan.app_request_timeout
                    ),
                );
                *slot = None;
            } else {
                open += 1;
            }
        }
        shared.app.idle_open.store(open, Relaxed);
    }
}
