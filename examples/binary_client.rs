//! Sends binary data, after PyMOTW's `socket_binary_client.py`: packs `(1, b'ab', 2.7)`
//! with Python's `struct.Struct('I 2s f')` (native order and alignment, 12 bytes; see
//! `examples/binary/mod.rs`), prints the values and the packed bytes in hex, sends them and
//! closes, as the seed does:
//!
//! ```text
//! values = (1, b'ab', 2.7)
//! sending b'0100000061620000cdcc2c40'
//! closing socket
//! ```
//!
//! Exits 1 if it cannot connect or send within `--timeout`.
//!
//! `cargo run --example binary_client -- [--backend B] [--timeout SECS] <host> <port>`

mod binary;
mod common;
mod pyfmt;
mod request;

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rawloop::Reactor;
use request::Until;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Give up when connecting and sending take longer than this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
}

fn run(args: Args) -> io::Result<()> {
    let addr = rawloop::net::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let stream = request::connect(&mut reactor, addr, args.timeout)?;

    let values = binary::VALUES;
    let packed = values.pack();
    println!("values = {}", values.repr());
    println!("sending {}", pyfmt::hexlify(&packed));
    let sent = request::exchange(&mut reactor, stream, &packed, Until::Sent, args.timeout);
    println!("closing socket");
    sent.map(drop)
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("binary_client", run(Args::parse()))
}
