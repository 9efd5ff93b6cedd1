//! The example programs run as programs, on every backend compiled here (select, poll, epoll;
//! kqueue under `cfg(rawloop_kqueue)`), each with `--backend` (the selector-layer server is
//! one program per backend, `<backend>_echo_server`):
//!
//! * The servers (multiconn, timeout, Unix-domain and the selector-layer server), started on
//!   port 0, each answer 200 concurrent clients with payloads from 1 byte to 1 MiB, every byte
//!   checked. `echo_server` is loaded by `tests/echo_load.rs`, the UDP server by
//!   `tests/examples_udp.rs`.
//! * The servers keep serving when clients reset their connections mid-echo.
//! * `timeout_server` prints its idle line only for periods in which no I/O happened.
//! * The clients (echo, multiconn, Unix, embed) work against their servers, and exit 1 with
//!   `<program>: <message>` (the multiconn client: with its totals and a line per failed
//!   connection) for a wrong echo, an early close, a refused connection, a timeout.
//! * Every server closes each connection its clients closed: its count of open fds
//!   (`/proc/<pid>/fd`, on Linux) falls back to where it was before the clients came; it
//!   stops on SIGTERM with status 0 and prints its counters on stderr (`reactor stats: Stats
//!   { ... }`, the selector-layer server `server stats: Stats { ... }`), which say how many
//!   connections it served, that every one was closed, and how many ended in an error.
//! * The test process itself (its load clients and fake peers) ends every test with the fds
//!   it began with. That count is process-wide, so every test takes its turn with
//!   [`Fds::baseline`] first and the tests run one after the other.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::echo::{assert_same, payload};
use common::fds::Fds;
use common::programs::{
    assert_fails, printable, run_client, serve_clients, shown, Counters, Server,
};
use common::servers::{join_thread, CONNECTIONS};
use common::TempDir;
use rawloop::Selector;

// ---------------------------------------------------------------------------------------------
// The servers, each started the same way by every test
// ---------------------------------------------------------------------------------------------

/// Example server `name` on backend `S`, on a free loopback port.
fn tcp_server<S: Selector>(name: &str, args: &[&str]) -> Server {
    let backend = common::backend_name::<S>();
    let mut all = vec!["--backend", backend];
    all.extend_from_slice(args);
    all.extend_from_slice(&["127.0.0.1", "0"]);
    Server::start(name, &all, backend)
}

/// `multiconn_server`.
fn multiconn<S: Selector>() -> Server {
    tcp_server::<S>("multiconn_server", &[])
}

/// `timeout_server`, with an idle period of 1 s.
fn timeout<S: Selector>() -> Server {
    tcp_server::<S>("timeout_server", &["--period", "1"])
}

/// The selector-layer echo server (`examples/selector_echo`) of backend `S`:
/// `<backend>_echo_server`.
fn selector<S: Selector>() -> Server {
    let backend = common::backend_name::<S>();
    let name = format!("{backend}_echo_server");
    Server::start(&name, &["127.0.0.1", "0"], backend)
}

/// `echo_server`.
fn echo_server<S: Selector>() -> Server {
    tcp_server::<S>("echo_server", &[])
}

/// What the selector-layer server counted, from its `server stats: Stats { ... }` line.
fn selector_counters(out: &common::Finished) -> Counters {
    Counters::of(&out.stderr, "server stats")
}

fn loopback() -> TcpListener {
    common::loopback_listener()
}

// ---------------------------------------------------------------------------------------------
// Payloads and echoes
// ---------------------------------------------------------------------------------------------

/// Read and write timeout of every blocking socket in this file: nothing waits forever.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The payload size of load connection `i`: 1 B, 1 KiB, 64 KiB and two odd sizes in turn,
/// and 1 MiB for every 20th connection (about 12.9 MiB per 200 connections).
fn load_size(i: usize) -> usize {
    if i % 20 == 3 {
        return 1 << 20;
    }
    [1, 1024, 64 * 1024, 4093, 7][i % 5]
}

fn load_total() -> usize {
    (0..CONNECTIONS).map(load_size).sum()
}

/// A blocking stream socket the load clients use: TCP or Unix-domain.
trait Duplex: Read + Write + AsRawFd + Send + Sized + 'static {
    fn duplicate(&self) -> io::Result<Self>;
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()>;
}

/// TCP and Unix streams have the same inherent methods, but no trait in common.
macro_rules! duplex {
    ($($stream:ty),*) => {$(
        impl Duplex for $stream {
            fn duplicate(&self) -> io::Result<$stream> {
                self.try_clone()
            }
            fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
                self.set_read_timeout(Some(timeout))?;
                self.set_write_timeout(Some(timeout))
            }
        }
    )*};
}

duplex!(TcpStream, UnixStream);

/// Sends `data` on `stream` from a second thread while reading the echo on this one, and
/// returns what came back: `data.len()` bytes, or fewer if the stream ended first.
fn exchange<St: Duplex>(stream: &mut St, data: &Arc<Vec<u8>>) -> io::Result<Vec<u8>> {
    let mut writer = stream.duplicate()?;
    let sent = Arc::clone(data);
    let sender = thread::spawn(move || writer.write_all(&sent));
    let mut back = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 64 * 1024];
    let read = loop {
        if back.len() >= data.len() {
            break Ok(());
        }
        match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => back.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    join_thread(sender)?;
    read.map(|()| back)
}

/// Opens [`CONNECTIONS`] connections with `connect`, all of them before any data flows, then
/// echoes every connection's payload ([`load_size`]) at once from a thread each and checks
/// every byte. Returns the payload bytes echoed. The connections are closed on return.
fn concurrent_echo<St: Duplex>(seed: u64, mut connect: impl FnMut() -> io::Result<St>) -> usize {
    let streams: Vec<St> = (0..CONNECTIONS)
        .map(|i| {
            let stream = connect().unwrap_or_else(|e| panic!("connection {i}: connect: {e}"));
            stream.set_timeouts(IO_TIMEOUT).unwrap();
            stream
        })
        .collect();
    let clients: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            thread::spawn(move || {
                let data = Arc::new(payload(seed + i as u64, load_size(i)));
                let back = exchange(&mut stream, &data)
                    .unwrap_or_else(|e| panic!("connection {i} ({} bytes): {e}", data.len()));
                assert_same(&format!("connection {i}"), &back, &data);
                back.len()
            })
        })
        .collect();
    let total = clients.into_iter().map(join_thread).sum();
    assert_eq!(total, load_total());
    total
}
// ---------------------------------------------------------------------------------------------
// Every server answers 200 concurrent clients
// ---------------------------------------------------------------------------------------------

/// Serves 200 concurrent TCP clients with the `start`ed server, under the checks of
/// [`serve_clients`]; then stops it. Returns how the server ended.
fn tcp_server_load<S: Selector>(seed: u64, start: impl FnOnce() -> Server) -> common::Finished {
    let fds = Fds::baseline::<S>();
    let server = start();
    let port = server.port;
    let bytes = serve_clients(&server, || {
        concurrent_echo(seed, || TcpStream::connect(("127.0.0.1", port)))
    });
    eprintln!(
        "{}: {CONNECTIONS} concurrent TCP connections, {bytes} bytes echoed",
        server.program.name
    );
    let out = server.stop();
    fds.assert_back();
    out
}

/// The counters of a reactor server that served `connections` connections, each closed
/// cleanly, and then its listener at the shutdown.
fn assert_clean(stats: &Counters, connections: u64) {
    assert_eq!(stats.get("registered"), 1 + connections, "{stats}");
    assert_eq!(stats.get("closed"), 1 + connections, "{stats}");
    assert_eq!(stats.get("handler_errors"), 0, "{stats}");
    assert_eq!(stats.get("cut_at_shutdown"), 0, "{stats}");
}

fn multiconn_server_200_clients<S: Selector>() {
    let out = tcp_server_load::<S>(1 << 20, multiconn::<S>);
    assert_clean(&Counters::reactor(&out), CONNECTIONS as u64);
}

fn timeout_server_200_clients<S: Selector>() {
    let out = tcp_server_load::<S>(2 << 20, timeout::<S>);
    assert_clean(&Counters::reactor(&out), CONNECTIONS as u64);
}

fn selector_server_200_clients<S: Selector>() {
    let out = tcp_server_load::<S>(3 << 20, selector::<S>);
    let stats = selector_counters(&out);
    assert_eq!(stats.get("accepted"), CONNECTIONS as u64, "{stats}");
    assert_eq!(stats.get("errors"), 0, "{stats}");
    assert_eq!(stats.get("bytes"), load_total() as u64, "{stats}");
    assert_eq!(stats.get("open_at_stop"), 0, "{stats}");
}

fn unix_echo_server_200_clients<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let backend = common::backend_name::<S>();
    let dir = TempDir::new(backend);
    let path = dir.join("echo.sock");
    // A stale socket file from an earlier run, which the server's bind removes.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let at = path.to_str().unwrap();
    let server = Server::start("unix_echo_server", &["--backend", backend, at], backend);
    assert_eq!(
        server.first_line,
        format!("starting up on {at} ({backend} backend)")
    );
    let bytes = serve_clients(&server, || {
        concurrent_echo(4 << 20, || UnixStream::connect(&path))
    });
    eprintln!("unix_echo_server: {CONNECTIONS} concurrent Unix connections, {bytes} bytes echoed");
    assert!(path.exists(), "the socket file stays while the server runs");
    let out = server.stop();
    assert_clean(&Counters::reactor(&out), CONNECTIONS as u64);
    assert!(
        !path.exists(),
        "the server removes its socket file when it stops"
    );
    fds.assert_back();
}

// ---------------------------------------------------------------------------------------------
// Servers keep serving when clients reset their connections mid-echo
// ---------------------------------------------------------------------------------------------

const HEALTHY: usize = 20;
const RESETS: usize = 10;

/// Each healthy connection echoes `size` bytes of its own on a thread of its own; the
/// threads hand the connections back.
fn start_round(
    streams: Vec<TcpStream>,
    size: usize,
    seed: u64,
) -> Vec<JoinHandle<(TcpStream, usize)>> {
    streams
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            thread::spawn(move || {
                let data = Arc::new(payload(seed + i as u64, size));
                let back = exchange(&mut stream, &data)
                    .unwrap_or_else(|e| panic!("healthy connection {i}: {e}"));
                assert_same(&format!("healthy connection {i}"), &back, &data);
                (stream, back.len())
            })
        })
        .collect()
}

fn finish_round(round: Vec<JoinHandle<(TcpStream, usize)>>, bytes: &mut usize) -> Vec<TcpStream> {
    round
        .into_iter()
        .map(|h| {
            let (stream, n) = join_thread(h);
            *bytes += n;
            stream
        })
        .collect()
}

/// Against the server at `addr`: [`HEALTHY`] connections echo 64 KiB each; then, while each
/// echoes 512 KiB more, [`RESETS`] clients connect, send 256 KiB, read the first KiB of
/// their echo (so the server is mid-echo) and reset (SO_LINGER 0, then close); afterwards
/// the healthy connections and a new one are still echoed. Returns the bytes the healthy
/// connections and the new one got back.
fn clients_survive_resets(addr: SocketAddr, seed: u64) -> usize {
    let healthy: Vec<TcpStream> = (0..HEALTHY)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_timeouts(IO_TIMEOUT).unwrap();
            s
        })
        .collect();
    let mut bytes = 0;
    let healthy = finish_round(start_round(healthy, 64 * 1024, seed), &mut bytes);
    let round = start_round(healthy, 512 * 1024, seed + 100);
    for r in 0..RESETS {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_timeouts(IO_TIMEOUT).unwrap();
        let data = payload(seed + 200 + r as u64, 256 * 1024);
        s.write_all(&data).unwrap();
        let mut first = vec![0u8; 1024];
        s.read_exact(&mut first).unwrap();
        assert_same(&format!("resetting client {r}"), &first, &data[..1024]);
        common::set_linger_zero(s.as_raw_fd());
        drop(s);
    }
    let healthy = finish_round(round, &mut bytes);
    let healthy = finish_round(start_round(healthy, 5, seed + 300), &mut bytes);
    let mut late = TcpStream::connect(addr).unwrap();
    late.set_timeouts(IO_TIMEOUT).unwrap();
    let data = Arc::new(payload(seed + 400, 100_000));
    let back = exchange(&mut late, &data).unwrap();
    assert_same("a client connecting after the resets", &back, &data);
    drop(healthy);
    bytes + back.len()
}

/// Runs [`clients_survive_resets`] against the `start`ed server, under the checks of
/// [`serve_clients`]: the server closed every connection (the reset ones included). Then
/// stops it; returns how it ended.
fn tcp_server_survives_resets<S: Selector>(
    seed: u64,
    start: impl FnOnce() -> Server,
) -> common::Finished {
    let fds = Fds::baseline::<S>();
    let server = start();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port));
    let bytes = serve_clients(&server, || clients_survive_resets(addr, seed));
    assert_eq!(bytes, HEALTHY * (64 * 1024 + 512 * 1024 + 5) + 100_000);
    eprintln!(
        "{}: {HEALTHY} connections echoed {bytes} bytes around {RESETS} resets",
        server.program.name
    );
    let out = server.stop();
    fds.assert_back();
    out
}

/// Checks how many connections a server saw end in an error after
/// [`clients_survive_resets`]: exactly the reset ones.
///
/// Except on kqueue, where fewer is allowed: libkqueue (kqueue on Linux) fills an EV_EOF
/// event's `fflags` with `getsockopt(SO_ERROR)`, which takes the ECONNRESET off the socket,
/// so the server's next read returns 0 and the reset looks like a clean close (the event
/// carries `Readiness::ERROR`, which the examples do not look at). The connection is closed
/// either way. Native kqueue is not run here, so it gets the same allowance.
fn assert_reset_errors<S: Selector>(errors: u64, counters: &dyn std::fmt::Debug) {
    if common::backend_name::<S>() == "kqueue" {
        assert!(errors <= RESETS as u64, "{counters:?}");
    } else {
        assert_eq!(errors, RESETS as u64, "{counters:?}");
    }
}

/// The counters of a reactor server after [`clients_survive_resets`]: every connection
/// closed, the reset ones by a handler error, and the listener at the shutdown.
fn assert_resets_seen<S: Selector>(stats: &Counters) {
    let connections = (HEALTHY + RESETS + 1) as u64;
    assert_eq!(stats.get("registered"), 1 + connections, "{stats}");
    assert_eq!(stats.get("closed"), 1 + connections, "{stats}");
    assert_eq!(stats.get("cut_at_shutdown"), 0, "{stats}");
    assert_reset_errors::<S>(stats.get("handler_errors"), stats);
}

fn multiconn_server_survives_resets<S: Selector>() {
    let out = tcp_server_survives_resets::<S>(6 << 20, multiconn::<S>);
    assert_resets_seen::<S>(&Counters::reactor(&out));
}

fn timeout_server_survives_resets<S: Selector>() {
    let out = tcp_server_survives_resets::<S>(7 << 20, timeout::<S>);
    assert_resets_seen::<S>(&Counters::reactor(&out));
}

fn selector_server_survives_resets<S: Selector>() {
    let out = tcp_server_survives_resets::<S>(8 << 20, selector::<S>);
    let stats = selector_counters(&out);
    assert_eq!(
        stats.get("accepted"),
        (HEALTHY + RESETS + 1) as u64,
        "{stats}"
    );
    assert_reset_errors::<S>(stats.get("errors"), &stats);
    assert_eq!(stats.get("open_at_stop"), 0, "{stats}");
    // Everything the healthy clients sent, and at least the first KiB of each reset one.
    let healthy = (HEALTHY * (64 * 1024 + 512 * 1024 + 5) + 100_000) as u64;
    assert!(
        stats.get("bytes") >= healthy + RESETS as u64 * 1024,
        "{stats}"
    );
}

// ---------------------------------------------------------------------------------------------
// timeout_server prints its idle line only for periods without I/O
// ---------------------------------------------------------------------------------------------

/// The seed's line for a quiet period.
const IDLE_LINE: &str = "  timed out, do some other work here";

fn idle_lines(lines: &[String]) -> usize {
    lines.iter().filter(|l| *l == IDLE_LINE).count()
}

fn timeout_server_counts_only_idle_periods<S: Selector>() {
    const PERIOD: Duration = Duration::from_millis(100);
    let fds = Fds::baseline::<S>();
    let backend = common::backend_name::<S>();
    let (out, _) = run_client(
        "timeout_server",
        &["--backend", backend, "--period", "0", "127.0.0.1", "0"],
    );
    assert_fails(
        &out,
        "the idle period must be longer than zero",
        "a zero period",
    );

    let started = Instant::now();
    let mut server = tcp_server::<S>("timeout_server", &["--period", "0.1"]);
    let idle_fds = server.fds();

    // Quiet: every tick is an idle period, and the server prints nothing else.
    thread::sleep(PERIOD * 9 / 2);
    let quiet_end = server.program.drain();
    let quiet = idle_lines(&server.program.seen[1..quiet_end]);
    assert_eq!(quiet, quiet_end - 1, "{:?}", server.program.seen);
    assert!(
        quiet >= 3 && quiet as u128 <= started.elapsed().as_millis() / 100,
        "{quiet} idle periods in {:?}",
        started.elapsed()
    );

    // Busy: a client echoes a few bytes every 10 ms for 8 periods; no period is idle.
    let mut client = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    client.set_timeouts(Duration::from_secs(10)).unwrap();
    let mut ping = || {
        client.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ping");
    };
    ping();
    // The server has seen I/O. What it printed before that has arrived a quarter period
    // later: from then on, no idle line.
    let busy = Instant::now();
    let mut pings: u64 = 1;
    let mut busy_start = None;
    while busy.elapsed() < PERIOD * 8 {
        thread::sleep(PERIOD / 10);
        ping();
        pings += 1;
        if busy_start.is_none() && busy.elapsed() >= PERIOD / 4 {
            busy_start = Some(server.program.drain());
        }
    }
    // A tick less than a period after the last ping is not idle either.
    thread::sleep(PERIOD / 4);
    let busy_end = server.program.drain();
    let quiet_from = Instant::now();
    let busy_start = busy_start.expect("8 busy periods");
    assert!(pings >= 20, "only {pings} round trips in 8 periods");
    assert_eq!(
        idle_lines(&server.program.seen[busy_start..busy_end]),
        0,
        "periods with I/O counted as idle"
    );
    drop(client);
    server.wait_fds(idle_fds, "the server did not close the connection");

    // Quiet again: every tick idle, but perhaps the first (the server may see the client's
    // close in it).
    thread::sleep(PERIOD * 9 / 2);
    let quiet_end = server.program.drain();
    let quiet = idle_lines(&server.program.seen[busy_end..quiet_end]);
    let window = quiet_from.elapsed();
    assert!(
        quiet >= 3 && quiet as u128 <= window.as_millis() / 100 + 1,
        "{quiet} idle periods in {window:?}"
    );

    let out = server.stop();
    let elapsed = started.elapsed();
    let stats = Counters::reactor(&out);
    // The idle timer is the reactor's only timer: `timers_fired` counts its ticks, and those
    // that printed no idle line saw I/O: the busy ones.
    let ticks = stats.get("timers_fired");
    let idle = idle_lines(&out.stdout) as u64;
    assert!(
        ticks as u128 <= elapsed.as_millis() / 100,
        "{ticks} ticks in {elapsed:?}: {stats}"
    );
    assert!(
        ticks - idle >= 5,
        "only {} ticks while busy: {stats}",
        ticks - idle
    );
    // One readiness call per ping at least (the echo is written in the same handler call).
    assert!(stats.get("dispatched") > pings, "{pings} pings: {stats}");
    assert_clean(&stats, 1);
    fds.assert_back();
}

// ---------------------------------------------------------------------------------------------
// The clients against their servers, and their errors
// ---------------------------------------------------------------------------------------------

/// A peer on a loopback port that accepts `n` connections (waiting at most 10 s for each)
/// and runs `script(index, connection)` on a thread per connection.
fn fake_tcp_peers<F>(n: usize, script: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(usize, TcpStream) + Send + Sync + 'static,
{
    let listener = loopback();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let script = Arc::new(script);
    let acceptor = thread::spawn(move || {
        let mut handlers = Vec::new();
        for i in 0..n {
            let deadline = Instant::now() + Duration::from_secs(10);
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "no connection {i} came");
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_timeouts(Duration::from_secs(10)).unwrap();
            let script = Arc::clone(&script);
            handlers.push(thread::spawn(move || script(i, stream)));
        }
        handlers.into_iter().for_each(join_thread);
    });
    (addr, acceptor)
}

/// Waits (bounded by the read timeout) until the peer closes; what it sends is dropped.
fn drain_until_closed(mut stream: impl Read) {
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// An address where nothing listens (a port just closed).
fn closed_port() -> SocketAddr {
    let listener = loopback();
    listener.local_addr().unwrap()
}

/// What a client program says when its connection is refused: the OS's message for
/// ECONNREFUSED, or on kqueue over libkqueue for ENOTCONN (libkqueue reads, and so clears,
/// SO_ERROR when it builds the event: the reason is lost, the failure is not).
fn refused<S: Selector>() -> Vec<String> {
    let mut messages = vec![io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string()];
    if cfg!(rawloop_libkqueue) && common::backend_name::<S>() == "kqueue" {
        messages.push(io::Error::from_raw_os_error(libc::ENOTCONN).to_string());
    }
    messages
}

/// Panics unless `out` failed with one of `messages` (see [`assert_fails`]).
fn assert_fails_with_one_of(out: &common::Finished, messages: &[String], what: &str) {
    let said = |m: &String| {
        let expected = format!("{}: {m}", out.name);
        out.stderr.lines().any(|l| l.starts_with(&expected))
    };
    assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
    assert!(
        messages.iter().any(said),
        "{what}: want one of {messages:?}, got {out:?}"
    );
}

/// Runs a client against a server that never answers (a listener that never accepts, or a
/// UDP socket that never replies) with `--timeout 0.3`: checks that it gives up after the
/// timeout and not much later (within 2 s, the program's start and exit included), and
/// returns how it ended.
fn against_silent_server(name: &str, args: &[&str]) -> common::Finished {
    let mut all = vec!["--timeout", "0.3"];
    all.extend_from_slice(args);
    let (out, took) = run_client(name, &all);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}: {out:?}"
    );
    out
}

/// `echo_client` on backend `S` to 127.0.0.1:`port`, then `args` (messages, options).
fn echo_client<S: Selector>(port: u16, args: &[&str]) -> common::Finished {
    let port = port.to_string();
    let mut all = vec!["--backend", common::backend_name::<S>(), "127.0.0.1", &port];
    all.extend_from_slice(args);
    run_client("echo_client", &all).0
}

fn echo_client_against_echo_server<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let backend = common::backend_name::<S>();
    let server = echo_server::<S>();
    let port = server.port;
    let received = |args: &[&str]| {
        let out = echo_client::<S>(port, args).success();
        assert_eq!(
            out.stdout.first().map(String::as_str),
            Some(format!("connecting to 127.0.0.1 port {port} ({backend} backend)").as_str()),
            "{out:?}"
        );
        assert_eq!(
            out.stdout.last().map(String::as_str),
            Some("shutting down"),
            "{out:?}"
        );
        assert_eq!(out.stdout.len(), 3, "{out:?}");
        out.stdout[1].clone()
    };

    // The seed's two messages.
    assert_eq!(
        received(&[]),
        "received b'This is the message.  It will be repeated.'"
    );
    // Messages of its own, an empty one among them.
    assert_eq!(received(&["abc", "", "def"]), "received b'abcdef'");
    // Nothing to send.
    let line = received(&["--size", "0"]);
    assert!(
        line.starts_with("received 0 bytes, the echo matches"),
        "{line}"
    );
    // Three messages of 100,000 bytes, each checked by the client as it comes back.
    let messages: Vec<String> = (0..3).map(|k| printable(9 << 20 | k, 100_000)).collect();
    let args: Vec<&str> = messages.iter().map(String::as_str).collect();
    assert_eq!(
        received(&args),
        format!("received {}", shown(messages.concat().as_bytes()))
    );
    // 6 MiB: partial writes on both sides, and the server's output limit.
    let line = received(&["--size", &(6 << 20).to_string()]);
    assert!(
        line.starts_with(&format!("received {} bytes, the echo matches", 6 << 20)),
        "{line}"
    );

    let out = server.stop();
    assert_clean(&Counters::reactor(&out), 5);
    fds.assert_back();
}

fn echo_client_errors<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let backend = common::backend_name::<S>();

    // A wrong byte; more bytes than were sent; an early close.
    let (addr, peer) = fake_tcp_peers(3, |i, mut s| {
        let mut req = [0u8; 5];
        s.read_exact(&mut req).unwrap();
        let answer: &[u8] = [&b"hellX"[..], b"hello!", b"he"][i];
        s.write_all(answer).unwrap();
        if i < 2 {
            drain_until_closed(s);
        }
    });
    for (what, message) in [
        (
            "a wrong byte",
            "the echo differs from what was sent at byte 4",
        ),
        (
            "more bytes than sent",
            "received 6 bytes, more than the 5 sent",
        ),
        (
            "an early close",
            "the server closed the connection after echoing 2 of 5 bytes",
        ),
    ] {
        let out = echo_client::<S>(addr.port(), &["hello"]);
        assert_fails(&out, message, what);
    }
    join_thread(peer);

    let out = echo_client::<S>(closed_port().port(), &["hello"]);
    assert_fails_with_one_of(&out, &refused::<S>(), "a closed port");

    // A listener that never accepts: the connection completes, no echo ever comes.
    let silent = loopback();
    let port = silent.local_addr().unwrap().port().to_string();
    let out = against_silent_server(
        "echo_client",
        &["--backend", backend, "127.0.0.1", &port, "hello"],
    );
    assert_fails(&out, "no complete echo within 300ms", "a silent server");
    drop(silent);
    fds.assert_back();
}

/// Sets TCP_CORK, so that the next small write waits and `shutdown(Write)` sends it with the
/// FIN in one segment: the peer finds the data and the end of stream together.
#[cfg(target_os = "linux")]
fn cork(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int of the size passed; the kernel checks the fd.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(TCP_CORK)");
}

/// A peer that reads `len` bytes, echoes them in full, and then closes its sending side,
/// the echo and the end of stream arriving together (see [`cork`]); it reads on until the
/// client closes.
#[cfg(target_os = "linux")]
fn echo_then_close(connections: usize, len: usize) -> (SocketAddr, JoinHandle<()>) {
    fake_tcp_peers(connections, move |_, mut s| {
        let mut req = vec![0u8; len];
        s.read_exact(&mut req).unwrap();
        cork(&s);
        s.write_all(&req).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        drain_until_closed(s);
    })
}

/// A server that closes right after a complete echo has not closed early: the echo is
/// complete and matches, so the client succeeds. (Fails while `check_echo` reads on after
/// the last expected byte and takes the end of stream for an early close.)
#[cfg(target_os = "linux")]
fn echo_client_accepts_close_after_complete_echo<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let (addr, peer) = echo_then_close(1, 5);
    let out = echo_client::<S>(addr.port(), &["hello"]).success();
    assert_eq!(out.stdout[1], "received b'hello'", "{out:?}");
    join_thread(peer);
    fds.assert_back();
}

/// `multiconn_client` on backend `S` to 127.0.0.1:`port` with `connections` connections,
/// and `options` first.
fn multiconn_client<S: Selector>(
    port: u16,
    connections: usize,
    options: &[&str],
) -> (common::Finished, Duration) {
    let port = port.to_string();
    let connections = connections.to_string();
    let mut all = vec!["--backend", common::backend_name::<S>()];
    all.extend_from_slice(options);
    all.extend_from_slice(&["127.0.0.1", &port, &connections]);
    run_client("multiconn_client", &all)
}

/// The totals line of a multiconn client, up to the time it took.
fn totals(out: &common::Finished) -> &str {
    let line = out.stdout.last().map(String::as_str).unwrap_or_default();
    line.rsplit_once(" in ")
        .unwrap_or_else(|| panic!("no totals line: {out:?}"))
        .0
}

/// How many of the client's lines on stderr say that a connection failed with `message`.
fn failed_connections(out: &common::Finished, message: &str) -> usize {
    out.stderr
        .lines()
        .filter(|l| l.contains(" failed: ") && l.ends_with(message))
        .count()
}

fn multiconn_client_against_multiconn_server<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let n = CONNECTIONS as u64;
    let server = multiconn::<S>();
    let port = server.port;
    serve_clients(&server, || {
        // The guide's two messages, 44 bytes.
        let (out, _) = multiconn_client::<S>(port, CONNECTIONS, &[]);
        let out = out.success();
        assert_eq!(
            out.stdout[0],
            format!(
                "starting {CONNECTIONS} connections to 127.0.0.1:{port} ({} backend)",
                common::backend_name::<S>()
            )
        );
        assert_eq!(
            totals(&out),
            format!(
                "{n} connections: {n} completed, 0 failed; sent {0} bytes, received {0} bytes",
                44 * n
            )
        );
        // Bigger messages: 3 of 16 KiB each per connection.
        let (out, _) =
            multiconn_client::<S>(port, CONNECTIONS, &["--messages", "3", "--size", "16384"]);
        let out = out.success();
        assert_eq!(
            totals(&out),
            format!(
                "{n} connections: {n} completed, 0 failed; sent {0} bytes, received {0} bytes",
                3 * 16 * 1024 * n
            )
        );
    });
    eprintln!(
        "multiconn_client, 2 x {CONNECTIONS} connections, {} bytes each way",
        44 * n + 3 * 16 * 1024 * n
    );
    let out = server.stop();
    assert_clean(&Counters::reactor(&out), 2 * n);
    fds.assert_back();
}

/// What the client sends: the guide's `Message <i> from client.`, cut or padded to `--size`.
fn multiconn_client_sends_the_guides_messages<S: Selector>() {
    let fds = Fds::baseline::<S>();
    for (options, want) in [
        (
            &[][..],
            vec![b"Message 1 from client.Message 2 from client.".to_vec()],
        ),
        (
            &["--messages", "1", "--size", "5"][..],
            vec![b"Messa".to_vec()],
        ),
        (
            &["--messages", "3", "--size", "16384"][..],
            (1..=3)
                .map(|i| format!("Message {i} from client.").into_bytes())
                .collect(),
        ),
    ] {
        // Each connection's messages, in one stream: `want` holds each message's start,
        // `--size` its length.
        let size: usize = match options {
            [.., "--size", size] => size.parse().unwrap(),
            _ => want[0].len(),
        };
        let total = size * want.len();
        let (addr, peer) = fake_tcp_peers(2, move |_, mut s| {
            let mut got = vec![0u8; total];
            s.read_exact(&mut got).unwrap();
            s.write_all(&got).unwrap();
            drain_until_closed(&mut s);
            let messages: Vec<Vec<u8>> = got.chunks(size).map(<[u8]>::to_vec).collect();
            assert_eq!(messages.len(), want.len());
            for (got, want) in messages.iter().zip(&want) {
                assert!(got.starts_with(want), "{:?}", String::from_utf8_lossy(got));
            }
        });
        let (out, _) = multiconn_client::<S>(addr.port(), 2, options);
        let out = out.success();
        assert_eq!(
            totals(&out),
            format!(
                "2 connections: 2 completed, 0 failed; sent {0} bytes, received {0} bytes",
                2 * total
            )
        );
        join_thread(peer);
    }
    fds.assert_back();
}

fn multiconn_client_errors<S: Selector>() {
    let fds = Fds::baseline::<S>();

    // Refused: every connection fails, the run still ends.
    let (out, _) = multiconn_client::<S>(closed_port().port(), 5, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        totals(&out),
        "5 connections: 0 completed, 5 failed; sent 0 bytes, received 0 bytes"
    );
    let failed: usize = refused::<S>()
        .iter()
        .map(|m| failed_connections(&out, m))
        .sum();
    assert_eq!(failed, 5, "{out:?}");

    // Half of the connections get a wrong echo: those fail, the others complete.
    let (addr, peer) = fake_tcp_peers(10, |i, mut s| {
        let mut req = [0u8; 44];
        s.read_exact(&mut req).unwrap();
        if i % 2 == 0 {
            s.write_all(&req).unwrap();
        } else {
            s.write_all(&[b'X'; 44]).unwrap();
        }
        drain_until_closed(s);
    });
    let (out, _) = multiconn_client::<S>(addr.port(), 10, &[]);
    join_thread(peer);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        totals(&out),
        "10 connections: 5 completed, 5 failed; sent 440 bytes, received 220 bytes"
    );
    let wrong = "the echo differs from what was sent after byte 0";
    assert_eq!(failed_connections(&out, wrong), 5, "{out:?}");

    // A listener that never accepts: every connection times out, bounded.
    let silent = loopback();
    let port = silent.local_addr().unwrap().port().to_string();
    let out = against_silent_server(
        "multiconn_client",
        &[
            "--backend",
            common::backend_name::<S>(),
            "127.0.0.1",
            &port,
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        totals(&out).starts_with("3 connections: 0 completed, 3 failed;"),
        "{out:?}"
    );
    let timed_out = "closed before the echo was complete";
    assert_eq!(failed_connections(&out, timed_out), 3, "{out:?}");
    drop(silent);
    fds.assert_back();
}

/// As [`echo_client_accepts_close_after_complete_echo`], for a multiconn connection.
#[cfg(target_os = "linux")]
fn multiconn_client_accepts_close_after_complete_echo<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let (addr, peer) = echo_then_close(3, 44);
    let (out, _) = multiconn_client::<S>(addr.port(), 3, &[]);
    let out = out.success();
    assert_eq!(
        totals(&out),
        "3 connections: 3 completed, 0 failed; sent 132 bytes, received 132 bytes",
        "a complete echo, then the server's close"
    );
    join_thread(peer);
    fds.assert_back();
}

/// `unix_echo_client` on backend `S` with `options`, to the socket at `path`, sending
/// `message` (if any).
fn unix_echo_client<S: Selector>(
    options: &[&str],
    path: &std::path::Path,
    message: Option<&str>,
) -> common::Finished {
    let mut all = vec!["--backend", common::backend_name::<S>()];
    all.extend_from_slice(options);
    all.push(path.to_str().unwrap());
    all.extend(message);
    run_client("unix_echo_client", &all).0
}

fn unix_echo_client_against_unix_echo_server<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let backend = common::backend_name::<S>();
    let dir = TempDir::new(backend);
    let path = dir.join("echo.sock");
    let at = path.to_str().unwrap();
    let server = Server::start("unix_echo_server", &["--backend", backend, at], backend);
    // A server answers there: a second one refuses and leaves the file.
    let (out, _) = run_client("unix_echo_server", &["--backend", backend, at]);
    assert_fails(
        &out,
        &format!("{at} is in use by a running server"),
        "a second server",
    );
    assert!(path.exists());

    let out = unix_echo_client::<S>(&[], &path, None).success();
    assert_eq!(
        out.stdout,
        [
            format!("connecting to {at} ({backend} backend)"),
            "received b'This is the message.  It will be repeated.'".to_string(),
            "closing socket".to_string(),
        ]
    );
    let out = unix_echo_client::<S>(&["--size", &(5 << 20).to_string()], &path, None).success();
    assert!(
        out.stdout[1].starts_with(&format!("received {} bytes, the echo matches", 5 << 20)),
        "{out:?}"
    );
    let out = server.stop();
    // Three connections: the second server's probe (its bind connects to see whether a
    // server answers) and the two clients.
    assert_clean(&Counters::reactor(&out), 3);
    assert!(!path.exists());

    // Not a socket: refused, and the file is left alone.
    std::fs::write(&path, b"not a socket").unwrap();
    let (out, _) = run_client("unix_echo_server", &["--backend", backend, at]);
    assert_fails(
        &out,
        &format!("{at} exists and is not a socket"),
        "a file that is not a socket",
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    fds.assert_back();
}

fn unix_echo_client_errors<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let dir = TempDir::new(common::backend_name::<S>());

    let missing = dir.join("nobody.sock");
    let out = unix_echo_client::<S>(&[], &missing, Some("hello"));
    assert_fails(
        &out,
        &io::Error::from_raw_os_error(libc::ENOENT).to_string(),
        "no socket file",
    );

    // An early close.
    let path = dir.join("early.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_timeouts(Duration::from_secs(10)).unwrap();
        let mut req = [0u8; 5];
        s.read_exact(&mut req).unwrap();
        s.write_all(b"he").unwrap();
    });
    let out = unix_echo_client::<S>(&[], &path, Some("hello"));
    assert_fails(
        &out,
        "the server closed the connection after echoing 2 of 5 bytes",
        "an early close",
    );
    join_thread(peer);

    // A listener that never accepts: a timeout, bounded.
    let path = dir.join("silent.sock");
    let silent = UnixListener::bind(&path).unwrap();
    let out = against_silent_server(
        "unix_echo_client",
        &[
            "--backend",
            common::backend_name::<S>(),
            path.to_str().unwrap(),
            "hello",
        ],
    );
    assert_fails(&out, "no complete echo within 300ms", "a silent server");
    drop(silent);
    fds.assert_back();
}

/// What `embed` did, from its last line: `<n> round trips in <secs> s (<rate>/s), <ticks>
/// ticks of other work, <rounds> reactor rounds`.
#[derive(Debug)]
struct EmbedReport {
    round_trips: u64,
    elapsed: Duration,
    ticks: u64,
    rounds_run: u64,
}

fn embed<S: Selector>(rounds: u64, seconds: &str, tick: &str) -> EmbedReport {
    let rounds = rounds.to_string();
    let (out, _) = run_client(
        "embed",
        &[
            "--backend",
            common::backend_name::<S>(),
            "--rounds",
            &rounds,
            "--seconds",
            seconds,
            "--tick",
            tick,
        ],
    );
    let out = out.success();
    let line = out.stdout.last().expect("a report");
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| -> u64 {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("word {i} of {line:?} is not a number"))
    };
    let shape = [
        (1, "round"),
        (2, "trips"),
        (3, "in"),
        (5, "s"),
        (8, "ticks"),
        (13, "reactor"),
    ];
    for (i, word) in shape {
        assert_eq!(words.get(i), Some(&word), "{line:?}");
    }
    let secs: f64 = words[4].parse().unwrap();
    EmbedReport {
        round_trips: number(0),
        elapsed: Duration::from_secs_f64(secs),
        ticks: number(7),
        rounds_run: number(12),
    }
}

fn embed_stops_by_itself<S: Selector>() {
    let fds = Fds::baseline::<S>();
    // After its round trips.
    let r = embed::<S>(300, "20", "0.005");
    assert_eq!(r.round_trips, 300, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(20), "{r:?}");
    assert!(r.rounds_run >= 300, "{r:?}");
    // After its time.
    let r = embed::<S>(u64::MAX, "0.3", "0.05");
    assert!(r.round_trips > 0, "{r:?}");
    assert!(
        r.elapsed >= Duration::from_millis(300) && r.elapsed < Duration::from_secs(2),
        "{r:?}"
    );
    assert!((3..=6).contains(&r.ticks), "{r:?}");
    // Nothing to do.
    let r = embed::<S>(0, "20", "0.005");
    assert_eq!(r.round_trips, 0, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(1), "{r:?}");
    fds.assert_back();
}

common::per_backend!(
    multiconn_server_200_clients,
    timeout_server_200_clients,
    unix_echo_server_200_clients,
    selector_server_200_clients,
    multiconn_server_survives_resets,
    timeout_server_survives_resets,
    selector_server_survives_resets,
    timeout_server_counts_only_idle_periods,
    echo_client_against_echo_server,
    echo_client_errors,
    #[cfg(target_os = "linux")]
    echo_client_accepts_close_after_complete_echo,
    multiconn_client_against_multiconn_server,
    multiconn_client_sends_the_guides_messages,
    multiconn_client_errors,
    #[cfg(target_os = "linux")]
    multiconn_client_accepts_close_after_complete_echo,
    unix_echo_client_against_unix_echo_server,
    unix_echo_client_errors,
    embed_stops_by_itself,
);

/// The benchmarks' keep-alive floor (`peer_floor_message --keep-alive`) answers every whole
/// request a read brings, in order, and a request that arrives in pieces, on one connection:
/// the load generator checks each answer, and this checks the floor without it.
#[cfg(target_os = "linux")]
#[test]
fn floor_server_answers_every_request_with_keep_alive() {
    use rawloop::protocol::{request_search, respond};
    let args = ["--keep-alive", "127.0.0.1", "0"];
    let mut floor = common::Program::start(
        "peer_floor_message",
        &mut common::programs::example("peer_floor_message", &args),
        None,
    );
    let port = common::programs::port_in(&floor.line(common::programs::WAIT)).expect("a port");
    let request = request_search("morpheus").encode().unwrap();
    let answer = respond(&request_search("morpheus")).encode().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(common::programs::WAIT))
        .unwrap();
    stream.write_all(&request.repeat(3)).unwrap();
    let mut answers = vec![0; answer.len() * 3];
    stream.read_exact(&mut answers).unwrap();
    assert_eq!(answers, answer.repeat(3), "three requests in one write");
    let (head, tail) = request.split_at(10);
    stream.write_all(head).unwrap();
    thread::sleep(Duration::from_millis(50));
    stream.write_all(tail).unwrap();
    let mut one = vec![0; answer.len()];
    stream.read_exact(&mut one).unwrap();
    assert_eq!(one, answer, "a request in two writes");
    floor.signal(nix::sys::signal::Signal::SIGTERM);
    floor.finish(common::programs::WAIT);
}
