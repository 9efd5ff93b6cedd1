//! A client that pauses between its messages, after PyMOTW's `select_echo_slow_client.py`,
//! to run against `timeout_server`: it connects, waits 1 s, sends `Part one of the
//! message.`, waits 1.5 s, sends `Part two of the message.`, waits 1.5 s, then reads the
//! echo 16 bytes at a time until all 48 bytes are back. Meanwhile the server, idle, prints
//! `  timed out, do some other work here`. Like the seed it writes to standard error:
//!
//! ```text
//! connecting to localhost port 10000
//! sending b'Part one of the message.'
//! sending b'Part two of the message.'
//! received b'Part one of the '
//! received b'message.Part two'
//! received b' of the message.'
//! closing socket
//! ```
//!
//! The seed's `time.sleep` calls are timers of the connection's registration, so the loop
//! stays free while the client waits. `--start-pause` and `--pause` change the waits.
//! Exits 0 once the whole echo is back and matches, 1 if the server closes early, the echo
//! differs, it is not back within `--timeout` after the last pause, or an error occurs.
//!
//! `cargo run --example slow_client -- [--backend B] [--start-pause SECS] [--pause SECS]
//! [--timeout SECS] <host> <port>`

mod common;
mod pyfmt;

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::TcpStream;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use rawloop::buffer::OutBuf;
use rawloop::{Context, Event, Handler, Interest, Reactor, TimerId};

/// The seed's messages.
const MESSAGES: [&str; 2] = ["Part one of the message.", "Part two of the message."];

/// The seed's `sock.recv(16)`.
const RECV_SIZE: usize = 16;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// The wait after connecting.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = common::parse_seconds)]
    start_pause: Duration,
    /// The wait after each message.
    #[arg(long, value_name = "SECS", default_value = "1.5", value_parser = common::parse_seconds)]
    pause: Duration,
    /// Give up when the echo is not back this many seconds after the last pause.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
}

/// The client's steps: a pause before each message, a pause after the last, then reading.
struct SlowClient {
    /// Messages not sent yet.
    to_send: Vec<&'static [u8]>,
    out: OutBuf,
    reading: bool,
    expected: Vec<u8>,
    received: Vec<u8>,
    pause: Duration,
    start_pause: Duration,
    timeout: Duration,
    ended: Rc<RefCell<Option<io::Result<()>>>>,
}

impl SlowClient {
    /// Paused, the registration watches nothing, unless a write is left over.
    fn interest(&self) -> Interest {
        self.out.interest(self.reading)
    }
}

impl Handler<TcpStream> for SlowClient {
    fn connected(
        &mut self,
        _: &mut TcpStream,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        result.map_err(|e| io::Error::new(e.kind(), format!("cannot connect: {e}")))?;
        cx.set_timer(self.start_pause)?; // the seed's time.sleep(1)
        cx.set_interest(Interest::empty())
    }

    fn timeout(&mut self, s: &mut TcpStream, cx: &mut Context<'_>, _: TimerId) -> io::Result<()> {
        if self.reading {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} of {} bytes back within {:?}",
                    self.received.len(),
                    self.expected.len(),
                    self.timeout
                ),
            ));
        }
        if self.to_send.is_empty() {
            // The last pause is over: look for the response.
            self.reading = true;
            cx.set_timer(self.timeout)?;
        } else {
            let data = self.to_send.remove(0);
            eprintln!("sending {}", pyfmt::bytes(data));
            self.out.write_or_queue(s, data)?;
            cx.set_timer(self.pause)?; // the seed's time.sleep(1.5)
        }
        cx.set_interest(self.interest())
    }

    fn ready(&mut self, s: &mut TcpStream, cx: &mut Context<'_>, ev: Event) -> io::Result<()> {
        if ev.is_writable() {
            self.out.flush_to(s)?;
        }
        if ev.is_readable() && self.reading {
            let mut buf = [0u8; RECV_SIZE];
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the server closed after {} of {} bytes",
                                self.received.len(),
                                self.expected.len()
                            ),
                        ))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                };
                eprintln!("received {}", pyfmt::bytes(&buf[..n]));
                self.received.extend_from_slice(&buf[..n]);
                if self.received.len() >= self.expected.len() {
                    if self.received != self.expected {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the echo {} differs", pyfmt::bytes(&self.received)),
                        ));
                    }
                    cx.close();
                    return Ok(());
                }
            }
        }
        cx.set_interest(self.interest())
    }

    fn closed(&mut self, _: &mut TcpStream, _: &mut Context<'_>, error: Option<&io::Error>) {
        let result = match error {
            None => Ok(()),
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        *self.ended.borrow_mut() = Some(result);
    }
}

fn run(args: Args) -> io::Result<()> {
    let addr = rawloop::net::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    eprintln!("connecting to {} port {}", args.host, args.port);
    let ended = Rc::new(RefCell::new(None));
    let client = SlowClient {
        to_send: MESSAGES.iter().map(|m| m.as_bytes()).collect(),
        out: OutBuf::new(usize::MAX),
        reading: false,
        expected: MESSAGES.concat().into_bytes(),
        received: Vec::new(),
        pause: args.pause,
        start_pause: args.start_pause,
        timeout: args.timeout,
        ended: ended.clone(),
    };
    reactor
        .context()
        .connect(addr, Interest::empty(), client)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
    let result = loop {
        if let Some(result) = ended.take() {
            break result;
        }
        if let Err(e) = reactor.run_once(None) {
            break Err(e);
        }
    };
    eprintln!("closing socket");
    result
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("slow_client", run(Args::parse()))
}
