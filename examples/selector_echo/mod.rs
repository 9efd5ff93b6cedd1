//! The echo server of PyMOTW's `select_echo_server.py` and `select_poll_echo_server.py`,
//! written once on the selector layer alone (no reactor) and generic over the backend:
//! `select_echo_server`, `poll_echo_server`, `epoll_echo_server` and `kqueue_echo_server`
//! each call [`main`] with their selector type.
//!
//! It is the seeds' loop made robust: a non-blocking listener and an accept loop; connections
//! in a [`Slab`] keyed by their token; each with an [`OutBuf`] instead of the seeds' message
//! queue, written at once, watched for writable only while a tail is kept, and not read while
//! the tail is over [`OUTPUT_LIMIT`]; a connection that ends (read 0, or an error such as
//! ECONNRESET) is deregistered, then closed, and the others go on. When the client stops
//! sending, what is left of its echo is still written before the connection closes.
//!
//! It stops when its [`Waker`] is told to ([`Waker::stop`], from any thread) or, from `main`,
//! on SIGINT or SIGTERM (a [`SignalSource`] registered like any other fd); then it prints
//! what it counted ([`Stats`]) on stderr.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rawloop::buffer::OutBuf;
use rawloop::{
    net, AcceptFailure, Event, Events, Interest, Selector, Signal, SignalSource, Token, WakeSource,
    Waker,
};
use slab::Slab;

/// At most this many bytes of echo wait for a client before its connection stops reading.
pub const OUTPUT_LIMIT: usize = common::OUTPUT_LIMIT;

/// Tokens outside the slab's keys.
const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);

/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

#[derive(Parser, Debug)]
struct Args {
    host: String,
    port: u16,
}

/// The command line of the four programs: `<host> <port>`; exits 0 after a clean stop, 1 on
/// an error.
pub fn main<S: Selector>(program: &str) -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    common::exit_on_error(program, run::<S>(&args.host, args.port).map(drop))
}

/// Binds `host:port`, serves until SIGINT or SIGTERM, and returns what was done (also
/// printed on stderr).
pub fn run<S: Selector>(host: &str, port: u16) -> io::Result<Stats> {
    let listener = common::listen(host, port)?;
    let mut server = Server::<S>::new(listener)?;
    server.stop_on_signals()?;
    println!(
        "starting up on {host} port {} ({} backend)",
        server.local_addr()?.port(),
        server.selector.name()
    );
    let stats = server.run()?;
    eprintln!("server stats: {stats:?}");
    println!("shutting down");
    Ok(stats)
}

/// What a server did, counted when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended with an error (a reset, mostly) rather than a clean close.
    pub errors: u64,
    /// Bytes received (and echoed, or being echoed when the connection ended).
    pub bytes: u64,
    /// Connections still open when the server stopped (closed then).
    pub open_at_stop: usize,
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    out: OutBuf,
    /// What the selector watches for this connection now.
    interest: Interest,
    /// The client has finished sending (read returned 0); close once `out` is empty.
    draining: bool,
}

impl Conn {
    /// What to watch for: readable while there is room for the echo, writable while a tail
    /// is kept.
    fn wanted(&self) -> Interest {
        let mut interest = Interest::empty();
        if !self.draining && !self.out.is_full() {
            interest |= Interest::READABLE;
        }
        if !self.out.is_empty() {
            interest |= Interest::WRITABLE;
        }
        interest
    }
}

/// What handling an event decided about the connection.
enum Next {
    Keep,
    Close,
}

/// The server: a selector, its listener, the connections keyed by token.
pub struct Server<S: Selector> {
    // Field order is drop order: the selector goes before the fds registered with it.
    selector: S,
    events: Events,
    listener: TcpListener,
    conns: Slab<Conn>,
    wake: WakeSource,
    signals: Option<SignalSource>,
    /// While set, the listener is out of the selector until then (after EMFILE and such).
    accept_paused_until: Option<Instant>,
    stats: Stats,
    buf: Box<[u8]>,
}

impl<S: Selector> Server<S> {
    /// A server on a new selector, with `listener` (non-blocking) and the waker registered.
    pub fn new(listener: TcpListener) -> io::Result<Server<S>> {
        let mut selector = S::new()?;
        selector.register(listener.as_raw_fd(), LISTENER, Interest::READABLE)?;
        let wake = selector.new_waker(WAKER)?;
        Ok(Server {
            selector,
            events: Events::with_capacity(1024),
            listener,
            conns: Slab::new(),
            wake,
            signals: None,
            accept_paused_until: None,
            stats: Stats::default(),
            buf: vec![0; 64 * 1024].into_boxed_slice(),
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops [`run`](Server::run) from any thread ([`Waker::stop`]).
    pub fn waker(&self) -> Waker {
        self.wake.waker()
    }

    /// Makes SIGINT and SIGTERM stop [`run`](Server::run): a [`SignalSource`] registered
    /// here becomes readable when one arrives.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let mut signals = SignalSource::new()?;
        signals.add(Signal::SIGINT)?;
        signals.add(Signal::SIGTERM)?;
        self.selector
            .register(signals.fd(), SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Serves until stopped; then closes every connection and the listener (each
    /// deregistered first, then closed) and returns the counts. Fails only if the selector
    /// itself fails.
    pub fn run(mut self) -> io::Result<Stats> {
        let result = self.serve_loop();
        self.stats.open_at_stop = self.conns.len();
        for conn in self.conns.drain() {
            log::info!("  closing {} (server stopping)", conn.addr);
            if let Err(e) = self.selector.deregister(conn.stream.as_raw_fd()) {
                log::warn!("deregistering {}: {e}", conn.addr);
            }
        }
        if self.accept_paused_until.is_none() {
            if let Err(e) = self.selector.deregister(self.listener.as_raw_fd()) {
                log::warn!("deregistering the listener: {e}");
            }
        }
        if let Some(signals) = &self.signals {
            let _ = self.selector.deregister(signals.fd());
        }
        result.map(|()| self.stats.clone())
    }

    fn serve_loop(&mut self) -> io::Result<()> {
        loop {
            let timeout = match self.accept_paused_until {
                Some(until) => {
                    let now = Instant::now();
                    if now >= until {
                        self.selector.register(
                            self.listener.as_raw_fd(),
                            LISTENER,
                            Interest::READABLE,
                        )?;
                        self.accept_paused_until = None;
                        None
                    } else {
                        Some(until - now)
                    }
                }
                None => None,
            };
            log::trace!("waiting for the next event");
            self.selector.select(&mut self.events, timeout)?;
            // The events are copied out so that handling them can borrow `self` mutably.
            let ready: Vec<Event> = self.events.iter().copied().collect();
            for event in ready {
                match event.token() {
                    LISTENER => self.accept()?,
                    WAKER => {
                        if self.wake.reset()? {
                            log::info!("stop requested");
                            return Ok(());
                        }
                    }
                    SIGNALS => {
                        let mut arrived = Vec::new();
                        if let Some(signals) = self.signals.as_mut() {
                            signals.drain(&mut arrived)?;
                        }
                        log::info!("{arrived:?} received, shutting down");
                        return Ok(());
                    }
                    Token(key) => self.service(key, event),
                }
            }
        }
    }

    /// Accepts every pending connection.
    fn accept(&mut self) -> io::Result<()> {
        loop {
            match net::accept_tcp(&self.listener) {
                Ok((stream, addr)) => {
                    log::info!("  connection from {addr}");
                    self.stats.accepted += 1;
                    if let Err(e) = self.add(stream, addr) {
                        log::warn!("  dropping connection from {addr}: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => match AcceptFailure::of(&e) {
                    AcceptFailure::Skip => {}
                    // Out of fds or memory: the connection stays queued and the listener
                    // stays readable, so take it out of the selector for a while instead of
                    // spinning on it.
                    AcceptFailure::Pause => {
                        log::warn!("accept: {e}; pausing accepts for {ACCEPT_PAUSE:?}");
                        self.selector.deregister(self.listener.as_raw_fd())?;
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                        return Ok(());
                    }
                    AcceptFailure::Fatal => return Err(e),
                },
            }
        }
    }

    /// Registers a new connection under its slab key.
    fn add(&mut self, stream: TcpStream, addr: SocketAddr) -> io::Result<()> {
        let entry = self.conns.vacant_entry();
        self.selector
            .register(stream.as_raw_fd(), Token(entry.key()), Interest::READABLE)?;
        entry.insert(Conn {
            stream,
            addr,
            out: OutBuf::new(OUTPUT_LIMIT),
            interest: Interest::READABLE,
            draining: false,
        });
        Ok(())
    }

    /// Handles one event of connection `key`; closes it when it ends or fails.
    fn service(&mut self, key: usize, event: Event) {
        // A connection closed earlier in this round: its event is stale.
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let next = match echo(conn, event, &mut self.buf, &mut self.stats.bytes) {
            Ok(next) => next,
            Err(e) => {
                // ECONNRESET, EPIPE...: this connection only.
                log::info!("  closing {} after an error: {e}", conn.addr);
                self.stats.errors += 1;
                Next::Close
            }
        };
        if let Next::Keep = next {
            let wanted = conn.wanted();
            if wanted == conn.interest {
                return;
            }
            match self
                .selector
                .reregister(conn.stream.as_raw_fd(), Token(key), wanted)
            {
                Ok(()) => {
                    conn.interest = wanted;
                    return;
                }
                Err(e) => {
                    log::warn!("  closing {}: reregister: {e}", conn.addr);
                    self.stats.errors += 1;
                }
            }
        }
        self.close(key);
    }

    /// Deregisters connection `key`, then closes it.
    fn close(&mut self, key: usize) {
        let conn = self.conns.remove(key);
        log::info!("  closing {}", conn.addr);
        if let Err(e) = self.selector.deregister(conn.stream.as_raw_fd()) {
            log::warn!("deregistering {}: {e}", conn.addr);
        }
        drop(conn);
    }
}

/// The echo itself: flush the kept tail when writable; read once when readable and there is
/// room, and write the bytes back at once, keeping what the socket does not take.
fn echo(conn: &mut Conn, event: Event, buf: &mut [u8], bytes: &mut u64) -> io::Result<Next> {
    if event.is_writable() && !conn.out.is_empty() {
        conn.out.flush_to(&mut conn.stream)?;
        if conn.out.is_empty() {
            log::debug!("  {} queue empty", conn.addr);
        }
    }
    if event.is_readable() && !conn.draining && !conn.out.is_full() {
        match conn.stream.read(buf) {
            Ok(0) => conn.draining = true,
            Ok(n) => {
                log::debug!("  received {} from {}", common::show(&buf[..n]), conn.addr);
                *bytes += n as u64;
                conn.out.write_or_queue(&mut conn.stream, &buf[..n])?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    if conn.draining && conn.out.is_empty() {
        return Ok(Next::Close);
    }
    Ok(Next::Keep)
}
