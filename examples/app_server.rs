//! The Message-protocol server, after the guide's `app-server.py` + `libserver.py`: answers
//! search requests from its table and echoes the first bytes of binary requests, one request
//! per connection unless `--keep-alive`. SIGINT or SIGTERM stops it cleanly.
//!
//! `cargo run --example app_server -- [--backend B] [--keep-alive] [--max-content-len N]
//! [--request-timeout-ms MS] <host> <port>`

mod common;

use std::io;
use std::net::TcpListener;
use std::time::Duration;

use clap::Parser;
use rawloop::protocol::{self, ServerConfig};
use rawloop::{Reactor, Selector, WithSelector};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Serve many requests on one connection, in order.
    #[arg(long)]
    keep_alive: bool,
    /// Refuse requests announcing more content than this many bytes.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_CONTENT_LEN)]
    max_content_len: usize,
    /// Close connections that do not complete a request within this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    host: String,
    port: u16,
}

struct Main(Args);

impl WithSelector for Main {
    type Output = io::Result<()>;
    fn run<S: Selector + 'static>(self) -> io::Result<()> {
        let args = self.0;
        let config = ServerConfig {
            keep_alive: args.keep_alive,
            max_content_len: args.max_content_len,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            ..ServerConfig::default()
        };
        let mut reactor = Reactor::<S>::new()?;
        // Rust's std sets SO_REUSEADDR on Unix listeners, as the reference does by hand.
        let listener = TcpListener::bind((args.host.as_str(), args.port))?;
        println!(
            "Listening on {} ({} backend)",
            protocol::server::python_addr(listener.local_addr()?),
            S::name()
        );
        protocol::serve(&mut reactor, listener, config)?;
        common::stop_on_signals(&mut reactor)?;
        reactor.run()?;
        println!("shutting down");
        Ok(())
    }
}

fn main() -> io::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let backend = args.backend.backend;
    backend
        .run(Main(args))
        .expect("parsed backends are compiled")
}
