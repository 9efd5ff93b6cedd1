//! The reactor: registered sources with their handlers, timers, a waker, and the loop that
//! runs them.
//!
//! Each registration owns its source (a socket, a pipe, anything with a raw fd) and a
//! [`Handler`]: a closure (callback style) or a value with state (state-machine style). The
//! slab key of the registration is its [`Token`].
//!
//! One round of the loop ([`Reactor::run_once`]) waits for readiness or the next timer,
//! calls the handler of every ready source, then fires expired timers. A handler that returns
//! an error has its source closed and the error logged; the loop goes on with the others.
//! A registration closed during a round keeps its slab slot until the round ends, so a later
//! event of that round for the old token is dropped rather than delivered to a newcomer that
//! reused the slot or the fd number.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::selector::{syscall, Event, Events, Interest, Selector, Token};
use crate::timers::{TimerId, Timers};
use crate::waker::{WakeSource, Waker};
use crate::DefaultSelector;

/// A token holds the slab key in its low bits and the registration's generation above them,
/// so a token kept after its registration closed never names a newcomer in the same slot.
const KEY_BITS: u32 = if usize::BITS >= 64 { 32 } else { 24 };
const KEY_MASK: usize = (1 << KEY_BITS) - 1;

/// The size of the read buffer handlers borrow with [`Context::read_buffer`].
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

/// The waker's token; its key part, `KEY_MASK`, is one no registration gets.
const WAKER: Token = Token(usize::MAX);

fn token_of(key: usize, serial: u64) -> Token {
    Token(key | ((serial as usize) << KEY_BITS))
}

/// What a reactor runs for a registered source of type `Src`.
///
/// Closures `FnMut(&mut Src, &mut Context<'_>, Event) -> io::Result<()>` are handlers (only
/// [`ready`](Handler::ready)); implement the trait on a type for a state machine that also
/// takes timers and hears when it is closed.
pub trait Handler<Src>: 'static {
    /// The source is ready as `event` says. Level-triggered: if the handler leaves data
    /// unread, it is called again in the next round.
    fn ready(&mut self, source: &mut Src, cx: &mut Context<'_>, event: Event) -> io::Result<()>;

    /// The registration was just made; `cx` is its own context (set timers, change
    /// interest). An error undoes the registration and is returned by `register`.
    fn registered(&mut self, source: &mut Src, cx: &mut Context<'_>) -> io::Result<()> {
        let _ = (source, cx);
        Ok(())
    }

    /// A timer set with [`Context::set_timer`] from this registration fired.
    fn timeout(
        &mut self,
        source: &mut Src,
        cx: &mut Context<'_>,
        timer: TimerId,
    ) -> io::Result<()> {
        let _ = (source, cx, timer);
        Ok(())
    }

    /// The registration ends: closed by a handler, by an error (given as `error`), or by the
    /// reactor being dropped. The source is dropped (and its fd closed) right after.
    fn closed(&mut self, source: &mut Src, error: Option<&io::Error>) {
        let _ = (source, error);
    }
}

impl<Src, F> Handler<Src> for F
where
    F: FnMut(&mut Src, &mut Context<'_>, Event) -> io::Result<()> + 'static,
{
    fn ready(&mut self, source: &mut Src, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        self(source, cx, event)
    }
}

/// A source bound to its handler, with the source's type erased.
trait Registered {
    fn registered(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    fn ready(&mut self, cx: &mut Context<'_>, event: Event) -> io::Result<()>;
    fn timeout(&mut self, cx: &mut Context<'_>, timer: TimerId) -> io::Result<()>;
    fn closed(&mut self, error: Option<&io::Error>);
}

struct Bound<Src, H> {
    source: Src,
    handler: H,
}

impl<Src: AsRawFd + 'static, H: Handler<Src>> Registered for Bound<Src, H> {
    fn registered(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.handler.registered(&mut self.source, cx)
    }
    fn ready(&mut self, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        self.handler.ready(&mut self.source, cx, event)
    }
    fn timeout(&mut self, cx: &mut Context<'_>, timer: TimerId) -> io::Result<()> {
        self.handler.timeout(&mut self.source, cx, timer)
    }
    fn closed(&mut self, error: Option<&io::Error>) {
        self.handler.closed(&mut self.source, error)
    }
}

enum State {
    /// Waiting for events.
    Idle(Box<dyn Registered>),
    /// Its handler is running; the box is on the dispatcher's stack.
    Running,
    /// Closed this round; the slot is freed when the round ends.
    Closed,
}

struct Slot {
    fd: RawFd,
    interest: Interest,
    /// Distinguishes this registration from earlier ones in the same slot, for timers.
    serial: u64,
    state: State,
    /// Set when the handler asks, while running, for its own registration to be closed.
    close_requested: bool,
}

/// A callback timer: runs once with a context that has no current registration.
type TimerCallback = Box<dyn FnOnce(&mut Context<'_>) -> io::Result<()>>;

enum TimerTarget {
    Handler { key: usize, serial: u64 },
    Callback(TimerCallback),
}

/// Everything but the selector: kept apart so that a [`Context`] can borrow both.
struct Core {
    slots: Slab<Slot>,
    timers: Timers<TimerTarget>,
    /// Slots closed this round, freed when it ends.
    closed: Vec<usize>,
    next_serial: u64,
    stop: bool,
    stats: Stats,
    /// Lent to handlers for their reads; allocated at the first use.
    read_buffer: Vec<u8>,
}

/// Counters of what a reactor has done since it was made, for measuring (e.g. how many
/// waits each message costs).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Rounds run, each one wait in the selector.
    pub rounds: u64,
    /// Events the selector reported (the waker's included).
    pub events: u64,
    /// Handler calls for readiness.
    pub dispatched: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Registrations made.
    pub registered: u64,
    /// Registrations closed.
    pub closed: u64,
    /// Registrations closed because their handler returned an error (counted in `closed`
    /// too); each error is also logged.
    pub handler_errors: u64,
}

/// An event loop over selector `S` (the build's [`DefaultSelector`] unless named).
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use rawloop::{Context, Event, Interest, Reactor};
///
/// let mut reactor: Reactor = Reactor::new()?;
/// let (ours, mut theirs) = UnixStream::pair()?;
/// reactor.register(ours, Interest::READABLE, |s: &mut UnixStream, cx: &mut Context<'_>, _: Event| {
///     let mut buf = [0u8; 64];
///     let n = s.read(&mut buf)?;
///     s.write_all(&buf[..n])?;
///     cx.close();
///     Ok(())
/// })?;
/// theirs.write_all(b"hello")?;
/// reactor.run_once(None)?;
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
}

/// What a handler can do to the reactor while it runs: register sources, change or close
/// registrations, set timers, stop the loop.
pub struct Context<'a> {
    selector: &'a mut dyn Selector,
    core: &'a mut Core,
    current: Option<usize>,
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
                stats: Stats::default(),
                read_buffer: Vec::new(),
            },
            waker,
        })
    }

    /// The selector's backend name.
    pub fn backend(&self) -> &'static str {
        S::name()
    }

    fn context(&mut self) -> Context<'_> {
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

    /// Changes a registration's interest; see [`Context::set_interest_of`].
    pub fn set_interest_of(&mut self, token: Token, interest: Interest) -> io::Result<()> {
        self.context().set_interest_of(token, interest)
    }

    /// Closes a registration; see [`Context::close_token`].
    pub fn close_token(&mut self, token: Token) -> bool {
        let closed = self.context().close_token(token);
        self.core.free_closed();
        closed
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

    /// A handle that wakes or stops this reactor from any thread.
    pub fn waker(&self) -> Waker {
        self.waker.waker()
    }

    /// Makes [`run`](Reactor::run) return after the current round.
    pub fn stop(&mut self) {
        self.core.stop = true;
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

    /// Runs rounds until a handler calls [`Context::stop`], [`Reactor::stop`] is called, or
    /// a [`Waker::stop`] arrives. Returns early only on an error of the selector itself.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.core.stop {
            self.run_once(None)?;
        }
        self.core.stop = false;
        Ok(())
    }

    /// Runs one round: waits for readiness at most `timeout` (less if a timer is due
    /// sooner), runs the handlers of the ready sources, then the expired timers. Returns how
    /// many handlers and timers ran. For embedding in another program's loop.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = match self.core.timers.next_deadline() {
            Some(deadline) => {
                let until = deadline.saturating_duration_since(Instant::now());
                Some(timeout.map_or(until, |t| t.min(until)))
            }
            None => timeout,
        };
        self.selector.select(&mut self.events, timeout)?;
        self.core.stats.rounds += 1;
        self.core.stats.events += self.events.len() as u64;
        let mut ran = 0;
        for event in self.events.iter() {
            if event.token() == WAKER {
                if self.waker.reset()? {
                    self.core.stop = true;
                }
                continue;
            }
            let Some(key) = self.core.live_key(event.token()) else {
                continue;
            };
            let mut cx = Context {
                selector: &mut self.selector,
                core: &mut self.core,
                current: None,
            };
            if cx.dispatch(key, |reg, cx| reg.ready(cx, *event)) {
                ran += 1;
            }
        }
        self.core.stats.dispatched += ran as u64;
        let fired = self.context().fire_timers(Instant::now());
        self.core.stats.timers_fired += fired as u64;
        self.core.free_closed();
        ran += fired;
        Ok(ran)
    }
}

impl<S: Selector> Drop for Reactor<S> {
    fn drop(&mut self) {
        let keys: Vec<usize> = self.core.slots.iter().map(|(key, _)| key).collect();
        let mut cx = self.context();
        for key in keys {
            cx.close_key(key);
        }
    }
}

impl<S: Selector> fmt::Debug for Reactor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("backend", &S::name())
            .field("sources", &self.core.slots.len())
            .field("timers", &self.core.timers.len())
            .finish()
    }
}

impl Core {
    /// The slab key of the open registration `token` names, if it is still open.
    fn live_key(&self, token: Token) -> Option<usize> {
        let key = token.0 & KEY_MASK;
        let slot = self.slots.get(key)?;
        let open = !matches!(slot.state, State::Closed);
        (open && token_of(key, slot.serial) == token).then_some(key)
    }

    fn free_closed(&mut self) {
        for key in self.closed.drain(..) {
            self.slots.remove(key);
        }
    }
}

impl Context<'_> {
    /// The token of the registration whose handler is running, or `None` in a
    /// [`call_after`](Context::call_after) callback.
    pub fn token(&self) -> Option<Token> {
        self.current
            .map(|key| token_of(key, self.core.slots[key].serial))
    }

    /// Registers `source` with `interest` and `handler`, and returns its token. The token
    /// names this registration only: once it closes, the token names nothing, even when a
    /// new registration takes the same slot.
    ///
    /// An empty `interest` registers the source paused (see [`set_interest`](Context::set_interest)).
    /// The reactor owns the source from now on and puts it in non-blocking mode; closing
    /// the registration deregisters it, then drops it, which closes the fd. Takes effect
    /// at once: the source can be reported in the next round.
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
        let fd = source.as_raw_fd();
        set_nonblocking(fd)?;
        let entry = self.core.slots.vacant_entry();
        let key = entry.key();
        if key >= KEY_MASK {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("a reactor holds at most {KEY_MASK} registrations"),
            ));
        }
        let serial = self.core.next_serial + 1;
        let token = token_of(key, serial);
        if !interest.is_empty() {
            self.selector.register(fd, token, interest)?;
        }
        self.core.next_serial = serial;
        self.core.stats.registered += 1;
        entry.insert(Slot {
            fd,
            interest,
            serial,
            state: State::Running,
            close_requested: false,
        });
        let mut reg: Box<dyn Registered> = Box::new(Bound { source, handler });
        let saved = self.current.replace(key);
        let result = reg.registered(self);
        self.current = saved;
        match result {
            Ok(()) if self.core.slots[key].close_requested => {
                self.finish(key, reg, None);
                Ok(token)
            }
            Ok(()) => {
                self.core.slots[key].state = State::Idle(reg);
                Ok(token)
            }
            Err(e) => {
                // Timers it set are dropped when due: the slot's serial will not match.
                let interest = self.core.slots.remove(key).interest;
                if !interest.is_empty() {
                    let _ = self.selector.deregister(fd);
                }
                Err(e)
            }
        }
    }

    /// A buffer of [`READ_BUFFER_SIZE`] bytes to read into, shared by every handler of this
    /// reactor: a connection needs no read buffer of its own, so thousands of idle
    /// connections hold none. Its contents are unspecified when lent; copy out what must
    /// outlive the handler call.
    pub fn read_buffer(&mut self) -> &mut [u8] {
        if self.core.read_buffer.is_empty() {
            self.core.read_buffer = vec![0; READ_BUFFER_SIZE];
        }
        &mut self.core.read_buffer
    }

    /// The current interest of the running handler's registration.
    pub fn interest(&self) -> Option<Interest> {
        let key = self.current?;
        self.core.slots.get(key).map(|slot| slot.interest)
    }

    /// Changes the running handler's own interest (no syscall if it is unchanged). An empty
    /// interest pauses the registration: the fd leaves the selector until a non-empty
    /// interest is set again.
    pub fn set_interest(&mut self, interest: Interest) -> io::Result<()> {
        let key = self.current.ok_or_else(no_registration)?;
        self.set_interest_of_key(key, interest)
    }

    /// Changes any registration's interest (no syscall if it is unchanged).
    pub fn set_interest_of(&mut self, token: Token, interest: Interest) -> io::Result<()> {
        let key = self
            .core
            .live_key(token)
            .ok_or_else(|| unknown_token(token))?;
        self.set_interest_of_key(key, interest)
    }

    fn set_interest_of_key(&mut self, key: usize, interest: Interest) -> io::Result<()> {
        let slot = &mut self.core.slots[key];
        let token = token_of(key, slot.serial);
        if slot.interest != interest {
            match (slot.interest.is_empty(), interest.is_empty()) {
                (false, false) => self.selector.reregister(slot.fd, token, interest)?,
                (false, true) => self.selector.deregister(slot.fd)?,
                (true, false) => self.selector.register(slot.fd, token, interest)?,
                (true, true) => {}
            }
            slot.interest = interest;
        }
        Ok(())
    }

    /// Closes the running handler's own registration when the handler returns.
    pub fn close(&mut self) {
        if let Some(slot) = self.current.and_then(|key| self.core.slots.get_mut(key)) {
            slot.close_requested = true;
        }
    }

    /// Closes a registration: deregisters its fd, tells its handler, drops its source.
    /// The running handler's own registration closes when the handler returns. Returns
    /// whether the token named an open registration.
    pub fn close_token(&mut self, token: Token) -> bool {
        match self.core.live_key(token) {
            Some(key) => self.close_key(key),
            None => false,
        }
    }

    fn close_key(&mut self, key: usize) -> bool {
        let slot = &mut self.core.slots[key];
        match std::mem::replace(&mut slot.state, State::Closed) {
            State::Idle(reg) => {
                self.finish(key, reg, None);
                true
            }
            State::Running => {
                slot.state = State::Running;
                slot.close_requested = true;
                true
            }
            State::Closed => false,
        }
    }

    /// Calls this registration's [`Handler::timeout`] once, `delay` from now.
    pub fn set_timer(&mut self, delay: Duration) -> io::Result<TimerId> {
        let key = self.current.ok_or_else(no_registration)?;
        Ok(self.timer_for_key(key, delay))
    }

    /// Calls the [`Handler::timeout`] of registration `token` once, `delay` from now (for
    /// example a deadline set by the handler that accepted it). The timer is dropped if the
    /// registration closes first.
    pub fn set_timer_of(&mut self, token: Token, delay: Duration) -> io::Result<TimerId> {
        let key = self
            .core
            .live_key(token)
            .ok_or_else(|| unknown_token(token))?;
        Ok(self.timer_for_key(key, delay))
    }

    fn timer_for_key(&mut self, key: usize, delay: Duration) -> TimerId {
        let serial = self.core.slots[key].serial;
        self.core
            .timers
            .insert(Instant::now() + delay, TimerTarget::Handler { key, serial })
    }

    /// Runs `callback` once, `delay` from now. An error it returns is logged.
    pub fn call_after<F>(&mut self, delay: Duration, callback: F) -> TimerId
    where
        F: FnOnce(&mut Context<'_>) -> io::Result<()> + 'static,
    {
        self.core.timers.insert(
            Instant::now() + delay,
            TimerTarget::Callback(Box::new(callback)),
        )
    }

    /// Cancels a timer that has not fired; returns whether it was pending.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.timers.cancel(timer).is_some()
    }

    /// Makes [`Reactor::run`] return after the current round.
    pub fn stop(&mut self) {
        self.core.stop = true;
    }

    /// Runs `call` on registration `key` with its handler taken out of the slab, then puts
    /// it back, or closes it if the handler failed or asked to be closed. Returns whether
    /// the handler ran (it does not for a slot closed earlier in the round).
    fn dispatch(
        &mut self,
        key: usize,
        call: impl FnOnce(&mut dyn Registered, &mut Context<'_>) -> io::Result<()>,
    ) -> bool {
        let Some(slot) = self.core.slots.get_mut(key) else {
            return false;
        };
        let mut reg = match std::mem::replace(&mut slot.state, State::Running) {
            State::Idle(reg) => reg,
            other => {
                slot.state = other;
                return false;
            }
        };
        let saved = self.current.replace(key);
        let result = call(reg.as_mut(), self);
        self.current = saved;
        let slot = &mut self.core.slots[key];
        match result {
            Err(e) => {
                log::warn!("closing registration {key} (fd {}): {e}", slot.fd);
                self.core.stats.handler_errors += 1;
                self.finish(key, reg, Some(&e));
            }
            Ok(()) if slot.close_requested => self.finish(key, reg, None),
            Ok(()) => slot.state = State::Idle(reg),
        }
        true
    }

    /// Ends registration `key`, whose handler is `reg`: deregister, tell, drop.
    fn finish(&mut self, key: usize, mut reg: Box<dyn Registered>, error: Option<&io::Error>) {
        let slot = &mut self.core.slots[key];
        slot.state = State::Closed;
        if !slot.interest.is_empty() {
            if let Err(e) = self.selector.deregister(slot.fd) {
                log::warn!("deregistering fd {} of registration {key}: {e}", slot.fd);
            }
        }
        reg.closed(error);
        drop(reg);
        self.core.closed.push(key);
        self.core.stats.closed += 1;
    }

    /// Fires every timer due at `now`, earliest first; returns how many ran.
    fn fire_timers(&mut self, now: Instant) -> usize {
        let mut ran = 0;
        while let Some((id, target)) = self.core.timers.pop_expired(now) {
            match target {
                TimerTarget::Handler { key, serial } => {
                    let live = self.core.slots.get(key).is_some_and(|s| s.serial == serial);
                    if live && self.dispatch(key, |reg, cx| reg.timeout(cx, id)) {
                        ran += 1;
                    }
                }
                TimerTarget::Callback(callback) => {
                    let saved = self.current.take();
                    if let Err(e) = callback(self) {
                        log::warn!("timer callback failed: {e}");
                    }
                    self.current = saved;
                    ran += 1;
                }
            }
        }
        ran
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

fn no_registration() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "no current registration: this context runs a timer callback",
    )
}

fn unknown_token(token: Token) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no open registration has token {}", token.0),
    )
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let mut on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one c_int through the pointer; the kernel checks `fd`.
    syscall!(ioctl(fd, libc::FIONBIO, &mut on)).map(drop)
}
