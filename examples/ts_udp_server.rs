//! A UDP timestamp server, after Core Python Programming's `tsUserv.py`: every datagram is
//! answered, to its sender, with `[<ctime>] <data>` (the time as Python's `time.ctime()`
//! writes it), and the server prints `...received from and returned to: ('127.0.0.1', 51089)`
//! and `waiting for message...` as the seed does. A `DatagramServer` on the reactor; IPv6
//! works (`::1`). SIGINT or SIGTERM stops it.
//!
//! `cargo run --example ts_udp_server -- [--backend B] <host> <port>`

mod common;
mod pyfmt;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use rawloop::server::{Datagram, DatagramHandler, DatagramServer, Peer};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    host: String,
    port: u16,
}

/// The seed's loop body for one datagram.
struct Timestamp;

impl DatagramHandler for Timestamp {
    fn handle(&mut self, datagram: &mut Datagram<'_, '_>) -> io::Result<()> {
        let mut reply = format!("[{}] ", pyfmt::ctime()).into_bytes();
        reply.extend_from_slice(datagram.data());
        datagram.reply(&reply)?;
        let from = match datagram.peer() {
            Peer::Inet(addr) => pyfmt::addr(addr),
            peer => peer.to_string(),
        };
        println!("...received from and returned to: {from}");
        println!("waiting for message...");
        Ok(())
    }
}

fn run(args: Args) -> io::Result<()> {
    let server = DatagramServer::udp(rawloop::net::resolve(&args.host, args.port)?)
        .backend(args.backend.backend)
        .bind()?;
    println!("waiting for message...");
    server.serve_forever(|| Timestamp)
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("ts_udp_server", run(Args::parse()))
}
