//! A Unix-domain stream echo client on the reactor, after PyMOTW's `socket_echo_client_uds.py`:
//! connects to the server's socket file, sends the message, reads until every byte has come
//! back (in as many reads as it takes), checks the echo and prints it. Exits 0 on a matching
//! echo, 1 on a mismatch, an early close, an error or a timeout.
//!
//! `cargo run --example unix_echo_client -- [--backend select|poll|epoll|kqueue]
//! [--size N] [--timeout SECS] <path> [message]`

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rawloop::{Reactor, Selector};

use common::Summary;

/// The seed's message.
const DEFAULT_MESSAGE: &str = "This is the message.  It will be repeated.";

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Send N bytes of a test pattern instead of the message.
    #[arg(long, value_name = "N", conflicts_with = "message")]
    size: Option<usize>,
    /// Give up when the echo is not complete after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = common::parse_seconds)]
    timeout: Duration,
    /// The server's socket, such as ./uds_socket.
    path: PathBuf,
    /// The message to send (default: the seed's).
    message: Option<String>,
}

/// Connects to the socket at `path`, sends `message`, and runs `reactor` until the whole
/// echo is back and matches. See [`common::check_echo`] for the errors.
fn run_client<S: Selector>(
    reactor: &mut Reactor<S>,
    path: &Path,
    message: Vec<u8>,
    timeout: Duration,
) -> io::Result<Summary> {
    let stream = rawloop::net::connect_unix(path)?;
    common::check_echo(reactor, stream, "client", vec![message], timeout)
}

fn run(args: Args) -> io::Result<Summary> {
    let message = match (args.size, args.message) {
        (Some(n), _) => common::pattern(n),
        (None, Some(m)) => m.into_bytes(),
        (None, None) => DEFAULT_MESSAGE.as_bytes().to_vec(),
    };
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    println!(
        "connecting to {} ({} backend)",
        args.path.display(),
        reactor.backend()
    );
    run_client(&mut reactor, &args.path, message, args.timeout)
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
            println!("closing socket");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unix_echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}
