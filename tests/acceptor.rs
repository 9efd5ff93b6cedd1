//! The acceptor keeps a server up whatever happens to one connection or to the process's
//! fds, on every backend compiled here.

mod common;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rawloop::net::Listener;
use rawloop::{Acceptor, Context, Event, Events, Interest, Reactor, Selector, Token, WakeSource};

/// A selector that refuses the `refuse`-th registration of a source (the reactor's own
/// waker and signal fds aside) with ENOSPC, as epoll does when a user's watch limit is
/// reached, or select on macOS for an fd past FD_SETSIZE.
struct Refusing<S> {
    inner: S,
    refuse: usize,
    seen: usize,
}

impl<S: Selector> Selector for Refusing<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn new() -> io::Result<Self> {
        Ok(Refusing {
            inner: S::new()?,
            refuse: usize::MAX,
            seen: 0,
        })
    }
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if token.0 < usize::MAX - 1 {
            self.seen += 1;
            if self.seen == self.refuse {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        self.inner.register(fd, token, interest)
    }
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.reregister(fd, token, interest)
    }
    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.inner.deregister(fd)
    }
    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.select(events, timeout)
    }
    fn new_waker(&mut self, token: Token) -> io::Result<WakeSource> {
        self.inner.new_waker(token)
    }
}

/// Echoes small messages (one read, one write: the test's messages fit both).
fn echo(stream: &mut TcpStream, cx: &mut Context<'_>, _: Event) -> io::Result<()> {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => cx.close(),
        Ok(n) => stream.write_all(&buf[..n])?,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Regression: a failure to set up one accepted connection (here the selector refusing its
/// registration) closed the listener in the servers, which put `?` on `cx.register` inside
/// the listener's handler. Now it closes that connection only, and the listener serves the
/// next ones.
fn refused_registration_closes_that_connection_only<S: Selector + 'static>() {
    let (tx, rx) = mpsc::channel();
    let server = thread::spawn(move || -> io::Result<rawloop::Stats> {
        let selector = Refusing {
            inner: S::new()?,
            refuse: 3, // the listener is the 1st registration, the 2nd connection the 3rd
            seen: 0,
        };
        let mut reactor = Reactor::with_selector(selector)?;
        let listener = common::loopback_listener();
        let addr = listener.local_addr()?;
        let acceptor = Acceptor::tcp(|stream, _, cx| {
            cx.register(stream, Interest::READABLE, echo)?;
            Ok(())
        });
        reactor.register(listener, Interest::READABLE, acceptor)?;
        tx.send((addr, reactor.waker())).unwrap();
        reactor.run()?;
        // The clients have closed; the last closes may still be on their way.
        let deadline = Instant::now() + Duration::from_secs(5);
        while reactor.len() > 1 && Instant::now() < deadline {
            reactor.run_once(Some(Duration::from_millis(50)))?;
        }
        assert_eq!(reactor.len(), 1, "only the listener is left");
        Ok(reactor.stats())
    });
    let (addr, waker) = rx.recv().unwrap();
    let mut answered = Vec::new();
    for i in 0..6 {
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let message = format!("message {i}");
        let _ = client.write_all(message.as_bytes());
        let mut buf = [0u8; 64];
        let got = match client.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Vec::new(),
            Err(e) => panic!("client {i}: {e}"),
        };
        answered.push(got == message.as_bytes());
    }
    assert_eq!(
        answered,
        [true, false, true, true, true, true],
        "{answered:?}"
    );
    waker.stop().unwrap();
    let stats = server.join().unwrap().unwrap();
    assert_eq!(stats.handler_errors, 0, "{stats:?}");
}

/// Utime plus stime of process `pid`, from /proc.
#[cfg(target_os = "linux")]
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[cfg(target_os = "linux")]
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `echo_server` under RLIMIT_NOFILE 64 with 200 clients: while idle connections hold every
/// fd it neither spins nor closes its listener (its CPU stays near zero), every client is
/// served once fds free up, and its fd count comes back to where it started.
#[cfg(target_os = "linux")]
fn out_of_fds_pauses_then_serves_every_client<S: Selector + 'static>() {
    const CLIENTS: usize = 200;
    use std::process::{Command, Stdio};
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let port = common::free_port();
    let mut server = common::ChildGuard(
        Command::new("prlimit")
            .arg("--nofile=64")
            .arg(common::example_bin("echo_server"))
            .args(["--backend", common::backend_name::<S>(), "127.0.0.1"])
            .arg(port.to_string())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let probe = common::connect_retrying(port);
    drop(probe);
    thread::sleep(Duration::from_millis(100));
    let baseline = open_fds(server.id());

    // Every client connects (the kernel completes the handshakes into the backlog) and
    // holds its connection idle: the server runs out of fds.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    assert!(
        open_fds(server.id()) >= 60,
        "the server took every fd it could"
    );
    let before = cpu_time(server.id());
    let quiet = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let used = cpu_time(server.id()) - before;
    let share = used.as_secs_f64() / quiet.elapsed().as_secs_f64();
    assert!(
        share < 0.05,
        "out of fds with every connection idle, the server used {used:?} of CPU in {:?}",
        quiet.elapsed()
    );

    // Now each client sends, reads its echo and leaves; the ones still in the backlog are
    // accepted as fds free up.
    let workers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let message = format!("client {i} says hello");
                stream.write_all(message.as_bytes()).unwrap();
                let mut got = vec![0u8; message.len()];
                stream.read_exact(&mut got).unwrap();
                assert_eq!(got, message.as_bytes(), "client {i}");
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(server.id()) != baseline && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        open_fds(server.id()),
        baseline,
        "the server's fd count is back"
    );
    common::send_signal(&server.0, rawloop::Signal::SIGTERM);
    let status = common::wait_exit(&mut server.0, Duration::from_secs(15));
    assert!(status.success(), "{status}");
}

/// A TCP listener that counts the accepts that found nothing.
struct Counting {
    inner: TcpListener,
    empty: Rc<Cell<usize>>,
}

impl AsRawFd for Counting {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl Listener for Counting {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept_nonblocking(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let result = self.inner.accept_nonblocking();
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.empty.set(self.empty.get() + 1);
        }
        result
    }
}

/// Runs rounds until `accepted` reaches `n`; how many rounds that took.
fn rounds_until<S: Selector>(reactor: &mut Reactor<S>, accepted: &Cell<usize>, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rounds = 0;
    while accepted.get() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} accepted",
            accepted.get()
        );
        reactor.run_once(Some(Duration::from_millis(100))).unwrap();
        rounds += 1;
    }
    rounds
}

/// Regression: the acceptor called `accept` until it failed with WouldBlock at every event,
/// and on Linux an `accept` that finds nothing costs about what one that finds a connection
/// does (the kernel allocates the new socket and its file before it looks), so a server
/// that got one connection per event made two accepts per connection. It now takes as many
/// as the last events found. A burst of connections still drains in a few dozen rounds.
fn accepts_that_find_nothing_are_rare<S: Selector + 'static>() {
    let mut reactor: Reactor<S> = Reactor::with_selector(S::new().unwrap()).unwrap();
    let listener = common::loopback_listener();
    let addr = listener.local_addr().unwrap();
    let empty = Rc::new(Cell::new(0));
    let accepted = Rc::new(Cell::new(0));
    let counted = accepted.clone();
    let acceptor = Acceptor::new(move |stream: TcpStream, _, _: &mut Context<'_>| {
        counted.set(counted.get() + 1);
        drop(stream);
        Ok(())
    });
    let listener = Counting {
        inner: listener,
        empty: empty.clone(),
    };
    reactor
        .register(listener, Interest::READABLE, acceptor)
        .unwrap();

    // One connection per event.
    let mut clients = Vec::new();
    for n in 1..=100 {
        clients.push(TcpStream::connect(addr).unwrap());
        rounds_until(&mut reactor, &accepted, n);
    }
    // The first event finds the queue empty after its connection, and then one event in 9
    // tries one more: 1 + 100 / 9.
    assert!(empty.get() <= 12, "{} failed accepts", empty.get());

    // A burst.
    let before = empty.get();
    for _ in 0..300 {
        clients.push(TcpStream::connect(addr).unwrap());
    }
    let rounds = rounds_until(&mut reactor, &accepted, 400);
    assert!(rounds <= 60, "{rounds} rounds for a burst of 300");
    assert!(
        empty.get() - before <= 2,
        "{} failed accepts",
        empty.get() - before
    );
}

common::per_backend!(
    accepts_that_find_nothing_are_rare,
    refused_registration_closes_that_connection_only,
    #[cfg(target_os = "linux")]
    out_of_fds_pauses_then_serves_every_client,
);
