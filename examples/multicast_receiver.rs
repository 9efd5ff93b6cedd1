//! Joins a multicast group and acknowledges every datagram sent to it, after PyMOTW's
//! `socket_multicast_receiver.py`: binds port 10000 on all interfaces, joins group
//! 224.3.29.71 on every interface the OS routes it to (`IP_ADD_MEMBERSHIP` with
//! `INADDR_ANY`, through `net::join_multicast`), and for each datagram prints what the seed
//! prints and answers `ack` to its sender:
//!
//! ```text
//!
//! waiting to receive message
//! received 19 bytes from ('192.168.1.14', 62650)
//! b'very important data'
//! sending acknowledgement to ('192.168.1.14', 62650)
//! ```
//!
//! With no arguments it uses the seed's group and port. Unlike the seed it sets
//! `SO_REUSEADDR`, so that several receivers on one host can share the group's port. An
//! answer the socket cannot take at once is dropped and logged, as UDP may drop it anyway.
//! SIGINT or SIGTERM stops it (exit 0).
//!
//! `cargo run --example multicast_receiver -- [--backend B] [group] [port]`

mod common;
mod pyfmt;

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rawloop::net::{self, MulticastInterface, UdpOptions};
use rawloop::{Context, Event, Interest, Reactor};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// The multicast group.
    #[arg(default_value = "224.3.29.71")]
    group: Ipv4Addr,
    /// The group's port.
    #[arg(default_value_t = 10000)]
    port: u16,
}

/// The seed's receive/respond loop, one pass per datagram.
fn respond(socket: &mut UdpSocket, cx: &mut Context<'_>, _: Event) -> io::Result<()> {
    loop {
        let buf = cx.read_buffer();
        let (n, address) = match socket.recv_from(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // An ICMP error about an earlier answer, reported on the socket: go on.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                log::warn!("receiving: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        let address_text = pyfmt::addr(&address);
        println!("received {n} bytes from {address_text}");
        println!("{}", pyfmt::bytes(&buf[..n]));
        println!("sending acknowledgement to {address_text}");
        if let Err(e) = socket.send_to(b"ack", address) {
            log::warn!("acknowledging {address_text}: {e}");
        }
        println!("\nwaiting to receive message");
    }
}

fn run(args: Args) -> io::Result<()> {
    let socket = net::bind_udp(
        (Ipv4Addr::UNSPECIFIED, args.port).into(),
        &UdpOptions::default().reuse_address(true),
    )?;
    net::join_multicast(&socket, args.group.into(), MulticastInterface::Any)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot join group {}: {e}", args.group)))?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    reactor.register(socket, Interest::READABLE, respond)?;
    reactor.shutdown_on_signals(Duration::ZERO)?;
    println!("\nwaiting to receive message");
    reactor.run()
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("multicast_receiver", run(Args::parse()))
}
