//! Datagram request handlers: Python's `DatagramRequestHandler`, on the reactor.

use std::collections::VecDeque;
use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;

use super::Peer;
use crate::diag::warn_limited;
use crate::{Context, Event, Handler, Interest};

/// The protocol of a datagram server: a new value for every datagram, as Python makes a
/// new `DatagramRequestHandler` for each request.
///
/// ```
/// use std::io;
/// use rawloop::server::{Datagram, DatagramHandler};
///
/// /// Sends every datagram back where it came from.
/// struct Echo;
///
/// impl DatagramHandler for Echo {
///     fn handle(&mut self, datagram: &mut Datagram<'_, '_>) -> io::Result<()> {
///         let data = datagram.data().to_vec();
///         datagram.reply(&data)
///     }
/// }
/// ```
pub trait DatagramHandler: 'static {
    /// One datagram has arrived. An error is logged; the server goes on.
    fn handle(&mut self, datagram: &mut Datagram<'_, '_>) -> io::Result<()>;
}

/// One datagram as its [`DatagramHandler`] sees it.
pub struct Datagram<'a, 'cx> {
    data: &'a [u8],
    peer: &'a Peer,
    socket: &'a dyn DatagramSocket,
    queue: &'a mut Replies,
    cx: &'a mut Context<'cx>,
}

impl<'cx> Datagram<'_, 'cx> {
    /// The datagram's bytes.
    pub fn data(&self) -> &[u8] {
        self.data
    }

    /// Its sender.
    pub fn peer(&self) -> &Peer {
        self.peer
    }

    /// Sends `bytes` to the sender: at once, or, if the socket cannot take it now, when it
    /// is writable again (a bounded queue; past it the oldest reply is dropped, as UDP may).
    pub fn reply(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.queue.waiting.is_empty() {
            match self.socket.send_to_peer(bytes, self.peer) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.queue.push(bytes.to_vec(), self.peer.clone());
        Ok(())
    }

    /// The reactor's context: timers, shared state, other registrations.
    pub fn context(&mut self) -> &mut Context<'cx> {
        self.cx
    }
}

/// A socket a datagram server serves: UDP or Unix-domain datagrams.
pub(crate) trait DatagramSocket {
    fn recv_from_peer(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)>;
    fn send_to_peer(&self, bytes: &[u8], peer: &Peer) -> io::Result<usize>;
}

impl DatagramSocket for UdpSocket {
    fn recv_from_peer(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)> {
        let (n, from) = self.recv_from(buf)?;
        Ok((n, Peer::Inet(from)))
    }
    fn send_to_peer(&self, bytes: &[u8], peer: &Peer) -> io::Result<usize> {
        match peer {
            Peer::Inet(addr) => self.send_to(bytes, addr),
            Peer::Unix(_) => Err(io::ErrorKind::InvalidInput.into()),
        }
    }
}

impl DatagramSocket for UnixDatagram {
    fn recv_from_peer(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)> {
        let (n, from) = self.recv_from(buf)?;
        Ok((n, Peer::Unix(from)))
    }
    fn send_to_peer(&self, bytes: &[u8], peer: &Peer) -> io::Result<usize> {
        match peer {
            Peer::Unix(addr) => self.send_to_addr(bytes, addr),
            Peer::Inet(_) => Err(io::ErrorKind::InvalidInput.into()),
        }
    }
}

/// Replies waiting for the socket, oldest first.
#[derive(Default)]
pub(crate) struct Replies {
    waiting: VecDeque<(Vec<u8>, Peer)>,
    dropped: u64,
}

/// At most this many replies wait; more drop the oldest.
const QUEUE_LIMIT: usize = 1024;

/// At most this many datagrams are read per event, to stay fair to other registrations.
const READS_PER_EVENT: usize = 64;

/// The largest datagram taken (UDP over IPv4; larger ones are cut).
const MAX_DATAGRAM: usize = 65_535;

impl Replies {
    fn push(&mut self, bytes: Vec<u8>, peer: Peer) {
        if self.waiting.len() >= QUEUE_LIMIT {
            self.waiting.pop_front();
            self.dropped += 1;
            warn_limited!(
                "reply queue full: dropped the oldest reply ({} so far)",
                self.dropped
            );
        }
        self.waiting.push_back((bytes, peer));
    }

    /// Sends what waits until the socket would block.
    fn flush(&mut self, socket: &dyn DatagramSocket) {
        while let Some((bytes, peer)) = self.waiting.front() {
            match socket.send_to_peer(bytes, peer) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => warn_limited!("reply to {peer}: {e}"),
                Ok(_) => {}
            }
            self.waiting.pop_front();
        }
    }
}

/// The reactor's handler of a datagram server's socket.
pub(crate) struct DatagramServe<F> {
    make: F,
    queue: Replies,
}

impl<F> DatagramServe<F> {
    pub(crate) fn new(make: F) -> DatagramServe<F> {
        DatagramServe {
            make,
            queue: Replies::default(),
        }
    }
}

impl<S, H, F> Handler<S> for DatagramServe<F>
where
    S: DatagramSocket + 'static,
    H: DatagramHandler,
    F: FnMut() -> H + 'static,
{
    fn ready(&mut self, socket: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.queue.flush(socket);
        }
        if event.is_readable() {
            for _ in 0..READS_PER_EVENT {
                let buf = &mut cx.read_buffer()[..MAX_DATAGRAM];
                let (n, peer) = match socket.recv_from_peer(buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // An error about one earlier datagram (an ICMP error on Linux): go on.
                    Err(e) => {
                        warn_limited!("receiving: {e}");
                        continue;
                    }
                };
                let data = buf[..n].to_vec();
                let mut handler = (self.make)();
                let mut datagram = Datagram {
                    data: &data,
                    peer: &peer,
                    socket,
                    queue: &mut self.queue,
                    cx,
                };
                if let Err(e) = handler.handle(&mut datagram) {
                    warn_limited!("datagram from {peer}: {e}");
                }
            }
        }
        cx.set_interest(if self.queue.waiting.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })
    }
}
