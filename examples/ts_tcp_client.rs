//! A TCP timestamp client, after Core Python Programming's `tsTclnt.py` (and its IPv6
//! version: give `::1` as the host): reads lines from standard input until an empty line or
//! the end of the input, sends each (without its newline) on one connection, and prints each
//! reply, `[<ctime>] <line>`. Like Python's `input('> ')` it prompts with `> `, but only when
//! standard input is a terminal.
//!
//! The reply to a line of N bytes is N + 27 bytes (`[`, the 24 characters of the time, `] `),
//! so the client reads exactly that much rather than trusting one `recv` to hold it all.
//! Exits 0 at the end of the input, 1 if the server closes early, does not answer within
//! `--timeout`, or an error occurs.
//!
//! `cargo run --example ts_tcp_client -- [--backend B] [--timeout SECS] <host> <port>`

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
    /// Give up when a reply is not complete after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
}

fn run(args: Args) -> io::Result<()> {
    let addr = rawloop::net::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let mut stream = request::connect(&mut reactor, addr, args.timeout)?;
    let mut stdin = io::stdin().lock();
    while let Some(data) = request::input(&mut stdin)? {
        if data.is_empty() {
            break;
        }
        let until = Until::Bytes(pyfmt::STAMP_PREFIX_LEN + data.len());
        let (back, reply) = request::exchange(&mut reactor, stream, &data, until, args.timeout)?;
        stream = back;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("ts_tcp_client", run(Args::parse()))
}
