//! The Selector contract, checked once per backend compiled on this machine.
//!
//! Every test is a generic function over `S: Selector`; `common::per_backend!` instantiates
//! all of them for each backend, so `cargo test --test conformance poll::` runs one
//! backend's suite.

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rawloop::{Events, Interest, Readiness, Selector, Token};

const WAIT: Option<Duration> = Some(Duration::from_secs(2));
const NOW: Option<Duration> = Some(Duration::ZERO);

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    (client, server)
}

fn select<S: Selector>(sel: &mut S, timeout: Option<Duration>) -> Vec<(Token, Readiness)> {
    let mut events = Events::with_capacity(1024);
    sel.select(&mut events, timeout).unwrap();
    events.iter().map(|e| (e.token(), e.readiness())).collect()
}

fn tokens(events: &[(Token, Readiness)]) -> Vec<Token> {
    let mut t: Vec<Token> = events.iter().map(|e| e.0).collect();
    t.sort();
    t.dedup();
    t
}

/// Writes into `s` until the kernel's buffers are full.
fn fill(s: &mut UnixStream) {
    let chunk = [0u8; 65536];
    loop {
        match s.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

pub fn readable_after_write<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (a, mut b) = pair();
    sel.register(a.as_raw_fd(), Token(7), Interest::READABLE)
        .unwrap();
    assert!(select(&mut sel, NOW).is_empty(), "nothing written yet");
    b.write_all(b"ping").unwrap();
    let events = select(&mut sel, WAIT);
    assert_eq!(tokens(&events), vec![Token(7)]);
    assert!(events.iter().all(|e| e.1.contains(Readiness::READABLE)));
}

pub fn writable_on_fresh_socket<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (a, _b) = tcp_pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::WRITABLE)
        .unwrap();
    let events = select(&mut sel, WAIT);
    assert_eq!(tokens(&events), vec![Token(1)]);
    assert!(events.iter().any(|e| e.1.contains(Readiness::WRITABLE)));
    assert!(!events.iter().any(|e| e.1.contains(Readiness::READABLE)));
}

pub fn interest_change_takes_effect<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (a, mut b) = pair();
    let fd = a.as_raw_fd();
    sel.register(fd, Token(1), Interest::READABLE).unwrap();
    assert!(select(&mut sel, NOW).is_empty());
    sel.reregister(fd, Token(2), Interest::WRITABLE).unwrap();
    let events = select(&mut sel, WAIT);
    assert_eq!(tokens(&events), vec![Token(2)], "new token and interest");
    sel.reregister(fd, Token(3), Interest::READABLE).unwrap();
    assert!(
        select(&mut sel, NOW).is_empty(),
        "writable no longer asked for"
    );
    b.write_all(b"x").unwrap();
    assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(3)]);
    sel.reregister(fd, Token(4), Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    let both = select(&mut sel, WAIT);
    assert_eq!(tokens(&both), vec![Token(4)]);
    let all = both.iter().fold(Readiness::empty(), |acc, e| acc | e.1);
    assert!(
        all.contains(Readiness::READABLE | Readiness::WRITABLE),
        "{all:?}"
    );
}

pub fn deregister_stops_events<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (a, mut b) = pair();
    let (c, mut d) = pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    sel.register(c.as_raw_fd(), Token(2), Interest::READABLE)
        .unwrap();
    b.write_all(b"x").unwrap();
    d.write_all(b"x").unwrap();
    assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(1), Token(2)]);
    sel.deregister(a.as_raw_fd()).unwrap();
    let start = Instant::now();
    assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(2)]);
    sel.deregister(c.as_raw_fd()).unwrap();
    assert!(select(&mut sel, Some(Duration::from_millis(50))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(50));
}

pub fn peer_close_is_reported<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (mut a, b) = tcp_pair();
    sel.register(a.as_raw_fd(), Token(5), Interest::READABLE)
        .unwrap();
    drop(b);
    let events = select(&mut sel, WAIT);
    assert_eq!(tokens(&events), vec![Token(5)]);
    let mut buf = [0u8; 16];
    assert_eq!(a.read(&mut buf).unwrap(), 0, "read sees end of stream");
}

pub fn peer_close_of_pipe_is_reported<S: Selector>() {
    let mut sel = S::new().unwrap();
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe just returned both fds; each is owned once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    sel.register(read.as_raw_fd(), Token(9), Interest::READABLE)
        .unwrap();
    assert!(select(&mut sel, NOW).is_empty());
    drop(write);
    assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(9)]);
    sel.deregister(read.as_raw_fd()).unwrap();
}

/// A registration for WRITABLE only still hears that the peer went away.
pub fn hangup_reaches_a_write_only_registration<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (mut a, b) = pair();
    fill(&mut a);
    sel.register(a.as_raw_fd(), Token(3), Interest::WRITABLE)
        .unwrap();
    assert!(select(&mut sel, NOW).is_empty(), "buffers are full");
    drop(b);
    assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(3)]);
    let err = a.write(b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

pub fn readiness_repeats_while_undrained<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (mut a, mut b) = pair();
    sel.register(a.as_raw_fd(), Token(1), Interest::READABLE)
        .unwrap();
    b.write_all(b"0123456789").unwrap();
    let mut byte = [0u8; 1];
    for _ in 0..3 {
        assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(1)]);
        assert_eq!(
            tokens(&select(&mut sel, NOW)),
            vec![Token(1)],
            "reported again"
        );
        a.read_exact(&mut byte).unwrap();
    }
    let mut rest = [0u8; 16];
    assert_eq!(a.read(&mut rest).unwrap(), 7);
    assert!(select(&mut sel, NOW).is_empty(), "drained");
}

/// When more fds are ready than the buffer holds, the rest are reported by later calls.
pub fn full_buffer_reports_every_fd_in_turn<S: Selector>() {
    let mut sel = S::new().unwrap();
    let pairs: Vec<_> = (0..10).map(|_| pair()).collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        sel.register(a.as_raw_fd(), Token(i), Interest::READABLE)
            .unwrap();
        (&*b).write_all(b"x").unwrap();
    }
    let mut events = Events::with_capacity(4);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        sel.select(&mut events, WAIT).unwrap();
        assert!(events.len() <= 4);
        seen.extend(events.iter().map(|e| e.token().0));
    }
    assert_eq!(seen.len(), 10, "every ready fd was reported: {seen:?}");
}

/// 2,000 registered fds, many of them numbered past select(2)'s FD_SETSIZE of 1024.
pub fn two_thousand_fds<S: Selector>() {
    let limit = common::raise_fd_limit(4096);
    assert!(limit >= 2100, "RLIMIT_NOFILE hard limit too low: {limit}");
    let mut sel = S::new().unwrap();
    let pairs: Vec<_> = (0..1000).map(|_| pair()).collect();
    let refuses_high_fds = cfg!(target_vendor = "apple") && common::backend_name::<S>() == "select";
    let mut registered = Vec::new();
    for (i, (a, b)) in pairs.iter().enumerate() {
        for (j, s) in [a, b].into_iter().enumerate() {
            let fd = s.as_raw_fd();
            match sel.register(fd, Token(2 * i + j), Interest::READABLE) {
                Ok(()) => registered.push(fd),
                Err(e) if refuses_high_fds && fd >= 1024 => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
                }
                Err(e) => panic!("register fd {fd}: {e}"),
            }
        }
    }
    if !refuses_high_fds {
        assert_eq!(registered.len(), 2000);
        assert!(registered.iter().any(|&fd| fd >= 1024));
    }
    assert!(select(&mut sel, NOW).is_empty());
    // Wake the last registered pair's first end (highest fds) and one low one.
    let last = registered.len() / 2 - 1;
    (&pairs[last].1).write_all(b"x").unwrap();
    (&pairs[0].1).write_all(b"x").unwrap();
    assert_eq!(
        tokens(&select(&mut sel, WAIT)),
        vec![Token(0), Token(2 * last)]
    );
    for fd in registered {
        sel.deregister(fd).unwrap();
    }
    assert!(select(&mut sel, NOW).is_empty());
}

pub fn timeouts_are_never_early<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (a, _b) = pair();
    sel.register(a.as_raw_fd(), Token(0), Interest::READABLE)
        .unwrap();
    let start = Instant::now();
    assert!(select(&mut sel, NOW).is_empty());
    assert!(start.elapsed() < Duration::from_millis(500), "zero polls");
    for asked in [
        Duration::from_micros(100),
        Duration::from_millis(1),
        Duration::from_millis(50),
    ] {
        let start = Instant::now();
        assert!(select(&mut sel, Some(asked)).is_empty());
        let took = start.elapsed();
        assert!(took >= asked, "asked {asked:?}, returned after {took:?}");
        assert!(
            took < asked + Duration::from_secs(1),
            "asked {asked:?}, took {took:?}"
        );
    }
}

/// Set by the SIGUSR1 handler of [`signal_during_wait_resumes_it`].
static GOT_SIGUSR1: AtomicBool = AtomicBool::new(false);

extern "C" fn note_sigusr1(_: libc::c_int) {
    GOT_SIGUSR1.store(true, Ordering::SeqCst);
}

/// A wait interrupted by a signal goes on for the time that is left.
pub fn signal_during_wait_resumes_it<S: Selector>() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(note_sigusr1),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGUSR1, &action) }.unwrap();
    let mut sel = S::new().unwrap();
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        // SAFETY: `me` is the live test thread waiting in select below.
        unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
    });
    let start = Instant::now();
    let asked = Duration::from_millis(150);
    assert!(select(&mut sel, Some(asked)).is_empty());
    assert!(
        start.elapsed() >= asked,
        "returned after {:?}",
        start.elapsed()
    );
    sender.join().unwrap();
    assert!(
        GOT_SIGUSR1.load(Ordering::SeqCst),
        "the signal was delivered"
    );
}

/// An fd number closed after deregister and reused by a new socket is a new registration.
pub fn reused_fd_number_after_deregister<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (a, mut b) = pair();
    let fd = a.as_raw_fd();
    sel.register(fd, Token(1), Interest::READABLE).unwrap();
    b.write_all(b"old").unwrap();
    sel.deregister(fd).unwrap();
    drop(b);
    // Close the old socket and put a new one on its number in one step (dup2), so that no
    // other test thread can take the number in between.
    let (c, mut d) = pair();
    let old = a.into_raw_fd();
    // SAFETY: `old` is this test's own descriptor, released by into_raw_fd; dup2 closes it
    // and makes the number refer to `c`'s socket.
    assert_eq!(unsafe { libc::dup2(c.as_raw_fd(), old) }, fd);
    // SAFETY: dup2 returned `fd`, a descriptor now owned only here.
    let reused = unsafe { OwnedFd::from_raw_fd(fd) };
    drop(c);
    sel.register(fd, Token(2), Interest::READABLE).unwrap();
    assert!(
        select(&mut sel, NOW).is_empty(),
        "the old data is gone with the old socket"
    );
    d.write_all(b"new").unwrap();
    assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(2)]);
    sel.deregister(reused.as_raw_fd()).unwrap();
}

pub fn errors_are_the_same_kind_everywhere<S: Selector>() {
    let mut sel = S::new().unwrap();
    let (a, _b) = pair();
    let fd = a.as_raw_fd();
    let never_open: RawFd = 1_000_000;
    sel.register(fd, Token(1), Interest::READABLE).unwrap();
    let kind = |r: io::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        kind(sel.register(fd, Token(2), Interest::READABLE)),
        io::ErrorKind::AlreadyExists
    );
    let (c, _d) = pair();
    assert_eq!(
        kind(sel.reregister(c.as_raw_fd(), Token(3), Interest::READABLE)),
        io::ErrorKind::NotFound
    );
    assert_eq!(kind(sel.deregister(c.as_raw_fd())), io::ErrorKind::NotFound);
    assert_eq!(
        kind(sel.register(c.as_raw_fd(), Token(3), Interest::empty())),
        io::ErrorKind::InvalidInput
    );
    for bad in [-1, never_open] {
        let err = sel.register(bad, Token(4), Interest::READABLE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "fd {bad}: {err}");
    }
    sel.deregister(fd).unwrap();
    assert_eq!(
        kind(sel.deregister(fd)),
        io::ErrorKind::NotFound,
        "deregistered twice"
    );
}

pub fn waker_wakes_a_blocked_select<S: Selector>() {
    let mut sel = S::new().unwrap();
    let source = sel.new_waker(Token(99)).unwrap();
    let waker = source.waker();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        for _ in 0..1000 {
            waker.wake().unwrap();
        }
    });
    let start = Instant::now();
    let events = select(&mut sel, None);
    assert_eq!(tokens(&events), vec![Token(99)]);
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    assert!(!source.reset().unwrap(), "no stop was asked for");
    assert!(
        select(&mut sel, NOW).is_empty(),
        "1,000 wakes coalesced and reset"
    );
    for round in 0..100 {
        source.waker().wake().unwrap();
        assert_eq!(
            tokens(&select(&mut sel, WAIT)),
            vec![Token(99)],
            "round {round}"
        );
        source.reset().unwrap();
        assert!(select(&mut sel, NOW).is_empty(), "round {round}");
    }
    source.waker().stop().unwrap();
    assert_eq!(tokens(&select(&mut sel, WAIT)), vec![Token(99)]);
    assert!(source.reset().unwrap(), "stop is seen once");
    assert!(!source.reset().unwrap());
}

common::per_backend!(
    readable_after_write,
    writable_on_fresh_socket,
    interest_change_takes_effect,
    deregister_stops_events,
    peer_close_is_reported,
    peer_close_of_pipe_is_reported,
    hangup_reaches_a_write_only_registration,
    readiness_repeats_while_undrained,
    full_buffer_reports_every_fd_in_turn,
    two_thousand_fds,
    timeouts_are_never_early,
    signal_during_wait_resumes_it,
    reused_fd_number_after_deregister,
    errors_are_the_same_kind_everywhere,
    waker_wakes_a_blocked_select,
);
