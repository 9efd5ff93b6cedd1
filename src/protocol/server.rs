//! The server's `Message` state machine, after the reference `libserver.Message`.
//!
//! A connection reads until a request is complete — every stage the buffered bytes allow in
//! one read event — then stops reading, writes the response (at once; it watches for
//! writable only if the socket did not take it all) and closes when the response is sent.
//! With keep-alive on, it goes back to reading after each response instead, and answers
//! requests in order for as long as the client keeps the connection.
//!
//! Every protocol error closes that one connection with the reason logged: a malformed frame,
//! content over the limit (refused before anything is allocated for it), a peer that closes
//! mid-frame, or a request not completed within the timeout.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::buffer::OutBuf;
use crate::diag::warn_limited;
use crate::protocol::codec::{self, Decoder, Frame, DEFAULT_MAX_CONTENT_LEN};
use crate::server::Limits;
use crate::timers::instant_after;
use crate::{Context, Event, Handler, Interest, Reactor, Selector, TimerId, Token};

/// Settings of a Message-protocol server; start from `ServerConfig::default()` and change
/// what you need with the builder methods.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Requests announcing more content than this are refused (the connection is closed).
    pub max_content_len: usize,
    /// A connection that has not completed a request this long after it was accepted (or,
    /// with keep-alive, after its last response) is closed.
    pub request_timeout: Duration,
    /// Serve many requests, in order, on one connection.
    pub keep_alive: bool,
    /// With keep-alive, stop reading while this many response bytes wait for a client that
    /// does not read them.
    pub output_limit: usize,
    /// Log each connection and request at `info` (an access log); otherwise at `debug`.
    pub access_log: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_content_len: DEFAULT_MAX_CONTENT_LEN,
            request_timeout: Duration::from_secs(10),
            keep_alive: false,
            output_limit: 1024 * 1024,
            access_log: false,
        }
    }
}

impl ServerConfig {
    /// Sets [`max_content_len`](ServerConfig::max_content_len).
    pub fn max_content_len(mut self, max: usize) -> ServerConfig {
        self.max_content_len = max;
        self
    }

    /// Sets [`request_timeout`](ServerConfig::request_timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> ServerConfig {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`keep_alive`](ServerConfig::keep_alive).
    pub fn keep_alive(mut self, on: bool) -> ServerConfig {
        self.keep_alive = on;
        self
    }

    /// Sets [`output_limit`](ServerConfig::output_limit).
    pub fn output_limit(mut self, limit: usize) -> ServerConfig {
        self.output_limit = limit;
        self
    }

    /// Sets [`access_log`](ServerConfig::access_log).
    pub fn access_log(mut self, on: bool) -> ServerConfig {
        self.access_log = on;
        self
    }
}

/// A response buffer grown past this is dropped after use rather than kept.
const RESPONSE_BUFFER_KEPT: usize = 4096;

/// Logs at `info` with an access log, at `debug` without.
macro_rules! access {
    ($config:expr, $($arg:tt)+) => {
        if $config.access_log {
            log::info!($($arg)+)
        } else {
            log::debug!($($arg)+)
        }
    };
}

/// One server connection: reads requests, writes the answers of [`codec::respond`].
#[derive(Debug)]
pub struct ServerConnection {
    peer: Peer,
    config: ServerConfig,
    decoder: Decoder,
    out: OutBuf,
    /// The buffer each response is encoded into, kept between responses.
    response: Vec<u8>,
    /// The last response is queued; close once it is sent.
    done_reading: bool,
    /// The client has closed its side: answer what is buffered, then close.
    eof: bool,
    /// The request timer: due `request_timeout` after `since`, or later (see `rearm`).
    deadline: Option<TimerId>,
    /// When the request under way started: the connection's registration, or the round that
    /// answered the last request.
    since: Option<Instant>,
    served: u64,
}

impl ServerConnection {
    /// A connection from `peer` (used in log lines).
    pub fn new(peer: impl Into<String>, config: ServerConfig) -> ServerConnection {
        ServerConnection::with_peer(Peer::Name(peer.into()), config)
    }

    /// A connection from `addr`, named in log lines as the reference prints addresses
    /// (see [`python_addr`]), written out only when a line is logged.
    pub fn from_addr(addr: SocketAddr, config: ServerConfig) -> ServerConnection {
        ServerConnection::with_peer(Peer::Addr(addr), config)
    }

    fn with_peer(peer: Peer, config: ServerConfig) -> ServerConnection {
        ServerConnection {
            peer,
            config,
            // The answer reads what it needs of the content in place.
            decoder: Decoder::with_max_content_len(config.max_content_len).parse_json(false),
            out: OutBuf::new(config.output_limit),
            response: Vec::new(),
            done_reading: false,
            eof: false,
            deadline: None,
            since: None,
            served: 0,
        }
    }

    /// How many requests this connection has answered.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Reads once, into the reactor's shared buffer, and hands the decoder what arrived: a
    /// connection holds memory in proportion to what it has received (regression: reading
    /// straight into the decoder reserved and zeroed 64 KiB per connection at its first
    /// read, so 2,000 connections that sent one byte each pinned 128 MB). At end of
    /// stream, notes it.
    fn read_once<S: Read>(&mut self, stream: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        let buf = cx.read_buffer();
        match stream.read(buf) {
            Ok(0) => self.eof = true,
            Ok(n) => self.decoder.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Answers the requests already buffered, while the output has room. Requests left in the
    /// decoder when the output fills are answered once it drains, without waiting for more
    /// input; at end of stream the last request is answered before the connection closes.
    fn answer_buffered<S: Write>(&mut self, stream: &mut S) -> io::Result<()> {
        while !self.done_reading && !self.out.is_full() {
            let mut bytes = std::mem::take(&mut self.response);
            bytes.clear();
            match self.decoder.next_frame() {
                Ok(Some(request)) => {
                    if self.config.access_log || log::log_enabled!(log::Level::Debug) {
                        log_request(request, &self.peer, self.config.access_log);
                    }
                    codec::encode_response(request, &mut bytes)?;
                }
                Ok(None) => {
                    self.response = bytes;
                    if self.eof {
                        // Nothing whole is left: this reports a frame cut short.
                        self.decoder.finish()?;
                        self.done_reading = true;
                    }
                    break;
                }
                Err(e) => match codec::error_response(&e) {
                    Some(answer) => {
                        log::debug!("bad request content from {}: {e}", self.peer);
                        answer.encode_into(&mut bytes)?;
                    }
                    None => return Err(e.into()),
                },
            }
            log::debug!("sending {} bytes to {}", bytes.len(), self.peer);
            self.out.write_or_queue(stream, &bytes)?;
            // Kept for the next response unless one answer made it large.
            if bytes.capacity() <= RESPONSE_BUFFER_KEPT {
                self.response = bytes;
            }
            self.served += 1;
            self.done_reading = !self.config.keep_alive;
        }
        Ok(())
    }

    /// Re-arms the request deadline after a response: the next request must complete within
    /// the timeout from now. The timer is left where it is and only `since` moves (the
    /// round's clock, no syscall); when it fires, [`timeout`](Handler::timeout) sees the later
    /// start and sets it again for the rest. A connection that is done reading needs none.
    fn rearm(&mut self, cx: &mut Context<'_>) {
        if self.done_reading {
            if let Some(old) = self.deadline.take() {
                cx.cancel_timer(old);
            }
        } else {
            self.since = Some(cx.now());
        }
    }
}

/// Who is at the other end, as log lines name it.
#[derive(Debug)]
enum Peer {
    Name(String),
    Addr(SocketAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Name(name) => f.write_str(name),
            Peer::Addr(addr) => write_python_addr(f, *addr),
        }
    }
}

fn log_request(request: Frame<'_>, peer: &Peer, access_log: bool) {
    let config = ServerConfig::default().access_log(access_log);
    // The server's decoder leaves the JSON unparsed; it is parsed here only for the log.
    let parsed;
    let value = match request.json {
        Some(value) => Some(value),
        None if request.is_json() => {
            parsed = request.parse_json().ok();
            parsed.as_ref()
        }
        None => None,
    };
    match value {
        Some(value) => access!(
            config,
            "received request {} from {peer}",
            codec::to_python_repr(value)
        ),
        None => access!(
            config,
            "received {} request from {peer}",
            request.content_type
        ),
    }
}

impl<S: Read + Write + 'static> Handler<S> for ServerConnection {
    fn registered(&mut self, _: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        self.since = Some(cx.now());
        self.deadline = Some(cx.set_timer(self.config.request_timeout)?);
        Ok(())
    }

    fn ready(&mut self, stream: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.out.flush_to(stream)?;
        }
        let served = self.served;
        if event.is_readable() && !self.done_reading && !self.eof && !self.out.is_full() {
            self.read_once(stream, cx)?;
        }
        self.answer_buffered(stream)?;
        if self.served != served {
            self.rearm(cx);
        }
        let interest = match (self.done_reading, self.out.is_empty(), self.out.is_full()) {
            (true, true, _) => {
                cx.close();
                return Ok(());
            }
            (true, false, _) => Interest::WRITABLE,
            (false, true, _) => Interest::READABLE,
            (false, false, true) => Interest::WRITABLE,
            (false, false, false) => Interest::READABLE | Interest::WRITABLE,
        };
        cx.set_interest(interest)
    }

    fn timeout(&mut self, _: &mut S, cx: &mut Context<'_>, timer: TimerId) -> io::Result<()> {
        if self.deadline == Some(timer) {
            self.deadline = None;
            let due = self
                .since
                .map(|since| instant_after(since, self.config.request_timeout));
            if let Some(due) = due.filter(|&due| due > cx.now()) {
                // A response since the timer was set: the next request has until `due`.
                self.deadline = Some(cx.set_timer_at(due)?);
                return Ok(());
            }
            warn_limited!(
                "closing connection to {}: no complete request within {:?} ({} bytes of one received)",
                self.peer,
                self.config.request_timeout,
                self.decoder.buffered()
            );
            cx.close();
        }
        Ok(())
    }

    /// At shutdown a connection answers the request it is reading, then closes (keep-alive
    /// ends); one with no request under way closes at once.
    fn shutdown(&mut self, _: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        self.config.keep_alive = false;
        let idle = self.decoder.buffered() == 0 && self.out.is_empty() && !self.done_reading;
        if idle {
            cx.close();
        }
        Ok(())
    }

    fn closed(&mut self, _: &mut S, _: &mut Context<'_>, error: Option<&io::Error>) {
        // The reactor has logged the error (at most once a second per kind).
        match error {
            Some(e) => log::debug!("closing connection to {}: {e}", self.peer),
            None => access!(self.config, "closing connection to {}", self.peer),
        }
    }
}

/// Registers `listener` (non-blocking, as [`net::listen_tcp`](crate::net::listen_tcp) makes
/// it) so that each connection it accepts is served with `config`.
///
/// The connections' fds are never duplicated here: unless the program shares them itself,
/// [`Reactor::set_exclusive_fds`] saves a syscall per closed connection (what `app_server`
/// does), which one request per connection makes worth having.
pub fn serve<S: Selector>(
    reactor: &mut Reactor<S>,
    listener: TcpListener,
    config: ServerConfig,
) -> io::Result<Token> {
    serve_with(reactor, listener, config, Limits::default())
}

/// [`serve`] within `limits` (a cap on open connections; the request timeout of `config` is
/// the idle timeout of this protocol).
pub fn serve_with<S: Selector>(
    reactor: &mut Reactor<S>,
    listener: TcpListener,
    config: ServerConfig,
    limits: Limits,
) -> io::Result<Token> {
    let (token, _) = crate::server::serve(&mut reactor.context(), listener, limits, move |peer| {
        access!(config, "accepted connection from {}", python_addr(*peer));
        Ok(ServerConnection::from_addr(*peer, config))
    })?;
    Ok(token)
}

/// An address as the reference prints it: `('127.0.0.1', 65432)`.
pub fn python_addr(addr: SocketAddr) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_python_addr(&mut out, addr);
    out
}

fn write_python_addr(out: &mut impl fmt::Write, addr: SocketAddr) -> fmt::Result {
    write!(out, "('{}', {})", addr.ip(), addr.port())
}
