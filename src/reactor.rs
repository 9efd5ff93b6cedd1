//! The reactor: registered sources with their handlers, timers, signals, work posted from
//! other threads, and the loop that runs them.
//!
//! Each registration owns its source (a socket, a pipe, anything with a raw fd) and a
//! [`Handler`]: a closure (callback style) or a value with state (state-machine style). The
//! slab key of the registration is the low part of its [`Token`].
//!
//! One round of the loop ([`Reactor::run_once`]) waits for readiness or the next timer,
//! calls the handler of every ready source, then fires the timers that are due. A handler
//! that returns an error, or panics, has its source closed and the error logged; the loop
//! goes on with the others. A registration closed during a round keeps its slab slot until
//! the round ends, so a later event of that round for the old token is dropped rather than
//! delivered to a newcomer that reused the slot or the fd number.
//!
//! On Linux a wait for a timer 100 ms away or more passes no timeout: a timerfd registered
//! with the selector (one more fd, made at the first such wait) rings at the deadline
//! instead. That spares the kernel arming and cancelling a timer of its own each time I/O
//! ends the wait first, which a server with a request timeout per connection would
//! otherwise pay on every wait.
//!
//! # Threads
//!
//! A `Reactor` lives on the thread that made it: handlers are not `Send` (they may hold
//! `Rc`s), so neither is the reactor. What crosses threads is the [`Waker`] (wake or stop
//! the loop) and the [`Remote`] (post a `Send` closure to run inside the loop); both are
//! `Send + Sync + Clone`. To use every core, run one reactor per thread.
//!
//! # Blocking mode
//!
//! The reactor never changes an fd's blocking mode: a source must already be non-blocking
//! when it is registered, or a handler's read may stall the whole loop. Every socket
//! [`net`](crate::net) makes is non-blocking; for an fd made elsewhere (stdin, a pipe, a std
//! socket) call [`net::set_nonblocking`](crate::net::set_nonblocking) first, knowing that
//! for a terminal or a pipe shared with other processes that changes it for them too.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use slab::Slab;

use crate::alarm::{Alarm, ALARM_AFTER};
use crate::diag::warn_limited;
use crate::handler::{catch, Panicked, Registered};
use crate::remote::{Job, PostQueue};
use crate::selector::{Event, Events, Interest, Selector, Token};
use crate::signals::SignalSource;
use crate::timers::{Fired, TimerId, Timers};
use crate::waker::{WakeSource, Waker};
use crate::{Context, DefaultSelector, Handler, Remote};

/// A token holds the slab key in its low bits and the registration's serial above them,
/// so a token kept after its registration closed never names a newcomer in the same slot.
const KEY_BITS: u32 = if usize::BITS >= 64 { 32 } else { 24 };
pub(crate) const KEY_MASK: usize = (1 << KEY_BITS) - 1;

/// The size of the read buffer handlers borrow with [`Context::read_buffer`].
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

/// The waker's token, the signal source's and the alarm's; their key parts are ones no
/// registration gets.
const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const ALARM: Token = Token(usize::MAX - 2);

pub(crate) fn token_of(key: usize, serial: u32) -> Token {
    Token(key | ((serial as usize) << KEY_BITS))
}

/// One registration in the slab, kept to 24 bytes (32 with the slab's own tag) so that an
/// idle connection costs little: the handler's box, the fd, and the serial and flags packed
/// in one word.
pub(crate) struct Slot {
    /// The handler while it waits for events; `None` while it runs, and once closed.
    reg: Option<Box<dyn Registered>>,
    pub(crate) fd: RawFd,
    /// The serial in the low 24 bits (what distinguishes this registration from earlier
    /// ones in the same slot), the flags above.
    bits: u32,
}

const SERIAL_BITS: u32 = 24;
pub(crate) const SERIAL_MASK: u32 = (1 << SERIAL_BITS) - 1;
/// The interest, two bits.
const INTEREST_SHIFT: u32 = 24;
/// A connect is in progress; the interest to take once it ends is two bits above.
const CONNECTING: u32 = 1 << 26;
const THEN_SHIFT: u32 = 27;
/// A handler asked, while this registration's handler ran, for it to close.
const CLOSE_REQUESTED: u32 = 1 << 29;
/// Closed this round; the slot is freed when the round ends.
const CLOSED: u32 = 1 << 30;

fn interest_bits(interest: Interest, shift: u32) -> u32 {
    u32::from(interest.bits()) << shift
}

fn interest_at(bits: u32, shift: u32) -> Interest {
    Interest::from_bits_truncate(((bits >> shift) & 0b11) as u8)
}

impl Slot {
    /// A registration whose handler is running (its `registered` hook is about to).
    pub(crate) fn new(
        fd: RawFd,
        serial: u32,
        interest: Interest,
        connecting: Option<Interest>,
    ) -> Slot {
        let mut slot = Slot {
            reg: None,
            fd,
            bits: (serial & SERIAL_MASK) | interest_bits(interest, INTEREST_SHIFT),
        };
        slot.set_connecting(connecting);
        slot
    }

    pub(crate) fn serial(&self) -> u32 {
        self.bits & SERIAL_MASK
    }

    pub(crate) fn interest(&self) -> Interest {
        interest_at(self.bits, INTEREST_SHIFT)
    }

    pub(crate) fn set_interest(&mut self, interest: Interest) {
        self.bits =
            (self.bits & !(0b11 << INTEREST_SHIFT)) | interest_bits(interest, INTEREST_SHIFT);
    }

    /// While a connect is in progress: the interest to take once it has ended.
    pub(crate) fn connecting(&self) -> Option<Interest> {
        (self.bits & CONNECTING != 0).then(|| interest_at(self.bits, THEN_SHIFT))
    }

    pub(crate) fn set_connecting(&mut self, then: Option<Interest>) {
        self.bits &= !(CONNECTING | (0b11 << THEN_SHIFT));
        if let Some(then) = then {
            self.bits |= CONNECTING | interest_bits(then, THEN_SHIFT);
        }
    }

    pub(crate) fn close_requested(&self) -> bool {
        self.bits & CLOSE_REQUESTED != 0
    }

    pub(crate) fn request_close(&mut self) {
        self.bits |= CLOSE_REQUESTED;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.bits & CLOSED != 0
    }

    /// The handler of an idle registration.
    pub(crate) fn idle(&mut self) -> Option<&mut Box<dyn Registered>> {
        self.reg.as_mut()
    }

    /// Takes the handler out to run it (the registration is then running).
    pub(crate) fn take(&mut self) -> Option<Box<dyn Registered>> {
        self.reg.take()
    }

    /// Puts a handler back after it ran.
    pub(crate) fn put(&mut self, reg: Box<dyn Registered>) {
        self.reg = Some(reg);
    }

    /// Marks the registration closed; returns its handler if it was idle.
    pub(crate) fn mark_closed(&mut self) -> Option<Box<dyn Registered>> {
        self.bits |= CLOSED;
        self.reg.take()
    }
}

/// A timer callback; one-shot callbacks are wrapped to run once.
pub(crate) type Callback = Box<dyn FnMut(&mut Context<'_>) -> io::Result<()>>;

/// What a signal runs.
pub(crate) type SignalHandler = Box<dyn FnMut(&mut Context<'_>, Signal) -> io::Result<()>>;

pub(crate) enum TimerTarget {
    /// Calls the owning registration's [`Handler::timeout`].
    Handler,
    Callback(Callback),
    /// A periodic callback taken out while it runs.
    Running,
}

/// Where a graceful shutdown stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Shutdown {
    No,
    /// Asked for this round; begins when the round ends.
    Requested(Duration),
    /// Registrations are finishing; `cut` closes what is left when the grace period ends.
    Draining {
        cut: TimerId,
    },
}

/// Everything but the selector: kept apart so that a [`Context`] can borrow both.
pub(crate) struct Core {
    pub(crate) slots: Slab<Slot>,
    pub(crate) timers: Timers<TimerTarget>,
    /// Slots closed this round, freed when it ends.
    pub(crate) closed: Vec<usize>,
    pub(crate) next_serial: u32,
    pub(crate) stop: bool,
    pub(crate) shutdown: Shutdown,
    pub(crate) stats: Stats,
    /// Lent to handlers for their reads; allocated at the first use.
    pub(crate) read_buffer: Vec<u8>,
    pub(crate) signals: Option<SignalSource>,
    pub(crate) signal_handlers: Vec<(Signal, SignalHandler)>,
    pub(crate) posted: Arc<PostQueue>,
    pub(crate) data: Option<Box<dyn Any>>,
    /// When the last wait ended: the round's clock, read at most once per round, and only
    /// when something asks (a timer, an idle timeout), so that a round with neither costs
    /// no clock read.
    pub(crate) now: Cell<Option<Instant>>,
    /// Each source owns its fd alone (see [`Reactor::set_exclusive_fds`]).
    pub(crate) exclusive_fds: bool,
}

/// Counters of what a reactor has done since it was made, for measuring (e.g. how many
/// waits each message costs).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Rounds run, each one wait in the selector.
    pub rounds: u64,
    /// Events the selector reported (the waker's and the signals' included).
    pub events: u64,
    /// Handler calls for readiness.
    pub dispatched: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Registrations made.
    pub registered: u64,
    /// Registrations closed.
    pub closed: u64,
    /// Registrations closed because their handler returned an error or panicked (counted in
    /// `closed` too); each is also logged.
    pub handler_errors: u64,
    /// Of `handler_errors`, the panics.
    pub handler_panics: u64,
    /// Closures posted through a [`Remote`] that ran.
    pub posted: u64,
    /// Signals handled.
    pub signals: u64,
    /// Registrations still open when a graceful shutdown's grace period ended, closed then.
    pub cut_at_shutdown: u64,
}

/// An event loop over selector `S` (the build's [`DefaultSelector`] unless named).
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use rawloop::{Context, Event, Interest, Reactor};
///
/// let mut reactor: Reactor = Reactor::new()?;
/// let (ours, mut theirs) = rawloop::net::socketpair()?;
/// reactor.register(ours, Interest::READABLE, |s: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
///     let mut buf = [0u8; 64];
///     let n = s.read(&mut buf)?;
///     s.write_all(&buf[..n])?;
///     cx.close();
///     Ok(())
/// })?;
/// theirs.write_all(b"hello")?;
/// reactor.run_once(None)?;
/// rawloop::net::set_nonblocking(&theirs, false)?;
/// let mut echoed = [0u8; 5];
/// theirs.read_exact(&mut echoed)?;
/// assert_eq!(&echoed, b"hello");
/// assert!(reactor.is_empty(), "the handler closed itself");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reactor<S: Selector = DefaultSelector> {
    // Field order is drop order: the selector goes before the fds registered with it.
    selector: S,
    events: Events,
    core: Core,
    waker: WakeSource,
    alarm: AlarmState,
    /// The batch of posted jobs being run; kept to reuse its allocation.
    batch: VecDeque<Job>,
    /// The signals of the current round.
    arrived: Vec<Signal>,
}

impl<S: Selector> Reactor<S> {
    /// A reactor on a new selector, with room for 1,024 events per round.
    pub fn new() -> io::Result<Reactor<S>> {
        Reactor::with_selector(S::new()?)
    }

    /// A reactor on a selector made by the caller.
    pub fn with_selector(mut selector: S) -> io::Result<Reactor<S>> {
        let waker = selector.new_waker(WAKER)?;
        Ok(Reactor {
            selector,
            events: Events::with_capacity(1024),
            core: Core {
                slots: Slab::new(),
                timers: Timers::new(),
                closed: Vec::new(),
                next_serial: 0,
                stop: false,
                shutdown: Shutdown::No,
                stats: Stats::default(),
                read_buffer: Vec::new(),
                signals: None,
                signal_handlers: Vec::new(),
                posted: Arc::new(PostQueue::new()),
                data: None,
                now: Cell::new(None),
                exclusive_fds: false,
            },
            waker,
            alarm: AlarmState::NotYet,
            batch: VecDeque::new(),
            arrived: Vec::new(),
        })
    }

    /// The selector's backend name.
    pub fn backend(&self) -> &'static str {
        self.selector.name()
    }

    /// Promises that each registered source owns its fd alone: dropping the source closes
    /// the fd, and no other descriptor (a `dup`, a `try_clone`, a child's copy across `fork`)
    /// refers to the same open file while it is registered. Closing a registration then
    /// skips the deregistering syscall where the kernel forgets an fd as it closes (epoll;
    /// kqueue on the BSDs and macOS): one `epoll_ctl` less per connection, which is what a
    /// server that closes a connection after each request notices. Off by default.
    ///
    /// A promise broken leaves the open file in the kernel's set after the registration is
    /// gone: its events are then ignored, but a level-triggered one wakes every wait for as
    /// long as the file stays open and readable. [`Context::deregister`], which hands the
    /// source back, always deregisters.
    pub fn set_exclusive_fds(&mut self, on: bool) {
        self.core.exclusive_fds = on;
    }

    /// The context handlers get, here outside any handler: everything a handler can do to
    /// the reactor ([`Context::register`], timers, signals, shutdown, …) is reachable
    /// through it. Methods about "the running handler's own registration" fail or do nothing.
    pub fn context(&mut self) -> Context<'_> {
        Context {
            selector: &mut self.selector,
            core: &mut self.core,
            current: None,
        }
    }

    /// Registers `source` with `interest` and `handler`; see [`Context::register`].
    pub fn register<Src, H>(
        &mut self,
        source: Src,
        interest: Interest,
        handler: H,
    ) -> io::Result<Token>
    where
        Src: AsRawFd + 'static,
        H: Handler<Src>,
    {
        self.context().register(source, interest, handler)
    }

    /// Closes a registration; see [`Context::close_token`].
    pub fn close_token(&mut self, token: Token) -> bool {
        let closed = self.context().close_token(token);
        self.core.free_closed();
        closed
    }

    /// Takes a registration's source back out; see [`Context::deregister`].
    pub fn deregister<Src: 'static>(&mut self, token: Token) -> io::Result<Src> {
        let source = self.context().deregister(token);
        self.core.free_closed();
        source
    }

    /// Runs `callback` once, `delay` from now; see [`Context::call_after`].
    pub fn call_after<F>(&mut self, delay: Duration, callback: F) -> TimerId
    where
        F: FnOnce(&mut Context<'_>) -> io::Result<()> + 'static,
    {
        self.context().call_after(delay, callback)
    }

    /// Cancels a timer; see [`Context::cancel_timer`].
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.context().cancel_timer(timer)
    }

    /// Runs `handler` in the loop each time `signal` arrives; see [`Context::on_signal`].
    pub fn on_signal<F>(&mut self, signal: Signal, handler: F) -> io::Result<()>
    where
        F: FnMut(&mut Context<'_>, Signal) -> io::Result<()> + 'static,
    {
        self.context().on_signal(signal, handler)
    }

    /// The usual way for a server to stop: the first SIGINT or SIGTERM begins a graceful
    /// shutdown with `grace` ([`Context::shutdown`]), a second one stops the loop at once.
    pub fn shutdown_on_signals(&mut self, grace: Duration) -> io::Result<()> {
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            self.on_signal(signal, move |cx, signal| {
                if cx.is_shutting_down() {
                    log::warn!(
                        "{signal} again: stopping now, {} registrations cut",
                        cx.registrations()
                    );
                    cx.stop();
                } else {
                    log::info!(
                        "{signal}: shutting down, {} registrations have {grace:?} to finish",
                        cx.registrations()
                    );
                    cx.shutdown(grace);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Begins a graceful shutdown; see [`Context::shutdown`].
    pub fn shutdown(&mut self, grace: Duration) {
        self.context().shutdown(grace)
    }

    /// Makes `data` the reactor's shared state, reachable from every handler through
    /// [`Context::data`]; returns the state it replaces, if it had the same type.
    pub fn set_data<T: 'static>(&mut self, data: T) -> Option<T> {
        let old = self.core.data.replace(Box::new(data))?;
        old.downcast().ok().map(|b| *b)
    }

    /// The shared state set with [`set_data`](Reactor::set_data), if it is a `T`.
    pub fn data<T: 'static>(&mut self) -> Option<&mut T> {
        self.core.data.as_mut()?.downcast_mut()
    }

    /// A handle that wakes or stops this reactor from any thread.
    pub fn waker(&self) -> Waker {
        self.waker.waker()
    }

    /// A handle that posts closures to this reactor from any thread.
    pub fn remote(&self) -> Remote {
        Remote {
            queue: self.core.posted.clone(),
            waker: self.waker.waker(),
        }
    }

    /// Makes [`run`](Reactor::run) return after the current round.
    pub fn stop(&mut self) {
        self.core.stop = true;
    }

    /// Whether a stop was asked for ([`Context::stop`], [`Reactor::stop`], [`Waker::stop`],
    /// or the end of a graceful shutdown) and not yet consumed by [`run`](Reactor::run)
    /// returning. A host that drives [`run_once`](Reactor::run_once) itself checks this after
    /// each round.
    pub fn stop_requested(&self) -> bool {
        self.core.stop
    }

    /// Whether a graceful shutdown is under way.
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutdown != Shutdown::No
    }

    /// How many sources are registered.
    pub fn len(&self) -> usize {
        self.core.slots.len()
    }

    /// Whether no source is registered.
    pub fn is_empty(&self) -> bool {
        self.core.slots.is_empty()
    }

    /// What the reactor has done so far.
    pub fn stats(&self) -> Stats {
        self.core.stats
    }

    /// How many timers are pending.
    pub fn timer_count(&self) -> usize {
        self.core.timers.len()
    }

    /// The fd of the kernel object this reactor waits on, for a host loop that nests the
    /// reactor: the fd is readable whenever a round has something to do (a ready source, a
    /// wake-up, a signal, posted work). `None` for select and poll, which wait on no fd of
    /// their own, and for kqueue on libkqueue, whose fd cannot be watched.
    ///
    /// The host watches this fd and [`next_deadline`](Reactor::next_deadline), and calls
    /// `run_once(Some(Duration::ZERO))` when either says so: that runs the reactor
    /// completely. Level-triggered: a round that left work (a handler that did not drain its
    /// socket) leaves the fd readable.
    pub fn readiness_fd(&self) -> Option<BorrowedFd<'_>> {
        let fd = self.selector.readiness_fd()?;
        // SAFETY: the fd belongs to the selector, which lives as long as the borrow of self.
        Some(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// When the reactor next has work that no fd will announce: the earliest pending timer,
    /// or now if a shutdown was asked for outside a round. A host that nests the reactor
    /// calls [`run_once`](Reactor::run_once) by then.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.core.shutdown {
            Shutdown::Requested(_) => Some(Instant::now()),
            _ => self.core.timers.next_deadline(),
        }
    }

    /// Runs rounds that do not wait, until one finds nothing ready (`Ok(true)`: the
    /// readiness fd is quiet now) or `max_rounds` have run (`Ok(false)`: there is more to do
    /// now; call again after the host has served its own work). A stop request ends it early
    /// with `Ok(true)`.
    ///
    /// This is what a host that nests the reactor calls when
    /// [`readiness_fd`](Reactor::readiness_fd) is readable or
    /// [`next_deadline`](Reactor::next_deadline) has passed. Hosts that watch the fd
    /// edge-triggered (tokio, mio) must only consider it quiet after `Ok(true)`: a handler
    /// that leaves data unread keeps its source ready without a new edge.
    pub fn run_pending(&mut self, max_rounds: usize) -> io::Result<bool> {
        for _ in 0..max_rounds {
            let events = self.core.stats.events;
            self.run_once(Some(Duration::ZERO))?;
            if self.core.stats.events == events || self.core.stop {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs rounds until a handler calls [`Context::stop`], [`Reactor::stop`] is called, a
    /// [`Waker::stop`] arrives, or a graceful shutdown completes. Returns early only on an
    /// error of the selector itself.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.core.stop {
            self.run_once(None)?;
        }
        self.core.stop = false;
        if self.core.slots.is_empty() {
            self.core.shutdown = Shutdown::No;
        }
        Ok(())
    }

    /// Runs one round: waits for readiness at most `timeout` (less if a timer is due
    /// sooner), runs the handlers of the ready sources, posted closures and signal handlers,
    /// then the timers that are due. Returns how many handlers, closures and timers ran.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = match self.next_deadline() {
            Some(deadline) => {
                let until = deadline.saturating_duration_since(Instant::now());
                if timeout.is_none() && until >= ALARM_AFTER && self.alarm_rings_by(deadline, until)
                {
                    None
                } else {
                    Some(timeout.map_or(until, |t| t.min(until)))
                }
            }
            None => timeout,
        };
        self.selector.select(&mut self.events, timeout)?;
        self.core.now.set(None);
        self.core.stats.rounds += 1;
        self.core.stats.events += self.events.len() as u64;
        let mut ran = 0;
        let mut dispatched = 0;
        for event in self.events.iter() {
            let mut cx = Context {
                selector: &mut self.selector,
                core: &mut self.core,
                current: None,
            };
            match event.token() {
                WAKER => {
                    if self.waker.reset()? {
                        cx.core.stop = true;
                    }
                    ran += cx.run_posted(&mut self.batch);
                }
                SIGNALS => ran += cx.run_signals(&mut self.arrived),
                ALARM => {
                    if let AlarmState::Ready(alarm) = &mut self.alarm {
                        if let Err(e) = alarm.rang() {
                            warn_limited!("reading the alarm's timerfd: {e}");
                        }
                    }
                }
                token => {
                    if let Some(key) = cx.core.live_key(token) {
                        if cx.ready(key, *event) {
                            dispatched += 1;
                        }
                    }
                }
            }
        }
        self.core.stats.dispatched += dispatched as u64;
        let mut cx = self.context();
        let fired = if cx.core.timers.len() == 0 {
            0
        } else {
            cx.fire_timers(cx.core.now())
        };
        cx.core.stats.timers_fired += fired as u64;
        cx.end_round();
        Ok(ran + dispatched + fired)
    }

    /// Makes the alarm (see `alarm.rs`) ring by `deadline`, `until` from now, so that the
    /// wait can go without a timeout; `false` where there is no alarm, and the wait keeps
    /// its timeout.
    fn alarm_rings_by(&mut self, deadline: Instant, until: Duration) -> bool {
        if let AlarmState::NotYet = self.alarm {
            let made = Alarm::new().and_then(|alarm| match alarm {
                Some(alarm) => self
                    .selector
                    .register(alarm.fd().as_raw_fd(), ALARM, Interest::READABLE)
                    .map(|()| AlarmState::Ready(alarm)),
                None => Ok(AlarmState::None),
            });
            self.alarm = made.unwrap_or_else(|e| {
                log::debug!("no alarm ({e}): long waits keep their timeout");
                AlarmState::None
            });
        }
        let AlarmState::Ready(alarm) = &mut self.alarm else {
            return false;
        };
        match alarm.ring_by(deadline, until) {
            Ok(()) => true,
            Err(e) => {
                warn_limited!("arming the alarm's timerfd: {e}");
                false
            }
        }
    }
}

/// The alarm, made at the first wait that can use it.
#[derive(Debug)]
enum AlarmState {
    NotYet,
    Ready(Alarm),
    /// None on this system, or it could not be made (no fd left, say).
    None,
}

impl<S: Selector> Drop for Reactor<S> {
    fn drop(&mut self) {
        self.core.posted.close();
        let keys: Vec<usize> = self.core.slots.iter().map(|(key, _)| key).collect();
        let mut cx = self.context();
        for key in keys {
            cx.close_key(key);
        }
        if let Some(signals) = self.core.signals.take() {
            let _ = self.selector.deregister(signals.fd());
        }
    }
}

impl<S: Selector> fmt::Debug for Reactor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("backend", &self.selector.name())
            .field("sources", &self.core.slots.len())
            .field("timers", &self.core.timers.len())
            .finish()
    }
}

impl Core {
    /// The round's clock (see [`Context::now`]).
    pub(crate) fn now(&self) -> Instant {
        match self.now.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                self.now.set(Some(now));
                now
            }
        }
    }

    /// The slab key of the open registration `token` names, if it is still open.
    pub(crate) fn live_key(&self, token: Token) -> Option<usize> {
        let key = token.0 & KEY_MASK;
        let slot = self.slots.get(key)?;
        (!slot.is_closed() && token_of(key, slot.serial()) == token).then_some(key)
    }

    pub(crate) fn free_closed(&mut self) {
        for key in self.closed.drain(..) {
            self.slots.remove(key);
        }
    }
}

impl Context<'_> {
    /// Dispatches a readiness event to registration `key`; for a connecting socket, the
    /// event ends the connect and the handler hears of it through `connected` instead.
    fn ready(&mut self, key: usize, event: Event) -> bool {
        let slot = &self.core.slots[key];
        let Some(then) = slot.connecting() else {
            return self.dispatch(key, |reg, cx| reg.ready(cx, event));
        };
        let Some(result) = connect_outcome(slot.fd, event) else {
            return false;
        };
        self.dispatch(key, |reg, cx| {
            cx.core.slots[key].set_connecting(None);
            let result = result.and_then(|()| cx.set_interest(then));
            if result.is_err() {
                cx.close();
            }
            reg.connected(cx, result)
        })
    }

    /// Runs `call` on registration `key` with its handler taken out of the slab, then puts
    /// it back, or closes it if the handler failed, panicked or asked to be closed. Returns
    /// whether the handler ran (it does not for a slot closed earlier in the round).
    pub(crate) fn dispatch(
        &mut self,
        key: usize,
        call: impl FnOnce(&mut dyn Registered, &mut Context<'_>) -> io::Result<()>,
    ) -> bool {
        let Some(mut reg) = self.core.slots.get_mut(key).and_then(Slot::take) else {
            return false;
        };
        let saved = self.current.replace(key);
        let result = catch(|| call(reg.as_mut(), self));
        self.current = saved;
        self.settle(key, reg, result);
        true
    }

    /// Puts a handler back after a call, or closes its registration.
    pub(crate) fn settle(&mut self, key: usize, reg: Box<dyn Registered>, result: io::Result<()>) {
        let slot = &mut self.core.slots[key];
        match result {
            Err(e) => {
                self.core.stats.handler_errors += 1;
                if Panicked::is(&e) {
                    self.core.stats.handler_panics += 1;
                    log::error!("closing registration {key} (fd {}): {e}", slot.fd);
                } else {
                    warn_limited!("closing registration {key} (fd {}): {e}", slot.fd);
                }
                self.finish(key, reg, Some(&e));
            }
            Ok(()) if slot.close_requested() => self.finish(key, reg, None),
            Ok(()) => slot.put(reg),
        }
    }

    /// Ends registration `key`, whose handler is `reg`: deregister, drop its timers, tell,
    /// drop.
    pub(crate) fn finish(
        &mut self,
        key: usize,
        mut reg: Box<dyn Registered>,
        error: Option<&io::Error>,
    ) {
        let slot = &mut self.core.slots[key];
        slot.mark_closed();
        if !slot.interest().is_empty() {
            let done = if self.core.exclusive_fds {
                self.selector.deregister_before_close(slot.fd)
            } else {
                self.selector.deregister(slot.fd)
            };
            if let Err(e) = done {
                log::warn!("deregistering fd {} of registration {key}: {e}", slot.fd);
            }
        }
        self.core.timers.remove_owned_by(key);
        let saved = self.current.take();
        let told = catch(|| {
            reg.closed(self, error);
            drop(reg);
            Ok(())
        });
        self.current = saved;
        if let Err(e) = told {
            log::error!("registration {key} while closing: {e}");
        }
        self.core.closed.push(key);
        self.core.stats.closed += 1;
    }

    /// Closes registration `key` now if its handler is not running, else when it returns.
    pub(crate) fn close_key(&mut self, key: usize) -> bool {
        let slot = &mut self.core.slots[key];
        if slot.is_closed() {
            return false;
        }
        match slot.take() {
            Some(reg) => self.finish(key, reg, None),
            None => slot.request_close(),
        }
        true
    }

    /// Runs the closures posted through [`Remote`]s; returns how many ran.
    fn run_posted(&mut self, batch: &mut VecDeque<Job>) -> usize {
        self.core.posted.take(batch);
        let ran = batch.len();
        for job in batch.drain(..) {
            if let Err(e) = catch(|| job(self)) {
                log::warn!("posted closure failed: {e}");
            }
        }
        self.core.stats.posted += ran as u64;
        ran
    }

    /// Runs the handlers of the signals that arrived; returns how many ran.
    fn run_signals(&mut self, arrived: &mut Vec<Signal>) -> usize {
        arrived.clear();
        if let Some(signals) = self.core.signals.as_mut() {
            if let Err(e) = signals.drain(arrived) {
                log::warn!("reading signals: {e}");
            }
        }
        let mut ran = 0;
        for &signal in arrived.iter() {
            let Some(i) = self
                .core
                .signal_handlers
                .iter()
                .position(|(s, _)| *s == signal)
            else {
                continue;
            };
            let (_, mut handler) = self.core.signal_handlers.swap_remove(i);
            if let Err(e) = catch(|| handler(self, signal)) {
                log::warn!("the handler of {signal} failed: {e}");
            }
            let still_watched = self
                .core
                .signals
                .as_ref()
                .is_some_and(|s| s.watches(signal));
            let replaced = self.core.signal_handlers.iter().any(|(s, _)| *s == signal);
            if still_watched && !replaced {
                self.core.signal_handlers.push((signal, handler));
            }
            ran += 1;
        }
        self.core.stats.signals += ran as u64;
        ran
    }

    /// Fires the timers due at `now`, earliest first; returns how many ran. A timer set
    /// while they run, already due, waits for the next round, so a timer that keeps setting
    /// itself with no delay cannot hold the loop in one round.
    fn fire_timers(&mut self, now: Instant) -> usize {
        let mut ran = 0;
        for _ in 0..self.core.timers.len() {
            let Some(Fired { id, owner, taken }) = self.core.timers.pop_expired(now) else {
                break;
            };
            match (owner, taken) {
                (Some(key), _) => {
                    self.dispatch(key, |reg, cx| reg.timeout(cx, id));
                }
                (None, Some(TimerTarget::Callback(mut callback))) => {
                    self.run_callback(&mut callback);
                }
                (None, None) => {
                    let Some(target) = self.core.timers.target_mut(id) else {
                        continue;
                    };
                    if let TimerTarget::Callback(mut callback) =
                        std::mem::replace(target, TimerTarget::Running)
                    {
                        if !self.run_callback(&mut callback) {
                            self.core.timers.cancel(id);
                        } else if let Some(target) = self.core.timers.target_mut(id) {
                            *target = TimerTarget::Callback(callback);
                        }
                    }
                }
                (None, Some(_)) => {}
            }
            ran += 1;
        }
        ran
    }

    /// Runs a timer callback with no current registration; returns false if it failed.
    fn run_callback(&mut self, callback: &mut Callback) -> bool {
        let saved = self.current.take();
        let result = catch(|| callback(self));
        self.current = saved;
        match result {
            Ok(()) => true,
            Err(e) => {
                log::warn!("timer callback failed: {e}");
                false
            }
        }
    }

    /// End of a round: begins a requested shutdown, notices a finished one, frees the slots
    /// closed this round.
    fn end_round(&mut self) {
        if let Shutdown::Requested(grace) = self.core.shutdown {
            self.begin_shutdown(grace);
        }
        self.core.free_closed();
        if let Shutdown::Draining { cut } = self.core.shutdown {
            if self.core.slots.is_empty() {
                self.core.timers.cancel(cut);
                log::info!("shutdown complete: every registration finished");
                self.core.stop = true;
            }
        }
    }

    fn begin_shutdown(&mut self, grace: Duration) {
        let cut = self.call_after(grace, |cx| {
            let open: Vec<usize> = cx.core.slots.iter().map(|(key, _)| key).collect();
            let mut cut = 0;
            for key in open {
                if cx.close_key(key) {
                    cut += 1;
                }
            }
            cx.core.stats.cut_at_shutdown += cut;
            if cut > 0 {
                log::warn!(
                    "shutdown: grace period over, closed {cut} registrations that had not finished"
                );
            }
            cx.core.stop = true;
            Ok(())
        });
        self.core.shutdown = Shutdown::Draining { cut };
        let keys: Vec<usize> = self.core.slots.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.dispatch(key, |reg, cx| reg.shutdown(cx));
        }
    }
}

/// How a non-blocking connect ended, once its socket was reported: its pending error, or
/// `Ok` once it has a peer. `None` for an event that came before the connect ended (some
/// systems report a connecting socket writable early): the reactor waits on.
fn connect_outcome(fd: RawFd, event: Event) -> Option<io::Result<()>> {
    // SAFETY: `fd` belongs to the source of a live registration, which outlives this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    if let Err(e) = crate::net::take_socket_error(&fd) {
        return Some(Err(e));
    }
    match nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(fd.as_raw_fd()) {
        Ok(_) => Some(Ok(())),
        Err(nix::errno::Errno::ENOTCONN) if !event.is_hup() && !event.is_error() => None,
        Err(e) => Some(Err(e.into())),
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory per idle connection: a registration's slot is three words.
    #[test]
    fn a_slot_is_three_words() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
    }

    #[test]
    fn slot_flags_do_not_disturb_each_other() {
        let mut slot = Slot::new(7, SERIAL_MASK, Interest::READABLE, Some(Interest::WRITABLE));
        assert_eq!(slot.serial(), SERIAL_MASK);
        assert_eq!(slot.interest(), Interest::READABLE);
        assert_eq!(slot.connecting(), Some(Interest::WRITABLE));
        slot.set_interest(Interest::READABLE | Interest::WRITABLE);
        slot.set_connecting(None);
        slot.request_close();
        assert_eq!(slot.interest(), Interest::READABLE | Interest::WRITABLE);
        assert_eq!(slot.connecting(), None);
        assert!(slot.close_requested() && !slot.is_closed());
        slot.mark_closed();
        assert!(slot.is_closed());
        assert_eq!((slot.serial(), slot.fd), (SERIAL_MASK, 7));
    }
}
