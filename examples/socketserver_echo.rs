//! The socketserver echo example of PyMOTW (`socketserver_echo.py`), in the seed's shape: a
//! `StreamServer` (Python's `TCPServer`) serves on a thread of its own, and a client in the
//! same program connects, sends `Hello, world`, prints what it sent and what came back
//!
//! ```text
//! Sending : b'Hello, world'
//! Received: b'Hello, world'
//! ```
//!
//! then shuts the server down from its own thread ([`ServerHandle::shutdown`], Python's
//! `server.shutdown()`), waits for it, and exits 0.
//!
//! As the seed logs each step at DEBUG (`logging.basicConfig(level=logging.DEBUG,
//! format='%(name)s: %(message)s')`), this program logs to stderr, under the seed's logger
//! names, the steps that exist here: `EchoServer` (activate, `verify_request`, shutdown),
//! `EchoRequestHandler` (`setup`, `handle`, `recv()->...`, `finish`) and `client`. `RUST_LOG`
//! changes what is shown (`RUST_LOG=warn` hides them).
//!
//! The handler is a `StreamHandler`: `handle` runs when data has arrived, echoes it, and
//! closes the connection, as a socketserver handler's one `recv` and `send` do. The server
//! handles no signals (`handle_signals(false)`): this program stops it itself.
//!
//! `cargo run --example socketserver_echo -- [--backend B]`
//!
//! [`ServerHandle::shutdown`]: rawloop::server::ServerHandle::shutdown

mod common;
mod pyfmt;
mod request;

use std::io::{self, Write};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use clap::Parser;
use rawloop::server::{Peer, Stream, StreamHandler, StreamServer};
use rawloop::Reactor;
use request::Until;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
}

/// How long the client waits for its echo.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The seed's `EchoRequestHandler`, logging each step.
struct EchoRequestHandler;

impl EchoRequestHandler {
    fn new() -> EchoRequestHandler {
        log::debug!(target: "EchoRequestHandler", "__init__");
        EchoRequestHandler
    }
}

impl StreamHandler for EchoRequestHandler {
    fn setup(&mut self, _: &mut Stream<'_, '_>) -> io::Result<()> {
        log::debug!(target: "EchoRequestHandler", "setup");
        Ok(())
    }

    fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        let data = stream.take();
        if data.is_empty() {
            return Ok(()); // the client closed without sending
        }
        log::debug!(target: "EchoRequestHandler", "handle");
        log::debug!(target: "EchoRequestHandler", "recv()->\"{}\"", pyfmt::bytes(&data));
        stream.write(&data)?;
        stream.close(); // once the echo is sent, as socketserver does after handle()
        Ok(())
    }

    fn finish(&mut self, _: &Peer, error: Option<&io::Error>) {
        match error {
            None => log::debug!(target: "EchoRequestHandler", "finish"),
            Some(e) => log::debug!(target: "EchoRequestHandler", "finish ({e})"),
        }
    }
}

fn show(peer: &Peer) -> String {
    match peer {
        Peer::Inet(addr) => pyfmt::addr(addr),
        peer => peer.to_string(),
    }
}

fn run(args: Args) -> io::Result<()> {
    let address = rawloop::net::resolve("127.0.0.1", 0)?; // let the kernel assign a port
    let server = StreamServer::tcp(address)
        .backend(args.backend.backend)
        .handle_signals(false)
        .verify_request(|peer| {
            log::debug!(target: "EchoServer", "verify_request({})", show(peer));
            true
        })
        .bind()?;
    log::debug!(target: "EchoServer", "server_activate");
    let addr = server.local_addr().expect("a TCP server");
    let handle = server.handle();

    // Start the server in a thread.
    let thread = thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            log::debug!(target: "EchoServer", "waiting for request");
            server.serve_forever(EchoRequestHandler::new)
        })?;
    log::info!(target: "client", "Server on {}:{}", addr.ip(), addr.port());

    // Connect to the server, on a reactor of this thread.
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    log::debug!(target: "client", "connecting to server");
    let stream = request::connect(&mut reactor, addr, TIMEOUT)?;

    // Send the data, and receive as many bytes as were sent.
    let message = b"Hello, world";
    log::debug!(target: "client", "sending data: {}", pyfmt::bytes(message));
    println!("Sending : {}", pyfmt::bytes(message));
    io::stdout().flush()?;
    let until = Until::Bytes(message.len());
    let (stream, response) = request::exchange(&mut reactor, stream, message, until, TIMEOUT)?;
    log::debug!(target: "client", "response from server: {}", pyfmt::bytes(&response));
    println!("Received: {}", pyfmt::bytes(&response));

    // Clean up.
    log::debug!(target: "EchoServer", "shutdown()");
    handle.shutdown();
    log::debug!(target: "client", "closing socket");
    drop(stream);
    thread
        .join()
        .map_err(|_| io::Error::other("the server thread panicked"))??;
    log::debug!(target: "client", "done");
    if response != message {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the echo differs from the message",
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("warn,EchoServer=debug,EchoRequestHandler=debug,client=debug"),
    )
    .format(|out, record| writeln!(out, "{}: {}", record.target(), record.args()))
    .init();
    common::exit_on_error("socketserver_echo", run(Args::parse()))
}
