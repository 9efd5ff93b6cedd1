//! What the example programs share: `--backend`, logging, the echo connection handler, and
//! a client that checks an echo.
#![allow(dead_code)]

pub mod mio_echo;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rawloop::buffer::OutBuf;
use rawloop::net::{self, ListenOptions};
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

/// The `--grace-ms` option of the servers.
#[derive(clap::Args, Debug, Clone)]
pub struct GraceArg {
    /// After SIGINT or SIGTERM, how long open connections may take to finish (a second
    /// signal stops at once).
    #[arg(long = "grace-ms", value_name = "MS", default_value_t = 10_000)]
    pub grace_ms: u64,
}

/// The `--idle-timeout-ms` and `--max-connections` options of the stream servers.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LimitsArg {
    /// Close a connection after this many milliseconds without any activity (off by
    /// default, as in the seed programs).
    #[arg(long = "idle-timeout-ms", value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Refuse connections (reset at once) while this many are open.
    #[arg(long = "max-connections", value_name = "N")]
    pub max_connections: Option<usize>,
}

impl LimitsArg {
    /// The limits these options ask for.
    pub fn limits(&self) -> rawloop::server::Limits {
        rawloop::server::Limits::default()
            .idle_timeout(self.idle_timeout_ms.map(Duration::from_millis))
            .max_connections(self.max_connections)
    }
}

impl Default for GraceArg {
    fn default() -> GraceArg {
        GraceArg { grace_ms: 10_000 }
    }
}

impl GraceArg {
    /// The grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }
}

/// Binds a listener on `host`:`port` (Python's `""` for all interfaces); an error says which
/// address it could not listen on.
pub fn listen(host: &str, port: u16) -> io::Result<TcpListener> {
    let addr = net::resolve(host, port)?;
    net::listen_tcp(addr, &ListenOptions::default())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// The end of a program's `main`: prints `<program>: <error>` and exits 1 on failure.
pub fn exit_on_error(program: &str, result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Echoes everything a stream sends back to it, for as long as the peer keeps it open.
///
/// Writes at once and watches for writable only while a tail is left over; stops reading
/// while more than [`OUTPUT_LIMIT`] bytes wait for a peer that does not read. An idle
/// connection holds 24 bytes here and no allocation: the peer's address is not kept, but
/// asked of the socket for the closing log line, and only when that line is logged.
pub struct Echo {
    out: OutBuf,
    /// The peer has finished sending: send what is left, then close.
    peer_done: bool,
}

impl Echo {
    /// A handler for a new connection.
    pub fn new() -> Echo {
        Echo {
            out: OutBuf::new(OUTPUT_LIMIT),
            peer_done: false,
        }
    }
}

impl Default for Echo {
    fn default() -> Echo {
        Echo::new()
    }
}

/// The peer of a connected socket, for log lines.
fn peer_of(socket: &impl AsFd) -> String {
    match nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(
        socket.as_fd().as_raw_fd(),
    ) {
        Ok(addr) => addr.to_string(),
        Err(_) => "a peer that has gone".to_string(),
    }
}

impl<S: Read + Write + AsFd + 'static> Handler<S> for Echo {
    fn ready(&mut self, stream: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.out.flush_to(stream)?;
        }
        if event.is_readable() && !self.peer_done && !self.out.is_full() {
            let buf = cx.read_buffer();
            match stream.read(buf) {
                Ok(0) => self.peer_done = true,
                Ok(n) => {
                    log::debug!("received {n} bytes");
                    self.out.write_or_queue(stream, &buf[..n])?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let interest = self.out.interest(!self.peer_done);
        if interest.is_empty() {
            cx.close();
            return Ok(());
        }
        cx.set_interest(interest)
    }

    /// A graceful shutdown lets an echo connection run until its peer has finished sending
    /// and has everything back.
    fn shutdown(&mut self, _: &mut S, _: &mut Context<'_>) -> io::Result<()> {
        Ok(())
    }

    fn closed(&mut self, stream: &mut S, _: &mut Context<'_>, error: Option<&io::Error>) {
        if log::log_enabled!(log::Level::Info) {
            let peer = peer_of(stream);
            match error {
                None => log::info!("closing {peer}"),
                Some(e) => log::info!("closing {peer}: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for the clients: showing payloads, test patterns, and a client that checks an echo.
// ---------------------------------------------------------------------------------------------

/// Shows bytes as Python's `repr` shows them, `b'...'`, cut after 64 bytes with the total.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    if bytes.len() <= MAX {
        format!("b'{}'", bytes.escape_ascii())
    } else {
        format!(
            "b'{}'... ({} bytes)",
            bytes[..MAX].escape_ascii(),
            bytes.len()
        )
    }
}

/// `len` bytes of a pattern whose period (251, a prime) matches no buffer size, so that a
/// lost, repeated or reordered chunk shows as a mismatch.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'0' + (i % 251 % 75) as u8).collect()
}

/// What an echo client sent and got back.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Bytes sent.
    pub sent: usize,
    /// Bytes received (equal to `sent`: a client returns an error otherwise).
    pub received: usize,
    /// The echo, which matched what was sent.
    pub reply: Vec<u8>,
    /// From registration until the last byte came back.
    pub elapsed: Duration,
}

type Outcome = Rc<RefCell<Option<io::Result<Summary>>>>;

/// A client connection, in state-machine style, after PyMOTW's `selectors_echo_client.py`:
/// sends its messages in order, reads until every byte has come back, and checks each byte
/// against what it sent. Its result goes to [`check_echo`], which drives it.
struct EchoCheck {
    label: String,
    /// Messages not handed to `out` yet; the first may be partly handed (`offset`).
    outgoing: VecDeque<Vec<u8>>,
    offset: usize,
    /// Everything that will be sent, to check the echo against.
    expected: Vec<u8>,
    out: OutBuf,
    reply: Vec<u8>,
    started: Instant,
    outcome: Outcome,
}

/// How much of a message is handed to the output buffer at once, so that the buffer (and
/// a copy of a large payload) stays near [`OUTPUT_LIMIT`].
const CHUNK: usize = 64 * 1024;

impl EchoCheck {
    /// Hands messages to the output buffer (which writes at once) while it has room.
    fn feed<S: Write>(&mut self, stream: &mut S) -> io::Result<()> {
        while !self.out.is_full() {
            let Some(msg) = self.outgoing.front() else {
                break;
            };
            if self.offset == 0 {
                log::debug!("{}: sending {}", self.label, show(msg));
            }
            let end = msg.len().min(self.offset + CHUNK);
            self.out.write_or_queue(stream, &msg[self.offset..end])?;
            self.offset = end;
            if self.offset == msg.len() {
                self.outgoing.pop_front();
                self.offset = 0;
            }
        }
        Ok(())
    }

    fn step<S: Read + Write>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        if event.is_writable() {
            self.out.flush_to(stream)?;
        }
        self.feed(stream)?;
        if event.is_readable() {
            let mut buf = [0u8; 16 * 1024];
            // A few reads per event: enough for throughput, fair to other registrations.
            for _ in 0..8 {
                // Complete: a close that follows the echo is the server's to make.
                if self.reply.len() == self.expected.len() {
                    break;
                }
                let n = match stream.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the server closed the connection after echoing {} of {} bytes",
                                self.reply.len(),
                                self.expected.len()
                            ),
                        ))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let got = &buf[..n];
                log::debug!("{}: received {}", self.label, show(got));
                let at = self.reply.len();
                let want = &self.expected[at.min(self.expected.len())..];
                if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the echo differs from what was sent at byte {}", at + i),
                    ));
                }
                if n > want.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "received {} bytes, more than the {} sent",
                            at + n,
                            self.expected.len()
                        ),
                    ));
                }
                self.reply.extend_from_slice(got);
            }
        }
        if self.reply.len() == self.expected.len() {
            self.finish(cx, Ok(()));
            return Ok(());
        }
        cx.set_interest(if self.out.is_empty() && self.outgoing.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })
    }

    fn finish(&mut self, cx: &mut Context<'_>, result: io::Result<()>) {
        let result = result.map(|()| Summary {
            sent: self.expected.len(),
            received: self.reply.len(),
            reply: std::mem::take(&mut self.reply),
            elapsed: self.started.elapsed(),
        });
        *self.outcome.borrow_mut() = Some(result);
        cx.close();
    }
}

impl<S: Read + Write + 'static> Handler<S> for EchoCheck {
    fn connected(
        &mut self,
        _: &mut S,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        if let Err(e) = result {
            self.finish(cx, Err(e));
        }
        Ok(())
    }

    fn ready(&mut self, stream: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if let Err(e) = self.step(stream, cx, event) {
            self.finish(cx, Err(e));
        }
        Ok(())
    }
}

/// Sends `messages` over `stream` (a socket whose non-blocking connect has started, from
/// `net::connect_tcp` or `net::connect_unix`), reads until every byte has come back, checks
/// the echo, and returns what was exchanged. Runs rounds of `reactor` until then, so
/// whatever else is registered there (a server, say) is served meanwhile.
///
/// Fails with `UnexpectedEof` if the peer closes early, `InvalidData` if the echo differs,
/// `TimedOut` after `timeout`, or the socket's error.
pub fn check_echo<S, Src>(
    reactor: &mut Reactor<S>,
    stream: Src,
    label: &str,
    messages: Vec<Vec<u8>>,
    timeout: Duration,
) -> io::Result<Summary>
where
    S: Selector,
    Src: Read + Write + AsRawFd + 'static,
{
    let outcome: Outcome = Rc::new(RefCell::new(None));
    let client = EchoCheck {
        label: label.to_string(),
        expected: messages.concat(),
        outgoing: messages.into_iter().filter(|m| !m.is_empty()).collect(),
        offset: 0,
        out: OutBuf::new(OUTPUT_LIMIT),
        reply: Vec::new(),
        started: Instant::now(),
        outcome: outcome.clone(),
    };
    let token = reactor.context().register_connecting(
        stream,
        Interest::READABLE | Interest::WRITABLE,
        client,
    )?;
    let timer = {
        let outcome = outcome.clone();
        reactor.call_after(timeout, move |cx| {
            outcome.borrow_mut().get_or_insert_with(|| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no complete echo within {timeout:?}"),
                ))
            });
            cx.close_token(token);
            Ok(())
        })
    };
    loop {
        // Once there is an outcome, the registration has closed itself (or the timer closed
        // it): its token may already name a newer registration, so it is not touched again.
        if let Some(result) = outcome.borrow_mut().take() {
            reactor.cancel_timer(timer);
            return result;
        }
        if let Err(e) = reactor.run_once(None) {
            reactor.cancel_timer(timer);
            reactor.close_token(token);
            return Err(e);
        }
    }
}

/// Parses a number of seconds (`1`, `0.25`) for an option such as `--timeout`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?} is not a usable duration: {e}"))
}
