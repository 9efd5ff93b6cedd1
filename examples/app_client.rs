//! The Message-protocol client, after the guide's `app-client.py` + `libclient.py`: sends
//! `search <value>` as a `text/json` request and any other `<action> <value>` as a binary
//! one, and prints the answer. `--repeat N` sends the request N times on one connection
//! (for a `--keep-alive` server).
//!
//! `cargo run --example app_client -- [--backend B] [--repeat N] <host> <port> <action> <value>`

mod common;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use rawloop::protocol::{self, codec, ClientConfig, Message};
use rawloop::Reactor;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Send the request this many times on one connection (needs a keep-alive server).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    host: String,
    port: u16,
    action: String,
    value: String,
}

fn run(args: Args) -> io::Result<()> {
    let addr = rawloop::net::resolve(&args.host, args.port)?;
    let request = protocol::request(&args.action, &args.value);
    let requests = vec![request; args.repeat.max(1)];
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let responses = protocol::exchange(&mut reactor, addr, &requests, ClientConfig::default())?;
    for response in &responses {
        print_result(response);
    }
    Ok(())
}

/// Prints a response as the reference client does.
fn print_result(response: &Message) {
    match &response.json {
        Some(value) => {
            let result = value.get("result").unwrap_or(&serde_json::Value::Null);
            println!("Got result: {}", codec::to_python_str(result));
        }
        None => println!("Got response: {}", python_bytes(&response.content)),
    }
}

/// Bytes as Python's `repr(bytes)` shows them: `b'...'`.
fn python_bytes(bytes: &[u8]) -> String {
    let mut s = String::from("b'");
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('\'');
    s
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("app_client", run(Args::parse()))
}
