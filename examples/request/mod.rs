//! A request and its answer on the reactor, for the clients of the seed programs: what a
//! Python client does with blocking `connect`, `sendall` and `recv` calls, done as a state
//! machine that the reactor runs until the answer is in, with a deadline on every step.
//!
//! The reactor is run only while a request is out, so a client can read its standard input
//! (blocking) between two requests and keep its connection registered nowhere meanwhile.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use rawloop::buffer::OutBuf;
use rawloop::net::{self, UdpOptions};
use rawloop::{Context, Event, Handler, Interest, Reactor, Selector, TimerId};

/// Reads one line of standard input (through `stdin`, its locked handle) without its line
/// ending, prompting with `> ` first as Python's `input('> ')` does, but only when a person
/// is typing (standard input is a terminal). `None` at the end of the input.
pub fn input(stdin: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    if io::stdin().is_terminal() {
        print!("> ");
        io::stdout().flush()?;
    }
    let mut line = Vec::new();
    if stdin.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    while line.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(line))
}

/// When an answer is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Nothing is read: done once the request is sent (`sendall`, then `close`).
    Sent,
    /// After the first read that returns data (one `recv(BUFSIZ)`).
    Data,
    /// Once this many bytes have arrived (a reply whose length the protocol fixes).
    Bytes(usize),
    /// When the peer closes the connection (a server that closes after answering).
    Eof,
}

type Outcome = Rc<RefCell<Option<io::Result<Vec<u8>>>>>;

/// Connects to `addr` (a non-blocking connect the reactor watches) and returns the stream
/// once it is connected, or the connect's error; `TimedOut` after `timeout`.
pub fn connect<S: Selector>(
    reactor: &mut Reactor<S>,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let stream = net::connect_tcp(addr)?;
    let (stream, _) = run(reactor, stream, true, Vec::new(), Until::Sent, timeout)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
    Ok(stream)
}

/// Sends `request` on a connected `stream` and reads the answer until `until` says it is
/// complete. Returns the stream (to send the next request on) and the answer. Fails with
/// `UnexpectedEof` if the peer closes before the answer is complete (except with
/// [`Until::Eof`]), `TimedOut` after `timeout`, or the socket's error.
pub fn exchange<S, Src>(
    reactor: &mut Reactor<S>,
    stream: Src,
    request: &[u8],
    until: Until,
    timeout: Duration,
) -> io::Result<(Src, Vec<u8>)>
where
    S: Selector,
    Src: Read + Write + AsRawFd + 'static,
{
    run(reactor, stream, false, request.to_vec(), until, timeout)
}

/// Registers `stream` with an [`Exchange`], runs the reactor until it has an outcome, and
/// takes the stream back.
fn run<S, Src>(
    reactor: &mut Reactor<S>,
    stream: Src,
    connecting: bool,
    request: Vec<u8>,
    until: Until,
    timeout: Duration,
) -> io::Result<(Src, Vec<u8>)>
where
    S: Selector,
    Src: Read + Write + AsRawFd + 'static,
{
    let outcome: Outcome = Rc::new(RefCell::new(None));
    let exchange = Exchange {
        request: Some(request),
        out: OutBuf::new(usize::MAX),
        until,
        answer: Vec::new(),
        timeout,
        outcome: outcome.clone(),
    };
    let interest = Interest::READABLE | Interest::WRITABLE;
    let token = if connecting {
        reactor
            .context()
            .register_connecting(stream, interest, exchange)?
    } else {
        reactor.register(stream, interest, exchange)?
    };
    let answer = loop {
        if let Some(result) = outcome.borrow_mut().take() {
            break result;
        }
        if let Err(e) = reactor.run_once(None) {
            reactor.close_token(token);
            return Err(e);
        }
    };
    // A failed connect has closed its registration already; otherwise the stream comes back.
    let stream = reactor.deregister::<Src>(token);
    let answer = answer?;
    Ok((stream?, answer))
}

/// One request and its answer, as a state machine: write the request once the socket is
/// writable, then read until the answer is complete. It pauses itself (empty interest) when
/// done, so that its source can be taken back.
struct Exchange {
    /// The request, until the first writable event hands it to `out`.
    request: Option<Vec<u8>>,
    out: OutBuf,
    until: Until,
    answer: Vec<u8>,
    timeout: Duration,
    outcome: Outcome,
}

impl Exchange {
    /// Whether the answer is complete.
    fn step<Src: Read + Write>(
        &mut self,
        stream: &mut Src,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<bool> {
        if event.is_writable() {
            match self.request.take() {
                Some(request) => self.out.write_or_queue(stream, &request)?,
                None => self.out.flush_to(stream)?,
            }
        }
        let sent = self.request.is_none() && self.out.is_empty();
        if sent && self.until == Until::Sent {
            return Ok(true);
        }
        if event.is_readable() {
            loop {
                let buf = cx.read_buffer();
                match stream.read(buf) {
                    Ok(0) if self.until == Until::Eof => return Ok(true),
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the peer closed the connection after {} bytes of its answer",
                                self.answer.len()
                            ),
                        ))
                    }
                    Ok(n) => {
                        self.answer.extend_from_slice(&buf[..n]);
                        match self.until {
                            Until::Data => return Ok(true),
                            Until::Bytes(want) if self.answer.len() >= want => return Ok(true),
                            _ => {}
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        cx.set_interest(if sent {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })?;
        Ok(false)
    }

    fn finish(&mut self, cx: &mut Context<'_>, result: io::Result<()>) {
        let answer = std::mem::take(&mut self.answer);
        *self.outcome.borrow_mut() = Some(result.map(|()| answer));
        if let Err(e) = cx.set_interest(Interest::empty()) {
            log::debug!("pausing a finished exchange: {e}");
        }
    }
}

impl<Src: Read + Write + 'static> Handler<Src> for Exchange {
    fn registered(&mut self, _: &mut Src, cx: &mut Context<'_>) -> io::Result<()> {
        cx.set_timer(self.timeout)?;
        Ok(())
    }

    fn connected(
        &mut self,
        _: &mut Src,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        if let Err(e) = result {
            self.finish(cx, Err(e));
        }
        Ok(())
    }

    fn ready(&mut self, stream: &mut Src, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        match self.step(stream, cx, event) {
            Ok(false) => {}
            Ok(true) => self.finish(cx, Ok(())),
            Err(e) => self.finish(cx, Err(e)),
        }
        Ok(())
    }

    fn timeout(&mut self, _: &mut Src, cx: &mut Context<'_>, _: TimerId) -> io::Result<()> {
        let e = io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete answer within {:?}", self.timeout),
        );
        self.finish(cx, Err(e));
        Ok(())
    }
}

/// A UDP socket on a free port of the wildcard address of `server`'s family, to send to it.
pub fn udp_socket_for(server: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    net::bind_udp(local, &UdpOptions::default())
}

/// Sends `request` to `server` in one datagram and waits for one datagram back from it
/// (datagrams from other addresses are ignored); `TimedOut` after `timeout`. Returns the
/// socket, for the next request, and the answer.
pub fn datagram_exchange<S: Selector>(
    reactor: &mut Reactor<S>,
    socket: UdpSocket,
    server: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> io::Result<(UdpSocket, Vec<u8>)> {
    let outcome: Outcome = Rc::new(RefCell::new(None));
    let exchange = DatagramExchange {
        server,
        request: Some(request.to_vec()),
        timeout,
        outcome: outcome.clone(),
    };
    let token = reactor.register(socket, Interest::WRITABLE, exchange)?;
    let answer = loop {
        if let Some(result) = outcome.borrow_mut().take() {
            break result;
        }
        if let Err(e) = reactor.run_once(None) {
            reactor.close_token(token);
            return Err(e);
        }
    };
    let socket = reactor.deregister::<UdpSocket>(token)?;
    Ok((socket, answer?))
}

/// One datagram out and one back, as a state machine.
struct DatagramExchange {
    server: SocketAddr,
    /// The request, until it is sent.
    request: Option<Vec<u8>>,
    timeout: Duration,
    outcome: Outcome,
}

impl DatagramExchange {
    fn step(
        &mut self,
        socket: &mut UdpSocket,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<Option<Vec<u8>>> {
        if event.is_writable() {
            if let Some(request) = &self.request {
                match socket.send_to(request, self.server) {
                    Ok(_) => {
                        self.request = None;
                        cx.set_timer(self.timeout)?;
                        cx.set_interest(Interest::READABLE)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if event.is_readable() {
            loop {
                let buf = cx.read_buffer();
                match socket.recv_from(buf) {
                    Ok((n, from)) if from == self.server => return Ok(Some(buf[..n].to_vec())),
                    Ok((n, from)) => log::debug!("ignoring {n} bytes from {from}"),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(None)
    }

    fn finish(&mut self, cx: &mut Context<'_>, result: io::Result<Vec<u8>>) {
        *self.outcome.borrow_mut() = Some(result);
        if let Err(e) = cx.set_interest(Interest::empty()) {
            log::debug!("pausing a finished exchange: {e}");
        }
    }
}

impl Handler<UdpSocket> for DatagramExchange {
    fn ready(
        &mut self,
        socket: &mut UdpSocket,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        match self.step(socket, cx, event) {
            Ok(None) => {}
            Ok(Some(answer)) => self.finish(cx, Ok(answer)),
            Err(e) => self.finish(cx, Err(e)),
        }
        Ok(())
    }

    fn timeout(&mut self, _: &mut UdpSocket, cx: &mut Context<'_>, _: TimerId) -> io::Result<()> {
        let e = io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer from {} within {:?}", self.server, self.timeout),
        );
        self.finish(cx, Err(e));
        Ok(())
    }
}
