//! The client's `Message` state machine, after the reference `libclient.Message`.
//!
//! A connection watches for writable until its requests are written, then only for
//! readable, and closes once it has every response (one per request; the reference sends
//! one request per connection, a keep-alive server takes several). A server that closes
//! early, a malformed response, or no answer within the timeout ends the exchange with an
//! error.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::buffer::OutBuf;
use crate::protocol::codec::{self, Decoder, Message};
use crate::{Context, Event, Handler, Interest, Reactor, Selector, TimerId};

/// Settings of a Message-protocol client; start from `ClientConfig::default()`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Responses announcing more content than this end the exchange with an error.
    pub max_content_len: usize,
    /// The whole exchange must finish within this time.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            max_content_len: codec::DEFAULT_MAX_CONTENT_LEN,
            timeout: Duration::from_secs(10),
        }
    }
}

impl ClientConfig {
    /// Sets [`max_content_len`](ClientConfig::max_content_len).
    pub fn max_content_len(mut self, max: usize) -> ClientConfig {
        self.max_content_len = max;
        self
    }

    /// Sets [`timeout`](ClientConfig::timeout).
    pub fn timeout(mut self, timeout: Duration) -> ClientConfig {
        self.timeout = timeout;
        self
    }
}

/// What a client connection has received so far, shared with whoever made it.
#[derive(Debug, Default)]
pub struct Exchange {
    /// The responses, in order.
    pub responses: Vec<Message>,
    /// Why the connection ended early, if it did.
    pub error: Option<io::Error>,
    /// The connection is closed (with every response, or with `error`).
    pub finished: bool,
}

/// One client connection: sends its requests, reads one response for each.
#[derive(Debug)]
pub struct ClientConnection {
    peer: String,
    config: ClientConfig,
    requests: Option<Vec<u8>>,
    expected: usize,
    out: OutBuf,
    decoder: Decoder,
    exchange: Rc<RefCell<Exchange>>,
    deadline: Option<TimerId>,
}

impl ClientConnection {
    /// A connection to `peer` (used in log lines) that sends `requests`; the returned
    /// [`Exchange`] fills in as responses arrive. Register it with [`Interest::WRITABLE`].
    pub fn new(
        peer: impl Into<String>,
        requests: &[Message],
        config: ClientConfig,
    ) -> io::Result<(ClientConnection, Rc<RefCell<Exchange>>)> {
        let mut frames = Vec::new();
        for request in requests {
            request.encode_into(&mut frames)?;
        }
        let exchange = Rc::new(RefCell::new(Exchange::default()));
        let connection = ClientConnection {
            peer: peer.into(),
            config,
            requests: Some(frames),
            expected: requests.len(),
            out: OutBuf::new(usize::MAX),
            decoder: Decoder::with_max_content_len(config.max_content_len),
            exchange: exchange.clone(),
            deadline: None,
        };
        Ok((connection, exchange))
    }

    fn received(&self) -> usize {
        self.exchange.borrow().responses.len()
    }

    /// Reads once; returns whether every response is in.
    fn read_responses<S: Read>(&mut self, stream: &mut S) -> io::Result<bool> {
        let n = match self.decoder.read_with(64 * 1024, |buf| stream.read(buf)) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        loop {
            let next = if n == 0 {
                self.decoder.finish()
            } else {
                self.decoder.next_message()
            };
            match next? {
                Some(response) => {
                    log_response(&response, &self.peer);
                    self.exchange.borrow_mut().responses.push(response);
                }
                None if n == 0 && self.received() < self.expected => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "server closed after {} of {} responses",
                            self.received(),
                            self.expected
                        ),
                    ));
                }
                None => return Ok(self.received() >= self.expected),
            }
        }
    }
}

fn log_response(response: &Message, peer: &str) {
    match &response.json {
        Some(value) => log::info!(
            "received response {} from {peer}",
            codec::to_python_repr(value)
        ),
        None => log::info!("received {} response from {peer}", response.content_type),
    }
}

impl<S: Read + Write + 'static> Handler<S> for ClientConnection {
    fn registered(&mut self, _: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        self.deadline = Some(cx.set_timer(self.config.timeout)?);
        Ok(())
    }

    fn ready(&mut self, stream: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            if let Some(frames) = self.requests.take() {
                log::debug!("sending {} bytes to {}", frames.len(), self.peer);
                self.out.write_or_queue(stream, &frames)?;
            } else {
                self.out.flush_to(stream)?;
            }
            // Read responses while requests are still going out: a keep-alive server stops
            // reading when its output fills, so a client that only writes would deadlock.
            cx.set_interest(if self.out.is_empty() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            })?;
        }
        if self.requests.is_none() && event.is_readable() && self.read_responses(stream)? {
            cx.close();
        }
        Ok(())
    }

    fn timeout(&mut self, _: &mut S, _: &mut Context<'_>, timer: TimerId) -> io::Result<()> {
        if self.deadline != Some(timer) {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no complete answer within {:?} ({} of {} responses)",
                self.config.timeout,
                self.received(),
                self.expected
            ),
        ))
    }

    fn closed(&mut self, _: &mut S, _: &mut Context<'_>, error: Option<&io::Error>) {
        log::info!("closing connection to {}", self.peer);
        let mut exchange = self.exchange.borrow_mut();
        exchange.finished = true;
        exchange.error = error.map(|e| io::Error::new(e.kind(), e.to_string()));
    }
}

/// Connects to `addr` without blocking, sends `requests` on one connection and returns the
/// responses, running rounds of `reactor` until then (whatever else is registered there is
/// served meanwhile).
pub fn exchange<S: Selector>(
    reactor: &mut Reactor<S>,
    addr: SocketAddr,
    requests: &[Message],
    config: ClientConfig,
) -> io::Result<Vec<Message>> {
    let peer = super::server::python_addr(addr);
    log::info!("starting connection to {peer}");
    let (connection, exchange) = ClientConnection::new(peer, requests, config)?;
    reactor
        .context()
        .connect(addr, Interest::WRITABLE, connection)?;
    while !exchange.borrow().finished {
        reactor.run_once(None)?;
    }
    let mut exchange = exchange.take();
    match exchange.error.take() {
        Some(e) => Err(e),
        None => Ok(exchange.responses),
    }
}
