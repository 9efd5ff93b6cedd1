//! The echo server example, run as a program, under load on every backend: many concurrent
//! clients with payloads from 1 byte to 1 MiB and heavy connection churn; and the echo
//! handler it shares with the other examples (through `unix_echo_server`) with a half-closed
//! client that reads slowly. Each time the server closes every connection its clients closed
//! (its fds, on Linux, are back to where they were before the clients came), stops on SIGTERM
//! with status 0, and prints its counters (`reactor stats: Stats { ... }`) on stderr; the
//! test process ends every test with the fds it began with.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::fds::Fds;
use common::programs::{serve_clients, Counters, Server};
use rawloop::Selector;

/// `echo_server` on backend `S`, on a free loopback port.
fn start<S: Selector>() -> Server {
    let backend = common::backend_name::<S>();
    Server::start(
        "echo_server",
        &["--backend", backend, "127.0.0.1", "0"],
        backend,
    )
}

/// The payload of connection `i`: sizes cycle through 1 B, 1 KiB, 64 KiB and 1 MiB, each
/// filled with a pattern that differs per connection so crossed streams would show.
fn payload(i: usize) -> Vec<u8> {
    let size = [1, 1024, 64 * 1024, 1024 * 1024][i % 4];
    (0..size).map(|j| (j * 31 + i * 7) as u8).collect()
}

/// 200 connections at once, each echoing its payload; the server closes every one.
fn two_hundred_concurrent_clients<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let server = start::<S>();
    let port = server.port;
    let total: usize = serve_clients(&server, || {
        let clients: Vec<_> = (0..200)
            .map(|i| {
                thread::spawn(move || {
                    let data = Arc::new(payload(i));
                    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let back = common::echo_round_trip(stream, data.clone()).unwrap();
                    assert!(
                        back == *data,
                        "connection {i}: echo differs ({} of {} bytes back)",
                        back.len(),
                        data.len()
                    );
                    back.len()
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    });
    assert_eq!(total, 50 * (1 + 1024 + 64 * 1024 + 1024 * 1024));
    let stats = Counters::reactor(&server.stop());
    assert_eq!(stats.get("registered"), 201, "{stats}");
    assert_eq!(stats.get("closed"), 201, "{stats}");
    assert_eq!(stats.get("handler_errors"), 0, "{stats}");
    fds.assert_back();
}

/// 10,000 connect/echo/close cycles, half closed cleanly and half reset; afterwards the
/// server has exactly as many fds open as before the first.
fn fd_count_returns_to_baseline_after_churn<S: Selector>() {
    const CYCLES: u64 = 10_000;
    let fds = Fds::baseline::<S>();
    let server = start::<S>();
    let port = server.port;
    serve_clients(&server, || {
        for i in 0..CYCLES {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            if i % 2 == 1 {
                common::set_linger_zero(s.as_raw_fd());
            }
        }
    });
    let stats = Counters::reactor(&server.stop());
    assert_eq!(stats.get("registered"), 1 + CYCLES, "{stats}");
    assert_eq!(stats.get("closed"), 1 + CYCLES, "{stats}");
    // A reset the server reads before the end of stream is its handler's error.
    assert!(stats.get("handler_errors") <= CYCLES / 2, "{stats}");
    assert_eq!(stats.get("cut_at_shutdown"), 0, "{stats}");
    fds.assert_back();
}

/// Regression: a peer that sent everything, half-closed, and read slowly lost the part of
/// the echo still queued in the server when the server saw end of stream. The echo handler
/// is the examples' shared one (`examples/common`), which `unix_echo_server` serves too: over
/// a Unix stream, whose small buffers keep part of the echo queued in the server (TCP's
/// loopback buffers, megabytes deep, let the server write it all before it reads the end of
/// stream).
fn half_close_with_echo_still_queued_gets_every_byte<S: Selector>() {
    let fds = Fds::baseline::<S>();
    let backend = common::backend_name::<S>();
    let dir = common::TempDir::new(backend);
    let path = dir.join("echo.sock");
    let server = Server::start(
        "unix_echo_server",
        &["--backend", backend, path.to_str().unwrap()],
        backend,
    );
    let data: Vec<u8> = (0..8 * 1024 * 1024)
        .map(|i: usize| (i % 251) as u8)
        .collect();
    let back = serve_clients(&server, || {
        let ours = UnixStream::connect(&path).unwrap();
        let mut writer = ours.try_clone().unwrap();
        let sent = data.clone();
        let sender = thread::spawn(move || {
            writer.write_all(&sent).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut reader = ours;
        reader
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut back = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
            // A slow reader keeps the server's output queue from draining.
            thread::sleep(Duration::from_micros(500));
        }
        sender.join().unwrap();
        back
    });
    assert_eq!(back.len(), data.len(), "bytes lost");
    assert!(back == data);
    let stats = Counters::reactor(&server.stop());
    assert_eq!(stats.get("registered"), 2, "{stats}");
    assert_eq!(stats.get("closed"), 2, "{stats}");
    assert_eq!(stats.get("handler_errors"), 0, "{stats}");
    fds.assert_back();
}

// Each test takes its turn with `Fds::baseline`: the fd count is process-wide.
common::per_backend!(
    fd_count_returns_to_baseline_after_churn,
    two_hundred_concurrent_clients,
    half_close_with_echo_still_queued_gets_every_byte,
);
