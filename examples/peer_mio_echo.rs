//! A TCP echo server on mio, the peer that `benches/compare.rs` measures rawloop against.
//!
//! It does the same work as rawloop's `echo_server`: one thread, one poll instance, each
//! readable connection read into a 16 KiB buffer and the bytes written straight back, with
//! the tail of a partial write kept until the socket is writable again (and reading paused
//! meanwhile). It is written the way mio is meant to be used: every socket is registered
//! once for READABLE | WRITABLE, edge-triggered, and never reregistered.
//!
//! Edge-triggered readiness means reading until the socket is drained. A read that returns
//! fewer bytes than the buffer holds has drained a TCP socket (the kernel hands over all it
//! has queued), and any byte that arrives later raises a new edge, so the server stops there
//! instead of paying one more read that would fail with `WouldBlock` (tokio does the same).
//! The exception is an event that reports the peer's end of stream: that raises no further
//! edge, so then the server reads on until the read returns 0.
//!
//! `cargo run --release --example peer_mio_echo -- <host> <port>` (port 0 picks a free one;
//! the first line printed names it). It stops on SIGTERM or SIGINT (the default action).

use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
const BUF_SIZE: usize = 16 * 1024;

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back (a partial write's tail).
    pending: Vec<u8>,
}

enum Outcome {
    Open,
    Closed,
}

impl Conn {
    /// Writes the pending tail, then echoes until the socket is drained or a write is
    /// partial. Called for every event, readable or writable; `closed` says the event
    /// reported the peer's end of stream.
    fn serve(&mut self, buf: &mut [u8], closed: bool) -> io::Result<Outcome> {
        if !self.pending.is_empty() {
            let n = write_some(&mut self.stream, &self.pending)?;
            self.pending.drain(..n);
            if !self.pending.is_empty() {
                return Ok(Outcome::Open);
            }
        }
        loop {
            let n = match self.stream.read(buf) {
                Ok(0) => return Ok(Outcome::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Outcome::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let written = write_some(&mut self.stream, &buf[..n])?;
            if written < n {
                // Stop reading until the writable edge lets the tail go out.
                self.pending.extend_from_slice(&buf[written..n]);
                return Ok(Outcome::Open);
            }
            if n < buf.len() && !closed {
                return Ok(Outcome::Open);
            }
        }
    }
}

/// Writes as much of `bytes` as the socket takes now.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

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
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!(
        "starting up on {host} port {} (mio)",
        listener.local_addr()?.port()
    );

    let mut conns: Slab<Conn> = Slab::new();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            entry.insert(Conn {
                                stream,
                                pending: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                        // Out of fds: the benchmark runner raises the limit so that this does
                        // not happen; a server meant for production would retry later.
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let closed = match conn.serve(&mut buf, event.is_read_closed() || event.is_error()) {
                Ok(Outcome::Open) => false,
                Ok(Outcome::Closed) => true,
                Err(e) => {
                    eprintln!("closing connection: {e}");
                    true
                }
            };
            if closed {
                let mut conn = conns.remove(key);
                poll.registry().deregister(&mut conn.stream)?;
            }
        }
    }
}
