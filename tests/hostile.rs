//! Hostile clients against the example servers, run as programs: memory held in proportion
//! to what was received, idle connections that cannot starve everyone else, a connection
//! cap that refuses clearly, and a log whose volume a flood of bad connections cannot drive.
//! (What is checked is the library's, the same on every backend: these run on the build's
//! default one.)

#![cfg(target_os = "linux")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn start(program: &str, args: &[&str], prlimit: Option<u32>) -> (common::ChildGuard, u16) {
    let port = common::free_port();
    let mut command = match prlimit {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}"))
                .arg(common::example_bin(program));
            c
        }
        None => Command::new(common::example_bin(program)),
    };
    let child = common::ChildGuard(
        command
            .args(args)
            .args(["127.0.0.1", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    drop(common::connect_retrying(port));
    (child, port)
}

fn stop(mut child: common::ChildGuard) -> String {
    common::send_signal(&child.0, Signal::SIGTERM);
    common::send_signal(&child.0, Signal::SIGTERM);
    let status = common::wait_exit(&mut child.0, Duration::from_secs(15));
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// Regression: `app_server` reserved and zeroed a 64 KiB buffer for every connection at its
/// first read and kept it until the request completed: 2,000 connections that each sent
/// one byte took it from 4.4 MB to 132 MB (65,559 bytes each). Now a connection holds what
/// it received, plus its state.
#[test]
fn app_server_holds_memory_in_proportion_to_what_it_received() {
    const CLIENTS: usize = 1000;
    common::raise_fd_limit(CLIENTS as u64 + 200);
    let (server, port) = start("app_server", &[], None);
    let pid = server.id();
    thread::sleep(Duration::from_millis(200));
    let before = rss(pid);
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&[0]).unwrap();
            s
        })
        .collect();
    // Every connection has been accepted and has read its byte.
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_fds(pid) < CLIENTS && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    let per_connection = rss(pid).saturating_sub(before) / CLIENTS as u64;
    assert!(
        per_connection < 4096,
        "{per_connection} bytes of RSS per connection that sent one byte"
    );
    drop(clients);
    stop(server);
}

/// Idle connections that hold every fd of a server under RLIMIT_NOFILE 64 are closed by the
/// idle timeout, so that a client waiting in the backlog is served.
#[test]
fn idle_timeout_frees_the_fds_idle_clients_hold() {
    let (server, port) = start("echo_server", &["--idle-timeout-ms", "300"], Some(64));
    let idle: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let mut late = TcpStream::connect(("127.0.0.1", port)).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    late.write_all(b"served at last").unwrap();
    let mut buf = [0u8; 14];
    late.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"served at last");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "served after {waited:?}: it should have waited for idle connections to be closed"
    );
    // The idle ones were closed by the server.
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert!(closed >= 55, "{closed} of 70 idle connections were closed");
    stop(server);
}

/// Over `--max-connections`, a connection is refused with a reset at once, not left hanging
/// or answered; once one closes, a new one is served.
#[test]
fn connection_cap_refuses_with_a_reset() {
    let (server, port) = start("echo_server", &["--max-connections", "5"], None);
    thread::sleep(Duration::from_millis(100));
    let mut held: Vec<TcpStream> = (0..5)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(format!("{i}").as_bytes()).unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s
        })
        .collect();
    let mut refused = TcpStream::connect(("127.0.0.1", port)).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The reset is reported by the first call after it arrives (a write would take it).
    let mut b = [0u8; 1];
    let err = refused.read(&mut b).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    held.pop().unwrap().shutdown(Shutdown::Both).unwrap();
    thread::sleep(Duration::from_millis(200));
    let mut next = TcpStream::connect(("127.0.0.1", port)).unwrap();
    next.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    next.write_all(b"y").unwrap();
    next.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"y");
    drop(held);
    let log = stop(server);
    assert!(log.contains("refusing the connection from"), "{log}");
}

/// 300 connections that each send a malformed frame cost a handful of warnings, not one
/// or two per connection; every one of them is still closed.
#[test]
fn a_flood_of_bad_frames_logs_a_few_lines() {
    let (server, port) = start("app_server", &[], None);
    let started = Instant::now();
    for _ in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"\x00\x05nope!").unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "a bad frame gets no answer, only the close"
        );
    }
    let seconds = started.elapsed().as_secs() + 1;
    let log = stop(server);
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    assert!(
        (1..=2 * seconds as usize + 2).contains(&warnings),
        "{warnings} warnings in {seconds} s:\n{log}"
    );
}
