//! The timestamp server in socketserver style, after Core Python Programming's
//! `tsTservSS.py`: a `StreamServer` (Python's `TCPServer`) whose handler (its
//! `StreamRequestHandler`) reads one line, as `self.rfile.readline()` does, answers
//! `[<ctime>] <line as read>` (its `\r\n` included) and closes the connection, as a
//! socketserver handler does when `handle` returns. It prints `waiting for connection...`
//! once and `...connected from: ('127.0.0.1', 47686)` for each connection, as the seed does.
//!
//! A client that closes without a whole line gets `[<ctime>] ` and what it sent, as
//! `readline()` returns the bytes before the end of the stream. Lines longer than 64 KiB
//! close their connection (`Limits::max_line`). SIGINT or SIGTERM stops the server
//! gracefully.
//!
//! `cargo run --example ts_tcp_server_ss -- [--backend B] [--grace-ms MS] <host> <port>`

mod common;
mod pyfmt;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use rawloop::server::{Peer, Stream, StreamHandler, StreamServer};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    host: String,
    port: u16,
}

/// The seed's `MyRequestHandler`.
struct MyRequestHandler;

impl StreamHandler for MyRequestHandler {
    fn setup(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        let from = match stream.peer() {
            Peer::Inet(addr) => pyfmt::addr(addr),
            peer => peer.to_string(),
        };
        println!("...connected from: {from}");
        Ok(())
    }

    /// Called as data arrives: answers once a whole line is in (or the stream has ended).
    fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        let line = match stream.read_line()? {
            Some(line) => line,
            None if stream.at_eof() => Vec::new(),
            None => return Ok(()), // not a whole line yet
        };
        let mut reply = format!("[{}] ", pyfmt::ctime()).into_bytes();
        reply.extend_from_slice(&line);
        stream.write(&reply)?;
        stream.close();
        Ok(())
    }
}

fn run(args: Args) -> io::Result<()> {
    let server = StreamServer::tcp(rawloop::net::resolve(&args.host, args.port)?)
        .backend(args.backend.backend)
        .grace(args.grace.grace())
        .bind()?;
    println!("waiting for connection...");
    server.serve_forever(|| MyRequestHandler)
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("ts_tcp_server_ss", run(Args::parse()))
}
