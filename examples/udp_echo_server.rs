//! A UDP echo server on the reactor, after PyMOTW's `socket_echo_server_dgram.py`: every
//! datagram is sent back to where it came from. A reply the socket cannot take now
//! (`WouldBlock`) waits in a bounded queue of datagrams, sent in order when the socket is
//! writable; when the queue is over its bound the oldest datagram is dropped (and logged),
//! as UDP may. Errors about one datagram (an ICMP error reported on the socket, a reply too
//! large) are logged and do not stop the server. SIGINT or SIGTERM stops it, and it prints
//! the reactor's counters on stderr.
//!
//! `cargo run --example udp_echo_server -- [--backend select|poll|epoll|kqueue] <host> <port>`

mod common;

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;

use clap::Parser;
use rawloop::net::{self, UdpOptions};
use rawloop::{Context, Event, Handler, Interest, Reactor, Selector, Token};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    host: String,
    port: u16,
}

/// At most this many replies wait for the socket; more drop the oldest.
const QUEUE_LIMIT: usize = 1024;

/// The largest UDP payload (over IPv4; IPv6 jumbograms aside).
const MAX_DATAGRAM: usize = 65_535;

/// At most this many datagrams are read per event, to stay fair to other registrations.
const READS_PER_EVENT: usize = 64;

/// Registers `socket` to echo every datagram, with a reply queue of [`QUEUE_LIMIT`].
fn serve<S: Selector>(reactor: &mut Reactor<S>, socket: UdpSocket) -> io::Result<Token> {
    reactor.register(socket, Interest::READABLE, UdpEcho::new(QUEUE_LIMIT))
}

/// The echo state: replies that wait for the socket, oldest first.
#[derive(Debug)]
struct UdpEcho {
    queue: VecDeque<(Vec<u8>, SocketAddr)>,
    limit: usize,
    buf: Vec<u8>,
    dropped: u64,
}

impl UdpEcho {
    /// An echo with a reply queue of `limit` datagrams (at least 1).
    fn new(limit: usize) -> UdpEcho {
        UdpEcho {
            queue: VecDeque::new(),
            limit: limit.max(1),
            buf: vec![0; MAX_DATAGRAM],
            dropped: 0,
        }
    }

    /// Sends queued replies until the queue is empty or the socket would block.
    fn flush(&mut self, socket: &UdpSocket) {
        while let Some((data, addr)) = self.queue.front() {
            match socket.send_to(data, addr) {
                Ok(sent) => log::debug!("sent {sent} bytes back to {addr}"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => log::info!("dropping a reply to {addr}: {e}"),
            }
            self.queue.pop_front();
        }
    }

    /// Sends a reply now if nothing waits (keeping the order), else queues it.
    fn reply(&mut self, socket: &UdpSocket, data: &[u8], addr: SocketAddr) {
        if self.queue.is_empty() {
            loop {
                match socket.send_to(data, addr) {
                    Ok(sent) => {
                        log::debug!("sent {sent} bytes back to {addr}");
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::info!("dropping a reply to {addr}: {e}");
                        return;
                    }
                }
            }
        }
        self.queue.push_back((data.to_vec(), addr));
        if self.queue.len() > self.limit {
            if let Some((old, to)) = self.queue.pop_front() {
                self.dropped += 1;
                log::warn!(
                    "reply queue over {} datagrams: dropping the oldest ({} bytes to {to}; {} dropped so far)",
                    self.limit,
                    old.len(),
                    self.dropped
                );
            }
        }
    }
}

impl Handler<UdpSocket> for UdpEcho {
    fn ready(
        &mut self,
        socket: &mut UdpSocket,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        if event.is_writable() {
            self.flush(socket);
        }
        if event.is_readable() {
            for _ in 0..READS_PER_EVENT {
                match socket.recv_from(&mut self.buf) {
                    Ok((n, addr)) => {
                        log::debug!("received {n} bytes from {addr}");
                        let data = std::mem::take(&mut self.buf);
                        self.reply(socket, &data[..n], addr);
                        self.buf = data;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // An error queued on the socket (an ICMP "port unreachable" for an
                    // earlier reply, on some systems): it concerns one peer, not the server.
                    Err(e) => log::info!("recvfrom: {e}"),
                }
            }
        }
        cx.set_interest(if self.queue.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })
    }
}

fn run(args: Args) -> io::Result<()> {
    let addr = net::resolve(&args.host, args.port)?;
    let socket = net::bind_udp(addr, &UdpOptions::default())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    let port = socket.local_addr()?.port();
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    serve(&mut reactor, socket)?;
    reactor.shutdown_on_signals(common::GraceArg::default().grace())?;
    // Everything it serves with is open: the line says it is ready.
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
    common::exit_on_error("udp_echo_server", run(Args::parse()))
}
