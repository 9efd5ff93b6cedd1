//! The README's code is `examples/readme_echo.rs`, word for word, and that program is a
//! correct echo server: a message of any size comes back whole while the client reads
//! slowly, and SIGTERM lets the connection finish, then exits 0.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;

/// The first ```rust block of the README.
fn readme_code() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```rust").expect("a rust block in the README");
    let body = &readme[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

#[test]
fn readme_code_is_the_example() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/readme_echo.rs"
    ))
    .unwrap();
    assert_eq!(
        readme_code(),
        example,
        "README.md and examples/readme_echo.rs differ"
    );
}

#[test]
fn readme_server_echoes_four_mib_to_a_slow_reader_and_stops_gracefully() {
    let port = common::free_port();
    let mut server = common::ChildGuard(
        Command::new(common::example_bin("readme_echo"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stream = common::connect_retrying(port);
    let message: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let message = message.clone();
        thread::spawn(move || {
            stream.write_all(&message).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        })
    };
    // A slow reader: the server's writes fill the socket, so it must keep the tails.
    let mut echoed = Vec::new();
    let mut buf = [0u8; 8192];
    let mut signalled = false;
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        echoed.extend_from_slice(&buf[..n]);
        if echoed.len() > 64 * 1024 && echoed.len() < 1 << 20 {
            thread::sleep(Duration::from_millis(1));
        }
        if !signalled && echoed.len() >= 1 << 20 {
            // Mid-echo: the server must finish this connection before it exits.
            common::send_signal(&server.0, Signal::SIGTERM);
            signalled = true;
        }
    }
    writer.join().unwrap();
    assert_eq!(echoed.len(), message.len());
    assert!(echoed == message, "the echo differs from what was sent");
    let status = common::wait_exit(&mut server.0, Duration::from_secs(15));
    assert!(status.success(), "{status}");
}
