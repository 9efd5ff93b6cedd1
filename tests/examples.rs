//! Every example program driven in-process, through its own public functions, on every
//! backend compiled here (select, poll, epoll; kqueue under `cfg(rawloop_kqueue)`).
//!
//! * The servers (multiconn, timeout, Unix-domain and the selector-layer server) each answer
//!   200 concurrent clients with payloads from 1 byte to 1 MiB, every byte checked.
//!   `echo_server` is loaded by `tests/echo_load.rs`, the UDP server by
//!   `tests/examples_udp.rs`.
//! * The servers keep serving when clients reset their connections mid-echo.
//! * `timeout_server` counts a period as idle only when no I/O happened in it.
//! * The clients (echo, multiconn, Unix, embed) work against their servers and report the
//!   specific error for a wrong echo, an early close, a refused connection, a timeout.
//! * No fd leaks: every test starts from a baseline count of the process's fds and ends on it.
//!   That count is process-wide, so every test takes its turn with [`Fds::baseline`] first
//!   and the tests run one after the other.

// Each example declares its own `mod common;` (examples/common/mod.rs), so that file is a
// module of every example included here.
#![allow(clippy::duplicate_mod)]

mod common;

#[allow(dead_code)]
#[path = "../examples/echo_client.rs"]
mod echo_client;
#[allow(dead_code)]
#[path = "../examples/echo_server.rs"]
mod echo_server;
#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;
#[allow(dead_code)]
#[path = "../examples/multiconn_client.rs"]
mod multiconn_client;
#[allow(dead_code)]
#[path = "../examples/multiconn_server.rs"]
mod multiconn_server;
// (It allows dead code itself.)
#[path = "../examples/selector_echo/mod.rs"]
mod selector_echo;
#[allow(dead_code)]
#[path = "../examples/timeout_server.rs"]
mod timeout_server;
#[allow(dead_code)]
#[path = "../examples/unix_echo_client.rs"]
mod unix_echo_client;
#[allow(dead_code)]
#[path = "../examples/unix_echo_server.rs"]
mod unix_echo_server;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::clients::{
    against_silent_server, assert_clean_reactor, assert_error, assert_refused, CLIENT_TIMEOUT,
};
use common::echo::{assert_same, payload};
use common::fds::Fds;
use common::servers::{join_thread, reactor_server, serve_clients, Running, CONNECTIONS};
use common::TempDir;
use rawloop::{Reactor, Selector, Stats};

// ---------------------------------------------------------------------------------------------
// The servers, each started the same way by every test
// ---------------------------------------------------------------------------------------------

/// `multiconn_server` on a reactor of its own.
fn multiconn<S: Selector + 'static>(listener: TcpListener) -> Running<Stats> {
    reactor_server::<S, _>(move |reactor| multiconn_server::serve(reactor, listener).map(drop))
}

/// `timeout_server`, with an idle period of 1 s, on a reactor of its own.
fn timeout<S: Selector + 'static>(listener: TcpListener) -> Running<Stats> {
    reactor_server::<S, _>(move |reactor| {
        timeout_server::serve(reactor, listener, Duration::from_secs(1)).map(drop)
    })
}

/// The selector-layer echo server (`examples/selector_echo`) on a new thread, through its
/// own `serve`, which hands out its waker once it is listening.
fn selector<S: Selector + 'static>(listener: TcpListener) -> Running<selector_echo::Stats> {
    Running::spawn(move |tx| {
        selector_echo::serve::<S>(listener, move |waker| {
            tx.send(waker).expect("the test waits for the waker")
        })
    })
}

fn loopback() -> TcpListener {
    common::loopback_listener()
}

/// `start` on a loopback listener, as [`serve_clients`] starts a server: the address it
/// listens on, and the server.
fn on_loopback<T: Send + 'static>(
    start: impl FnOnce(TcpListener) -> Running<T>,
) -> impl FnOnce() -> (SocketAddr, Running<T>) {
    move || {
        let listener = loopback();
        (listener.local_addr().unwrap(), start(listener))
    }
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

/// Serves 200 concurrent TCP clients with the `start`ed server on a loopback listener, under
/// the checks of [`serve_clients`]. Returns what the server counted.
fn tcp_server_load<S, T>(name: &str, seed: u64, start: impl FnOnce(TcpListener) -> Running<T>) -> T
where
    S: Selector,
    T: Send + 'static,
{
    let fds = Fds::baseline::<S>();
    let (_, counted) = serve_clients::<S, _, _>(&fds, on_loopback(start), |&addr| {
        let bytes = concurrent_echo(seed, || TcpStream::connect(addr));
        format!("{name}: {CONNECTIONS} concurrent TCP connections, {bytes} bytes echoed")
    });
    counted
}

/// The counters of a reactor that served `connections` connections, each closed cleanly.
fn assert_clean(stats: Stats, connections: u64) {
    assert_eq!(stats.registered, 1 + connections, "{stats:?}");
    assert_eq!(stats.closed, connections, "{stats:?}");
    assert_eq!(stats.handler_errors, 0, "{stats:?}");
}

fn multiconn_server_200_clients<S: Selector + 'static>() {
    let stats = tcp_server_load::<S, _>("multiconn_server", 1 << 20, multiconn::<S>);
    assert_clean(stats, CONNECTIONS as u64);
}

fn timeout_server_200_clients<S: Selector + 'static>() {
    let stats = tcp_server_load::<S, _>("timeout_server", 2 << 20, timeout::<S>);
    assert_clean(stats, CONNECTIONS as u64);
}

fn selector_server_200_clients<S: Selector + 'static>() {
    let stats = tcp_server_load::<S, _>("selector_echo", 3 << 20, selector::<S>);
    assert_eq!(
        stats,
        selector_echo::Stats {
            accepted: CONNECTIONS as u64,
            errors: 0,
            bytes: load_total() as u64,
            open_at_stop: 0,
        }
    );
}

fn unix_echo_server_200_clients<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let dir = TempDir::new(common::backend_name::<S>());
    let path = dir.join("echo.sock");
    // A stale socket file from an earlier run, which the server's bind removes.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let start = || {
        let mut socket =
            unix_echo_server::SocketFile::bind(&path).expect("binding over a stale socket");
        assert_eq!(socket.path(), path);
        let listener = socket.take_listener().expect("just bound");
        let server = reactor_server::<S, _>(move |reactor| {
            unix_echo_server::serve(reactor, listener).map(drop)
        });
        (socket, server)
    };
    let (socket, stats) = serve_clients::<S, _, _>(&fds, start, |_| {
        let bytes = concurrent_echo(4 << 20, || UnixStream::connect(&path));
        format!("unix_echo_server: {CONNECTIONS} concurrent Unix connections, {bytes} bytes echoed")
    });
    assert_clean(stats, CONNECTIONS as u64);
    assert!(
        path.exists(),
        "the socket file stays while SocketFile lives"
    );
    drop(socket);
    assert!(
        !path.exists(),
        "dropping SocketFile removes the socket file"
    );
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
/// [`serve_clients`]: the server closed every connection (the reset ones included) and
/// leaks nothing. Returns what the server counted.
fn tcp_server_survives_resets<S, T>(seed: u64, start: impl FnOnce(TcpListener) -> Running<T>) -> T
where
    S: Selector,
    T: Send + 'static,
{
    let fds = Fds::baseline::<S>();
    let (_, counted) = serve_clients::<S, _, _>(&fds, on_loopback(start), |&addr| {
        let bytes = clients_survive_resets(addr, seed);
        assert_eq!(bytes, HEALTHY * (64 * 1024 + 512 * 1024 + 5) + 100_000);
        format!("{HEALTHY} connections echoed {bytes} bytes around {RESETS} resets")
    });
    counted
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

/// The counters of a reactor after [`clients_survive_resets`]: every connection closed,
/// the reset ones by a handler error.
fn assert_resets_seen<S: Selector>(stats: Stats) {
    let connections = (HEALTHY + RESETS + 1) as u64;
    assert_eq!(stats.registered, 1 + connections, "{stats:?}");
    assert_eq!(stats.closed, connections, "{stats:?}");
    assert_reset_errors::<S>(stats.handler_errors, &stats);
}

fn multiconn_server_survives_resets<S: Selector + 'static>() {
    let stats = tcp_server_survives_resets::<S, _>(6 << 20, multiconn::<S>);
    assert_resets_seen::<S>(stats);
}

fn timeout_server_survives_resets<S: Selector + 'static>() {
    let stats = tcp_server_survives_resets::<S, _>(7 << 20, timeout::<S>);
    assert_resets_seen::<S>(stats);
}

fn selector_server_survives_resets<S: Selector + 'static>() {
    let stats = tcp_server_survives_resets::<S, _>(8 << 20, selector::<S>);
    assert_eq!(stats.accepted, (HEALTHY + RESETS + 1) as u64, "{stats:?}");
    assert_reset_errors::<S>(stats.errors, &stats);
    assert_eq!(stats.open_at_stop, 0, "{stats:?}");
    // Everything the healthy clients sent, and at least the first KiB of each reset one.
    let healthy = (HEALTHY * (64 * 1024 + 512 * 1024 + 5) + 100_000) as u64;
    assert!(stats.bytes >= healthy + RESETS as u64 * 1024, "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// timeout_server counts a period as idle only when no I/O happened in it
// ---------------------------------------------------------------------------------------------

fn run_for<S: Selector>(reactor: &mut Reactor<S>, time: Duration) {
    let end = Instant::now() + time;
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        reactor.run_once(Some(end - now)).unwrap();
    }
}

fn timeout_server_counts_only_idle_periods<S: Selector + 'static>() {
    const PERIOD: Duration = Duration::from_millis(100);
    let fds = Fds::baseline::<S>();
    let mut reactor = Reactor::<S>::new().unwrap();
    let e = timeout_server::serve(&mut reactor, loopback(), Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let listener = loopback();
    let addr = listener.local_addr().unwrap();
    let served = Instant::now();
    let activity = timeout_server::serve(&mut reactor, listener, PERIOD).unwrap();
    // The idle timer is the reactor's only timer: `timers_fired` counts its ticks.
    let ticks = |r: &Reactor<S>| r.stats().timers_fired;

    // Quiet: every tick is an idle period.
    run_for(&mut reactor, PERIOD * 9 / 2);
    let quiet_ticks = ticks(&reactor);
    assert_eq!(activity.events(), 0);
    assert!(
        quiet_ticks >= 3 && quiet_ticks as u128 <= served.elapsed().as_millis() / 100,
        "{quiet_ticks} ticks in {:?}",
        served.elapsed()
    );
    assert_eq!(activity.idle_periods(), quiet_ticks, "quiet periods");

    // Busy: a client echoes a few bytes every 10 ms for 8 periods; no tick is idle.
    let client = thread::spawn(move || -> io::Result<u32> {
        let mut s = TcpStream::connect(addr)?;
        s.set_timeouts(Duration::from_secs(10))?;
        let end = Instant::now() + PERIOD * 8;
        let mut pings = 0;
        while Instant::now() < end {
            s.write_all(b"ping")?;
            let mut back = [0u8; 4];
            s.read_exact(&mut back)?;
            assert_eq!(&back, b"ping");
            pings += 1;
            thread::sleep(PERIOD / 10);
        }
        Ok(pings)
    });
    let mut at_first_io = None;
    while !client.is_finished() {
        reactor.run_once(Some(Duration::from_millis(10))).unwrap();
        // Handlers run before timers in a round, so a tick after this saw the I/O.
        if at_first_io.is_none() && activity.events() > 0 {
            at_first_io = Some((activity.idle_periods(), ticks(&reactor)));
        }
    }
    let pings = join_thread(client).expect("the busy client");
    assert!(pings >= 20, "only {pings} round trips in 8 periods");
    let (idle_before, ticks_before) = at_first_io.expect("the server saw the client");
    let busy_ticks = ticks(&reactor) - ticks_before;
    assert!(busy_ticks >= 5, "only {busy_ticks} ticks while busy");
    assert_eq!(
        activity.idle_periods(),
        idle_before,
        "periods with I/O counted as idle ({busy_ticks} ticks while busy)"
    );
    // One read per ping at least (the echo is written in the same handler call).
    assert!(activity.events() > pings as u64);

    // Quiet again: every tick idle, but perhaps the first (the server may see the
    // client's close in it).
    let (idle_before, ticks_before) = (activity.idle_periods(), ticks(&reactor));
    run_for(&mut reactor, PERIOD * 9 / 2);
    let (idle, quiet_ticks) = (
        activity.idle_periods() - idle_before,
        ticks(&reactor) - ticks_before,
    );
    assert!(quiet_ticks >= 3, "only {quiet_ticks} ticks");
    assert!(
        idle + 1 >= quiet_ticks && idle <= quiet_ticks,
        "{idle} idle periods in {quiet_ticks} quiet ticks"
    );
    assert_eq!(reactor.len(), 1, "only the listener is left");
    drop(reactor);
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

fn echo_client_against_echo_server<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let listener = loopback();
    let addr = listener.local_addr().unwrap();
    let server = reactor_server::<S, _>(move |reactor| echo_server::serve(reactor, listener));
    let mut reactor = Reactor::<S>::new().unwrap();

    let seed: Vec<Vec<u8>> = echo_client::DEFAULT_MESSAGES
        .iter()
        .map(|m| m.as_bytes().to_vec())
        .collect();
    let s = echo_client::run_client(&mut reactor, addr, seed, CLIENT_TIMEOUT).unwrap();
    assert_eq!(s.reply, b"This is the message.  It will be repeated.");
    assert_eq!((s.sent, s.received), (42, 42));

    let parts = vec![b"abc".to_vec(), Vec::new(), b"def".to_vec()];
    let s = echo_client::run_client(&mut reactor, addr, parts, CLIENT_TIMEOUT).unwrap();
    assert_eq!(s.reply, b"abcdef");

    let s = echo_client::run_client(&mut reactor, addr, Vec::new(), CLIENT_TIMEOUT).unwrap();
    assert_eq!((s.sent, s.received), (0, 0));

    // A multi-MiB payload in several messages: partial writes on both sides, and the
    // server's output limit.
    let big: Vec<Vec<u8>> = (0..3).map(|k| payload(9 << 20 | k, 2 << 20)).collect();
    let want = big.concat();
    let s = echo_client::run_client(&mut reactor, addr, big, CLIENT_TIMEOUT).unwrap();
    assert_eq!((s.sent, s.received), (6 << 20, 6 << 20));
    assert_same("6 MiB echo", &s.reply, &want);

    assert_clean_reactor(&reactor);
    drop(reactor);
    let stats = server.stop();
    assert_eq!(stats.handler_errors, 0, "{stats:?}");
    fds.assert_back();
}

fn echo_client_errors<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let mut reactor = Reactor::<S>::new().unwrap();
    let hello = || vec![b"hello".to_vec()];

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
    for (what, kind) in [
        ("a wrong byte", io::ErrorKind::InvalidData),
        ("more bytes than sent", io::ErrorKind::InvalidData),
        ("an early close", io::ErrorKind::UnexpectedEof),
    ] {
        let r = echo_client::run_client(&mut reactor, addr, hello(), CLIENT_TIMEOUT);
        assert_error(r, kind, what);
        assert_clean_reactor(&reactor);
    }
    join_thread(peer);

    let r = echo_client::run_client(&mut reactor, closed_port(), hello(), CLIENT_TIMEOUT);
    assert_refused::<S, _>(r, "a closed port");

    // A listener that never accepts: the connection completes, no echo ever comes.
    let silent = loopback();
    let r = against_silent_server(|timeout| {
        echo_client::run_client(&mut reactor, silent.local_addr().unwrap(), hello(), timeout)
    });
    assert_error(r, io::ErrorKind::TimedOut, "a silent server");
    assert_clean_reactor(&reactor);
    drop((reactor, silent));
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
fn echo_client_accepts_close_after_complete_echo<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let mut reactor = Reactor::<S>::new().unwrap();
    let (addr, peer) = echo_then_close(1, 5);
    let r = echo_client::run_client(&mut reactor, addr, vec![b"hello".to_vec()], CLIENT_TIMEOUT);
    assert_clean_reactor(&reactor);
    drop(reactor);
    join_thread(peer);
    fds.assert_back();
    let s = r.expect("a complete echo, then the server's close");
    assert_eq!(s.reply, b"hello");
}

fn multiconn_client_against_multiconn_server<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let n = CONNECTIONS as u64;
    let (_, stats) = serve_clients::<S, _, _>(&fds, on_loopback(multiconn::<S>), |&addr| {
        let mut reactor = Reactor::<S>::new().unwrap();
        let mut run = |messages: &[Vec<u8>]| {
            multiconn_client::run_client(&mut reactor, addr, CONNECTIONS, messages, CLIENT_TIMEOUT)
                .unwrap()
        };
        let messages = multiconn_client::messages(2, None);
        assert_eq!(
            messages,
            [&b"Message 1 from client."[..], b"Message 2 from client."]
        );
        let s = run(&messages);
        assert_eq!(
            s,
            multiconn_client::Summary {
                connections: CONNECTIONS,
                completed: CONNECTIONS,
                failed: 0,
                bytes_sent: 44 * n,
                bytes_received: 44 * n,
            }
        );

        // Bigger messages: 3 of 16 KiB each per connection.
        let messages = multiconn_client::messages(3, Some(16 * 1024));
        assert!(messages.iter().all(|m| m.len() == 16 * 1024));
        assert!(messages[2].starts_with(b"Message 3 from client."));
        assert_eq!(multiconn_client::messages(1, Some(5)), [b"Messa"]);
        let s = run(&messages);
        assert_eq!((s.completed, s.failed), (CONNECTIONS, 0), "{s:?}");
        assert_eq!(s.bytes_sent, 3 * 16 * 1024 * n);
        assert_eq!(s.bytes_received, 3 * 16 * 1024 * n);
        assert_clean_reactor(&reactor);
        format!(
            "multiconn_client, 2 x {CONNECTIONS} connections, {} bytes each way",
            44 * n + 3 * 16 * 1024 * n
        )
    });
    assert_clean(stats, 2 * n);
}

fn multiconn_client_errors<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let mut reactor = Reactor::<S>::new().unwrap();
    let messages = multiconn_client::messages(2, None);

    // Refused: every connection fails, the run still ends.
    let s = multiconn_client::run_client(&mut reactor, closed_port(), 5, &messages, CLIENT_TIMEOUT)
        .unwrap();
    assert_eq!(
        (s.completed, s.failed, s.bytes_received),
        (0, 5, 0),
        "{s:?}"
    );
    assert_clean_reactor(&reactor);

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
    let s =
        multiconn_client::run_client(&mut reactor, addr, 10, &messages, CLIENT_TIMEOUT).unwrap();
    join_thread(peer);
    assert_eq!(
        s,
        multiconn_client::Summary {
            connections: 10,
            completed: 5,
            failed: 5,
            bytes_sent: 440,
            bytes_received: 220,
        }
    );
    assert_clean_reactor(&reactor);

    // A listener that never accepts: every connection times out, bounded.
    let silent = loopback();
    let s = against_silent_server(|timeout| {
        let addr = silent.local_addr().unwrap();
        multiconn_client::run_client(&mut reactor, addr, 3, &messages, timeout).unwrap()
    });
    assert_eq!((s.completed, s.failed), (0, 3), "{s:?}");
    assert_clean_reactor(&reactor);
    drop((reactor, silent));
    fds.assert_back();
}

/// As [`echo_client_accepts_close_after_complete_echo`], for a multiconn connection.
#[cfg(target_os = "linux")]
fn multiconn_client_accepts_close_after_complete_echo<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let mut reactor = Reactor::<S>::new().unwrap();
    let messages = multiconn_client::messages(2, None);
    let (addr, peer) = echo_then_close(3, 44);
    let s = multiconn_client::run_client(&mut reactor, addr, 3, &messages, CLIENT_TIMEOUT).unwrap();
    assert_clean_reactor(&reactor);
    drop(reactor);
    join_thread(peer);
    fds.assert_back();
    assert_eq!(
        (s.completed, s.failed, s.bytes_received),
        (3, 0, 3 * 44),
        "a complete echo, then the server's close: {s:?}"
    );
}

fn unix_echo_client_against_unix_echo_server<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let dir = TempDir::new(common::backend_name::<S>());
    let path = dir.join("echo.sock");
    let mut socket = unix_echo_server::SocketFile::bind(&path).unwrap();
    // A server answers there: a second bind refuses and leaves the file.
    let e = unix_echo_server::SocketFile::bind(&path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    let listener = socket.take_listener().unwrap();
    let server =
        reactor_server::<S, _>(move |reactor| unix_echo_server::serve(reactor, listener).map(drop));
    let mut reactor = Reactor::<S>::new().unwrap();
    let message = unix_echo_client::DEFAULT_MESSAGE.as_bytes().to_vec();
    let s =
        unix_echo_client::run_client(&mut reactor, &path, message.clone(), CLIENT_TIMEOUT).unwrap();
    assert_eq!(s.reply, message);
    let big = payload(11 << 20, 5 << 20);
    let s = unix_echo_client::run_client(&mut reactor, &path, big.clone(), CLIENT_TIMEOUT).unwrap();
    assert_eq!(s.received, 5 << 20);
    assert_same("5 MiB over a Unix socket", &s.reply, &big);
    assert_clean_reactor(&reactor);
    drop(reactor);
    // Three connections: the AddrInUse check's probe (bind connects to see whether a server
    // answers; the listener queued it) and the two clients.
    assert_clean(server.stop(), 3);
    drop(socket);
    assert!(!path.exists());

    // Not a socket: refused, and the file is left alone.
    std::fs::write(&path, b"not a socket").unwrap();
    let e = unix_echo_server::SocketFile::bind(&path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    fds.assert_back();
}

fn unix_echo_client_errors<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let dir = TempDir::new(common::backend_name::<S>());
    let mut reactor = Reactor::<S>::new().unwrap();
    let hello = || b"hello".to_vec();

    let missing = dir.join("nobody.sock");
    let r = unix_echo_client::run_client(&mut reactor, &missing, hello(), CLIENT_TIMEOUT);
    assert_error(r, io::ErrorKind::NotFound, "no socket file");

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
    let r = unix_echo_client::run_client(&mut reactor, &path, hello(), CLIENT_TIMEOUT);
    assert_error(r, io::ErrorKind::UnexpectedEof, "an early close");
    join_thread(peer);

    // A listener that never accepts: TimedOut, bounded.
    let path = dir.join("silent.sock");
    let silent = UnixListener::bind(&path).unwrap();
    let r = against_silent_server(|timeout| {
        unix_echo_client::run_client(&mut reactor, &path, hello(), timeout)
    });
    assert_error(r, io::ErrorKind::TimedOut, "a silent server");
    assert_clean_reactor(&reactor);
    drop((reactor, silent));
    fds.assert_back();
}

fn embed_stops_by_itself<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    // After its round trips.
    let r = embed::run_embedded(
        Reactor::<S>::new().unwrap(),
        300,
        Duration::from_secs(20),
        Duration::from_millis(5),
    )
    .unwrap();
    assert_eq!(r.round_trips, 300, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(20), "{r:?}");
    assert!(r.rounds_run >= 300, "{r:?}");
    // After its time.
    let r = embed::run_embedded(
        Reactor::<S>::new().unwrap(),
        u64::MAX,
        Duration::from_millis(300),
        Duration::from_millis(50),
    )
    .unwrap();
    assert!(r.round_trips > 0, "{r:?}");
    assert!(
        r.elapsed >= Duration::from_millis(300) && r.elapsed < Duration::from_secs(2),
        "{r:?}"
    );
    assert!((3..=6).contains(&r.ticks), "{r:?}");
    // Nothing to do.
    let r = embed::run_embedded(
        Reactor::<S>::new().unwrap(),
        0,
        Duration::from_secs(20),
        Duration::from_millis(5),
    )
    .unwrap();
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
    multiconn_client_errors,
    #[cfg(target_os = "linux")]
    multiconn_client_accepts_close_after_complete_echo,
    unix_echo_client_against_unix_echo_server,
    unix_echo_client_errors,
    embed_stops_by_itself,
);
