//! A TCP echo server in callback style, after PyMOTW's `selectors_echo_server.py`: the
//! listener's acceptor registers each connection with an echo handler. Unlike the seed it
//! keeps serving after a client leaves. SIGINT or SIGTERM stops it gracefully: it stops
//! accepting and lets open connections finish (`--grace-ms`); a second signal stops at once.
//!
//! With `--threads N` it serves on N reactors on N threads, with `--processes N` in N
//! pre-forked worker processes (the server layer's `StreamServer`).
//!
//! `cargo run --example echo_server -- [--backend select|poll|epoll|kqueue] [--grace-ms MS]
//! [--idle-timeout-ms MS] [--max-connections N] [--threads N] [--processes N] <host> <port>`

mod common;

use std::io;
use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use rawloop::server::{self, Limits, StreamServer};
use rawloop::{Reactor, Selector};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    #[command(flatten)]
    limits: common::LimitsArg,
    /// Serve on this many threads, one reactor each, each with its own listening socket on
    /// the port (SO_REUSEPORT).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// Serve in this many pre-forked worker processes sharing the listening socket (0: in
    /// this process).
    #[arg(long, value_name = "N", default_value_t = 0)]
    processes: usize,
    host: String,
    port: u16,
}

/// Registers `listener` so that every connection it accepts is echoed, within `limits` (an
/// idle timeout, a cap on open connections).
fn serve<S: Selector>(
    reactor: &mut Reactor<S>,
    listener: TcpListener,
    limits: Limits,
) -> io::Result<()> {
    server::serve(&mut reactor.context(), listener, limits, |peer| {
        log::info!("accept({peer})");
        Ok(common::Echo::new())
    })?;
    Ok(())
}

/// On several threads or processes: the server layer's.
fn run_scaled(args: Args) -> io::Result<()> {
    let server = StreamServer::tcp(rawloop::net::resolve(&args.host, args.port)?)
        .backend(args.backend.backend)
        .limits(args.limits.limits())
        .grace(args.grace.grace())
        .threads(args.threads)
        .processes(args.processes)
        .bind()?;
    let port = server.local_addr().map_or(args.port, |a| a.port());
    println!(
        "starting up on {} port {port} ({} backend, {} threads, {} processes)",
        args.host, args.backend.backend, args.threads, args.processes
    );
    server.serve_connections(|_| Ok(common::Echo::new()))?;
    println!("shutting down");
    Ok(())
}

fn run(args: Args) -> io::Result<()> {
    if args.threads > 1 || args.processes > 0 {
        return run_scaled(args);
    }
    let listener = common::listen(&args.host, args.port)?;
    let port = listener.local_addr()?.port();
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    serve(&mut reactor, listener, args.limits.limits())?;
    reactor.shutdown_on_signals(args.grace.grace())?;
    println!(
        "starting up on {} port {port} ({} backend)",
        args.host,
        reactor.backend()
    );
    reactor.run()?;
    eprintln!("reactor stats: {:?}", reactor.stats());
    println!("shutting down");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("echo_server", run(Args::parse()))
}
