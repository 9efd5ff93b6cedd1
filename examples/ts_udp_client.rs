//! A UDP timestamp client, after Core Python Programming's `tsUclnt.py`: reads lines from
//! standard input until an empty line or the end of the input, sends each (without its
//! newline) in one datagram, and prints the datagram that comes back, `[<ctime>] <line>`.
//! Like Python's `input('> ')` it prompts with `> `, but only when standard input is a
//! terminal. Datagrams from other addresses than the server's are ignored.
//!
//! UDP may lose a datagram: where the seed would wait for ever, this client gives up after
//! `--timeout` and exits 1, as it does on an error. It exits 0 at the end of the input.
//!
//! `cargo run --example ts_udp_client -- [--backend B] [--timeout SECS] <host> <port>`

mod common;
mod request;

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rawloop::Reactor;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Give up when no reply came after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
}

fn run(args: Args) -> io::Result<()> {
    let server = rawloop::net::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let mut socket = request::udp_socket_for(server)?;
    let mut stdin = io::stdin().lock();
    while let Some(data) = request::input(&mut stdin)? {
        if data.is_empty() {
            break;
        }
        let (back, reply) =
            request::datagram_exchange(&mut reactor, socket, server, &data, args.timeout)?;
        socket = back;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("ts_udp_client", run(Args::parse()))
}
