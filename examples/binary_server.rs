//! Receives binary data, after PyMOTW's `socket_binary_server.py`: each connection sends
//! one record packed with Python's `struct.Struct('I 2s f')` (native order and alignment,
//! 12 bytes; see `examples/binary/mod.rs`), and the server prints the bytes in hex and the
//! values it unpacks, as the seed does:
//!
//! ```text
//! waiting for a connection
//! received b'0100000061620000cdcc2c40'
//! unpacked: (1, b'ab', 2.700000047683716)
//! ```
//!
//! then closes the connection. Where the seed takes what one `recv(12)` returns, this server
//! waits for the 12 bytes; a client that closes before sending them all is reported (the
//! seed's `struct.error`) and the server goes on. A `StreamServer` on the reactor; SIGINT or
//! SIGTERM stops it gracefully.
//!
//! `cargo run --example binary_server -- [--backend B] [--grace-ms MS] <host> <port>`

mod binary;
mod common;
mod pyfmt;

use std::io;
use std::process::ExitCode;

use binary::Record;
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

/// One connection: one record.
struct Unpack;

impl StreamHandler for Unpack {
    fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        if stream.data().len() < binary::SIZE && !stream.at_eof() {
            return Ok(()); // not all of it yet
        }
        let n = stream.data().len().min(binary::SIZE);
        let data = stream.data()[..n].to_vec();
        stream.consume(n);
        stream.close();
        println!("received {}", pyfmt::hexlify(&data));
        match Record::unpack(&data) {
            Ok(record) => println!("unpacked: {}", record.repr()),
            Err(e) => log::warn!("{}: struct.error: {e}", show(stream.peer())),
        }
        Ok(())
    }

    fn finish(&mut self, peer: &Peer, error: Option<&io::Error>) {
        if let Some(e) = error {
            log::warn!("{}: {e}", show(peer));
        }
        println!("\nwaiting for a connection");
    }
}

fn show(peer: &Peer) -> String {
    match peer {
        Peer::Inet(addr) => pyfmt::addr(addr),
        peer => peer.to_string(),
    }
}

fn run(args: Args) -> io::Result<()> {
    let server = StreamServer::tcp(rawloop::net::resolve(&args.host, args.port)?)
        .backend(args.backend.backend)
        .grace(args.grace.grace())
        .bind()?;
    println!("\nwaiting for a connection");
    server.serve_forever(|| Unpack)
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("binary_server", run(Args::parse()))
}
