//! The `Selector` trait and the types every backend shares.
//!
//! # Readiness, spurious events and draining
//!
//! Every backend is **level-triggered**: as long as a registered fd stays ready for an interest,
//! every call to [`Selector::select`] reports it again. A caller that reads only part of what is
//! buffered is told again on the next call; a caller that never reads is told forever. So a
//! handler must either drain the source (read until `WouldBlock`) or be content to be called
//! again — both are correct, and the second is fairer between many connections.
//!
//! Readiness is a hint, not a promise. An event may be **spurious**: another thread, or an
//! earlier handler in the same round, may have consumed the data, or the kernel may wake the
//! waiter for a reason that does not survive until the read. Every source registered with a
//! selector must therefore be in non-blocking mode, and every read or write must treat
//! [`io::ErrorKind::WouldBlock`] as "not yet", never as an error.
//!
//! A peer that closes, or an error on the socket, is always reported, whatever the interest:
//! the event carries [`Readiness::HUP`] or [`Readiness::ERROR`] where the kernel says so, and on
//! every backend the caller notices by the next read returning `0` or the next write failing.
//! select(2) has no separate "hang-up" bit; there a closed peer shows as readable (and, for a
//! socket waiting to write, writable), which leads the caller to the same read or write.
//!
//! # Errors
//!
//! All backends return the same errors for the same mistakes:
//!
//! | mistake | error |
//! |---|---|
//! | registering an fd that is already registered | [`io::ErrorKind::AlreadyExists`] |
//! | reregistering or deregistering an fd that is not registered | [`io::ErrorKind::NotFound`] |
//! | registering an fd that is not open (or negative) | `raw_os_error() == Some(EBADF)` |
//! | an empty interest | [`io::ErrorKind::InvalidInput`] |

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use bitflags::bitflags;

/// Identifies a registration: the caller chooses it at `register` and gets it back with every
/// event for that fd.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

bitflags! {
    /// What a registration asks to be told about.
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Interest: u8 {
        /// Tell me when a read (or accept) would not block.
        const READABLE = 0b01;
        /// Tell me when a write would not block.
        const WRITABLE = 0b10;
    }
}

bitflags! {
    /// What the kernel reported for a registration in one [`Event`].
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Readiness: u8 {
        /// A read (or accept) will not block: data, a pending connection, or end of stream.
        const READABLE = 0b0001;
        /// A write will not block.
        const WRITABLE = 0b0010;
        /// The peer has hung up: at least its sending side is closed, so reads will reach
        /// end of stream once the buffered data is consumed.
        const HUP = 0b0100;
        /// The fd has a pending error; the next read or write returns it.
        const ERROR = 0b1000;
    }
}

/// One readiness report: a registration's token and what is ready.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    token: Token,
    readiness: Readiness,
}

impl Event {
    /// Creates an event. Backends use this, this crate's and yours: a [`Selector`] written
    /// outside rawloop (over another kernel mechanism, or a test double) plugs into
    /// [`Reactor`](crate::Reactor) like the four here. Callers normally only read events.
    pub fn new(token: Token, readiness: Readiness) -> Event {
        Event { token, readiness }
    }

    /// The token the fd was registered with.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Everything that was reported.
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }

    /// A read would not block (data or end of stream), or the peer hung up, or an error is
    /// pending: in each case the caller should read.
    pub fn is_readable(&self) -> bool {
        self.readiness
            .intersects(Readiness::READABLE | Readiness::HUP | Readiness::ERROR)
    }

    /// A write would not block, or an error is pending that the write will return.
    pub fn is_writable(&self) -> bool {
        self.readiness
            .intersects(Readiness::WRITABLE | Readiness::ERROR)
    }

    /// The peer has closed (at least its sending side).
    pub fn is_hup(&self) -> bool {
        self.readiness.contains(Readiness::HUP)
    }

    /// An error is pending on the fd.
    pub fn is_error(&self) -> bool {
        self.readiness.contains(Readiness::ERROR)
    }
}

/// The buffer [`Selector::select`] fills. Its capacity bounds how many events one call returns;
/// fds left over are reported by the next call (readiness is level-triggered).
#[derive(Debug)]
pub struct Events {
    list: Vec<Event>,
    capacity: usize,
}

impl Events {
    /// A buffer for at most `capacity` events per call (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// How many events one call can return.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events the last call returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last call returned no event (it timed out).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The events of the last call.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Empties the buffer; backends (this crate's and third-party ones) call this at the
    /// start of `select`.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Whether another event fits.
    pub fn is_full(&self) -> bool {
        self.list.len() >= self.capacity
    }

    /// Appends an event. Backends (this crate's and third-party ones) call this; it is
    /// ignored when the buffer is full.
    pub fn push(&mut self, event: Event) {
        if !self.is_full() {
            self.list.push(event);
        }
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// A readiness selector over one kernel mechanism: select(2), poll(2), epoll or kqueue.
///
/// Implementing it outside this crate is supported: [`Event::new`], [`Events::push`],
/// [`Events::clear`] and [`Events::is_full`] are public for that, and `Reactor<YourSelector>`
/// works like `Reactor<Epoll>` (the tests wrap a backend in a selector that refuses a
/// registration, for one).
///
/// The contract (level-triggered readiness, the error kinds, the timeout rules) is the same for
/// every implementation and is checked by one conformance suite run once per backend.
pub trait Selector {
    /// The backend's name as `--backend` spells it: `"select"`, `"poll"`, `"epoll"`, `"kqueue"`.
    fn name(&self) -> &'static str;

    /// Creates an empty selector.
    fn new() -> io::Result<Self>
    where
        Self: Sized;

    /// Starts watching `fd` for `interest`, reporting it with `token`.
    ///
    /// The fd must stay open until it is deregistered: deregister first, then close.
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Replaces the token and interest of a registered fd.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;

    /// Stops watching `fd`, which is about to be closed and is the only descriptor of its
    /// open file: what the reactor calls instead of [`deregister`](Selector::deregister)
    /// when its sources own their fds ([`Reactor::set_exclusive_fds`](crate::Reactor::set_exclusive_fds)).
    /// The default deregisters; a backend whose kernel forgets the fd as it closes (epoll,
    /// kqueue) only forgets it itself, with no syscall. For an fd that is not registered it
    /// may fail with [`io::ErrorKind::NotFound`] or do nothing (epoll cannot tell without the
    /// syscall it saves).
    fn deregister_before_close(&mut self, fd: RawFd) -> io::Result<()> {
        self.deregister(fd)
    }

    /// Waits until at least one registered fd is ready or `timeout` has passed, and fills
    /// `events` (cleared first).
    ///
    /// `None` waits without limit; `Some(Duration::ZERO)` only polls. A call never returns
    /// earlier than its timeout without an event: sub-millisecond parts round up, and a
    /// signal interrupting the wait (EINTR) resumes it with the time that is left.
    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;

    /// Creates the selector's cross-thread wake-up source, reported as readable with `token`.
    ///
    /// The default is an eventfd on Linux and a pipe elsewhere, registered like any fd;
    /// kqueue overrides it with `EVFILT_USER`.
    fn new_waker(&mut self, token: Token) -> io::Result<crate::waker::WakeSource> {
        crate::waker::WakeSource::new_fd(self, token)
    }

    /// The fd the selector waits on, when it has one (epoll, kqueue): readable whenever a
    /// `select` would report something, so that another loop can watch it. The default,
    /// for selectors without one (select, poll), is `None`.
    fn readiness_fd(&self) -> Option<RawFd> {
        None
    }
}

/// Turns a C-style `-1` return into the current `errno` as an `io::Error`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the caller of `syscall!` states why the arguments are valid for `$fn`.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// Rejects an empty interest with the error every backend gives.
pub(crate) fn check_interest(interest: Interest) -> io::Result<()> {
    if interest.is_empty() {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty interest: register READABLE, WRITABLE or both",
        ))
    } else {
        Ok(())
    }
}

/// Fails with EBADF unless `fd` is an open file descriptor (the check select and poll need,
/// since their syscalls would only report a bad fd later, as an event).
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD only reads the descriptor flags; an invalid fd yields EBADF.
    syscall!(fcntl(fd, libc::F_GETFD)).map(drop)
}

/// The error for reregister/deregister of an fd the selector does not know.
pub(crate) fn not_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("fd {fd} is not registered"),
    )
}

/// The error for registering an fd twice.
pub(crate) fn already_registered(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("fd {fd} is already registered"),
    )
}

/// The end of a wait: when a timeout started, and how long it may last.
///
/// Backends wait in a loop: the syscall may return early (EINTR, or an event they filter
/// out), and the deadline gives the time that is left, never less than what was asked.
#[derive(Copy, Clone, Debug)]
struct Deadline(Option<Instant>);

impl Deadline {
    /// A timeout too large to represent as an instant waits without limit.
    fn after(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// The time left: `None` for no limit, zero once the deadline has passed.
    fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|end| end.saturating_duration_since(Instant::now()))
    }
}

/// A timeout in whole milliseconds for poll(2)/epoll_wait(2): -1 for no limit, sub-millisecond
/// parts rounded up so that the wait is never shorter than asked.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// The round of a backend whose every call scans all its fds (select, poll): after a wait
/// that found several fds ready (`busy`), it first looks with a zero timeout, and waits only
/// if the look finds nothing. Linux's select and poll register a wait-queue entry on every fd
/// they check until they meet a ready one, and free them all afterwards; a look registers
/// none, and under load it almost always finds work. After a wait that found a single fd (a
/// lone busy connection waiting for its next request) there is no look: it would find
/// nothing and cost a whole scan more. `wait(backend, events, timeout, look)` is the
/// backend's call; returns whether the next round should look first.
pub(crate) fn look_then_wait<B>(
    backend: &mut B,
    busy: bool,
    events: &mut Events,
    timeout: Option<Duration>,
    wait: fn(&mut B, &mut Events, Option<Duration>, bool) -> io::Result<()>,
) -> io::Result<bool> {
    if busy && timeout != Some(Duration::ZERO) {
        wait(backend, events, Some(Duration::ZERO), true)?;
        if !events.is_empty() {
            return Ok(true);
        }
    }
    wait(backend, events, timeout, false)?;
    Ok(events.len() > 1)
}

/// Runs one wait of a backend until it reports events or its time runs out: EINTR and empty
/// early returns wait again for the remaining time. `wait_once` is given the time to wait:
/// the whole timeout at first, what is left of it after an early return (so that a wait
/// that is not interrupted reads the clock once).
pub(crate) fn wait_loop(
    events: &mut Events,
    timeout: Option<Duration>,
    mut wait_once: impl FnMut(&mut Events, Option<Duration>) -> io::Result<()>,
) -> io::Result<()> {
    events.clear();
    let deadline = Deadline::after(timeout);
    let mut left = timeout;
    loop {
        match wait_once(events, left) {
            Ok(()) if !events.is_empty() => return Ok(()),
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        left = deadline.remaining();
        if left == Some(Duration::ZERO) {
            return Ok(());
        }
    }
}

/// What the backends' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::os::fd::{AsRawFd, OwnedFd};

    use super::{Events, Interest, Selector, Token};

    /// `n` pipes, the read end of pipe `i` registered in `selector` for reading as `Token(i)`.
    pub(crate) fn registered_pipes<S: Selector>(
        selector: &mut S,
        n: usize,
    ) -> Vec<(OwnedFd, OwnedFd)> {
        let pipes: Vec<(OwnedFd, OwnedFd)> = (0..n).map(|_| nix::unistd::pipe().unwrap()).collect();
        for (i, (read, _)) in pipes.iter().enumerate() {
            selector
                .register(read.as_raw_fd(), Token(i), Interest::READABLE)
                .unwrap();
        }
        pipes
    }

    /// The tokens of `events`, sorted.
    pub(crate) fn sorted_tokens(events: &Events) -> Vec<usize> {
        let mut tokens: Vec<usize> = events.iter().map(|e| e.token().0).collect();
        tokens.sort_unstable();
        tokens
    }
}
