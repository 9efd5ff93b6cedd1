//! The reactor nested in other programs' loops, tested as programs: `embed_tokio` (a tokio
//! current-thread application) and `embed_mio` (a mio loop) each serve their own echo
//! service on `<port>+1` and a rawloop echo server on `<port>` in one thread, and stop with
//! status 0 on SIGINT or SIGTERM. Both need a backend with a readiness fd (epoll, kqueue):
//! on another they say so and exit 1.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

fn nested_loop_serves_both_and_stops(program: &str, signal: Signal) {
    let port = common::free_port_pair();
    let mut child = common::ChildGuard(
        Command::new(common::example_bin(program))
            .args(["127.0.0.1", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let payload: Arc<Vec<u8>> = Arc::new((0..1 << 20).map(|i: u32| (i % 251) as u8).collect());
    for (which, port) in [("rawloop", port), ("host", port + 1)] {
        // Several connections at once, so that both loops interleave their work.
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let stream = common::connect_retrying(port);
                let payload = payload.clone();
                std::thread::spawn(move || common::echo_round_trip(stream, payload))
            })
            .collect();
        for client in clients {
            let back = client.join().unwrap().unwrap();
            assert!(back == *payload, "{program}: the {which} echo differs");
        }
    }
    common::send_signal(&child.0, signal);
    let status = common::wait_exit(&mut child.0, Duration::from_secs(15));
    assert!(status.success(), "{program}: {status}");
}

#[test]
fn embed_tokio_serves_both_loops_and_stops_on_sigterm() {
    nested_loop_serves_both_and_stops("embed_tokio", Signal::SIGTERM);
}

#[test]
fn embed_tokio_stops_on_sigint() {
    nested_loop_serves_both_and_stops("embed_tokio", Signal::SIGINT);
}

#[test]
fn embed_mio_serves_both_loops_and_stops_on_sigint() {
    nested_loop_serves_both_and_stops("embed_mio", Signal::SIGINT);
}

#[test]
fn embed_mio_stops_on_sigterm() {
    nested_loop_serves_both_and_stops("embed_mio", Signal::SIGTERM);
}

#[test]
fn nesting_needs_a_backend_with_a_readiness_fd() {
    for program in ["embed_tokio", "embed_mio"] {
        let out = Command::new(common::example_bin(program))
            .args(["--backend", "poll", "127.0.0.1", "0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{program}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("the poll backend waits on no fd another loop could watch"),
            "{program}: {stderr}"
        );
    }
}
