//! Sends a datagram to a multicast group and reports every answer, after PyMOTW's
//! `socket_multicast_sender.py`: `very important data` to group 224.3.29.71, port 10000,
//! with a time-to-live of 1 (it stays on the local network), then every `ack` that comes
//! back until none has come for 0.2 s (the seed's socket timeout), as the seed prints it:
//!
//! ```text
//! sending b'very important data'
//! waiting to receive
//! received b'ack' from ('192.168.1.14', 10000)
//! waiting to receive
//! timed out, no more responses
//! closing socket
//! ```
//!
//! With no arguments it uses the seed's group and port. The wait for answers is a timer of
//! the socket's registration, restarted by each answer. Exits 0 however many answers came
//! (there is no knowing how many receivers there are), 1 on an error.
//!
//! `cargo run --example multicast_sender -- [--backend B] [--timeout SECS] [group] [port]`

mod common;
mod pyfmt;

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use rawloop::net::{self, UdpOptions};
use rawloop::{Context, Event, Handler, Interest, Reactor, TimerId};

/// The seed's message.
const MESSAGE: &[u8] = b"very important data";

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Stop once no answer has come for this many seconds.
    #[arg(long, value_name = "SECS", default_value = "0.2", value_parser = common::parse_seconds)]
    timeout: Duration,
    /// The multicast group.
    #[arg(default_value = "224.3.29.71")]
    group: Ipv4Addr,
    /// The group's port.
    #[arg(default_value_t = 10000)]
    port: u16,
}

/// Sends the message once writable, then prints answers until the timer runs out.
struct Sender {
    group: SocketAddr,
    sent: bool,
    timeout: Duration,
    timer: Option<TimerId>,
    /// How the registration ended, once it has.
    ended: Rc<RefCell<Option<io::Result<()>>>>,
}

impl Sender {
    fn wait(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        println!("waiting to receive");
        if let Some(timer) = self.timer.take() {
            cx.cancel_timer(timer);
        }
        self.timer = Some(cx.set_timer(self.timeout)?);
        Ok(())
    }
}

impl Handler<UdpSocket> for Sender {
    fn ready(&mut self, socket: &mut UdpSocket, cx: &mut Context<'_>, ev: Event) -> io::Result<()> {
        if ev.is_writable() && !self.sent {
            match socket.send_to(MESSAGE, self.group) {
                Ok(_) => {
                    self.sent = true;
                    cx.set_interest(Interest::READABLE)?;
                    self.wait(cx)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if ev.is_readable() {
            loop {
                let buf = cx.read_buffer();
                match socket.recv_from(buf) {
                    Ok((n, server)) => {
                        println!(
                            "received {} from {}",
                            pyfmt::bytes(&buf[..n]),
                            pyfmt::addr(&server)
                        );
                        self.wait(cx)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn timeout(&mut self, _: &mut UdpSocket, cx: &mut Context<'_>, _: TimerId) -> io::Result<()> {
        println!("timed out, no more responses");
        cx.close();
        Ok(())
    }

    fn closed(&mut self, _: &mut UdpSocket, _: &mut Context<'_>, error: Option<&io::Error>) {
        let result = match error {
            None => Ok(()),
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        *self.ended.borrow_mut() = Some(result);
    }
}

fn run(args: Args) -> io::Result<()> {
    let group = SocketAddr::from((args.group, args.port));
    let socket = net::bind_udp(
        (Ipv4Addr::UNSPECIFIED, 0).into(),
        &UdpOptions::default().multicast_ttl(1),
    )?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let ended = Rc::new(RefCell::new(None));
    let sender = Sender {
        group,
        sent: false,
        timeout: args.timeout,
        timer: None,
        ended: ended.clone(),
    };
    println!("sending {}", pyfmt::bytes(MESSAGE));
    reactor.register(socket, Interest::WRITABLE, sender)?;
    let result = loop {
        if let Some(result) = ended.take() {
            break result;
        }
        if let Err(e) = reactor.run_once(None) {
            break Err(e);
        }
    };
    println!("closing socket");
    result
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("multicast_sender", run(Args::parse()))
}
