//! The Reactor's contract, checked once per backend compiled on this machine.

mod common;

use std::cell::RefCell;
use std::io::{self, Read, Write};
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
    fn closed(&mut self, _: &mut UnixStream, error: Option<&io::Error>) {
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

macro_rules! reactor_suite {
    ($backend:ident, $ty:ty) => {
        mod $backend {
            reactor_suite!(@tests $ty;
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
            );
        }
    };
    (@tests $ty:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name::<$ty>();
            }
        )*
    };
}

reactor_suite!(select, rawloop::Select);
reactor_suite!(poll, rawloop::Poll);
#[cfg(rawloop_epoll)]
reactor_suite!(epoll, rawloop::Epoll);
#[cfg(rawloop_kqueue)]
reactor_suite!(kqueue, rawloop::Kqueue);
