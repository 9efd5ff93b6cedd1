//! Dispatch cost, in the style of libevent's `test/bench.c`: N sockets are registered for
//! reading; a round makes A of them readable (spread evenly) with one byte each, and each
//! callback reads its byte and, while writes remain, makes the next socket readable, until W
//! writes have been made and every byte has been read. The time of one round is measured for
//! each backend as N goes 100 -> 1,000 -> 10,000, on the Selector layer (a hand-written loop
//! over `select` and its events), on the Reactor with the backend's static type
//! (`Reactor<Epoll>`) and on the Reactor with the backend chosen at run time
//! (`Reactor<AnySelector>`): the last two differ only by the enum's dispatch.
//!
//! Two loads, as in libevent's published runs: one active socketpair and 100 writes (almost
//! nothing ready per wait: the cost of a wait with N registered), and 100 active and 1,000
//! writes (many ready per wait: the cost per event).
//!
//! `cargo bench --bench dispatch` (a filter picks some: `cargo bench --bench dispatch -- epoll`).
//! libevent uses N pipes (2N fds); here the N sockets are N/2 socketpairs with both ends
//! registered, the same load in N fds. The bench raises RLIMIT_NOFILE as far as it may and
//! skips a size that does not fit, saying so.

use std::cell::Cell;
use std::hint::black_box;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use rawloop::{Backend, Context, Event, Events, Interest, Reactor, Selector, Token};

const SIZES: [usize; 3] = [100, 1_000, 10_000];
/// (active, writes) per round.
const LOADS: [(usize, usize); 2] = [(1, 100), (100, 1_000)];
/// No round may wait this long for an event: that would be a lost event, not a slow one.
const STALL: Duration = Duration::from_secs(5);

/// `n` sockets, as `n / 2` socketpairs with both ends registered: a byte written into one
/// end makes its peer readable (socket `i`'s peer is `i ^ 1`). This is the same load as
/// libevent's N pipes with half the fds, so that 10,000 fit in the common limit of 20,000.
struct Sockets {
    streams: Vec<UnixStream>,
    fds: Rc<Vec<RawFd>>,
}

impl Sockets {
    fn new(n: usize) -> Sockets {
        assert!(n % 2 == 0, "an even number of sockets");
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n / 2 {
            let (a, b) = UnixStream::pair().expect("socketpair");
            for s in [a, b] {
                s.set_nonblocking(true).expect("nonblocking");
                streams.push(s);
            }
        }
        let fds = Rc::new(streams.iter().map(AsRawFd::as_raw_fd).collect());
        Sockets { streams, fds }
    }
}

/// Makes socket `i` readable: one byte into its peer.
fn poke(fds: &[RawFd], i: usize) {
    // SAFETY: the fds belong to sockets that outlive every round (owned by `Sockets` or by
    // the reactor the rounds run on); write reads one byte from a static buffer.
    let n = unsafe { libc::write(fds[i ^ 1], b"e".as_ptr().cast(), 1) };
    assert_eq!(n, 1, "write: {}", std::io::Error::last_os_error());
}

/// The per-round counters the callbacks share (libevent's `count`, `fired`, `writes`).
#[derive(Default)]
struct Round {
    count: Cell<usize>,
    fired: Cell<usize>,
    writes: Cell<usize>,
}

impl Round {
    /// Starts a round: `active` sockets made readable, spread evenly.
    fn start(&self, fds: &[RawFd], active: usize, writes: usize) {
        let space = fds.len() / active;
        for i in 0..active {
            poke(fds, i * space);
        }
        self.count.set(0);
        self.fired.set(active);
        self.writes.set(writes);
    }

    /// What the callback of socket `idx` does after reading `got` bytes: while writes
    /// remain, make the next socket readable.
    fn on_read(&self, fds: &[RawFd], idx: usize, got: usize) {
        self.count.set(self.count.get() + got);
        if self.writes.get() > 0 {
            poke(fds, (idx + 1) % fds.len());
            self.writes.set(self.writes.get() - 1);
            self.fired.set(self.fired.get() + 1);
        }
    }

    fn done(&self) -> bool {
        self.count.get() == self.fired.get()
    }
}

fn read_one(mut stream: &UnixStream) -> usize {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => panic!("read: {e}"),
    }
}

/// The Selector-layer rounds for one backend and one N.
fn on_selector<S: Selector>(
    mut selector: S,
    group: &mut BenchmarkGroup<'_, WallTime>,
    n: usize,
    (active, writes): (usize, usize),
) {
    let sockets = Sockets::new(n);
    for (i, r) in sockets.streams.iter().enumerate() {
        selector
            .register(r.as_raw_fd(), Token(i), Interest::READABLE)
            .expect("register");
    }
    let mut events = Events::with_capacity(1024);
    let round = Round::default();
    group.bench_function(BenchmarkId::new(selector.name(), n), |b| {
        b.iter(|| {
            round.start(&sockets.fds, active, writes);
            while !round.done() {
                selector.select(&mut events, Some(STALL)).expect("select");
                assert!(!events.is_empty(), "no event within {STALL:?}");
                for event in &events {
                    let idx = event.token().0;
                    let got = read_one(&sockets.streams[idx]);
                    round.on_read(&sockets.fds, idx, got);
                }
            }
            black_box(round.count.get())
        })
    });
    for r in &sockets.streams {
        selector.deregister(r.as_raw_fd()).expect("deregister");
    }
}

/// The Reactor rounds for one backend and one N.
fn on_reactor<S: Selector>(
    mut reactor: Reactor<S>,
    group: &mut BenchmarkGroup<'_, WallTime>,
    n: usize,
    (active, writes): (usize, usize),
) {
    let Sockets { streams, fds } = Sockets::new(n);
    let round = Rc::new(Round::default());
    for (idx, r) in streams.into_iter().enumerate() {
        let round = round.clone();
        let fds = fds.clone();
        reactor
            .register(
                r,
                Interest::READABLE,
                move |s: &mut UnixStream, _: &mut Context<'_>, _: Event| {
                    let got = read_one(s);
                    round.on_read(&fds, idx, got);
                    Ok(())
                },
            )
            .expect("register");
    }
    group.bench_function(BenchmarkId::new(reactor.backend(), n), |b| {
        b.iter(|| {
            round.start(&fds, active, writes);
            while !round.done() {
                let ran = reactor.run_once(Some(STALL)).expect("run_once");
                assert!(ran > 0, "no event within {STALL:?}");
            }
            black_box(round.count.get())
        })
    });
}

/// Runs `$body` with `$S` the static selector type of `$backend`.
macro_rules! with_static {
    ($backend:expr, $S:ident => $body:expr) => {
        match $backend {
            Backend::Select => {
                type $S = rawloop::Select;
                $body
            }
            Backend::Poll => {
                type $S = rawloop::Poll;
                $body
            }
            #[cfg(rawloop_epoll)]
            Backend::Epoll => {
                type $S = rawloop::Epoll;
                $body
            }
            #[cfg(rawloop_kqueue)]
            Backend::Kqueue => {
                type $S = rawloop::Kqueue;
                $body
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    };
}

/// Raises RLIMIT_NOFILE to at least `want` if it can; returns whether the limit is enough.
fn ensure_nofile(want: libc::rlim_t) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return false;
        }
        if lim.rlim_cur >= want {
            return true;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return true;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur >= want
    }
}

/// The layers measured: the selector alone, the reactor on the static selector type
/// (`Reactor<Epoll>`), and the reactor on the run-time choice (`Reactor<AnySelector>`).
const LAYERS: [&str; 3] = ["selector", "reactor", "reactor-any"];

fn dispatch(c: &mut Criterion) {
    let backends: Vec<Backend> = Backend::compiled();
    for load in LOADS {
        for layer in LAYERS {
            let mut group = c.benchmark_group(format!("dispatch/{layer}/a{}-w{}", load.0, load.1));
            for n in SIZES {
                if !ensure_nofile(n as libc::rlim_t + 256) {
                    eprintln!(
                        "skipping {n} sockets: RLIMIT_NOFILE cannot be raised to {}",
                        n + 256
                    );
                    continue;
                }
                for &backend in &backends {
                    match layer {
                        "selector" => with_static!(backend, S => {
                            on_selector(S::new().expect("selector"), &mut group, n, load)
                        }),
                        "reactor" => with_static!(backend, S => {
                            on_reactor(Reactor::<S>::new().expect("reactor"), &mut group, n, load)
                        }),
                        _ => on_reactor(
                            Reactor::with_backend(backend).expect("reactor"),
                            &mut group,
                            n,
                            load,
                        ),
                    }
                }
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = dispatch
}
criterion_main!(benches);
