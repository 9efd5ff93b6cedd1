//! An echo server in N pre-forked worker processes, after PyMOTW's `socketserver_forking.py`
//! (`ForkingMixIn`): each connection's first read is answered with
//! `<pid of the serving worker>: <data>`, then the connection closes, as the seed's handler
//! does. The workers share the listening socket, each with its own reactor; this process
//! supervises them: a worker that dies is replaced, and SIGTERM or SIGINT stops every worker
//! gracefully and leaves no orphan.
//!
//! `cargo run --example forking_echo_server -- [--backend B] [--processes N] [--grace-ms MS] <host> <port>`

mod common;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use rawloop::server::{Stream, StreamHandler, StreamServer};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    /// How many worker processes serve.
    #[arg(long, default_value_t = 2)]
    processes: usize,
    host: String,
    port: u16,
}

/// The seed's `ForkingEchoRequestHandler`.
struct ForkingEcho;

impl StreamHandler for ForkingEcho {
    fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        let data = stream.take();
        if !data.is_empty() {
            let mut response = format!("{}: ", std::process::id()).into_bytes();
            response.extend_from_slice(&data);
            stream.write(&response)?;
        }
        stream.close();
        Ok(())
    }
}

fn run(args: Args) -> io::Result<()> {
    let server = StreamServer::tcp(rawloop::net::resolve(&args.host, args.port)?)
        .backend(args.backend.backend)
        .processes(args.processes.max(1))
        .grace(args.grace.grace())
        .bind()?;
    let addr = server.local_addr().expect("a TCP server");
    println!(
        "serving on {addr} with {} worker processes (supervisor {})",
        args.processes.max(1),
        std::process::id()
    );
    server.serve_forever(|| ForkingEcho)?;
    println!("shutting down");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("forking_echo_server", run(Args::parse()))
}
