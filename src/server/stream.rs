//! Stream request handlers: Python's `StreamRequestHandler`, on the reactor.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net;

use crate::buffer::OutBuf;
use crate::{Context, Event, Handler};

/// The address of a connection's peer, or of a datagram's sender.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A TCP or UDP peer.
    Inet(SocketAddr),
    /// A Unix-domain peer (usually unnamed).
    Unix(net::SocketAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Inet(addr) => write!(f, "{addr}"),
            Peer::Unix(addr) => match addr.as_pathname() {
                Some(path) => write!(f, "{}", path.display()),
                None => f.write_str("(unnamed)"),
            },
        }
    }
}

/// The protocol of a stream server's connections, one value per connection (Python's
/// `StreamRequestHandler`, with `setup`, `handle` and `finish`).
///
/// [`handle`](StreamHandler::handle) is called each time data has arrived, and once more
/// when the peer has finished sending ([`Stream::at_eof`]). It takes what it can from the
/// [`Stream`] (a line at a time with [`Stream::read_line`], or everything with
/// [`Stream::take`]) and leaves the rest for the next call; it must not block. The
/// connection closes when the handler calls [`Stream::close`] (once what it wrote is sent),
/// after the end of the stream, or on an error.
///
/// ```
/// use std::io;
/// use rawloop::server::{Stream, StreamHandler};
///
/// /// Answers each line in upper case, as the socketserver docs' `MyTCPHandler` does.
/// struct Upper;
///
/// impl StreamHandler for Upper {
///     fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
///         while let Some(line) = stream.read_line()? {
///             stream.write(&line.to_ascii_uppercase())?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait StreamHandler: 'static {
    /// The connection was just accepted; nothing has been read yet.
    fn setup(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
        let _ = stream;
        Ok(())
    }

    /// Data has arrived, or the peer has finished sending.
    fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()>;

    /// The connection has closed: normally (`None`) or with `error`.
    fn finish(&mut self, peer: &Peer, error: Option<&io::Error>) {
        let _ = (peer, error);
    }
}

/// A byte stream a [`StreamHandler`] works on.
trait Socket: Read + Write {}
impl<S: Read + Write> Socket for S {}

/// One connection as its [`StreamHandler`] sees it: what has arrived and not been taken
/// (Python's `rfile`), a writer that never blocks (`wfile`), and the reactor's [`Context`].
pub struct Stream<'a, 'cx> {
    socket: &'a mut dyn Socket,
    conn: &'a mut Conn,
    cx: &'a mut Context<'cx>,
}

impl<'cx> Stream<'_, 'cx> {
    /// The peer's address.
    pub fn peer(&self) -> &Peer {
        &self.conn.peer
    }

    /// What has arrived and not been taken yet.
    pub fn data(&self) -> &[u8] {
        &self.conn.input[self.conn.taken..]
    }

    /// Marks the first `n` bytes of [`data`](Stream::data) as taken.
    pub fn consume(&mut self, n: usize) {
        self.conn.taken = (self.conn.taken + n).min(self.conn.input.len());
    }

    /// Takes everything that has arrived (Python's `request.recv()`, without waiting).
    pub fn take(&mut self) -> Vec<u8> {
        let all = self.data().to_vec();
        self.conn.taken = self.conn.input.len();
        all
    }

    /// Takes the next whole line, `\n` included, as Python's `rfile.readline()`; at the end
    /// of the stream, the last bytes even without a `\n`. `Ok(None)` when no whole line has
    /// arrived yet. A line longer than the server's [`Limits::max_line`](super::Limits)
    /// fails with `InvalidData`, which closes the connection.
    pub fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let data = self.data();
        let end = match data.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if self.conn.eof && !data.is_empty() => data.len(),
            None => {
                if data.len() > self.conn.max_line {
                    return Err(line_too_long(self.conn.max_line));
                }
                return Ok(None);
            }
        };
        if end > self.conn.max_line {
            return Err(line_too_long(self.conn.max_line));
        }
        let line = data[..end].to_vec();
        self.consume(end);
        Ok(Some(line))
    }

    /// Sends `bytes` after what is already queued: at once as far as the socket takes them,
    /// the rest when it is writable again (Python's `wfile.write()`, without blocking).
    /// While more than the output limit waits, the connection stops reading.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.conn.out.write_or_queue(&mut self.socket, bytes)
    }

    /// Closes the connection once what was written has been sent; nothing more is read.
    pub fn close(&mut self) {
        self.conn.closing = true;
    }

    /// Whether the peer has finished sending (it shut down its side or closed).
    pub fn at_eof(&self) -> bool {
        self.conn.eof
    }

    /// The reactor's context: timers, shared state, other registrations.
    pub fn context(&mut self) -> &mut Context<'cx> {
        self.cx
    }
}

fn line_too_long(max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a line longer than {max} bytes"),
    )
}

/// The state of one connection besides its handler.
struct Conn {
    peer: Peer,
    /// Received bytes; `input[taken..]` are not taken yet. Emptied (and freed when large)
    /// whenever the handler has taken everything.
    input: Vec<u8>,
    taken: usize,
    out: OutBuf,
    eof: bool,
    closing: bool,
    /// A graceful shutdown began: close as soon as nothing is in flight.
    draining: bool,
    max_line: usize,
}

/// How much output may wait for a slow reader before the connection stops reading.
const OUTPUT_LIMIT: usize = 256 * 1024;

/// Input buffers larger than this are freed, not kept, once empty.
const KEEP_INPUT: usize = 4096;

/// The reactor's handler for a connection of a [`StreamHandler`].
pub(crate) struct StreamConn<H> {
    handler: H,
    conn: Conn,
}

impl<H: StreamHandler> StreamConn<H> {
    pub(crate) fn new(handler: H, peer: Peer, max_line: usize) -> StreamConn<H> {
        StreamConn {
            handler,
            conn: Conn {
                peer,
                input: Vec::new(),
                taken: 0,
                out: OutBuf::new(OUTPUT_LIMIT),
                eof: false,
                closing: false,
                draining: false,
                max_line,
            },
        }
    }

    fn call<S: Read + Write>(
        &mut self,
        socket: &mut S,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut H, &mut Stream<'_, '_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut stream = Stream {
            socket,
            conn: &mut self.conn,
            cx,
        };
        f(&mut self.handler, &mut stream)?;
        let conn = &mut self.conn;
        if conn.taken == conn.input.len() {
            conn.input.clear();
            conn.taken = 0;
            if conn.input.capacity() > KEEP_INPUT {
                conn.input = Vec::new();
            }
        } else if conn.input.len() - conn.taken > conn.max_line {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {} bytes received and not taken", conn.max_line),
            ));
        }
        Ok(())
    }

    /// Watches for what the connection needs next, or closes it when it is done.
    fn want(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let conn = &self.conn;
        let idle = conn.taken == conn.input.len() && conn.out.is_empty();
        if conn.draining && idle {
            cx.close();
            return Ok(());
        }
        let interest = conn.out.interest(!conn.eof && !conn.closing);
        if interest.is_empty() {
            cx.close();
            return Ok(());
        }
        cx.set_interest(interest)
    }
}

impl<S: Read + Write + 'static, H: StreamHandler> Handler<S> for StreamConn<H> {
    fn registered(&mut self, socket: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        self.call(socket, cx, |h, stream| h.setup(stream))?;
        self.want(cx)
    }

    fn ready(&mut self, socket: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.conn.out.flush_to(socket)?;
        }
        let conn = &mut self.conn;
        if event.is_readable() && !conn.eof && !conn.closing && !conn.out.is_full() {
            let buf = cx.read_buffer();
            let arrived = match socket.read(buf) {
                Ok(0) => {
                    conn.eof = true;
                    true
                }
                Ok(n) => {
                    conn.input.extend_from_slice(&buf[..n]);
                    true
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) => return Err(e),
            };
            if arrived {
                self.call(socket, cx, |h, stream| h.handle(stream))?;
            }
        }
        self.want(cx)
    }

    /// At shutdown a connection finishes what is in flight (a request partly received, a
    /// reply partly sent), then closes; an idle one closes at once.
    fn shutdown(&mut self, _: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        self.conn.draining = true;
        self.want(cx)
    }

    fn closed(&mut self, _: &mut S, _: &mut Context<'_>, error: Option<&io::Error>) {
        self.handler.finish(&self.conn.peer, error);
    }
}
