//! A TCP echo server in state-machine style, after the socket guide's `multiconn-server.py`:
//! each accepted connection is registered with its own state object ([`Connection`], the
//! guide's `SimpleNamespace(addr, inb, outb)` grown into a [`Handler`]) whose `ready` reads
//! into `inb`, moves the bytes to `outb`, and writes them back. Unlike the guide it writes at
//! once, watches for writable only while a tail is left, stops reading while the tail is
//! over [`common::OUTPUT_LIMIT`], echoes what is left after the client stops sending, and
//! shuts down gracefully on SIGINT or SIGTERM (a second signal stops at once), printing the
//! reactor's counters on stderr.
//!
//! `cargo run --example multiconn_server -- [--backend select|poll|epoll|kqueue] [--grace-ms MS]
//! [--idle-timeout-ms MS] [--max-connections N] <host> <port>`

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use clap::Parser;
use rawloop::buffer::OutBuf;
use rawloop::server::{self, Limits};
use rawloop::{Context, Event, Handler, Reactor, Selector, Token};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    #[command(flatten)]
    limits: common::LimitsArg,
    host: String,
    port: u16,
}

/// Registers `listener` within `limits` (an idle timeout, a cap on open connections): every
/// connection it accepts gets a [`Connection`]. Returns the listener's token (closing it stops
/// accepting).
fn serve<S: Selector>(
    reactor: &mut Reactor<S>,
    listener: TcpListener,
    limits: Limits,
) -> io::Result<Token> {
    let (token, _) = server::serve(&mut reactor.context(), listener, limits, accept_wrapper)?;
    Ok(token)
}

/// The state each accepted connection gets, the guide's `accept_wrapper`.
fn accept_wrapper(addr: &SocketAddr) -> io::Result<Connection> {
    log::info!("accepted connection from {addr}");
    Ok(Connection::new(addr.to_string()))
}

/// Where a connection is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading what the client sends and echoing it.
    Echoing,
    /// The client has finished sending (read returned 0): write what is left, then close.
    Draining,
}

/// One client connection: the guide's per-socket data object, as a state machine.
#[derive(Debug)]
struct Connection {
    addr: String,
    /// Bytes received and not yet passed to `outb`.
    inb: Vec<u8>,
    /// Bytes to echo that the socket has not taken yet.
    outb: OutBuf,
    phase: Phase,
}

impl Connection {
    /// The state of a new connection from `addr`.
    fn new(addr: String) -> Connection {
        Connection {
            addr,
            inb: Vec::new(),
            outb: OutBuf::new(common::OUTPUT_LIMIT),
            phase: Phase::Echoing,
        }
    }

    /// Reads once into `inb`; returns false at end of stream.
    fn read(&mut self, sock: &mut impl Read) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        match sock.read(&mut buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.inb.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Echoes what `inb` holds: written at once, the rest kept in `outb`.
    fn process(&mut self, sock: &mut impl Write) -> io::Result<()> {
        if !self.inb.is_empty() {
            log::debug!("echoing {} to {}", common::show(&self.inb), self.addr);
            self.outb.write_or_queue(sock, &self.inb)?;
            self.inb.clear();
        }
        Ok(())
    }
}

impl<S: Read + Write + 'static> Handler<S> for Connection {
    fn ready(&mut self, sock: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.outb.flush_to(sock)?;
        }
        if self.phase == Phase::Echoing && event.is_readable() && !self.outb.is_full() {
            if !self.read(sock)? {
                log::debug!("{} finished sending", self.addr);
                self.phase = Phase::Draining;
            }
            self.process(sock)?;
        }
        // Read while there is room for the echo, write while a tail is kept.
        let interest = self.outb.interest(self.phase == Phase::Echoing);
        if interest.is_empty() {
            cx.close();
            return Ok(());
        }
        cx.set_interest(interest)
    }

    /// At shutdown a connection finishes its echo: it closes once the client has stopped
    /// sending and has everything back.
    fn shutdown(&mut self, _: &mut S, _: &mut Context<'_>) -> io::Result<()> {
        Ok(())
    }

    fn closed(&mut self, _: &mut S, _: &mut Context<'_>, error: Option<&io::Error>) {
        match error {
            None => log::info!("closing connection to {}", self.addr),
            Some(e) => log::info!("closing connection to {}: {e}", self.addr),
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let listener = common::listen(&args.host, args.port)?;
    let port = listener.local_addr()?.port();
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    serve(&mut reactor, listener, args.limits.limits())?;
    reactor.shutdown_on_signals(args.grace.grace())?;
    // Everything it serves with is open: the line says it is ready.
    println!(
        "listening on ('{}', {port}) ({} backend)",
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
    common::exit_on_error("multiconn_server", run(Args::parse()))
}
