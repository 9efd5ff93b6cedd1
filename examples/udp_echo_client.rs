//! A UDP echo client on the reactor, after PyMOTW's `socket_echo_client_dgram.py`: sends one
//! datagram to the server, waits for the reply with a timeout (a timer of its registration,
//! [`Context::set_timer`]), prints it, and checks that it matches. Datagrams from other
//! addresses are ignored. Exits 0 on a matching reply, 1 on a timeout, a mismatch or an error.
//!
//! `cargo run --example udp_echo_client -- [--backend select|poll|epoll|kqueue]
//! [--timeout SECS] <host> <port> [message]`

mod common;

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use rawloop::{Context, Event, Handler, Interest, Reactor, Selector, TimerId};

/// The seed's message.
const DEFAULT_MESSAGE: &str = "This is the message.  It will be repeated.";

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Give up when no reply came after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
    /// The message to send (default: the seed's).
    message: Option<String>,
}

type Outcome = Rc<RefCell<Option<io::Result<Vec<u8>>>>>;

/// Sends `message` to `server` in one datagram from a new socket and runs `reactor` until
/// the reply arrives (returned, after checking it matches: `InvalidData` otherwise) or
/// `timeout` has passed since the datagram was sent (`TimedOut`).
fn run_client<S: Selector>(
    reactor: &mut Reactor<S>,
    server: SocketAddr,
    message: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = rawloop::net::bind_udp(local, &rawloop::net::UdpOptions::default())?;
    let outcome: Outcome = Rc::new(RefCell::new(None));
    let client = UdpClient {
        server,
        message: message.to_vec(),
        sent: false,
        timeout,
        timer: None,
        buf: vec![0; 65_535],
        outcome: outcome.clone(),
    };
    let token = reactor.register(socket, Interest::WRITABLE, client)?;
    loop {
        // With an outcome, the registration has closed itself.
        if let Some(result) = outcome.borrow_mut().take() {
            return result;
        }
        if let Err(e) = reactor.run_once(None) {
            reactor.close_token(token);
            return Err(e);
        }
    }
}

/// The client's one exchange, as a state machine: send (when writable), then wait for the
/// reply (readable) or the timer.
struct UdpClient {
    server: SocketAddr,
    message: Vec<u8>,
    sent: bool,
    timeout: Duration,
    timer: Option<TimerId>,
    buf: Vec<u8>,
    outcome: Outcome,
}

impl UdpClient {
    fn step(
        &mut self,
        socket: &mut UdpSocket,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<Option<Vec<u8>>> {
        if !self.sent && event.is_writable() {
            match socket.send_to(&self.message, self.server) {
                Ok(_) => {
                    self.sent = true;
                    log::debug!("waiting to receive");
                    self.timer = Some(cx.set_timer(self.timeout)?);
                    cx.set_interest(Interest::READABLE)?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        if self.sent && event.is_readable() {
            loop {
                let (n, from) = match socket.recv_from(&mut self.buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if from != self.server {
                    log::debug!("ignoring {n} bytes from {from}");
                    continue;
                }
                let reply = self.buf[..n].to_vec();
                if reply != self.message {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the reply {} differs from the message",
                            common::show(&reply)
                        ),
                    ));
                }
                return Ok(Some(reply));
            }
        }
        Ok(None)
    }

    fn finish(&mut self, cx: &mut Context<'_>, result: io::Result<Vec<u8>>) {
        if let Some(timer) = self.timer.take() {
            cx.cancel_timer(timer);
        }
        *self.outcome.borrow_mut() = Some(result);
        cx.close();
    }
}

impl Handler<UdpSocket> for UdpClient {
    fn ready(
        &mut self,
        socket: &mut UdpSocket,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        match self.step(socket, cx, event) {
            Ok(None) => {}
            Ok(Some(reply)) => self.finish(cx, Ok(reply)),
            Err(e) => self.finish(cx, Err(e)),
        }
        Ok(())
    }

    fn timeout(&mut self, _: &mut UdpSocket, cx: &mut Context<'_>, _: TimerId) -> io::Result<()> {
        self.timer = None;
        let e = io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no reply from {} within {:?}", self.server, self.timeout),
        );
        self.finish(cx, Err(e));
        Ok(())
    }
}

fn run(args: Args) -> io::Result<Vec<u8>> {
    let server = rawloop::net::resolve(&args.host, args.port)?;
    let message = args
        .message
        .as_deref()
        .unwrap_or(DEFAULT_MESSAGE)
        .as_bytes();
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    println!(
        "sending {} to {} port {} ({} backend)",
        common::show(message),
        args.host,
        args.port,
        reactor.backend()
    );
    run_client(&mut reactor, server, message, args.timeout)
}

fn main() -> ExitCode {
    common::init_logging();
    let result = run(Args::parse());
    match result {
        Ok(reply) => {
            println!("received {}", common::show(&reply));
            println!("closing socket");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udp_echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}
