//! A TCP echo client on the reactor, after PyMOTW's `selectors_echo_client.py`: connects,
//! sends its messages, reads until every byte has come back (not just one read), checks that
//! the echo matches, and prints it. Exits 0 on a matching echo, 1 on a mismatch, an early
//! close, an error or a timeout.
//!
//! With `--size N` it sends N bytes of a test pattern instead of the messages, which makes it
//! a check for large payloads (partial writes on both sides, the server's output limit).
//!
//! `cargo run --example echo_client -- [--backend select|poll|epoll|kqueue] [--size N]
//! [--timeout SECS] <host> <port> [message...]`

mod common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rawloop::{Reactor, Selector};

use common::Summary;

/// The seed's messages, in the order it sends them (it pops from the end of its list).
const DEFAULT_MESSAGES: [&str; 2] = ["This is the message.  ", "It will be repeated."];

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Send N bytes of a test pattern instead of the messages.
    #[arg(long, value_name = "N", conflicts_with = "message")]
    size: Option<usize>,
    /// Give up when the echo is not complete after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
    /// Messages to send (default: the seed's two).
    message: Vec<String>,
}

/// Connects to `addr`, sends `messages`, and waits (running `reactor`) until the whole echo
/// is back and matches. See [`common::check_echo`] for the errors.
fn run_client<S: Selector>(
    reactor: &mut Reactor<S>,
    addr: SocketAddr,
    messages: Vec<Vec<u8>>,
    timeout: Duration,
) -> io::Result<Summary> {
    let stream = rawloop::net::connect_tcp(addr)?;
    stream.set_nodelay(true)?;
    let label = format!("client({})", stream.local_addr()?);
    common::check_echo(reactor, stream, &label, messages, timeout)
}

fn run(args: Args) -> io::Result<Summary> {
    let messages: Vec<Vec<u8>> = match args.size {
        Some(n) => vec![common::pattern(n)],
        None if args.message.is_empty() => DEFAULT_MESSAGES
            .iter()
            .map(|m| m.as_bytes().to_vec())
            .collect(),
        None => args.message.iter().map(|m| m.as_bytes().to_vec()).collect(),
    };
    let addr = rawloop::net::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    println!(
        "connecting to {} port {} ({} backend)",
        args.host,
        args.port,
        reactor.backend()
    );
    run_client(&mut reactor, addr, messages, args.timeout)
}

fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    let sized = args.size.is_some();
    match run(args) {
        Ok(summary) => {
            if sized {
                println!(
                    "received {} bytes, the echo matches ({:.3} s)",
                    summary.received,
                    summary.elapsed.as_secs_f64()
                );
            } else {
                println!("received {}", common::show(&summary.reply));
            }
            println!("shutting down");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}
