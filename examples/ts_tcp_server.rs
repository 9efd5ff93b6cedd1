//! A TCP timestamp server, after Core Python Programming's `tsTserv.py`: whatever a client
//! sends comes back as `[<ctime>] <data>`, with the time as Python's `time.ctime()` writes
//! it (`[Thu Jun  4 19:56:18 2020] 5`), once per read, until the client closes. It prints
//! `waiting for connection...` and `...connected from: ('127.0.0.1', 51034)` as the seed
//! does. Unlike the seed, which serves one client at a time, it serves any number at once
//! (a `StreamServer` on the reactor); IPv6 works (`::1`). SIGINT or SIGTERM stops it
//! gracefully.
//!
//! `cargo run --example ts_tcp_server -- [--backend B] [--grace-ms MS] <host> <port>`

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

/// A peer as the seed prints it: Python's address tuple.
fn show_peer(peer: &Peer) -> String {
    match peer {
        Peer::Inet(addr) => pyfmt::addr(addr),
        Peer::Unix(_) => peer.to_string(),
    }
}

/// The seed's communication loop for one client: each `recv` is answered with a stamp.
struct Timestamp;

impl StreamHandler for Timestamp {
    fn setup(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        println!("...connected from: {}", show_peer(stream.peer()));
        Ok(())
    }

    fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        let data = stream.take();
        if data.is_empty() {
            return Ok(()); // the end of the stream: the connection closes
        }
        let mut reply = format!("[{}] ", pyfmt::ctime()).into_bytes();
        reply.extend_from_slice(&data);
        stream.write(&reply)
    }

    fn finish(&mut self, peer: &Peer, error: Option<&io::Error>) {
        if let Some(e) = error {
            log::warn!("{}: {e}", show_peer(peer));
        }
        println!("waiting for connection...");
    }
}

fn run(args: Args) -> io::Result<()> {
    let server = StreamServer::tcp(rawloop::net::resolve(&args.host, args.port)?)
        .backend(args.backend.backend)
        .grace(args.grace.grace())
        .bind()?;
    println!("waiting for connection...");
    server.serve_forever(|| Timestamp)
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("ts_tcp_server", run(Args::parse()))
}
