//! The echo server example under load on every backend: many concurrent clients with
//! payloads from 1 byte to 1 MiB, and fd counts after heavy connection churn. Every test
//! ends with the process's fds as it found them.

mod common;

#[allow(dead_code)]
#[path = "../examples/echo_server.rs"]
mod echo_server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::fds::{open_fds, Fds};
use common::ServerThread;
use rawloop::{Interest, Selector};

fn start<S: Selector + 'static>() -> (ServerThread, SocketAddr) {
    common::serve_loopback::<S, _>(echo_server::serve)
}

/// The payload of connection `i`: sizes cycle through 1 B, 1 KiB, 64 KiB and 1 MiB, each
/// filled with a pattern that differs per connection so crossed streams would show.
fn payload(i: usize) -> Vec<u8> {
    let size = [1, 1024, 64 * 1024, 1024 * 1024][i % 4];
    (0..size).map(|j| (j * 31 + i * 7) as u8).collect()
}

/// 200 connections at once, each echoing its payload; nothing is left open afterwards.
pub fn two_hundred_concurrent_clients<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let (server, addr) = start::<S>();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            thread::spawn(move || {
                let data = Arc::new(payload(i));
                let stream = TcpStream::connect(addr).unwrap();
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
    let total: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    server.stop().unwrap();
    assert_eq!(total, 50 * (1 + 1024 + 64 * 1024 + 1024 * 1024));
    fds.assert_back();
}

/// 10,000 connect/echo/close cycles, half closed cleanly and half reset; afterwards the
/// process has exactly as many fds open as before the server started.
pub fn fd_count_returns_to_baseline_after_churn<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let (server, addr) = start::<S>();
    for i in 0..10_000 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        if i % 2 == 1 {
            common::set_linger_zero(s.as_raw_fd());
        }
    }
    // Every connection the server still holds closes once it sees the end of its stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() > fds.count() + 6 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    server.stop().unwrap();
    fds.assert_back();
}

/// Regression: a peer that sent everything, half-closed, and read slowly lost the part of
/// the echo still queued in the server when the server saw end of stream.
pub fn half_close_with_echo_still_queued_gets_every_byte<S: Selector + 'static>() {
    let fds = Fds::baseline::<S>();
    let (theirs, ours) = common::stream_pair();
    let server = ServerThread::spawn::<S, _>(move |reactor| {
        reactor
            .register(theirs, Interest::READABLE, echo_server::common::Echo::new())
            .map(drop)
    });
    let data: Vec<u8> = (0..8 * 1024 * 1024)
        .map(|i: usize| (i % 251) as u8)
        .collect();
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
    assert_eq!(back.len(), data.len(), "bytes lost");
    assert!(back == data);
    server.stop().unwrap();
    drop(reader);
    fds.assert_back();
}

// Each test takes its turn with `Fds::baseline`: the fd count is process-wide.
common::per_backend!(
    fd_count_returns_to_baseline_after_churn,
    two_hundred_concurrent_clients,
    half_close_with_echo_still_queued_gets_every_byte,
);
