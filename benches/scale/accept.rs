//! How connections are spread between two reactors, with nothing else in the way: two
//! threads, each with its own epoll (level-triggered, as rawloop's epoll backend), each
//! accepting at most 64 connections per wake-up (rawloop's `AcceptOptions` default) with
//! `rawloop::net::accept_tcp` and echoing on what it accepted, and three ways to share the
//! port:
//!
//! - `SO_REUSEPORT`: each thread has its own listener on the port (the server layer's way
//!   for TCP and UDP); the kernel hashes each connection to one listener's queue;
//! - `EPOLLEXCLUSIVE`: one listener, registered in both epolls with EPOLLEXCLUSIVE, so that
//!   a new connection wakes one of the waiting threads rather than all;
//! - plain shared: one listener in both epolls without EPOLLEXCLUSIVE (what the server layer
//!   does today for Unix sockets on threads and for worker processes), the baseline that
//!   shows the thundering herd.
//!
//! Two loads per way: a burst of long-lived connections (opened together, one echo each,
//! then counted on each thread, as the echo benchmark's load generator opens its
//! connections), and churn: a few client threads each connecting, exchanging one 64-byte
//! echo and closing (with a reset, so that no TIME_WAIT runs the ports out), for a fixed
//! time. Counted: connections accepted per second and on each thread, the server threads'
//! CPU time (`/proc/self/task/<tid>/schedstat`) and context switches, wake-ups of the
//! listener, and those that found nothing to accept (the first accept4 said EAGAIN: another
//! thread had taken it). A thread woken for a connection that another thread takes first may
//! also go back to sleep inside epoll_wait (level-triggered readiness is checked again before
//! epoll_wait returns), which shows as a context switch, not as an empty wake-up.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{setsockopt, sockopt};
use rawloop::net::{self, ListenOptions};
use serde_json::{json, Value};

use crate::Plan;

/// How the two threads share the port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    ReusePort,
    Exclusive,
    Shared,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ReusePort => "SO_REUSEPORT (a listener per thread)",
            Mechanism::Exclusive => "EPOLLEXCLUSIVE (one listener)",
            Mechanism::Shared => "plain shared listener (no EPOLLEXCLUSIVE)",
        }
    }

    pub fn all() -> [Mechanism; 3] {
        [
            Mechanism::ReusePort,
            Mechanism::Exclusive,
            Mechanism::Shared,
        ]
    }
}

const THREADS: usize = 2;
const CLIENTS: usize = 4;
const BATCH: usize = 64;
const SIZE: usize = 64;
const LISTENER: u64 = u64::MAX;
pub const BURSTS: [usize; 2] = [50, 200];

/// One server thread's counters; only that thread writes them.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    wakes: AtomicU64,
    empty_wakes: AtomicU64,
    eagain: AtomicU64,
    tid: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// A reading of one thread's counters and CPU time.
#[derive(Copy, Clone, Debug, Default)]
struct Reading {
    accepted: u64,
    wakes: u64,
    empty_wakes: u64,
    eagain: u64,
    cpu_s: f64,
    switches: u64,
}

fn thread_cpu_s(tid: u64) -> f64 {
    let text =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap_or_default();
    text.split_whitespace()
        .next()
        .and_then(|ns| ns.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Voluntary and involuntary context switches of thread `tid` of this process so far.
fn thread_switches(tid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

impl Counters {
    fn read(&self) -> Reading {
        Reading {
            accepted: self.accepted.load(Ordering::Relaxed),
            wakes: self.wakes.load(Ordering::Relaxed),
            empty_wakes: self.empty_wakes.load(Ordering::Relaxed),
            eagain: self.eagain.load(Ordering::Relaxed),
            cpu_s: thread_cpu_s(self.tid.load(Ordering::Relaxed)),
            switches: thread_switches(self.tid.load(Ordering::Relaxed)),
        }
    }
}

/// One server thread: its epoll, the listener registered in it, the connections it accepted.
fn serve(
    listener: Arc<TcpListener>,
    flags: EpollFlags,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    counters
        .tid
        .store(nix::unistd::gettid().as_raw() as u64, Ordering::Relaxed);
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(listener.as_fd(), EpollEvent::new(flags, LISTENER))?;
    let mut conns: HashMap<u64, TcpStream> = HashMap::new();
    let mut events = [EpollEvent::empty(); 256];
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let n = match epoll.wait(&mut events, 50u16) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for ev in &events[..n] {
            if ev.data() == LISTENER {
                Counters::bump(&counters.wakes);
                let mut got = 0;
                while got < BATCH {
                    match net::accept_tcp(&listener) {
                        Ok((stream, _)) => {
                            got += 1;
                            let key = stream.as_raw_fd() as u64;
                            epoll.add(stream.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, key))?;
                            conns.insert(key, stream);
                            Counters::bump(&counters.accepted);
                            Counters::bump(&counters.open);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            Counters::bump(&counters.eagain);
                            if got == 0 {
                                Counters::bump(&counters.empty_wakes);
                            }
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                        Err(e) => return Err(e),
                    }
                }
            } else {
                let key = ev.data();
                let Some(stream) = conns.get_mut(&key) else {
                    continue;
                };
                let done = match stream.read(&mut buf) {
                    Ok(0) => true,
                    Ok(n) => stream.write_all(&buf[..n]).is_err(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                    Err(_) => true,
                };
                if done {
                    // Closing the only fd of the socket also takes it out of the epoll.
                    conns.remove(&key);
                    let open = &counters.open;
                    open.store(open.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}

/// Two server threads sharing a port by `mechanism`.
struct Server {
    addr: SocketAddr,
    counters: Vec<Arc<Counters>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl Server {
    fn start(mechanism: Mechanism) -> io::Result<Server> {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let listeners: Vec<Arc<TcpListener>> = match mechanism {
            Mechanism::ReusePort => {
                let options = ListenOptions::default().reuse_port(true);
                let first = net::listen_tcp(any, &options)?;
                let addr = first.local_addr()?;
                let mut all = vec![Arc::new(first)];
                for _ in 1..THREADS {
                    all.push(Arc::new(net::listen_tcp(addr, &options)?));
                }
                all
            }
            Mechanism::Exclusive | Mechanism::Shared => {
                let one = Arc::new(net::listen_tcp(any, &ListenOptions::default())?);
                vec![one; THREADS]
            }
        };
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        let addr = listeners[0].local_addr()?;
        let flags = match mechanism {
            Mechanism::Exclusive => EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE,
            Mechanism::ReusePort | Mechanism::Shared => EpollFlags::EPOLLIN,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut counters = Vec::new();
        let mut threads = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let c = Arc::new(Counters::default());
            counters.push(c.clone());
            let stop = stop.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("accept-{i}"))
                    .spawn(move || serve(listener, flags, c, stop))?,
            );
        }
        // Both threads in epoll_wait before the first connection.
        let end = Instant::now() + Duration::from_secs(5);
        while counters.iter().any(|c| c.tid.load(Ordering::Relaxed) == 0) && Instant::now() < end {
            sleep(Duration::from_millis(1));
        }
        sleep(Duration::from_millis(20));
        Ok(Server {
            addr,
            counters,
            stop,
            threads,
        })
    }

    fn open(&self) -> Vec<u64> {
        self.counters
            .iter()
            .map(|c| c.open.load(Ordering::Relaxed))
            .collect()
    }

    fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("server thread: {e}")),
                Err(_) => return Err("server thread panicked".into()),
            }
        }
        Ok(())
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    // Close with a reset: no TIME_WAIT, so churn cannot run out of ephemeral ports.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&s, sockopt::Linger, &linger)?;
    Ok(s)
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    s.write_all(msg)?;
    let mut back = [0u8; SIZE];
    s.read_exact(&mut back)?;
    if back[..] != msg[..] {
        return Err(io::Error::other("wrong echo"));
    }
    Ok(())
}

/// `n` connections opened together, one echo each; how many each thread holds.
fn burst(server: &Server, n: usize) -> Result<Vec<u64>, String> {
    let msg = [b'x'; SIZE];
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(connect(server.addr).map_err(|e| format!("burst connect: {e}"))?);
    }
    for c in &mut conns {
        echo_once(c, &msg).map_err(|e| format!("burst echo: {e}"))?;
    }
    let held = server.open();
    drop(conns);
    let end = Instant::now() + Duration::from_secs(5);
    while server.open().iter().sum::<u64>() > 0 {
        if Instant::now() > end {
            return Err("burst connections still open 5 s after closing".into());
        }
        sleep(Duration::from_millis(2));
    }
    Ok(held)
}

/// What one churn run measured.
#[derive(Clone, Debug)]
pub struct Churn {
    pub accepts_per_s: f64,
    pub per_thread: Vec<u64>,
    pub cpu_us_per_conn: f64,
    pub server_cores: f64,
    pub wakes: u64,
    pub empty_wakes: u64,
    pub eagain: u64,
    /// Context switches of the server threads: a thread the kernel wakes for a connection
    /// another thread then takes may go back to sleep inside epoll_wait without returning, so
    /// the herd shows here rather than as an empty wake-up.
    pub switches: u64,
    pub accepted: u64,
    pub client_errors: u64,
}

impl Churn {
    /// The larger thread's share of the connections.
    pub fn top_share(&self) -> f64 {
        let total: u64 = self.per_thread.iter().sum();
        let top = self.per_thread.iter().copied().max().unwrap_or(0);
        if total == 0 {
            0.0
        } else {
            top as f64 / total as f64
        }
    }
}

fn churn(server: &Server, seconds: f64) -> Result<Churn, String> {
    let before: Vec<Reading> = server.counters.iter().map(|c| c.read()).collect();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    let clients: Vec<JoinHandle<(u64, u64)>> = (0..CLIENTS)
        .map(|_| {
            let addr = server.addr;
            thread::spawn(move || {
                let msg = [b'y'; SIZE];
                let (mut done, mut errors) = (0u64, 0u64);
                while Instant::now() < end {
                    match connect(addr).and_then(|mut s| echo_once(&mut s, &msg)) {
                        Ok(()) => done += 1,
                        Err(_) => errors += 1,
                    }
                }
                (done, errors)
            })
        })
        .collect();
    let mut client_errors = 0;
    for c in clients {
        let (_, errors) = c.join().map_err(|_| "client thread panicked")?;
        client_errors += errors;
    }
    // Let the last closes reach the server.
    let settle = Instant::now() + Duration::from_secs(2);
    while server.open().iter().sum::<u64>() > 0 && Instant::now() < settle {
        sleep(Duration::from_millis(2));
    }
    let wall = t0.elapsed().as_secs_f64();
    let after: Vec<Reading> = server.counters.iter().map(|c| c.read()).collect();
    let d = |f: fn(&Reading) -> u64| -> Vec<u64> {
        before
            .iter()
            .zip(&after)
            .map(|(b, a)| f(a) - f(b))
            .collect()
    };
    let per_thread = d(|r| r.accepted);
    let accepted: u64 = per_thread.iter().sum();
    let cpu_s: f64 = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.cpu_s - b.cpu_s)
        .sum();
    Ok(Churn {
        accepts_per_s: accepted as f64 / seconds,
        cpu_us_per_conn: if accepted > 0 {
            cpu_s * 1e6 / accepted as f64
        } else {
            0.0
        },
        server_cores: cpu_s / wall,
        wakes: d(|r| r.wakes).iter().sum(),
        empty_wakes: d(|r| r.empty_wakes).iter().sum(),
        eagain: d(|r| r.eagain).iter().sum(),
        switches: d(|r| r.switches).iter().sum(),
        accepted,
        per_thread,
        client_errors,
    })
}

/// One mechanism, one round: the bursts, then churn.
#[derive(Clone, Debug)]
pub struct Run {
    pub bursts: Vec<(usize, Vec<u64>)>,
    pub churn: Churn,
}

fn run_one(mechanism: Mechanism, seconds: f64) -> Result<Run, String> {
    let server = Server::start(mechanism).map_err(|e| format!("starting: {e}"))?;
    let result = (|| -> Result<Run, String> {
        let mut bursts = Vec::new();
        for n in BURSTS {
            bursts.push((n, burst(&server, n)?));
        }
        let churn = churn(&server, seconds)?;
        Ok(Run { bursts, churn })
    })();
    let stopped = server.stop();
    let run = result?;
    stopped?;
    Ok(run)
}

/// (round, mechanism) -> run.
pub type Results = std::collections::BTreeMap<(usize, Mechanism), Result<Run, String>>;

/// Every mechanism in turn, round after round.
pub fn experiment(plan: &Plan, started: Instant) -> Results {
    let mut results = Results::new();
    for round in 0..plan.rounds {
        for mechanism in Mechanism::all() {
            let run = run_one(mechanism, plan.accept_duration);
            match &run {
                Ok(r) => eprintln!(
                    "[{:>4.0} s] round {} accept {:<44} {:>7.0} conn/s {:>6.2} µs CPU/conn, split {:?}, empty wake-ups {} of {}, bursts {:?}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    mechanism.name(),
                    r.churn.accepts_per_s,
                    r.churn.cpu_us_per_conn,
                    r.churn.per_thread,
                    r.churn.empty_wakes,
                    r.churn.wakes,
                    r.bursts
                ),
                Err(e) => eprintln!(
                    "[{:>4.0} s] round {} accept {:<44} FAILED: {e}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    mechanism.name()
                ),
            }
            results.insert((round, mechanism), run);
        }
    }
    results
}

pub fn raw(results: &Results) -> Value {
    Value::Array(
        results
            .iter()
            .map(|((round, m), r)| {
                json!({
                    "round": round + 1,
                    "mechanism": m.name(),
                    "result": match r {
                        Ok(r) => json!({
                            "bursts": r.bursts.iter().map(|(n, held)| json!({"connections": n, "per_thread": held})).collect::<Vec<_>>(),
                            "accepts_per_s": r.churn.accepts_per_s,
                            "accepted": r.churn.accepted,
                            "per_thread": r.churn.per_thread,
                            "cpu_per_connection_us": r.churn.cpu_us_per_conn,
                            "server_cores": r.churn.server_cores,
                            "listener_wakes": r.churn.wakes,
                            "empty_wakes": r.churn.empty_wakes,
                            "accept_eagain": r.churn.eagain,
                            "server_context_switches": r.churn.switches,
                            "client_errors": r.churn.client_errors,
                        }),
                        Err(e) => json!({ "error": e }),
                    },
                })
            })
            .collect(),
    )
}
