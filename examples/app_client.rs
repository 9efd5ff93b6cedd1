//! The Message-protocol client, after the guide's `app-client.py` + `libclient.py`: sends
//! `search <value>` as a `text/json` request and any other `<action> <value>` as a binary
//! one, and prints the answer. `--repeat N` sends the request N times on one connection
//! (for a `--keep-alive` server).
//!
//! `cargo run --example app_client -- [--backend B] [--repeat N] <host> <port> <action> <value>`

mod common;

use std::io;
use std::net::ToSocketAddrs;

use clap::Parser;
use rawloop::protocol::{self, codec, ClientConfig, Message};
use rawloop::{Selector, WithSelector};

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

struct Main(Args);

impl WithSelector for Main {
    type Output = io::Result<()>;
    fn run<S: Selector + 'static>(self) -> io::Result<()> {
        let args = self.0;
        let addr = (args.host.as_str(), args.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address for host"))?;
        let request = protocol::request(&args.action, &args.value);
        let requests = vec![request; args.repeat.max(1)];
        let responses = protocol::exchange::<S>(addr, &requests, ClientConfig::default())?;
        for response in &responses {
            print_result(response);
        }
        Ok(())
    }
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

fn main() {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend.backend;
    if let Err(e) = backend
        .run(Main(args))
        .expect("parsed backends are compiled")
    {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
