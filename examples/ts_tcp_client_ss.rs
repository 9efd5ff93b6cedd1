//! The timestamp client for the socketserver-style server, after Core Python Programming's
//! `tsTclntSS.py`: a socketserver handler answers one request per connection and closes it,
//! so the client opens a new connection for each line of standard input, sends the line with
//! `\r\n`, reads the answer until the server closes, and prints it stripped of surrounding
//! whitespace, as the seed's `print data.strip()`. It stops at an empty line or the end of
//! the input (exit 0). Like Python's `raw_input('> ')` it prompts with `> `, but only when
//! standard input is a terminal; unlike the seed it connects after reading the line, not
//! before, so the empty line that ends it opens no connection.
//!
//! Exits 1 if a connection fails, the server does not answer and close within `--timeout`,
//! or an error occurs.
//!
//! `cargo run --example ts_tcp_client_ss -- [--backend B] [--timeout SECS] <host> <port>`

mod common;
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
    /// Give up when an answer is not complete after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
}

fn run(args: Args) -> io::Result<()> {
    let addr = rawloop::net::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let mut stdin = io::stdin().lock();
    while let Some(mut data) = request::input(&mut stdin)? {
        if data.is_empty() {
            break;
        }
        data.extend_from_slice(b"\r\n");
        let stream = request::connect(&mut reactor, addr, args.timeout)?;
        let (_, answer) = request::exchange(&mut reactor, stream, &data, Until::Eof, args.timeout)?;
        println!("{}", String::from_utf8_lossy(&answer).trim());
    }
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("ts_tcp_client_ss", run(Args::parse()))
}
