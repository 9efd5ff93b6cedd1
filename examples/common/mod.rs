//! What the example programs share: `--backend`, stopping on SIGINT/SIGTERM, and the echo
//! connection handler.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use rawloop::buffer::OutBuf;
use rawloop::{Backend, Context, Event, Handler, Interest, Reactor, Selector};

/// At most this many bytes wait for a slow reader before a connection stops reading.
pub const OUTPUT_LIMIT: usize = 256 * 1024;

/// Logs to stderr at `info` unless RUST_LOG says otherwise.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
}

/// The `--backend` option every example takes.
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArg {
    /// select, poll, epoll or kqueue (those compiled in this build).
    #[arg(long, default_value_t = Backend::default())]
    pub backend: Backend,
}

/// Makes SIGINT and SIGTERM stop `reactor.run()` cleanly: the signal handler only writes a
/// byte to a socket (signal-hook's self-pipe); the reactor reads it and stops.
pub fn stop_on_signals<S: Selector>(reactor: &mut Reactor<S>) -> io::Result<()> {
    let (read, write) = UnixStream::pair()?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    reactor.register(
        read,
        Interest::READABLE,
        |pipe: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
            let mut buf = [0u8; 16];
            let _ = pipe.read(&mut buf);
            log::info!("signal received, shutting down");
            cx.stop();
            Ok(())
        },
    )?;
    Ok(())
}

/// Echoes everything a stream sends back to it, for as long as the peer keeps it open.
///
/// Writes at once and watches for writable only while a tail is left over; stops reading
/// while more than [`OUTPUT_LIMIT`] bytes wait for a peer that does not read.
pub struct Echo {
    peer: String,
    out: OutBuf,
}

impl Echo {
    /// A handler for a connection from `peer` (used in log lines).
    pub fn new(peer: impl Into<String>) -> Echo {
        Echo {
            peer: peer.into(),
            out: OutBuf::new(OUTPUT_LIMIT),
        }
    }
}

impl<S: Read + Write + 'static> Handler<S> for Echo {
    fn ready(&mut self, stream: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.out.flush_to(stream)?;
        }
        if event.is_readable() && !self.out.is_full() {
            let mut buf = [0u8; 16 * 1024];
            match stream.read(&mut buf) {
                Ok(0) => {
                    cx.close();
                    return Ok(());
                }
                Ok(n) => {
                    log::debug!("received {n} bytes from {}", self.peer);
                    self.out.write_or_queue(stream, &buf[..n])?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        cx.set_interest(if self.out.is_empty() {
            Interest::READABLE
        } else if self.out.is_full() {
            Interest::WRITABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })
    }

    fn closed(&mut self, _: &mut S, error: Option<&io::Error>) {
        match error {
            None => log::info!("closing {}", self.peer),
            Some(e) => log::info!("closing {}: {e}", self.peer),
        }
    }
}
