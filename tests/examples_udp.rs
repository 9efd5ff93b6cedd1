//! The UDP examples driven in-process, through their own public functions, on every backend
//! compiled here (select, poll, epoll; kqueue under `cfg(rawloop_kqueue)`): `udp_echo_server`
//! answers 200 concurrent clients with datagrams from 1 byte to 60 KiB, every byte checked,
//! and `udp_echo_client` works against it and reports the specific error for a wrong reply
//! and a timeout. No fd leaks: every test starts from a baseline count of the process's fds
//! and ends on it (see `tests/examples.rs`).

// Each example declares its own `mod common;` (examples/common/mod.rs), so that file is a
// module of every example included here.
#![allow(clippy::duplicate_mod)]

mod common;

#[allow(dead_code)]
#[path = "../examples/udp_echo_client.rs"]
mod udp_echo_client;
#[allow(dead_code)]
#[path = "../examples/udp_echo_server.rs"]
mod udp_echo_server;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::clients::{against_silent_server, assert_clean_reactor, assert_error, CLIENT_TIMEOUT};
use common::echo::{assert_same, payload};
use common::fds::Fds;
use common::servers::{join_thread, reactor_server, serve_clients, CONNECTIONS};
use rawloop::{Reactor, Selector};

/// UDP datagram sizes, 1 byte to 60 KiB.
const UDP_SIZES: [usize; 6] = [1, 100, 1472, 8 * 1024, 32 * 1024, 60 * 1024];

/// Datagrams each UDP client sends, one after the other.
const DATAGRAMS_PER_CLIENT: usize = 3;

/// How many times a UDP client sends one datagram before the test fails.
const MAX_SENDS: usize = 40;

/// 200 UDP clients at once, each sending [`DATAGRAMS_PER_CLIENT`] datagrams (of
/// [`UDP_SIZES`]) one at a time and checking each reply byte for byte.
///
/// UDP promises no delivery, and on loopback datagrams are really dropped under this load:
/// 200 clients sending up to 60 KiB at the same moment overflow the server socket's receive
/// buffer (about 208 KiB by default on Linux, a few large datagrams), and the kernel drops
/// the rest without telling anyone. So a client that gets no reply within its wait (40 to
/// 130 ms, different per client so the retries spread out) sends the same datagram again,
/// up to [`MAX_SENDS`] times, and ignores late replies to datagrams it already had echoed.
/// The test asserts that every datagram is eventually echoed intact; what it cannot show is
/// that the server itself never drops one (a reply queue overflow would look the same).
/// Returns (datagrams, bytes, resends).
fn udp_concurrent_echo(server: SocketAddr, seed: u64) -> (usize, usize, usize) {
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.connect(server).unwrap();
                let wait = Duration::from_millis(40 + (i % 10) as u64 * 10);
                socket.set_read_timeout(Some(wait)).unwrap();
                let mut buf = vec![0u8; 65_536];
                let mut echoed: Vec<Vec<u8>> = Vec::new();
                let (mut bytes, mut resends) = (0, 0);
                for k in 0..DATAGRAMS_PER_CLIENT {
                    let size = UDP_SIZES[(i + 2 * k) % UDP_SIZES.len()];
                    let datagram = payload(seed + (i * 16 + k) as u64, size);
                    let mut sends = 0;
                    'send: loop {
                        assert!(
                            sends < MAX_SENDS,
                            "client {i}: datagram {k} ({size} bytes) not echoed after {MAX_SENDS} sends"
                        );
                        socket.send(&datagram).unwrap();
                        sends += 1;
                        loop {
                            match socket.recv(&mut buf) {
                                Ok(n) if buf[..n] == datagram[..] => break 'send,
                                // A second echo of an earlier datagram that was sent twice.
                                Ok(n) if echoed.iter().any(|d| d[..] == buf[..n]) => {}
                                Ok(n) => panic!(
                                    "client {i}: a reply of {n} bytes that is none of its datagrams"
                                ),
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                    ) =>
                                {
                                    continue 'send
                                }
                                Err(e) => panic!("client {i}: recv: {e}"),
                            }
                        }
                    }
                    resends += sends - 1;
                    bytes += size;
                    echoed.push(datagram);
                }
                (bytes, resends)
            })
        })
        .collect();
    let (mut bytes, mut resends) = (0, 0);
    for client in clients {
        let (b, r) = join_thread(client);
        bytes += b;
        resends += r;
    }
    (CONNECTIONS * DATAGRAMS_PER_CLIENT, bytes, resends)
}

fn udp_echo_server_200_clients<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let start = || {
        let socket = common::loopback_udp();
        let addr = socket.local_addr().unwrap();
        let server = reactor_server::<S, _>(move |reactor| {
            udp_echo_server::serve(reactor, socket).map(drop)
        });
        (addr, server)
    };
    let (_, stats) = serve_clients::<S, _, _>(&fds, start, |&addr| {
        let (datagrams, bytes, resends) = udp_concurrent_echo(addr, 5 << 20);
        format!(
            "udp_echo_server: {CONNECTIONS} concurrent UDP clients, {datagrams} datagrams ({bytes} bytes) echoed, {resends} resent"
        )
    });
    assert_eq!(stats.registered, 1, "{stats:?}");
    assert_eq!(stats.handler_errors, 0, "{stats:?}");
}

fn udp_echo_client_against_udp_echo_server<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let socket = common::loopback_udp();
    let addr = socket.local_addr().unwrap();
    let server =
        reactor_server::<S, _>(move |reactor| udp_echo_server::serve(reactor, socket).map(drop));
    let mut reactor = Reactor::<S>::new().unwrap();
    // One datagram at a time to an idle server: a loopback drop here is not expected (the
    // client does not retry; its timeout would fail the test).
    let message = udp_echo_client::DEFAULT_MESSAGE.as_bytes();
    let reply = udp_echo_client::run_client(&mut reactor, addr, message, CLIENT_TIMEOUT).unwrap();
    assert_eq!(reply, message);
    for size in [1, 60 * 1024] {
        let data = payload(10 << 20 | size as u64, size);
        let reply = udp_echo_client::run_client(&mut reactor, addr, &data, CLIENT_TIMEOUT).unwrap();
        assert_same(&format!("a {size}-byte datagram"), &reply, &data);
    }
    assert_clean_reactor(&reactor);
    drop(reactor);
    let stats = server.stop();
    assert_eq!(stats.handler_errors, 0, "{stats:?}");
    fds.assert_back();
}

fn udp_echo_client_errors<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let mut reactor = Reactor::<S>::new().unwrap();

    // Nobody answers: TimedOut after the timeout, not much later.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = against_silent_server(|timeout| {
        udp_echo_client::run_client(
            &mut reactor,
            silent.local_addr().unwrap(),
            b"anyone?",
            timeout,
        )
    });
    assert_error(r, io::ErrorKind::TimedOut, "a silent server");
    assert_clean_reactor(&reactor);

    // A wrong reply: InvalidData. A datagram from another address first: ignored.
    let fake = UdpSocket::bind("127.0.0.1:0").unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        let (n, client) = fake.recv_from(&mut buf).unwrap();
        fake.send_to(&buf[..n - 1], client).unwrap();
        let (n, client) = fake.recv_from(&mut buf).unwrap();
        stranger.send_to(b"not from the server", client).unwrap();
        fake.send_to(&buf[..n], client).unwrap();
    });
    let r = udp_echo_client::run_client(&mut reactor, fake_addr, b"hello", CLIENT_TIMEOUT);
    assert_error(r, io::ErrorKind::InvalidData, "a wrong reply");
    let r = udp_echo_client::run_client(&mut reactor, fake_addr, b"hello", CLIENT_TIMEOUT);
    assert_eq!(r.expect("a stranger's datagram is ignored"), b"hello");
    join_thread(peer);
    assert_clean_reactor(&reactor);
    drop((reactor, silent));
    fds.assert_back();
}

common::per_backend!(
    udp_echo_server_200_clients,
    udp_echo_client_against_udp_echo_server,
    udp_echo_client_errors,
);
