//! [`Context`]: what a handler can do to the reactor while it runs.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::handler::{catch, Bound, Registered};
use crate::reactor::{
    token_of, Callback, Core, Shutdown, Slot, TimerTarget, KEY_MASK, SERIAL_MASK,
};
use crate::selector::{Interest, Selector, Token};
use crate::signals::SignalSource;
use crate::timers::{instant_after, Repeat, TimerId};
use crate::{Handler, READ_BUFFER_SIZE};

/// What a handler can do to the reactor while it runs: register sources, change or close
/// registrations, set timers, watch signals, shut down or stop the loop. Outside handlers,
/// [`Reactor::context`](crate::Reactor::context) gives the same powers.
pub struct Context<'a> {
    pub(crate) selector: &'a mut dyn Selector,
    pub(crate) core: &'a mut Core,
    /// The registration whose handler is running, if any.
    pub(crate) current: Option<usize>,
}

/// The signal source's token (see the reactor).
const SIGNALS: Token = Token(usize::MAX - 1);

impl Context<'_> {
    /// The token of the registration whose handler is running, or `None` outside handlers
    /// (timer callbacks, posted closures, signal handlers, [`Reactor::context`](crate::Reactor::context)).
    pub fn token(&self) -> Option<Token> {
        self.current
            .map(|key| token_of(key, self.core.slots[key].serial()))
    }

    /// Registers `source` with `interest` and `handler`, and returns its token. The token
    /// names this registration only: once it closes, the token names nothing, even when a
    /// new registration takes the same slot.
    ///
    /// The source must be non-blocking (see [`net`](crate::net)); the reactor owns it from
    /// now on. Closing the registration deregisters the source, then drops it, which closes
    /// the fd. An empty `interest` registers the source paused (see
    /// [`set_interest`](Context::set_interest)). Takes effect at once: the source can be
    /// reported in the next round. An error from the selector (an fd it refuses) or from
    /// [`Handler::registered`] undoes the registration and drops the source.
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
        self.insert(source, interest, None, handler)
    }

    /// Starts a non-blocking TCP connect to `addr` and registers the socket with `handler`.
    /// The outcome reaches the handler exactly once, through [`Handler::connected`], before
    /// any [`ready`](Handler::ready); after a success the registration takes `interest`.
    /// An error here means the connect could not even start (no socket, an unreachable
    /// network reported at once); the handler then never runs.
    pub fn connect<H>(
        &mut self,
        addr: SocketAddr,
        interest: Interest,
        handler: H,
    ) -> io::Result<Token>
    where
        H: Handler<TcpStream>,
    {
        let stream = crate::net::connect_tcp(addr)?;
        self.register_connecting(stream, interest, handler)
    }

    /// Registers a socket whose non-blocking connect is in progress (any kind: TCP, Unix):
    /// the reactor waits for it to become writable, reads its pending error, and tells the
    /// handler through [`Handler::connected`], as [`connect`](Context::connect) does.
    pub fn register_connecting<Src, H>(
        &mut self,
        source: Src,
        interest: Interest,
        handler: H,
    ) -> io::Result<Token>
    where
        Src: AsRawFd + 'static,
        H: Handler<Src>,
    {
        self.insert(source, Interest::WRITABLE, Some(interest), handler)
    }

    fn insert<Src, H>(
        &mut self,
        source: Src,
        interest: Interest,
        connecting: Option<Interest>,
        handler: H,
    ) -> io::Result<Token>
    where
        Src: AsRawFd + 'static,
        H: Handler<Src>,
    {
        let fd = source.as_raw_fd();
        let entry = self.core.slots.vacant_entry();
        let key = entry.key();
        if key >= KEY_MASK - 1 {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("a reactor holds at most {} registrations", KEY_MASK - 1),
            ));
        }
        let serial = self.core.next_serial.wrapping_add(1) & SERIAL_MASK;
        let token = token_of(key, serial);
        if !interest.is_empty() {
            self.selector.register(fd, token, interest)?;
        }
        self.core.next_serial = serial;
        self.core.stats.registered += 1;
        entry.insert(Slot::new(fd, serial, interest, connecting));
        let mut reg: Box<dyn Registered> = Box::new(Bound { source, handler });
        let saved = self.current.replace(key);
        let result = catch(|| reg.registered(self));
        self.current = saved;
        match result {
            Ok(()) => {
                self.settle(key, reg, Ok(()));
                if matches!(self.core.shutdown, Shutdown::Draining { .. }) {
                    self.dispatch(key, |reg, cx| reg.shutdown(cx));
                }
                Ok(token)
            }
            Err(e) => {
                self.core.timers.remove_owned_by(key);
                let interest = self.core.slots.remove(key).interest();
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
        self.core.slots.get(key).map(Slot::interest)
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
        let key = self.live(token)?;
        self.set_interest_of_key(key, interest)
    }

    fn set_interest_of_key(&mut self, key: usize, interest: Interest) -> io::Result<()> {
        let slot = &mut self.core.slots[key];
        if slot.connecting().is_some() {
            // The connect watches for writable; the interest applies once it has ended.
            slot.set_connecting(Some(interest));
            return Ok(());
        }
        let token = token_of(key, slot.serial());
        let old = slot.interest();
        if old != interest {
            match (old.is_empty(), interest.is_empty()) {
                (false, false) => self.selector.reregister(slot.fd, token, interest)?,
                (false, true) => self.selector.deregister(slot.fd)?,
                (true, false) => self.selector.register(slot.fd, token, interest)?,
                (true, true) => {}
            }
            slot.set_interest(interest);
        }
        Ok(())
    }

    /// Closes the running handler's own registration when the handler returns.
    pub fn close(&mut self) {
        if let Some(slot) = self.current.and_then(|key| self.core.slots.get_mut(key)) {
            slot.request_close();
        }
    }

    /// Closes a registration: deregisters its fd, drops its timers, tells its handler, drops
    /// its source. The running handler's own registration closes when the handler returns.
    /// Returns whether the token named an open registration.
    pub fn close_token(&mut self, token: Token) -> bool {
        match self.core.live_key(token) {
            Some(key) => self.close_key(key),
            None => false,
        }
    }

    /// Takes registration `token` out of the reactor and gives its source back, still open
    /// (Python's `selector.unregister`, mio's `deregister`): the fd leaves the selector, the
    /// registration's timers are cancelled, and the handler is dropped without a call to
    /// [`closed`](Handler::closed). Fails, changing nothing, if the token names no open
    /// registration, if its source is not a `Src`, or if it is the running handler's own.
    pub fn deregister<Src: 'static>(&mut self, token: Token) -> io::Result<Src> {
        let key = self.live(token)?;
        let slot = &mut self.core.slots[key];
        let Some(reg) = slot.idle() else {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a handler cannot take its own registration's source while it runs",
            ));
        };
        if reg.source_type() != std::any::TypeId::of::<Src>() {
            return Err(wrong_type::<Src>(token));
        }
        if !slot.interest().is_empty() {
            self.selector.deregister(slot.fd)?;
        }
        let reg = slot.mark_closed().expect("idle, checked above");
        self.core.timers.remove_owned_by(key);
        self.core.closed.push(key);
        self.core.stats.closed += 1;
        match reg.into_source().downcast::<Src>() {
            Ok(source) => Ok(*source),
            Err(_) => unreachable!("the type was checked"),
        }
    }

    /// Runs `f` with the source of registration `token`, from outside its handler: to write
    /// to a connection from the host program, say. Fails if the token names no open
    /// registration, if the source is not a `Src`, or if its handler is running.
    pub fn with_source<Src: 'static, R>(
        &mut self,
        token: Token,
        f: impl FnOnce(&mut Src) -> R,
    ) -> io::Result<R> {
        let key = self.live(token)?;
        match self.core.slots[key].idle() {
            Some(reg) => match reg.source_mut().downcast_mut::<Src>() {
                Some(source) => Ok(f(source)),
                None => Err(wrong_type::<Src>(token)),
            },
            None => Err(running(token)),
        }
    }

    /// Runs `f` with the source and handler of registration `token`, and a context in which
    /// that registration is the running one (so `f` can change its interest, set its timers
    /// or close it, as its handler would). An error or panic from `f` closes the
    /// registration as a handler's would. Fails if the token names no open registration,
    /// if its types are not `Src` and `H`, or if its handler is running.
    pub fn with_handler<Src: 'static, H: Handler<Src>, R>(
        &mut self,
        token: Token,
        f: impl FnOnce(&mut Src, &mut H, &mut Context<'_>) -> io::Result<R>,
    ) -> io::Result<R> {
        let key = self.live(token)?;
        let mut outcome = None;
        let ran = self.dispatch(key, |reg, cx| {
            let Some(bound) = reg.as_any().downcast_mut::<Bound<Src, H>>() else {
                outcome = Some(Err(wrong_type::<Src>(token)));
                return Ok(());
            };
            match f(&mut bound.source, &mut bound.handler, cx) {
                Ok(r) => outcome = Some(Ok(r)),
                Err(e) => {
                    // The registration closes with `e`; the caller gets its like.
                    outcome = Some(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
            Ok(())
        });
        match outcome {
            Some(result) => result,
            None if !ran => Err(running(token)),
            None => Err(io::Error::other("the registration's handler panicked")),
        }
    }

    fn live(&self, token: Token) -> io::Result<usize> {
        self.core
            .live_key(token)
            .ok_or_else(|| unknown_token(token))
    }

    /// Calls this registration's [`Handler::timeout`] once, `delay` from now. The timer is
    /// cancelled if the registration closes first. Timers set with the same delay (a request
    /// or idle timeout per connection) come due in the order they were set and cost O(1) to
    /// set and cancel, however many are pending.
    pub fn set_timer(&mut self, delay: Duration) -> io::Result<TimerId> {
        let key = self.current.ok_or_else(no_registration)?;
        Ok(self.timer_for(
            key,
            instant_after(Instant::now(), delay),
            Repeat::Once { delay },
        ))
    }

    /// Calls this registration's [`Handler::timeout`] once, at `deadline`.
    pub fn set_timer_at(&mut self, deadline: Instant) -> io::Result<TimerId> {
        let key = self.current.ok_or_else(no_registration)?;
        let delay = deadline.saturating_duration_since(Instant::now());
        Ok(self.timer_for(key, deadline, Repeat::Once { delay }))
    }

    /// Calls this registration's [`Handler::timeout`] every `period`, first `period` from
    /// now, until the timer is cancelled or the registration closes. Deadlines count from
    /// the previous deadline, so the timer does not drift however late a round runs it;
    /// ticks missed while the loop was busy are skipped, not run back to back.
    pub fn set_periodic(&mut self, period: Duration) -> io::Result<TimerId> {
        let key = self.current.ok_or_else(no_registration)?;
        let first = instant_after(Instant::now(), period);
        Ok(self.timer_for(key, first, Repeat::Every { period }))
    }

    /// Calls the [`Handler::timeout`] of registration `token` once, `delay` from now (for
    /// example a deadline set by the handler that accepted it).
    pub fn set_timer_of(&mut self, token: Token, delay: Duration) -> io::Result<TimerId> {
        let key = self.live(token)?;
        Ok(self.timer_for(
            key,
            instant_after(Instant::now(), delay),
            Repeat::Once { delay },
        ))
    }

    fn timer_for(&mut self, key: usize, deadline: Instant, repeat: Repeat) -> TimerId {
        self.core
            .timers
            .insert(deadline, repeat, Some(key), TimerTarget::Handler)
    }

    /// Runs `callback` once, `delay` from now. An error it returns is logged.
    pub fn call_after<F>(&mut self, delay: Duration, callback: F) -> TimerId
    where
        F: FnOnce(&mut Context<'_>) -> io::Result<()> + 'static,
    {
        let deadline = instant_after(Instant::now(), delay);
        self.callback_timer(deadline, Repeat::Once { delay }, once(callback))
    }

    /// Runs `callback` once, at `deadline`.
    pub fn call_at<F>(&mut self, deadline: Instant, callback: F) -> TimerId
    where
        F: FnOnce(&mut Context<'_>) -> io::Result<()> + 'static,
    {
        let delay = deadline.saturating_duration_since(Instant::now());
        self.callback_timer(deadline, Repeat::Once { delay }, once(callback))
    }

    /// Runs `callback` every `period`, first `period` from now, without drift (see
    /// [`set_periodic`](Context::set_periodic)), until the timer is cancelled or the
    /// callback returns an error (which is logged).
    pub fn call_every<F>(&mut self, period: Duration, callback: F) -> TimerId
    where
        F: FnMut(&mut Context<'_>) -> io::Result<()> + 'static,
    {
        let first = instant_after(Instant::now(), period);
        self.callback_timer(first, Repeat::Every { period }, Box::new(callback))
    }

    fn callback_timer(&mut self, deadline: Instant, repeat: Repeat, callback: Callback) -> TimerId {
        self.core
            .timers
            .insert(deadline, repeat, None, TimerTarget::Callback(callback))
    }

    /// Cancels a pending timer; returns whether it was pending.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.timers.cancel(timer).is_some()
    }

    /// Moves a pending timer to `deadline` (a periodic timer goes on from there with its
    /// period); returns whether it was pending.
    pub fn reschedule_timer(&mut self, timer: TimerId, deadline: Instant) -> bool {
        self.core.timers.reschedule(timer, deadline)
    }

    /// Restarts a pending timer: due its delay (or period) from now, as if just set;
    /// returns whether it was pending. The way to push an idle deadline back.
    pub fn reset_timer(&mut self, timer: TimerId) -> bool {
        self.core.timers.reset(timer, Instant::now())
    }

    /// When a pending timer is due.
    pub fn timer_deadline(&self, timer: TimerId) -> Option<Instant> {
        self.core.timers.deadline(timer)
    }

    /// Runs `handler` inside the loop each time `signal` arrives, until
    /// [`remove_signal`](Context::remove_signal) (a second call for the same signal replaces
    /// the handler). Works on every backend: signalfd on Linux, `EVFILT_SIGNAL` on macOS and
    /// the BSDs, a self-pipe elsewhere. A signal is watched by one reactor of the process at
    /// a time; watching it in another fails with [`io::ErrorKind::AlreadyExists`].
    ///
    /// On Linux the signal is blocked in the reactor's thread (and so in threads it spawns
    /// later) while watched; a copy that lands on another thread is forwarded to this one.
    /// An error from `handler` is logged; the handler stays.
    pub fn on_signal<F>(&mut self, signal: Signal, handler: F) -> io::Result<()>
    where
        F: FnMut(&mut Context<'_>, Signal) -> io::Result<()> + 'static,
    {
        if self.core.signals.is_none() {
            let source = SignalSource::new()?;
            self.selector
                .register(source.fd(), SIGNALS, Interest::READABLE)?;
            self.core.signals = Some(source);
        }
        if let Some(signals) = self.core.signals.as_mut() {
            signals.add(signal)?;
        }
        self.core.signal_handlers.retain(|(s, _)| *s != signal);
        self.core.signal_handlers.push((signal, Box::new(handler)));
        Ok(())
    }

    /// Stops watching `signal`, restoring its earlier disposition; returns whether it was
    /// watched.
    pub fn remove_signal(&mut self, signal: Signal) -> bool {
        self.core.signal_handlers.retain(|(s, _)| *s != signal);
        self.core
            .signals
            .as_mut()
            .is_some_and(|signals| signals.remove(signal))
    }

    /// Makes [`Reactor::run`](crate::Reactor::run) return after the current round.
    pub fn stop(&mut self) {
        self.core.stop = true;
    }

    /// Begins a graceful shutdown when this round ends: every registration's
    /// [`Handler::shutdown`] is called (by default it closes the registration, so listeners
    /// stop accepting at once), and the loop runs on until every registration has closed —
    /// then [`run`](crate::Reactor::run) returns — or until `grace` has passed, when the
    /// registrations still open are closed (and counted in
    /// [`Stats::cut_at_shutdown`](crate::Stats)) and the loop stops. A second call while
    /// one is under way changes nothing; [`stop`](Context::stop) still stops at once.
    pub fn shutdown(&mut self, grace: Duration) {
        if self.core.shutdown == Shutdown::No {
            self.core.shutdown = Shutdown::Requested(grace);
        }
    }

    /// Whether a graceful shutdown was asked for or is under way.
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutdown != Shutdown::No
    }

    /// The round's clock: read once per round, at the first call after its wait ended;
    /// cheaper than `Instant::now()` for a handler that only needs to note when something
    /// happened (for an idle timeout, say). Later in a long round it lags the real time.
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// How many registrations are open.
    pub fn registrations(&self) -> usize {
        self.core.slots.len() - self.core.closed.len()
    }

    /// The reactor's shared state, if it is a `T` (see
    /// [`Reactor::set_data`](crate::Reactor::set_data)): one value that every handler can
    /// reach, instead of an `Rc<RefCell<…>>` captured by each.
    pub fn data<T: 'static>(&mut self) -> Option<&mut T> {
        self.core.data.as_mut()?.downcast_mut()
    }
}

fn once<F>(callback: F) -> Callback
where
    F: FnOnce(&mut Context<'_>) -> io::Result<()> + 'static,
{
    let mut callback = Some(callback);
    Box::new(move |cx| match callback.take() {
        Some(f) => f(cx),
        None => Ok(()),
    })
}

fn no_registration() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "no current registration: this context runs outside a registration's handler",
    )
}

fn unknown_token(token: Token) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no open registration has token {}", token.0),
    )
}

fn wrong_type<Src>(token: Token) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "registration {} does not hold a {}",
            token.0,
            std::any::type_name::<Src>()
        ),
    )
}

fn running(token: Token) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("the handler of registration {} is running", token.0),
    )
}
