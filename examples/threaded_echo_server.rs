//! An echo server on N threads, after PyMOTW's `socketserver_threaded.py`
//! (`ThreadingMixIn`): each connection's first read is answered with
//! `<name of the serving thread>: <data>`, then the connection closes, as the seed's handler
//! does. The threads are N reactors (`worker-0` …), each with its own listening socket on
//! the same port (`SO_REUSEPORT`): nothing is shared between them on the hot path.
//!
//! `cargo run --example threaded_echo_server -- [--backend B] [--threads N] [--grace-ms MS] <host> <port>`

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
    /// How many threads (reactors) serve.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    host: String,
    port: u16,
}

/// The seed's `ThreadedEchoRequestHandler`.
struct ThreadedEcho;

impl StreamHandler for ThreadedEcho {
    fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        let data = stream.take();
        if !data.is_empty() {
            let name = std::thread::current().name().unwrap_or("main").to_string();
            let mut response = format!("{name}: ").into_bytes();
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
        .threads(args.threads)
        .grace(args.grace.grace())
        .bind()?;
    let addr = server.local_addr().expect("a TCP server");
    println!("serving on {addr} with {} threads", args.threads.max(1));
    server.serve_forever(|| ThreadedEcho)?;
    println!("shutting down");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("threaded_echo_server", run(Args::parse()))
}
