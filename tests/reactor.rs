//! The Reactor's contract, checked once per backend compiled on this machine.

mod common;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rawloop::{Context, Event, Handler, Interest, Reactor, Selector, TimerId, Token};

const WAIT: Option<Duration> = Some(Duration::from_secs(2));

fn pair() -> (UnixStream, UnixStream) {
    common::stream_pair()
}

/// Two sources ready in the same round: whichever handler runs first closes the other and
/// registers a new source, which takes the freed fd number. The old registration's event,
/// still in the round's list, must reach neither the closed handler nor the newcomer.
pub fn event_of_source_closed_this_round_is_not_delivered<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let ran = Rc::new(RefCell::new(Vec::<&str>::new()));
    let newcomer_events = Rc::new(AtomicUsize::new(0));
    let (a, mut a_peer) = pair();
    let (b, mut b_peer) = pair();
    let make = |name: &'static str, other: Rc<RefCell<Option<Token>>>| {
        let ran = ran.clone();
        let newcomer_events = newcomer_events.clone();
        move |_: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
            ran.borrow_mut().push(name);
            if let Some(victim) = other.borrow_mut().take() {
                assert!(cx.close_token(victim));
                let (fresh, fresh_peer) = pair();
                let count = newcomer_events.clone();
                cx.register(
                    fresh,
                    Interest::READABLE,
                    move |_: &mut UnixStream, _: &mut Context<'_>, _: Event| {
                        count.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    },
                )?;
                std::mem::forget(fresh_peer);
            }
            Ok(())
        }
    };
    let other_of_a = Rc::new(RefCell::new(None));
    let other_of_b = Rc::new(RefCell::new(None));
    let ta = reactor
        .register(a, Interest::READABLE, make("a", other_of_a.clone()))
        .unwrap();
    let tb = reactor
        .register(b, Interest::READABLE, make("b", other_of_b.clone()))
        .unwrap();
    *other_of_a.borrow_mut() = Some(tb);
    *other_of_b.borrow_mut() = Some(ta);
    a_peer.write_all(b"x").unwrap();
    b_peer.write_all(b"x").unwrap();
    // Make sure both are ready before the round starts.
    thread::sleep(Duration::from_millis(20));
    reactor.run_once(WAIT).unwrap();
    assert_eq!(
        ran.borrow().len(),
        1,
        "only the first handler ran: {:?}",
        ran.borrow()
    );
    assert_eq!(
        newcomer_events.load(Ordering::SeqCst),
        0,
        "no stale event reached the newcomer"
    );
    assert_eq!(
        reactor.len(),
        2,
        "the first handler's source and the newcomer"
    );
}

struct EchoOnce {
    closed_with: Rc<RefCell<Vec<String>>>,
    fail: bool,
}

impl Handler<UnixStream> for EchoOnce {
    fn ready(&mut self, s: &mut UnixStream, _: &mut Context<'_>, _: Event) -> io::Result<()> {
        if self.fail {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame"));
        }
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        s.write_all(&buf[..n])
    }
    fn closed(&mut self, _: &mut UnixStream, _: &mut Context<'_>, error: Option<&io::Error>) {
        self.closed_with
            .borrow_mut()
            .push(error.map_or("none".into(), |e| e.to_string()));
    }
}

pub fn handler_error_closes_only_its_source<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let closed = Rc::new(RefCell::new(Vec::new()));
    let (good, mut good_peer) = pair();
    let (bad, mut bad_peer) = pair();
    reactor
        .register(
            good,
            Interest::READABLE,
            EchoOnce {
                closed_with: closed.clone(),
                fail: false,
            },
        )
        .unwrap();
    reactor
        .register(
            bad,
            Interest::READABLE,
            EchoOnce {
                closed_with: closed.clone(),
                fail: true,
            },
        )
        .unwrap();
    bad_peer.write_all(b"junk").unwrap();
    good_peer.write_all(b"hi").unwrap();
    for _ in 0..2 {
        reactor.run_once(Some(Duration::from_millis(50))).unwrap();
    }
    assert_eq!(*closed.borrow(), vec!["bad frame".to_string()]);
    assert_eq!(reactor.stats().handler_errors, 1);
    assert_eq!(reactor.len(), 1);
    let mut buf = [0u8; 8];
    match bad_peer.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the bad source should be closed, read gave {other:?}"),
    }
    good_peer.read_exact(&mut buf[..2]).unwrap();
    assert_eq!(&buf[..2], b"hi");
    good_peer.write_all(b"again").unwrap();
    reactor.run_once(WAIT).unwrap();
    good_peer.read_exact(&mut buf[..5]).unwrap();
    assert_eq!(&buf[..5], b"again", "the other source is still served");
}

pub fn timers_fire_in_order_and_not_early<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    let mut cancelled = None;
    for (label, ms) in [
        ("30", 30),
        ("10a", 10),
        ("cancelled", 15),
        ("20", 20),
        ("10b", 10),
        ("0", 0),
    ] {
        let fired = fired.clone();
        let id = reactor.call_after(Duration::from_millis(ms), move |_| {
            fired
                .borrow_mut()
                .push((label, start.elapsed(), Duration::from_millis(ms)));
            Ok(())
        });
        if label == "cancelled" {
            cancelled = Some(id);
        }
    }
    assert!(reactor.cancel_timer(cancelled.unwrap()));
    assert!(!reactor.cancel_timer(cancelled.unwrap()), "cancelled once");
    while reactor.timer_count() > 0 {
        reactor.run_once(None).unwrap();
    }
    let fired = fired.borrow();
    let order: Vec<&str> = fired.iter().map(|f| f.0).collect();
    assert_eq!(order, vec!["0", "10a", "10b", "20", "30"]);
    for (label, at, asked) in fired.iter() {
        assert!(
            at >= asked,
            "timer {label} fired at {at:?}, asked {asked:?}"
        );
    }
}

/// A state machine that sets a timer on itself and counts what fires.
struct Sleeper {
    delay: Duration,
    fired: Rc<RefCell<Vec<TimerId>>>,
    set: Option<TimerId>,
    set_at: Option<Instant>,
}

impl Handler<UnixStream> for Sleeper {
    fn ready(&mut self, s: &mut UnixStream, cx: &mut Context<'_>, _: Event) -> io::Result<()> {
        let mut buf = [0u8; 16];
        if s.read(&mut buf)? == 0 {
            cx.close();
        } else {
            let timer = cx.set_timer(self.delay)?;
            assert!(cx.timer_deadline(timer).unwrap() >= Instant::now() + self.delay / 2);
            self.set = Some(timer);
            self.set_at = Some(Instant::now());
        }
        Ok(())
    }
    fn timeout(
        &mut self,
        _: &mut UnixStream,
        cx: &mut Context<'_>,
        timer: TimerId,
    ) -> io::Result<()> {
        assert_eq!(Some(timer), self.set);
        assert!(self.set_at.unwrap().elapsed() >= self.delay);
        self.fired.borrow_mut().push(timer);
        cx.close();
        Ok(())
    }
}

pub fn registration_timer_reaches_only_its_registration<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let (a, mut a_peer) = pair();
    let (b, mut b_peer) = pair();
    reactor
        .register(
            a,
            Interest::READABLE,
            Sleeper {
                delay: Duration::from_millis(20),
                fired: fired.clone(),
                set: None,
                set_at: None,
            },
        )
        .unwrap();
    let tb = reactor
        .register(
            b,
            Interest::READABLE,
            Sleeper {
                delay: Duration::from_millis(40),
                fired: fired.clone(),
                set: None,
                set_at: None,
            },
        )
        .unwrap();
    a_peer.write_all(b"go").unwrap();
    b_peer.write_all(b"go").unwrap();
    reactor.run_once(WAIT).unwrap();
    reactor.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(reactor.timer_count(), 2);
    // Close b before its timer is due; a newcomer takes its slot and must not get the timer.
    assert!(reactor.close_token(tb));
    let (c, _c_peer) = pair();
    let tc = reactor
        .register(
            c,
            Interest::READABLE,
            Sleeper {
                delay: Duration::from_secs(60),
                fired: fired.clone(),
                set: None,
                set_at: None,
            },
        )
        .unwrap();
    assert_ne!(
        tc, tb,
        "a token names one registration, never its slot's next occupant"
    );
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        reactor.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(fired.borrow().len(), 1, "only a's timer fired");
    assert_eq!(reactor.len(), 1, "a closed itself; the newcomer remains");
}

/// A token kept after its registration closed names nothing, even once a newcomer has
/// taken the same slab slot and fd number.
pub fn stale_token_never_reaches_the_newcomer_in_its_slot<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let noop = |_: &mut UnixStream, _: &mut Context<'_>, _: Event| Ok(());
    let (a, _a_peer) = pair();
    let old = reactor.register(a, Interest::READABLE, noop).unwrap();
    assert!(reactor.close_token(old));
    let (b, mut b_peer) = pair();
    let count = Rc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let new = reactor
        .register(
            b,
            Interest::READABLE,
            move |s: &mut UnixStream, _: &mut Context<'_>, _: Event| {
                seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 8];
                s.read(&mut buf).map(drop)
            },
        )
        .unwrap();
    assert_ne!(old, new);
    assert!(!reactor.close_token(old), "the stale token closes nothing");
    assert_eq!(
        reactor
            .context()
            .set_interest_of(old, Interest::WRITABLE)
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    assert!(reactor.run_once(Some(Duration::ZERO)).is_ok());
    b_peer.write_all(b"x").unwrap();
    reactor.run_once(WAIT).unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the newcomer is intact and served"
    );
    assert_eq!(reactor.len(), 1);
}

pub fn waker_stops_the_loop_from_another_thread<S: Selector + 'static>() {
    let (tx, rx) = std::sync::mpsc::channel();
    let loop_thread = thread::spawn(move || {
        let mut reactor = Reactor::<S>::new().unwrap();
        tx.send(reactor.waker()).unwrap();
        reactor.run()
    });
    let waker = rx.recv().unwrap();
    for _ in 0..10_000 {
        waker.wake().unwrap();
    }
    thread::sleep(Duration::from_millis(50));
    assert!(!loop_thread.is_finished(), "wakes do not stop the loop");
    let start = Instant::now();
    waker.stop().unwrap();
    loop_thread.join().unwrap().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
}

pub fn repeated_wakes_each_wake_a_blocked_loop<S: Selector + 'static>() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (woke_tx, woke_rx) = std::sync::mpsc::channel();
    let loop_thread = thread::spawn(move || {
        let mut reactor = Reactor::<S>::new().unwrap();
        tx.send(reactor.waker()).unwrap();
        for _ in 0..200 {
            // Each round blocks without a timeout: only a wake can end it.
            reactor.run_once(None).unwrap();
            woke_tx.send(()).unwrap();
        }
    });
    let waker = rx.recv().unwrap();
    for round in 0..200 {
        waker.wake().unwrap();
        woke_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("wake {round} did not wake the loop"));
    }
    loop_thread.join().unwrap();
}

pub fn stop_from_a_handler_returns_from_run<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let (a, mut a_peer) = pair();
    reactor
        .register(
            a,
            Interest::READABLE,
            |s: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf)?;
                cx.stop();
                Ok(())
            },
        )
        .unwrap();
    for _ in 0..2 {
        a_peer.write_all(b"stop").unwrap();
        reactor.run().unwrap();
    }
    reactor.call_after(Duration::from_millis(5), |cx| {
        cx.stop();
        Ok(())
    });
    reactor.run().unwrap();
}

pub fn paused_registration_hears_nothing_until_resumed<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let count = Rc::new(AtomicUsize::new(0));
    let (a, mut a_peer) = pair();
    let seen = count.clone();
    let token = reactor
        .register(
            a,
            Interest::empty(),
            move |s: &mut UnixStream, _: &mut Context<'_>, _: Event| {
                seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 8];
                s.read(&mut buf).map(drop)
            },
        )
        .unwrap();
    a_peer.write_all(b"x").unwrap();
    reactor.run_once(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 0);
    reactor
        .context()
        .set_interest_of(token, Interest::READABLE)
        .unwrap();
    reactor.run_once(WAIT).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    reactor
        .context()
        .set_interest_of(token, Interest::empty())
        .unwrap();
    a_peer.write_all(b"y").unwrap();
    reactor.run_once(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(reactor.close_token(token));
    assert!(!reactor.close_token(token));
}

pub fn dropping_the_reactor_closes_every_source<S: Selector>() {
    let closed = Rc::new(RefCell::new(Vec::new()));
    let mut peers = Vec::new();
    {
        let mut reactor = Reactor::<S>::new().unwrap();
        for _ in 0..5 {
            let (a, peer) = pair();
            reactor
                .register(
                    a,
                    Interest::READABLE,
                    EchoOnce {
                        closed_with: closed.clone(),
                        fail: false,
                    },
                )
                .unwrap();
            peers.push(peer);
        }
    }
    assert_eq!(closed.borrow().len(), 5);
    for mut peer in peers {
        let mut buf = [0u8; 1];
        assert_eq!(peer.read(&mut buf).unwrap(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Timers: at an instant, periodic without drift, reschedule and reset, gone with their
// registration, and no panic for a delay past the end of time.
// ---------------------------------------------------------------------------------------------

/// A callback timer at an `Instant` fires at it, not before; one rescheduled earlier fires
/// earlier; one reset fires its delay after the reset.
pub fn timers_at_an_instant_rescheduled_and_reset<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::<(&str, Instant)>::new()));
    let start = Instant::now();
    let note = |name: &'static str| {
        let fired = fired.clone();
        move |_: &mut Context<'_>| {
            fired.borrow_mut().push((name, Instant::now()));
            Ok(())
        }
    };
    let mut cx = reactor.context();
    cx.call_at(start + Duration::from_millis(60), note("at 60"));
    let moved = cx.call_at(start + Duration::from_secs(60), note("moved to 20"));
    assert!(cx.reschedule_timer(moved, start + Duration::from_millis(20)));
    let reset = cx.call_after(Duration::from_millis(40), note("reset"));
    while fired.borrow().is_empty() {
        reactor.run_once(WAIT).unwrap();
    }
    // "moved to 20" fired at ~20 ms; push "reset" back 40 ms from now (~60 ms).
    assert!(reactor.context().reset_timer(reset));
    let reset_at = Instant::now();
    while fired.borrow().len() < 3 {
        reactor.run_once(WAIT).unwrap();
    }
    let fired = fired.borrow();
    assert_eq!(fired[0].0, "moved to 20");
    assert!(fired[0].1 >= start + Duration::from_millis(20));
    assert!(fired[0].1 < start + Duration::from_secs(5));
    let at60 = fired.iter().find(|f| f.0 == "at 60").unwrap();
    assert!(at60.1 >= start + Duration::from_millis(60));
    let reset = fired.iter().find(|f| f.0 == "reset").unwrap();
    assert!(
        reset.1 >= reset_at + Duration::from_millis(40),
        "reset pushed it back"
    );
    assert_eq!(reactor.timer_count(), 0);
    assert!(
        !reactor.context().reset_timer(moved),
        "a fired timer is gone"
    );
}

/// Timers far enough away that the wait ends by the reactor's alarm (a timerfd on Linux)
/// rather than by a timeout. The alarm is armed for the first timer (1 s); 150 ms in, a
/// closure from another thread cancels that timer and sets one due 150 ms later: the alarm
/// must be brought forward for it, and then ring once early (for the cancelled timer's
/// deadline it was first armed for, or not at all) without running anything or spinning.
pub fn long_timers_fire_on_time_when_an_alarm_ends_the_wait<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let fired = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(&str, Instant)>::new()));
    let note = |name: &'static str| {
        let fired = fired.clone();
        move |_: &mut Context<'_>| {
            fired.lock().unwrap().push((name, Instant::now()));
            Ok(())
        }
    };
    let start = Instant::now();
    let first = reactor.call_after(Duration::from_secs(1), note("cancelled"));
    let last = note("last");
    reactor.call_after(Duration::from_millis(1500), move |cx| {
        cx.stop();
        last(cx)
    });
    let sooner = note("sooner");
    let remote = reactor.remote();
    let poster = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        let posted = remote.post(move |cx| {
            assert!(cx.cancel_timer(first));
            cx.call_after(Duration::from_millis(150), sooner);
            Ok(())
        });
        assert!(posted.is_ok());
    });
    reactor.run().unwrap();
    poster.join().unwrap();
    let fired = fired.lock().unwrap();
    let names: Vec<&str> = fired.iter().map(|f| f.0).collect();
    assert_eq!(names, ["sooner", "last"]);
    let (sooner_at, last_at) = (fired[0].1 - start, fired[1].1 - start);
    assert!(sooner_at >= Duration::from_millis(300), "{sooner_at:?}");
    assert!(
        sooner_at < Duration::from_millis(900),
        "the alarm was not brought forward: {sooner_at:?}"
    );
    assert!(last_at >= Duration::from_millis(1500), "{last_at:?}");
    let rounds = reactor.stats().rounds;
    assert!(rounds < 20, "{rounds} rounds: the loop spun");
}

/// A periodic timer's deadlines count from the previous deadline: however late each
/// callback runs (here every callback takes 7 ms of a 20 ms period), the n-th tick is due at
/// start + n * period, and the ticks do not drift.
pub fn periodic_timer_does_not_drift<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let period = Duration::from_millis(20);
    let ticks = Rc::new(RefCell::new(Vec::<Instant>::new()));
    let seen = ticks.clone();
    let start = Instant::now();
    let id = reactor.context().call_every(period, move |cx| {
        seen.borrow_mut().push(Instant::now());
        thread::sleep(Duration::from_millis(7));
        if seen.borrow().len() == 10 {
            cx.stop();
        }
        Ok(())
    });
    reactor.run().unwrap();
    let ticks = ticks.borrow();
    for (n, at) in ticks.iter().enumerate() {
        let due = start + period * (n as u32 + 1);
        assert!(*at >= due, "tick {n} came early");
    }
    // Drift would add 7 ms per tick (70 ms over ten); the loop's own lateness is far less.
    let last_due = start + period * 10;
    assert!(
        ticks[9] < last_due + Duration::from_millis(30),
        "tick 10 was {:?} late",
        ticks[9] - last_due
    );
    assert!(reactor.context().cancel_timer(id));
    assert_eq!(reactor.timer_count(), 0);
}

/// A registration's timers go when it closes, not when they come due.
pub fn timers_of_a_closed_registration_are_removed<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let (a, _peer) = pair();
    let token = reactor
        .register(
            a,
            Interest::READABLE,
            |_: &mut UnixStream, _: &mut Context<'_>, _: Event| Ok(()),
        )
        .unwrap();
    let mut cx = reactor.context();
    for i in 1..=5 {
        cx.set_timer_of(token, Duration::from_secs(60 * i)).unwrap();
    }
    reactor.call_after(Duration::from_secs(60), |_| Ok(()));
    assert_eq!(reactor.timer_count(), 6);
    assert!(reactor.close_token(token));
    assert_eq!(reactor.timer_count(), 1, "only the callback timer is left");
}

/// A delay past what an `Instant` can hold means "never": no panic, no early firing.
pub fn a_delay_past_the_end_of_time_does_not_panic<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let id = reactor.call_after(Duration::MAX, |_| panic!("fired"));
    reactor
        .context()
        .call_every(Duration::MAX, |_| panic!("fired"));
    assert!(
        reactor.context().timer_deadline(id).unwrap()
            > Instant::now() + Duration::from_secs(1 << 40)
    );
    assert_eq!(reactor.run_once(Some(Duration::from_millis(5))).unwrap(), 0);
    assert_eq!(reactor.timer_count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Connect, panics, taking sources back, reaching them from outside, shared state.
// ---------------------------------------------------------------------------------------------

/// Records every `connected` call and every event.
struct Connector {
    outcomes: Rc<RefCell<Vec<io::Result<()>>>>,
    events: Rc<AtomicUsize>,
}

impl Handler<std::net::TcpStream> for Connector {
    fn connected(
        &mut self,
        _: &mut std::net::TcpStream,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        assert_eq!(
            self.events.load(Ordering::SeqCst),
            0,
            "connected comes first"
        );
        let failed = result.is_err();
        self.outcomes.borrow_mut().push(result);
        if !failed {
            cx.close();
        }
        Ok(())
    }
    fn ready(
        &mut self,
        _: &mut std::net::TcpStream,
        _: &mut Context<'_>,
        _: Event,
    ) -> io::Result<()> {
        self.events.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A connect's outcome reaches the handler exactly once: Ok for a listening port,
/// ECONNREFUSED for a closed one; the registration is gone afterwards either way.
pub fn connect_outcome_reaches_the_handler_once<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let listener = common::loopback_listener();
    let open = listener.local_addr().unwrap();
    let closed = {
        let l = common::loopback_listener();
        l.local_addr().unwrap()
    };
    for (addr, refused) in [(open, false), (closed, true)] {
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let events = Rc::new(AtomicUsize::new(0));
        let handler = Connector {
            outcomes: outcomes.clone(),
            events: events.clone(),
        };
        reactor
            .context()
            .connect(addr, Interest::READABLE, handler)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !reactor.is_empty() && Instant::now() < deadline {
            reactor.run_once(Some(Duration::from_millis(50))).unwrap();
        }
        assert!(reactor.is_empty(), "the registration closed");
        let outcomes = outcomes.borrow();
        assert_eq!(outcomes.len(), 1, "exactly once");
        match (&outcomes[0], refused) {
            (Ok(()), false) => {}
            (Err(e), true) => common::clients::assert_refused::<S, ()>(
                Err(io::Error::new(e.kind(), e.to_string())),
                "refused",
            ),
            (other, _) => panic!("{addr}: {other:?}"),
        }
        assert_eq!(events.load(Ordering::SeqCst), 0);
    }
    assert_eq!(reactor.stats().handler_errors, 0);
}

/// Regression: a panicking handler unwound out of `run`, its slot stayed `Running` forever
/// (the slab entry leaked, its token kept working), and on poll and select its closed fd
/// stayed registered, reported as an error every round: the loop spun, and a new fd with the
/// same number was refused, which killed the listener of a server. Now a panic is a handler
/// error: the registration is closed and told, and everything else goes on.
pub fn a_panicking_handler_is_closed_and_the_loop_goes_on<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let listener = common::loopback_listener();
    let addr = listener.local_addr().unwrap();
    let served = Rc::new(AtomicUsize::new(0));
    let count = served.clone();
    let acceptor = rawloop::Acceptor::tcp(move |stream, _, cx| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        cx.register(
            stream,
            Interest::READABLE,
            move |s: &mut std::net::TcpStream, cx: &mut Context<'_>, _: Event| {
                if n == 0 {
                    panic!("the first connection's handler panics");
                }
                let mut buf = [0u8; 64];
                match s.read(&mut buf) {
                    Ok(0) => cx.close(),
                    Ok(k) => s.write_all(&buf[..k])?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                Ok(())
            },
        )?;
        Ok(())
    });
    reactor
        .register(listener, Interest::READABLE, acceptor)
        .unwrap();
    let mut first = std::net::TcpStream::connect(addr).unwrap();
    first.write_all(b"boom").unwrap();
    while reactor.stats().handler_panics == 0 {
        reactor.run_once(WAIT).unwrap();
    }
    assert_eq!(reactor.len(), 1, "only the listener is left");
    // No spin: with nothing to do, a round waits its whole timeout.
    let rounds = reactor.stats().rounds;
    let started = Instant::now();
    reactor.run_once(Some(Duration::from_millis(100))).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(reactor.stats().rounds, rounds + 1);
    let mut buf = [0u8; 4];
    assert_eq!(
        first.read(&mut buf).unwrap_or(0),
        0,
        "the panicking connection was closed"
    );
    // 1,000 more connections, one after the other, each echoed.
    for i in 0..1000 {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let msg = format!("{i}");
        c.write_all(msg.as_bytes()).unwrap();
        c.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        while got.len() < msg.len() {
            reactor.run_once(WAIT).unwrap();
            let mut buf = [0u8; 16];
            match c.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, msg.as_bytes());
        drop(c);
        while reactor.len() > 1 {
            reactor.run_once(WAIT).unwrap();
        }
    }
    assert_eq!(reactor.len(), 1, "len() is exact");
    let stats = reactor.stats();
    assert_eq!(
        (stats.handler_panics, stats.handler_errors),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(stats.registered, 1002);
}

/// A panic in a timer callback, a posted closure or a signal-free `closed` is caught too.
pub fn panics_outside_ready_are_caught<S: Selector>() {
    struct PanicsWhenClosed;
    impl Handler<UnixStream> for PanicsWhenClosed {
        fn ready(&mut self, _: &mut UnixStream, cx: &mut Context<'_>, _: Event) -> io::Result<()> {
            cx.close();
            Ok(())
        }
        fn closed(&mut self, _: &mut UnixStream, _: &mut Context<'_>, _: Option<&io::Error>) {
            panic!("closed panics");
        }
    }
    let mut reactor = Reactor::<S>::new().unwrap();
    let (a, mut peer) = pair();
    reactor
        .register(a, Interest::READABLE, PanicsWhenClosed)
        .unwrap();
    peer.write_all(b"x").unwrap();
    reactor.call_after(Duration::ZERO, |_| panic!("timer panics"));
    assert!(reactor
        .remote()
        .post(|_| panic!("posted closure panics"))
        .is_ok());
    for _ in 0..3 {
        reactor.run_once(Some(Duration::from_millis(50))).unwrap();
    }
    assert!(reactor.is_empty());
    assert_eq!(reactor.timer_count(), 0);
}

/// `deregister` hands the source back, open, with nothing left in the reactor; the wrong
/// type or an unknown token changes nothing.
pub fn deregister_gives_the_source_back<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let (a, mut peer) = pair();
    let token = reactor
        .register(
            a,
            Interest::READABLE,
            |_: &mut UnixStream, _: &mut Context<'_>, _: Event| panic!("never called"),
        )
        .unwrap();
    reactor
        .context()
        .set_timer_of(token, Duration::from_secs(60))
        .unwrap();
    let err = reactor
        .deregister::<std::net::TcpStream>(token)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(reactor.len(), 1);
    let mut back: UnixStream = reactor.deregister(token).unwrap();
    assert!(reactor.is_empty());
    assert_eq!(reactor.timer_count(), 0);
    peer.write_all(b"still open").unwrap();
    // Not in the selector any more: a round reports nothing.
    assert_eq!(
        reactor.run_once(Some(Duration::from_millis(20))).unwrap(),
        0
    );
    let mut buf = [0u8; 10];
    back.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still open");
    assert_eq!(
        reactor.deregister::<UnixStream>(token).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

/// A handler of another type than the registration's.
struct PanicsNever;

impl Handler<UnixStream> for PanicsNever {
    fn ready(&mut self, _: &mut UnixStream, _: &mut Context<'_>, _: Event) -> io::Result<()> {
        Ok(())
    }
}

/// An output queue a host program fills from outside the handler.
struct Outbox {
    queued: Vec<u8>,
}

impl Handler<UnixStream> for Outbox {
    fn ready(&mut self, s: &mut UnixStream, cx: &mut Context<'_>, ev: Event) -> io::Result<()> {
        if ev.is_writable() && !self.queued.is_empty() {
            let n = s.write(&self.queued)?;
            self.queued.drain(..n);
        }
        if self.queued.is_empty() {
            cx.set_interest(Interest::READABLE)?;
        }
        Ok(())
    }
}

/// A host program reaches a registered source and its handler from outside: queues bytes
/// and asks for writable, as the handler itself would.
pub fn with_handler_reaches_a_registration_from_outside<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    let (a, mut peer) = pair();
    let token = reactor
        .register(a, Interest::READABLE, Outbox { queued: Vec::new() })
        .unwrap();
    let local = reactor
        .context()
        .with_source(token, |s: &mut UnixStream| s.local_addr().is_ok())
        .unwrap();
    assert!(local);
    reactor
        .context()
        .with_handler(token, |_: &mut UnixStream, h: &mut Outbox, cx| {
            h.queued.extend_from_slice(b"from the host");
            cx.set_interest(Interest::READABLE | Interest::WRITABLE)
        })
        .unwrap();
    reactor.run_once(WAIT).unwrap();
    let mut buf = [0u8; 13];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from the host");
    let wrong = reactor
        .context()
        .with_handler(token, |_: &mut UnixStream, _: &mut PanicsNever, _| Ok(()));
    assert_eq!(wrong.unwrap_err().kind(), io::ErrorKind::InvalidInput);
}

/// One shared state, reached by every handler through its context.
pub fn shared_data_reaches_every_handler<S: Selector>() {
    #[derive(Default)]
    struct Totals {
        bytes: usize,
    }
    let mut reactor = Reactor::<S>::new().unwrap();
    reactor.set_data(Totals::default());
    let mut peers = Vec::new();
    for _ in 0..3 {
        let (a, peer) = pair();
        reactor
            .register(
                a,
                Interest::READABLE,
                |s: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf)?;
                    cx.data::<Totals>().expect("the shared state").bytes += n;
                    Ok(())
                },
            )
            .unwrap();
        peers.push(peer);
    }
    for (i, peer) in peers.iter_mut().enumerate() {
        peer.write_all(&vec![b'x'; i + 1]).unwrap();
    }
    while reactor.data::<Totals>().unwrap().bytes < 6 {
        reactor.run_once(WAIT).unwrap();
    }
    assert_eq!(reactor.data::<Totals>().unwrap().bytes, 6);
    assert!(
        reactor.data::<String>().is_none(),
        "another type is not there"
    );
}

/// 8 threads post 10,000 closures each: every closure runs exactly once, in post order per
/// thread; closures posted after `run` returned run in the next `run_once`; once the
/// reactor is dropped, `post` hands the closure back.
pub fn posted_closures_run_once_in_order_per_thread<S: Selector + 'static>() {
    const THREADS: usize = 8;
    const POSTS: usize = 10_000;
    let mut reactor = Reactor::<S>::new().unwrap();
    reactor.set_data(vec![Vec::<usize>::new(); THREADS]);
    let remote = reactor.remote();
    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let remote = remote.clone();
            thread::spawn(move || {
                for i in 0..POSTS {
                    remote
                        .post(move |cx| {
                            cx.data::<Vec<Vec<usize>>>().unwrap()[t].push(i);
                            Ok(())
                        })
                        .ok()
                        .expect("the reactor is there");
                }
            })
        })
        .collect();
    let stopper = {
        let remote = remote.clone();
        thread::spawn(move || {
            for p in posters {
                p.join().unwrap();
            }
            // Posted last, so everything before it has run when the loop stops.
            remote
                .post(|cx| {
                    cx.stop();
                    Ok(())
                })
                .ok()
                .unwrap();
        })
    };
    reactor.run().unwrap();
    stopper.join().unwrap();
    let seen = reactor.data::<Vec<Vec<usize>>>().unwrap();
    for (t, list) in seen.iter().enumerate() {
        assert_eq!(list.len(), POSTS, "thread {t}");
        assert!(
            list.iter().enumerate().all(|(i, &v)| i == v),
            "thread {t} in order"
        );
    }
    // After the loop stopped: queued, and run by the next round.
    remote
        .post(|cx| {
            cx.data::<Vec<Vec<usize>>>().unwrap()[0].push(usize::MAX);
            Ok(())
        })
        .ok()
        .unwrap();
    reactor.run_once(WAIT).unwrap();
    assert_eq!(
        reactor.data::<Vec<Vec<usize>>>().unwrap()[0].last(),
        Some(&usize::MAX)
    );
    assert_eq!(reactor.stats().posted, (THREADS * POSTS + 2) as u64);
    drop(reactor);
    assert!(remote.post(|_| Ok(())).is_err(), "no reactor, no post");
}

/// A graceful shutdown closes the registrations that do not override `shutdown`, waits for
/// those that finish their work, and cuts the rest when the grace period ends.
pub fn shutdown_waits_for_finishers_and_cuts_the_rest<S: Selector>() {
    struct Finisher {
        stop_after: Option<Duration>,
        closed: Rc<RefCell<Vec<(&'static str, bool)>>>,
        name: &'static str,
    }
    impl Handler<UnixStream> for Finisher {
        fn ready(&mut self, _: &mut UnixStream, _: &mut Context<'_>, _: Event) -> io::Result<()> {
            Ok(())
        }
        fn shutdown(&mut self, _: &mut UnixStream, cx: &mut Context<'_>) -> io::Result<()> {
            if let Some(after) = self.stop_after {
                cx.set_timer(after)?;
            }
            Ok(())
        }
        fn timeout(
            &mut self,
            _: &mut UnixStream,
            cx: &mut Context<'_>,
            _: TimerId,
        ) -> io::Result<()> {
            cx.close();
            Ok(())
        }
        fn closed(&mut self, _: &mut UnixStream, _: &mut Context<'_>, _: Option<&io::Error>) {
            self.closed.borrow_mut().push((self.name, true));
        }
    }
    let mut reactor = Reactor::<S>::new().unwrap();
    let closed = Rc::new(RefCell::new(Vec::new()));
    let mut peers = Vec::new();
    for (name, stop_after) in [
        ("finishes in 30 ms", Some(Duration::from_millis(30))),
        ("never finishes", None),
    ] {
        let (a, peer) = pair();
        let handler = Finisher {
            stop_after,
            closed: closed.clone(),
            name,
        };
        reactor.register(a, Interest::READABLE, handler).unwrap();
        peers.push(peer);
    }
    let (idle, _idle_peer) = pair();
    reactor
        .register(
            idle,
            Interest::READABLE,
            |_: &mut UnixStream, _: &mut Context<'_>, _: Event| Ok(()),
        )
        .unwrap();
    reactor.shutdown(Duration::from_millis(200));
    let started = Instant::now();
    reactor.run().unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(reactor.is_empty());
    assert_eq!(
        *closed.borrow(),
        [("finishes in 30 ms", true), ("never finishes", true)]
    );
    assert_eq!(reactor.stats().cut_at_shutdown, 1);
    assert!(!reactor.is_shutting_down(), "done, and ready to run again");
}

/// Counts how the reactor takes fds out of a selector.
struct CountingRemovals<S> {
    inner: S,
    deregistered: Rc<RefCell<(usize, usize)>>,
}

impl<S: Selector> Selector for CountingRemovals<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn new() -> io::Result<Self> {
        Ok(CountingRemovals {
            inner: S::new()?,
            deregistered: Rc::default(),
        })
    }
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.register(fd, token, interest)
    }
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.reregister(fd, token, interest)
    }
    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.deregistered.borrow_mut().0 += 1;
        self.inner.deregister(fd)
    }
    fn deregister_before_close(&mut self, fd: RawFd) -> io::Result<()> {
        self.deregistered.borrow_mut().1 += 1;
        self.inner.deregister_before_close(fd)
    }
    fn select(
        &mut self,
        events: &mut rawloop::Events,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.inner.select(events, timeout)
    }
}

/// With exclusive fds a closing registration goes through `deregister_before_close` (no
/// syscall on epoll and kqueue), and the fd numbers it frees are registered again at once,
/// round after round, without an "already registered" error: the kernel and the selector
/// have both forgotten them. Without, it is deregistered as before.
pub fn exclusive_fds_close_without_deregistering<S: Selector>() {
    for exclusive in [true, false] {
        let selector = CountingRemovals {
            inner: S::new().unwrap(),
            deregistered: Rc::default(),
        };
        let counts = selector.deregistered.clone();
        let mut reactor = Reactor::with_selector(selector).unwrap();
        reactor.set_exclusive_fds(exclusive);
        let mut fds = std::collections::BTreeSet::new();
        for i in 0..200u8 {
            let (source, mut peer) = pair();
            fds.insert(source.as_raw_fd());
            peer.write_all(&[i]).unwrap();
            let read = Rc::new(RefCell::new(None));
            let got = read.clone();
            reactor
                .register(
                    source,
                    Interest::READABLE,
                    move |s: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
                        let mut byte = [0u8; 1];
                        *got.borrow_mut() = Some(s.read(&mut byte).map(|_| byte[0]).ok());
                        cx.close();
                        Ok(())
                    },
                )
                .unwrap();
            while !reactor.is_empty() {
                reactor.run_once(WAIT).unwrap();
            }
            assert_eq!(*read.borrow(), Some(Some(i)), "registration {i}");
        }
        // (Other tests of this process open fds meanwhile, so not every number comes back.)
        assert!(fds.len() < 100, "the freed fd numbers were reused: {fds:?}");
        let expected = if exclusive { (0, 200) } else { (200, 0) };
        assert_eq!(*counts.borrow(), expected, "exclusive: {exclusive}");
    }
}

common::per_backend!(
    exclusive_fds_close_without_deregistering,
    event_of_source_closed_this_round_is_not_delivered,
    handler_error_closes_only_its_source,
    timers_fire_in_order_and_not_early,
    registration_timer_reaches_only_its_registration,
    waker_stops_the_loop_from_another_thread,
    repeated_wakes_each_wake_a_blocked_loop,
    stop_from_a_handler_returns_from_run,
    paused_registration_hears_nothing_until_resumed,
    dropping_the_reactor_closes_every_source,
    stale_token_never_reaches_the_newcomer_in_its_slot,
    timers_at_an_instant_rescheduled_and_reset,
    periodic_timer_does_not_drift,
    long_timers_fire_on_time_when_an_alarm_ends_the_wait,
    timers_of_a_closed_registration_are_removed,
    a_delay_past_the_end_of_time_does_not_panic,
    connect_outcome_reaches_the_handler_once,
    a_panicking_handler_is_closed_and_the_loop_goes_on,
    panics_outside_ready_are_caught,
    deregister_gives_the_source_back,
    with_handler_reaches_a_registration_from_outside,
    shared_data_reaches_every_handler,
    posted_closures_run_once_in_order_per_thread,
    shutdown_waits_for_finishers_and_cuts_the_rest,
);
