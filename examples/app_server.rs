//! The Message-protocol server, after the guide's `app-server.py` + `libserver.py`: answers
//! search requests from its table and echoes the first bytes of binary requests, one request
//! per connection unless `--keep-alive`. SIGINT or SIGTERM stops it gracefully: it stops
//! accepting and answers the requests it has (`--grace-ms`); a second signal stops at once.
//!
//! `cargo run --example app_server -- [--backend B] [--keep-alive] [--max-content-len N]
//! [--request-timeout-ms MS] [--max-connections N] [--access-log] [--grace-ms MS] <host> <port>`

mod common;

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rawloop::protocol::{self, ServerConfig};
use rawloop::server::Limits;
use rawloop::Reactor;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    /// Serve many requests on one connection, in order.
    #[arg(long)]
    keep_alive: bool,
    /// Refuse requests announcing more content than this many bytes.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_CONTENT_LEN)]
    max_content_len: usize,
    /// Close connections that do not complete a request within this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Refuse connections (reset at once) while this many are open.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Log every connection and request at info level (otherwise at debug).
    #[arg(long)]
    access_log: bool,
    host: String,
    port: u16,
}

fn run(args: Args) -> io::Result<()> {
    let config = ServerConfig::default()
        .keep_alive(args.keep_alive)
        .max_content_len(args.max_content_len)
        .request_timeout(Duration::from_millis(args.request_timeout_ms))
        .access_log(args.access_log);
    let listener = common::listen(&args.host, args.port)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    // Nothing here duplicates a connection's fd: a close needs no deregistering syscall.
    reactor.set_exclusive_fds(true);
    println!(
        "Listening on {} ({} backend)",
        protocol::server::python_addr(listener.local_addr()?),
        reactor.backend()
    );
    let limits = Limits::default().max_connections(args.max_connections);
    protocol::serve_with(&mut reactor, listener, config, limits)?;
    reactor.shutdown_on_signals(args.grace.grace())?;
    reactor.run()?;
    println!("shutting down");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("app_server", run(Args::parse()))
}
