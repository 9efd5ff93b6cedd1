//! An echo service on mio, written the way mio is meant to be used: every socket is
//! registered once for READABLE | WRITABLE, edge-triggered, and never reregistered. Each
//! readable connection is read into a 16 KiB buffer and the bytes are written straight back,
//! with the tail of a partial write kept until the socket is writable again (and reading
//! paused meanwhile). `peer_mio_echo` (the benchmarks' mio peer) and `embed_mio` (a mio
//! program that nests a rawloop reactor) serve with it.
//!
//! Edge-triggered readiness means reading until the socket is drained. A read that returns
//! fewer bytes than the buffer holds has drained a TCP socket (the kernel hands over all it
//! has queued), and any byte that arrives later raises a new edge, so the service stops there
//! instead of paying one more read that would fail with `WouldBlock` (tokio does the same).
//! The exception is an event that reports the peer's end of stream: that raises no further
//! edge, so then it reads on until the read returns 0.

use std::io::{self, Read, Write};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

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

/// A listener and its connections on one mio `Poll`. The listener has token `listener`;
/// connection `k` has `Token(k)`, so the caller keeps its own tokens outside `0..` what the
/// slab hands out (near `usize::MAX`).
pub struct MioEcho {
    listener: TcpListener,
    token: Token,
    conns: Slab<Conn>,
    buf: Vec<u8>,
}

impl MioEcho {
    /// Registers `listener` with `registry` under `token`.
    pub fn new(
        mut listener: TcpListener,
        registry: &Registry,
        token: Token,
    ) -> io::Result<MioEcho> {
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(MioEcho {
            listener,
            token,
            conns: Slab::new(),
            buf: vec![0u8; BUF_SIZE],
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` is the listener's or a connection's.
    pub fn owns(&self, token: Token) -> bool {
        token == self.token || self.conns.contains(token.0)
    }

    /// Handles one event of the listener or of a connection.
    pub fn handle(&mut self, registry: &Registry, event: &Event) -> io::Result<()> {
        if event.token() == self.token {
            return self.accept(registry);
        }
        let key = event.token().0;
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        let closed = match conn.serve(&mut self.buf, event.is_read_closed() || event.is_error()) {
            Ok(Outcome::Open) => false,
            Ok(Outcome::Closed) => true,
            Err(e) => {
                eprintln!("closing connection: {e}");
                true
            }
        };
        if closed {
            let mut conn = self.conns.remove(key);
            registry.deregister(&mut conn.stream)?;
        }
        Ok(())
    }

    fn accept(&mut self, registry: &Registry) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nodelay(true)?;
                    let entry = self.conns.vacant_entry();
                    registry.register(
                        &mut stream,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Conn {
                        stream,
                        pending: Vec::new(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                // Out of fds: the benchmark runner raises the limit so that this does not
                // happen; a server meant for production would retry later.
                Err(e) => {
                    eprintln!("accept: {e}");
                    return Ok(());
                }
            }
        }
    }
}
