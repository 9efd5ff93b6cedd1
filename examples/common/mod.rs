//! What the example programs share: `--backend`, stopping on SIGINT/SIGTERM, and the echo
//! connection handler.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rawloop::buffer::OutBuf;
use rawloop::{Backend, Context, Event, Handler, Interest, Reactor, Selector};

/// At most this many bytes wait for a slow reader before a connection stops reading.
pub const OUTPUT_LIMIT: usize = 256 * 1024;

/// Logs to stderr at `info` unless RUST_LOG says otherwise.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
}

/// The `--backend` option every example takes.
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArg {
    /// select, poll, epoll or kqueue (those compiled in this build).
    #[arg(long, default_value_t = Backend::default())]
    pub backend: Backend,
}

/// Makes SIGINT and SIGTERM stop `reactor.run()` cleanly: the signal handler only writes a
/// byte to a socket (signal-hook's self-pipe); the reactor reads it and stops.
pub fn stop_on_signals<S: Selector>(reactor: &mut Reactor<S>) -> io::Result<()> {
    let (read, write) = UnixStream::pair()?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    reactor.register(
        read,
        Interest::READABLE,
        |pipe: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
            let mut buf = [0u8; 16];
            let _ = pipe.read(&mut buf);
            log::info!("signal received, shutting down");
            cx.stop();
            Ok(())
        },
    )?;
    Ok(())
}

/// Echoes everything a stream sends back to it, for as long as the peer keeps it open.
///
/// Writes at once and watches for writable only while a tail is left over; stops reading
/// while more than [`OUTPUT_LIMIT`] bytes wait for a peer that does not read.
pub struct Echo {
    peer: String,
    out: OutBuf,
    /// The peer has finished sending: send what is left, then close.
    peer_done: bool,
}

impl Echo {
    /// A handler for a connection from `peer` (used in log lines).
    pub fn new(peer: impl Into<String>) -> Echo {
        Echo {
            peer: peer.into(),
            out: OutBuf::new(OUTPUT_LIMIT),
            peer_done: false,
        }
    }
}

impl<S: Read + Write + 'static> Handler<S> for Echo {
    fn ready(&mut self, stream: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.out.flush_to(stream)?;
        }
        if event.is_readable() && !self.peer_done && !self.out.is_full() {
            let buf = cx.read_buffer();
            match stream.read(buf) {
                Ok(0) => self.peer_done = true,
                Ok(n) => {
                    log::debug!("received {n} bytes from {}", self.peer);
                    self.out.write_or_queue(stream, &buf[..n])?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let interest = match (self.peer_done, self.out.is_empty(), self.out.is_full()) {
            (true, true, _) => {
                cx.close();
                return Ok(());
            }
            (true, false, _) | (false, false, true) => Interest::WRITABLE,
            (false, true, _) => Interest::READABLE,
            (false, false, false) => Interest::READABLE | Interest::WRITABLE,
        };
        cx.set_interest(interest)
    }

    fn closed(&mut self, _: &mut S, error: Option<&io::Error>) {
        match error {
            None => log::info!("closing {}", self.peer),
            Some(e) => log::info!("closing {}: {e}", self.peer),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for the clients and the other servers: showing payloads, test patterns, resolving,
// accepting, connecting without blocking, and a client that checks an echo.
// ---------------------------------------------------------------------------------------------

/// Shows bytes as Python's `repr` shows them, `b'...'`, cut after 64 bytes with the total.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    if bytes.len() <= MAX {
        format!("b'{}'", bytes.escape_ascii())
    } else {
        format!(
            "b'{}'... ({} bytes)",
            bytes[..MAX].escape_ascii(),
            bytes.len()
        )
    }
}

/// `len` bytes of a pattern whose period (251, a prime) matches no buffer size, so that a
/// lost, repeated or reordered chunk shows as a mismatch.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'0' + (i % 251 % 75) as u8).collect()
}

/// The first address `host` and `port` resolve to.
pub fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}:{port} resolves to no address"),
        )
    })
}

/// A listening socket whose connections [`accept_all`] hands out.
pub trait Listen: AsRawFd + 'static {
    /// An accepted connection.
    type Stream: Read + Write + AsRawFd + 'static;
    /// Accepts one connection and names its peer for log lines.
    fn accept_conn(&self) -> io::Result<(Self::Stream, String)>;
}

impl Listen for TcpListener {
    type Stream = TcpStream;
    fn accept_conn(&self) -> io::Result<(TcpStream, String)> {
        let (stream, addr) = self.accept()?;
        // Fails only if the peer is already gone; the first read or write will say so.
        let _ = stream.set_nodelay(true);
        Ok((stream, addr.to_string()))
    }
}

impl Listen for UnixListener {
    type Stream = UnixStream;
    fn accept_conn(&self) -> io::Result<(UnixStream, String)> {
        let (stream, addr) = self.accept()?;
        Ok((stream, format!("{addr:?}")))
    }
}

/// The body of a listener's handler: accepts every pending connection and gives each to
/// `each` (which registers it). A connection `each` fails on is dropped and logged; the
/// listener goes on. On errors such as EMFILE the pending connection stays queued and the
/// listener stays readable, so accepting pauses for 100 ms instead of spinning.
pub fn accept_all<L: Listen>(
    listener: &mut L,
    cx: &mut Context<'_>,
    mut each: impl FnMut(L::Stream, String, &mut Context<'_>) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        match listener.accept_conn() {
            Ok((stream, peer)) => {
                if let Err(e) = each(stream, peer.clone(), cx) {
                    log::warn!("dropping connection from {peer}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                log::warn!("accept: {e}; pausing accepts for 100 ms");
                let me = cx.token().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "accept_all runs in a handler")
                })?;
                cx.set_interest(Interest::empty())?;
                cx.call_after(Duration::from_millis(100), move |cx| {
                    cx.set_interest_of(me, Interest::READABLE)
                });
                return Ok(());
            }
        }
    }
}

/// Starts a TCP connection without waiting for it: returns a non-blocking stream whose
/// connect is in progress (EINPROGRESS), as Python's `sock.connect_ex()` on a non-blocking
/// socket. Register it for WRITABLE; when it is reported, `take_error()` says whether the
/// connection failed.
pub fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};

    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket takes only integer arguments.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on an fd we own, with integer arguments.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0
        || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
        || unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for the duration of the call.
    let rc = unsafe { libc::connect(raw, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

/// `addr` as the C socket address `connect(2)` takes.
fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    use std::mem::size_of;

    // SAFETY: all zeroes is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for every sockaddr type.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "dragonfly",
                target_os = "netbsd",
                target_os = "openbsd"
            ))]
            {
                sin.sin_len = size_of::<libc::sockaddr_in>() as u8;
            }
            (storage, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            #[cfg(any(
                target_vendor = "apple",
                target_os = "freebsd",
                target_os = "dragonfly",
                target_os = "netbsd",
                target_os = "openbsd"
            ))]
            {
                sin6.sin6_len = size_of::<libc::sockaddr_in6>() as u8;
            }
            (storage, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// What an echo client sent and got back.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Bytes sent.
    pub sent: usize,
    /// Bytes received (equal to `sent`: a client returns an error otherwise).
    pub received: usize,
    /// The echo, which matched what was sent.
    pub reply: Vec<u8>,
    /// From registration until the last byte came back.
    pub elapsed: Duration,
}

type Outcome = Rc<RefCell<Option<io::Result<Summary>>>>;

/// A client connection, in state-machine style, after PyMOTW's `selectors_echo_client.py`:
/// sends its messages in order, reads until every byte has come back, and checks each byte
/// against what it sent. Its result goes to [`check_echo`], which drives it.
struct EchoCheck {
    label: String,
    /// Messages not handed to `out` yet; the first may be partly handed (`offset`).
    outgoing: VecDeque<Vec<u8>>,
    offset: usize,
    /// Everything that will be sent, to check the echo against.
    expected: Vec<u8>,
    out: OutBuf,
    reply: Vec<u8>,
    started: Instant,
    outcome: Outcome,
}

/// How much of a message is handed to the output buffer at once, so that the buffer (and
/// a copy of a large payload) stays near [`OUTPUT_LIMIT`].
const CHUNK: usize = 64 * 1024;

impl EchoCheck {
    /// Hands messages to the output buffer (which writes at once) while it has room.
    fn feed<S: Write>(&mut self, stream: &mut S) -> io::Result<()> {
        while !self.out.is_full() {
            let Some(msg) = self.outgoing.front() else {
                break;
            };
            if self.offset == 0 {
                log::debug!("{}: sending {}", self.label, show(msg));
            }
            let end = msg.len().min(self.offset + CHUNK);
            self.out.write_or_queue(stream, &msg[self.offset..end])?;
            self.offset = end;
            if self.offset == msg.len() {
                self.outgoing.pop_front();
                self.offset = 0;
            }
        }
        Ok(())
    }

    fn step<S: Read + Write>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        if event.is_writable() {
            self.out.flush_to(stream)?;
        }
        self.feed(stream)?;
        if event.is_readable() {
            let mut buf = [0u8; 16 * 1024];
            // A few reads per event: enough for throughput, fair to other registrations.
            for _ in 0..8 {
                // Complete: a close that follows the echo is the server's to make.
                if self.reply.len() == self.expected.len() {
                    break;
                }
                let n = match stream.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the server closed the connection after echoing {} of {} bytes",
                                self.reply.len(),
                                self.expected.len()
                            ),
                        ))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let got = &buf[..n];
                log::debug!("{}: received {}", self.label, show(got));
                let at = self.reply.len();
                let want = &self.expected[at.min(self.expected.len())..];
                if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the echo differs from what was sent at byte {}", at + i),
                    ));
                }
                if n > want.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "received {} bytes, more than the {} sent",
                            at + n,
                            self.expected.len()
                        ),
                    ));
                }
                self.reply.extend_from_slice(got);
            }
        }
        if self.reply.len() == self.expected.len() {
            self.finish(cx, Ok(()));
            return Ok(());
        }
        cx.set_interest(if self.out.is_empty() && self.outgoing.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })
    }

    fn finish(&mut self, cx: &mut Context<'_>, result: io::Result<()>) {
        let result = result.map(|()| Summary {
            sent: self.expected.len(),
            received: self.reply.len(),
            reply: std::mem::take(&mut self.reply),
            elapsed: self.started.elapsed(),
        });
        *self.outcome.borrow_mut() = Some(result);
        cx.close();
    }
}

impl<S: Read + Write + 'static> Handler<S> for EchoCheck {
    fn ready(&mut self, stream: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if let Err(e) = self.step(stream, cx, event) {
            self.finish(cx, Err(e));
        }
        Ok(())
    }
}

/// Sends `messages` over `stream` (a connected socket), reads until every byte has come
/// back, checks the echo, and returns what was exchanged. Runs rounds of `reactor` until
/// then, so whatever else is registered there (a server, say) is served meanwhile.
///
/// Fails with `UnexpectedEof` if the peer closes early, `InvalidData` if the echo differs,
/// `TimedOut` after `timeout`, or the socket's error.
pub fn check_echo<S, Src>(
    reactor: &mut Reactor<S>,
    stream: Src,
    label: &str,
    messages: Vec<Vec<u8>>,
    timeout: Duration,
) -> io::Result<Summary>
where
    S: Selector,
    Src: Read + Write + AsRawFd + 'static,
{
    let outcome: Outcome = Rc::new(RefCell::new(None));
    let client = EchoCheck {
        label: label.to_string(),
        expected: messages.concat(),
        outgoing: messages.into_iter().filter(|m| !m.is_empty()).collect(),
        offset: 0,
        out: OutBuf::new(OUTPUT_LIMIT),
        reply: Vec::new(),
        started: Instant::now(),
        outcome: outcome.clone(),
    };
    let token = reactor.register(stream, Interest::READABLE | Interest::WRITABLE, client)?;
    let timer = {
        let outcome = outcome.clone();
        reactor.call_after(timeout, move |cx| {
            outcome.borrow_mut().get_or_insert_with(|| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no complete echo within {timeout:?}"),
                ))
            });
            cx.close_token(token);
            Ok(())
        })
    };
    loop {
        // Once there is an outcome, the registration has closed itself (or the timer closed
        // it): its token may already name a newer registration, so it is not touched again.
        if let Some(result) = outcome.borrow_mut().take() {
            reactor.cancel_timer(timer);
            return result;
        }
        if let Err(e) = reactor.run_once(None) {
            reactor.cancel_timer(timer);
            reactor.close_token(token);
            return Err(e);
        }
    }
}

/// Parses a number of seconds (`1`, `0.25`) for an option such as `--timeout`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?} is not a usable duration: {e}"))
}
