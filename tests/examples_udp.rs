//! The UDP examples run as programs, on every backend compiled here (select, poll, epoll;
//! kqueue under `cfg(rawloop_kqueue)`): `udp_echo_server`, started on port 0, answers 200
//! concurrent clients with datagrams from 1 byte to 60 KiB, every byte checked, and stops on
//! SIGTERM with status 0 and its counters on stderr (one registration, no handler error);
//! `udp_echo_client` works against it, ignores datagrams from other addresses, and exits 1
//! with `udp_echo_client: <message>` for a wrong reply and a timeout. The server's fds (on
//! Linux) are as many after the load as before it, and the test process ends every test with
//! the fds it began with (see `tests/examples.rs`).

mod common;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::echo::payload;
use common::fds::Fds;
use common::programs::{
    assert_fails, printable, run_client, serve_clients, shown, Counters, Server,
};
use common::servers::{join_thread, CONNECTIONS};
use rawloop::Selector;

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

/// `udp_echo_server` on backend `S`, on a free loopback port.
fn udp_echo_server<S: Selector>() -> Server {
    let backend = common::backend_name::<S>();
    Server::start(
        "udp_echo_server",
        &["--backend", backend, "127.0.0.1", "0"],
        backend,
    )
}

/// The counters of the UDP server when it stops: its one socket, closed at the shutdown, and
/// no handler error.
fn assert_clean(out: &common::Finished) {
    let stats = Counters::reactor(out);
    assert_eq!(stats.get("registered"), 1, "{stats}");
    assert_eq!(stats.get("closed"), 1, "{stats}");
    assert_eq!(stats.get("handler_errors"), 0, "{stats}");
}

/// `udp_echo_client` on backend `S` with `options`, to 127.0.0.1:`port`, sending `message`
/// (if any).
fn udp_echo_client<S: Selector>(
    options: &[&str],
    port: u16,
    message: Option<&str>,
) -> (common::Finished, Duration) {
    let port = port.to_string();
    let mut all = vec!["--backend", common::backend_name::<S>()];
    all.extend_from_slice(options);
    all.extend_from_slice(&["127.0.0.1", &port]);
    all.extend(message);
    run_client("udp_echo_client", &all)
}

fn udp_echo_server_200_clients<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let server = udp_echo_server::<S>();
    let addr = SocketAddr::from(([127, 0, 0, 1], server.port));
    let (datagrams, bytes, resends) = serve_clients(&server, || udp_concurrent_echo(addr, 5 << 20));
    eprintln!(
        "udp_echo_server: {CONNECTIONS} concurrent UDP clients, {datagrams} datagrams ({bytes} bytes) echoed, {resends} resent"
    );
    assert_clean(&server.stop());
    fds.assert_back();
}

fn udp_echo_client_against_udp_echo_server<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let backend = common::backend_name::<S>();
    let server = udp_echo_server::<S>();
    let port = server.port;
    // One datagram at a time to an idle server: a loopback drop here is not expected (the
    // client does not retry; its timeout would fail the test).
    let (out, _) = udp_echo_client::<S>(&[], port, None);
    let message = b"This is the message.  It will be repeated.";
    assert_eq!(
        out.success().stdout,
        [
            format!(
                "sending {} to 127.0.0.1 port {port} ({backend} backend)",
                shown(message)
            ),
            format!("received {}", shown(message)),
            "closing socket".to_string(),
        ]
    );
    // The client checks the reply against what it sent, byte for byte.
    for size in [1, 60 * 1024] {
        let data = printable(10 << 20 | size as u64, size);
        let (out, _) = udp_echo_client::<S>(&[], port, Some(&data));
        let out = out.success();
        assert_eq!(
            out.stdout[1],
            format!("received {}", shown(data.as_bytes())),
            "a {size}-byte datagram"
        );
    }
    assert_clean(&server.stop());
    fds.assert_back();
}

fn udp_echo_client_errors<S: Selector>() {
    let fds = Fds::baseline::<S>();

    // Nobody answers: a timeout, not much later (the program's start and exit included).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (out, took) = udp_echo_client::<S>(&["--timeout", "0.3"], port, Some("anyone?"));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}: {out:?}"
    );
    assert_fails(
        &out,
        &format!("no reply from 127.0.0.1:{port} within 300ms"),
        "a silent server",
    );

    // A wrong reply: an error. A datagram from another address first: ignored.
    let fake = UdpSocket::bind("127.0.0.1:0").unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = fake.local_addr().unwrap().port();
    let peer = thread::spawn(move || {
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        let (n, client) = fake.recv_from(&mut buf).unwrap();
        fake.send_to(&buf[..n - 1], client).unwrap();
        let (n, client) = fake.recv_from(&mut buf).unwrap();
        stranger.send_to(b"not from the server", client).unwrap();
        fake.send_to(&buf[..n], client).unwrap();
    });
    let (out, _) = udp_echo_client::<S>(&[], port, Some("hello"));
    assert_fails(
        &out,
        "the reply b'hell' differs from the message",
        "a wrong reply",
    );
    let (out, _) = udp_echo_client::<S>(&[], port, Some("hello"));
    assert_eq!(
        out.success().stdout[1],
        "received b'hello'",
        "a stranger's datagram is ignored"
    );
    join_thread(peer);
    drop(silent);
    fds.assert_back();
}

common::per_backend!(
    udp_echo_server_200_clients,
    udp_echo_client_against_udp_echo_server,
    udp_echo_client_errors,
);
