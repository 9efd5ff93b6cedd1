use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

use rawloop::buffer::OutBuf;
use rawloop::net::{self, ListenOptions};
use rawloop::{Acceptor, Context, Event, Handler, Interest, Reactor};

/// One connection: echoes what it reads, keeping what the socket did not take yet.
struct Echo {
    out: OutBuf,
    reading: bool,
}

impl Handler<TcpStream> for Echo {
    fn ready(&mut self, s: &mut TcpStream, cx: &mut Context<'_>, ev: Event) -> io::Result<()> {
        if ev.is_writable() {
            self.out.flush_to(s)?; // what is left of earlier echoes
        }
        if ev.is_readable() && self.reading && !self.out.is_full() {
            let buf = cx.read_buffer(); // one buffer, shared by every connection
            match s.read(buf) {
                Ok(0) => self.reading = false, // the client has sent everything
                Ok(n) => self.out.write_or_queue(s, &buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e), // closes this connection only, and logs why
            }
        }
        match self.out.interest(self.reading) {
            done if done.is_empty() => cx.close(), // read to the end, all echoed
            interest => cx.set_interest(interest)?,
        }
        Ok(())
    }

    /// On Ctrl-C the listener closes at once; a connection finishes its echo first.
    fn shutdown(&mut self, _: &mut TcpStream, _: &mut Context<'_>) -> io::Result<()> {
        Ok(())
    }
}

fn main() -> io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(65432);
    let mut reactor: Reactor = Reactor::new()?; // the build's default backend
    let listener = net::listen_tcp(net::resolve("127.0.0.1", port)?, &ListenOptions::default())?;
    let acceptor = Acceptor::tcp(|stream, _peer, cx| {
        let echo = Echo {
            out: OutBuf::new(256 * 1024),
            reading: true,
        };
        cx.register(stream, Interest::READABLE, echo)?;
        Ok(())
    });
    reactor.register(listener, Interest::READABLE, acceptor)?;
    reactor.shutdown_on_signals(Duration::from_secs(10))?;
    reactor.run() // until every connection has finished after Ctrl-C, or 10 s have passed
}
