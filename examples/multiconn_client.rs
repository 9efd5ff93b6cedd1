//! A client of many connections at once, after the socket guide's `multiconn-client.py`:
//! starts `num_connections` non-blocking connects, and on each connection, once it is
//! established, sends the guide's messages (`Message 1 from client.`, `Message 2 from
//! client.`), reads until every byte has come back, checks the echo, and closes. Exits when
//! all connections are done, with totals; the status is 0 only if every echo was complete and
//! matched.
//!
//! A connect in progress is registered for WRITABLE; when it is reported, `take_error()`
//! (SO_ERROR) says whether the connection failed, as `connect_ex()` + select does in the guide.
//!
//! `--messages N` sends `Message 1 from client.` ... `Message N from client.`; `--size BYTES`
//! pads every message with a test pattern to that length, for bigger payloads.
//!
//! `cargo run --example multiconn_client -- [--backend select|poll|epoll|kqueue]
//! [--messages N] [--size BYTES] [--timeout SECS] <host> <port> <num_connections>`

mod common;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rawloop::buffer::OutBuf;
use rawloop::{Context, Event, Handler, Interest, Reactor, Selector};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Messages per connection.
    #[arg(long, value_name = "N", default_value_t = 2)]
    messages: usize,
    /// Pad every message to this many bytes with a test pattern.
    #[arg(long, value_name = "BYTES")]
    size: Option<usize>,
    /// Give up on the connections not done after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = common::parse_seconds)]
    timeout: Duration,
    host: String,
    port: u16,
    num_connections: usize,
}

/// What a run did, over all connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Summary {
    /// Connections started.
    connections: usize,
    /// Connections whose echo came back complete and matching.
    completed: usize,
    /// Connections that failed (refused, reset, closed early, wrong echo, timed out).
    failed: usize,
    /// Bytes sent (written or queued for writing), over all connections.
    bytes_sent: u64,
    /// Bytes received, over all connections.
    bytes_received: u64,
}

/// The messages each connection sends: `Message i from client.` for i in 1..=count, each
/// padded with [`common::pattern`] bytes to `size` when it is given (and longer).
fn messages(count: usize, size: Option<usize>) -> Vec<Vec<u8>> {
    (1..=count)
        .map(|i| {
            let mut m = format!("Message {i} from client.").into_bytes();
            if let Some(size) = size {
                if size > m.len() {
                    let pad = common::pattern(size - m.len());
                    m.extend_from_slice(&pad);
                } else {
                    m.truncate(size);
                }
            }
            m
        })
        .collect()
}

/// Opens `connections` connections to `addr` without waiting for them, sends `messages` on
/// each, and runs `reactor` until every connection has its echo back or failed, or until
/// `timeout` has passed (the connections left then count as failed). A failed connection
/// does not stop the others.
fn run_client<S: Selector>(
    reactor: &mut Reactor<S>,
    addr: SocketAddr,
    connections: usize,
    messages: &[Vec<u8>],
    timeout: Duration,
) -> io::Result<Summary> {
    // The connections' totals are the reactor's shared state, reached through each
    // handler's context.
    reactor.set_data(Shared {
        summary: Summary {
            connections,
            ..Summary::default()
        },
        done: vec![false; connections],
    });
    let mut tokens = Vec::with_capacity(connections);
    for connid in 1..=connections {
        log::info!("starting connection {connid} to {addr}");
        let conn = Conn::new(connid, messages);
        let registered = reactor.context().connect(addr, Interest::WRITABLE, conn);
        match registered {
            Ok(token) => tokens.push((connid, token)),
            Err(e) => {
                let sh = shared(reactor);
                sh.summary.failed += 1;
                sh.done[connid - 1] = true;
                log::warn!("connection {connid} failed: {e}");
            }
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let finished = {
            let sh = shared(reactor);
            sh.summary.completed + sh.summary.failed == sh.summary.connections
        };
        if finished {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            log::warn!("timed out after {timeout:?}; closing the connections left");
            for (connid, token) in tokens.drain(..) {
                // Only the connections still open: a finished one's token may already name
                // another registration of this reactor. Closing tells the handler, which
                // counts the connection as failed.
                let open = !shared(reactor).done[connid - 1];
                if open {
                    reactor.close_token(token);
                }
            }
            break;
        }
        reactor.run_once(Some(deadline - now))?;
    }
    Ok(shared(reactor).summary.clone())
}

/// The shared state of a run of [`run_client`].
fn shared<S: Selector>(reactor: &mut Reactor<S>) -> &mut Shared {
    reactor.data().expect("run_client set the shared state")
}

/// What the connections of one run share.
struct Shared {
    summary: Summary,
    /// `done[connid - 1]`: that connection has finished, one way or the other.
    done: Vec<bool>,
}

/// Where one connection is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// The connect is in progress.
    Connecting,
    /// Sending and receiving.
    Open,
    /// Finished, counted in the totals.
    Done,
}

/// One connection, the guide's `SimpleNamespace(connid, msg_total, recv_total, messages,
/// outb)` as a state machine.
struct Conn {
    connid: usize,
    state: State,
    /// Messages not handed to `outb` yet.
    messages: VecDeque<Vec<u8>>,
    /// Everything this connection sends, to check the echo against.
    expected: Vec<u8>,
    recv_total: usize,
    outb: OutBuf,
}

impl Conn {
    fn new(connid: usize, messages: &[Vec<u8>]) -> Conn {
        Conn {
            connid,
            state: State::Connecting,
            messages: messages.iter().filter(|m| !m.is_empty()).cloned().collect(),
            expected: messages.concat(),
            recv_total: 0,
            outb: OutBuf::new(common::OUTPUT_LIMIT),
        }
    }

    /// Counts this connection in the totals, once.
    fn finish(&mut self, cx: &mut Context<'_>, error: Option<&io::Error>) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        let sh = cx
            .data::<Shared>()
            .expect("run_client set the shared state");
        sh.done[self.connid - 1] = true;
        let t = &mut sh.summary;
        t.bytes_received += self.recv_total as u64;
        match error {
            None => {
                t.completed += 1;
                log::info!("closing connection {}", self.connid);
            }
            Some(e) => {
                t.failed += 1;
                log::warn!("connection {} failed: {e}", self.connid);
            }
        }
    }

    /// Hands messages to `outb` (which writes at once) while it has room.
    fn send(&mut self, sock: &mut TcpStream, cx: &mut Context<'_>) -> io::Result<()> {
        while !self.outb.is_full() {
            let Some(msg) = self.messages.pop_front() else {
                break;
            };
            log::debug!(
                "sending {} to connection {}",
                common::show(&msg),
                self.connid
            );
            self.outb.write_or_queue(sock, &msg)?;
            if let Some(sh) = cx.data::<Shared>() {
                sh.summary.bytes_sent += msg.len() as u64;
            }
        }
        Ok(())
    }

    /// Reads what has arrived (a few reads at most) and checks it; returns whether the whole
    /// echo is back.
    fn receive(&mut self, sock: &mut TcpStream) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..4 {
            // Complete: a close that follows the echo is the server's to make.
            if self.recv_total == self.expected.len() {
                break;
            }
            let n = match sock.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the server closed the connection after {} of {} bytes",
                            self.recv_total,
                            self.expected.len()
                        ),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            log::debug!(
                "received {} from connection {}",
                common::show(&buf[..n]),
                self.connid
            );
            let want = &self.expected[self.recv_total..];
            if n > want.len() || buf[..n] != want[..n] {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the echo differs from what was sent after byte {}",
                        self.recv_total
                    ),
                ));
            }
            self.recv_total += n;
        }
        Ok(self.recv_total == self.expected.len())
    }

    fn step(&mut self, sock: &mut TcpStream, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if event.is_writable() {
            self.outb.flush_to(sock)?;
        }
        self.send(sock, cx)?;
        if event.is_readable() && self.receive(sock)? {
            self.finish(cx, None);
            cx.close();
            return Ok(());
        }
        self.want(cx)
    }

    /// Closes a connection with nothing left to do, else waits for what it needs next.
    fn want(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.expected.is_empty() {
            self.finish(cx, None);
            cx.close();
            return Ok(());
        }
        cx.set_interest(if self.outb.is_empty() && self.messages.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        })
    }
}

impl Handler<TcpStream> for Conn {
    fn connected(
        &mut self,
        sock: &mut TcpStream,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        let started = result.and_then(|()| {
            log::debug!("connection {} established", self.connid);
            let _ = sock.set_nodelay(true);
            self.state = State::Open;
            self.send(sock, cx)?;
            self.want(cx)
        });
        if let Err(e) = started {
            self.finish(cx, Some(&e));
            cx.close();
        }
        Ok(())
    }

    fn ready(
        &mut self,
        sock: &mut TcpStream,
        cx: &mut Context<'_>,
        event: Event,
    ) -> io::Result<()> {
        if let Err(e) = self.step(sock, cx, event) {
            self.finish(cx, Some(&e));
            cx.close();
        }
        Ok(())
    }

    fn closed(&mut self, _: &mut TcpStream, cx: &mut Context<'_>, _: Option<&io::Error>) {
        // Closed from outside before finishing: the run timed out (or the reactor went away).
        let e = io::Error::new(
            io::ErrorKind::TimedOut,
            "closed before the echo was complete",
        );
        self.finish(cx, Some(&e));
    }
}

fn run(args: Args) -> io::Result<(Summary, Duration)> {
    let addr = rawloop::net::resolve(&args.host, args.port)?;
    let messages = messages(args.messages, args.size);
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    println!(
        "starting {} connections to {addr} ({} backend)",
        args.num_connections,
        reactor.backend()
    );
    let started = Instant::now();
    let summary = run_client(
        &mut reactor,
        addr,
        args.num_connections,
        &messages,
        args.timeout,
    )?;
    Ok((summary, started.elapsed()))
}

fn main() -> ExitCode {
    common::init_logging();
    match run(Args::parse()) {
        Ok((s, elapsed)) => {
            println!(
                "{} connections: {} completed, {} failed; sent {} bytes, received {} bytes in {:.3} s",
                s.connections,
                s.completed,
                s.failed,
                s.bytes_sent,
                s.bytes_received,
                elapsed.as_secs_f64()
            );
            if s.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("multiconn_client: {e}");
            ExitCode::FAILURE
        }
    }
}
