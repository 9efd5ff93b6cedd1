//! A TCP echo server on mio, the peer that `benches/compare` measures rawloop against.
//!
//! It does the same work as rawloop's `echo_server`: one thread, one poll instance, and the
//! echo service of `common/mio_echo.rs` (edge-triggered, registered once, partial writes
//! kept).
//!
//! `cargo run --release --example peer_mio_echo -- <host> <port>` (port 0 picks a free one;
//! the first line printed names it). It stops on SIGTERM or SIGINT (the default action).

mod common;

use std::io;
use std::net::ToSocketAddrs;

use common::mio_echo::MioEcho;
use mio::net::TcpListener;
use mio::{Events, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port] = args.as_slice() else {
        eprintln!("usage: peer_mio_echo <host> <port>");
        std::process::exit(2);
    };
    let port: u16 = port
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("port: {e}")))?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut echo = MioEcho::new(TcpListener::bind(addr)?, poll.registry(), LISTENER)?;
    println!(
        "starting up on {host} port {} (mio)",
        echo.local_addr()?.port()
    );
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            echo.handle(poll.registry(), event)?;
        }
    }
}
