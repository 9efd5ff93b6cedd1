//! The kqueue(2) backend (macOS and the BSDs; Linux through libkqueue with feature `libkqueue`).
//!
//! Each registered fd has up to two knotes, an `EVFILT_READ` and an `EVFILT_WRITE` one, both
//! level-triggered (no `EV_CLEAR`). kqueue itself would accept `EV_ADD` for an fd twice, so the
//! selector keeps each fd's token and interest, and on every change adds or deletes only the
//! filters that differ. The token is looked up in that index when events come back, so changing
//! only the token needs no syscall.
//!
//! One fd can produce a read and a write kevent in the same wait; they are merged, so a token
//! appears at most once in the [`Events`] of one call.
//!
//! Things libkqueue (Linux) does differently from the kernels, coded around here:
//! - `kevent` with `EV_RECEIPT` waits for events if the event list has room after the
//!   receipts, so changes are submitted with a list of exactly one entry per change;
//! - `EV_ADD` on an existing read/write knote without `EV_CLEAR` fails, so only filters that
//!   change are added or deleted;
//! - it cannot notice a close, so knotes are deleted at `deregister` (before the close);
//! - returned events carry the stored flags (`EV_ADD`, `EV_RECEIPT`), which are ignored;
//! - timeouts are converted to an `int` of milliseconds, so one wait is capped at a day
//!   (the wait loop resumes it);
//! - a wake may be reported as zero events when the `EVFILT_USER` eventfd was already drained
//!   (the wait loop waits again).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

#[cfg(rawloop_libkqueue)]
use crate::libkqueue as sys;
#[cfg(not(rawloop_libkqueue))]
use libc as sys;

use crate::selector::{
    already_registered, check_interest, not_registered, syscall, wait_loop, Event, Events,
    Interest, Readiness, Selector, Token,
};
use crate::waker::{Wake, WakeSource};

/// Longest single wait: libkqueue turns the timeout into an `int` of milliseconds.
const MAX_WAIT_SECS: u64 = 24 * 60 * 60;

/// A selector on one kqueue, level-triggered.
pub struct Kqueue {
    /// Shared with the wakers, which trigger their `EVFILT_USER` events through it.
    kq: Arc<OwnedFd>,
    /// `regs[fd]` is the registration of `fd`, if any.
    regs: Vec<Option<Registration>>,
    /// The kevent list of `select`, as long as the caller's `Events` capacity.
    ready: Vec<sys::kevent>,
    /// The events of one wait, merged per fd before they are copied into `Events`.
    merged: Vec<Event>,
    /// The ident of the next waker's `EVFILT_USER` event (a separate ident space from fds).
    next_user_ident: usize,
}

#[derive(Copy, Clone, Debug)]
struct Registration {
    token: Token,
    interest: Interest,
    /// During one wait, where this fd's event is in `merged`.
    merged_at: Option<usize>,
}

/// The type of `kevent.filter` (NetBSD widens it to `u32`).
#[cfg(not(target_os = "netbsd"))]
type Filter = i16;
#[cfg(target_os = "netbsd")]
type Filter = u32;

/// The type of `kevent.flags` (NetBSD widens it to `u32`).
#[cfg(not(target_os = "netbsd"))]
type Flags = u16;
#[cfg(target_os = "netbsd")]
type Flags = u32;

/// A kevent with the given fields and everything else zero.
fn kev(ident: usize, filter: Filter, flags: Flags, fflags: u32) -> sys::kevent {
    // SAFETY: `kevent` is plain data (integers and a pointer), for which all-zero bytes are
    // valid; zeroing also covers fields only some systems have (FreeBSD's `ext`).
    let mut kev: sys::kevent = unsafe { std::mem::zeroed() };
    kev.ident = ident as _;
    kev.filter = filter;
    kev.flags = flags;
    kev.fflags = fflags;
    kev
}

/// kevent(2): applies `changes`, then waits up to `timeout` (`None`: without limit) for at most
/// `events.len()` events, and returns how many it stored.
fn kevent(
    kq: RawFd,
    changes: &[sys::kevent],
    events: &mut [sys::kevent],
    timeout: Option<&libc::timespec>,
) -> io::Result<usize> {
    let timeout = timeout.map_or(ptr::null(), |t| t as *const libc::timespec);
    let nevents = events.len().min(c_int::MAX as usize);
    // SAFETY: `changes` is readable and `events` writable for the lengths passed; `timeout` is
    // null or points to a live timespec. The kernel (or libkqueue) checks `kq`.
    let n = unsafe {
        sys::kevent(
            kq,
            changes.as_ptr(),
            changes.len() as _,
            events.as_mut_ptr(),
            nevents as _,
            timeout,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Applies `changes`, each with `EV_RECEIPT`, and returns one result per change, in order.
fn submit(kq: RawFd, changes: &[sys::kevent]) -> io::Result<Vec<io::Result<()>>> {
    // Exactly one slot per change: libkqueue waits for events when there is room left.
    let mut receipts: Vec<sys::kevent> = changes.iter().map(|_| kev(0, 0, 0, 0)).collect();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let n = kevent(kq, changes, &mut receipts, Some(&zero))?;
    // Changes are applied in order, each leaving its receipt in the next slot.
    let results = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i >= n {
                Err(io::Error::other("kevent returned no receipt"))
            } else if r.flags & sys::EV_ERROR != 0 && r.data != 0 {
                Err(io::Error::from_raw_os_error(r.data as i32))
            } else {
                Ok(())
            }
        })
        .collect();
    Ok(results)
}

/// The read/write knote changes that turn `from` into `to`: `EV_ADD` for filters `to` gains,
/// `EV_DELETE` for filters it drops.
fn changes(fd: RawFd, from: Interest, to: Interest) -> Vec<sys::kevent> {
    let filters = [
        (Interest::READABLE, sys::EVFILT_READ),
        (Interest::WRITABLE, sys::EVFILT_WRITE),
    ];
    let mut list = Vec::with_capacity(2);
    for (interest, filter) in filters {
        let action = match (from.contains(interest), to.contains(interest)) {
            (false, true) => sys::EV_ADD,
            (true, false) => sys::EV_DELETE,
            _ => continue,
        };
        list.push(kev(fd as usize, filter, action | sys::EV_RECEIPT, 0));
    }
    list
}

/// What one returned kevent says about its fd.
fn readiness(kev: &sys::kevent) -> Readiness {
    let mut r = Readiness::empty();
    if kev.filter == sys::EVFILT_READ {
        r |= Readiness::READABLE;
    }
    if kev.filter == sys::EVFILT_WRITE {
        r |= Readiness::WRITABLE;
    }
    if kev.flags & sys::EV_EOF != 0 {
        r |= Readiness::HUP;
        // With EV_EOF, the read and write filters put the socket's pending error in fflags.
        if kev.fflags != 0 {
            r |= Readiness::ERROR;
        }
    }
    if kev.flags & sys::EV_ERROR != 0 {
        r |= Readiness::ERROR;
    }
    r
}

/// A `timespec` for one wait of at most `d` (capped at [`MAX_WAIT_SECS`]).
fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(MAX_WAIT_SECS) as libc::time_t,
        tv_nsec: d.subsec_nanos() as _,
    }
}

impl Kqueue {
    fn registration(&self, fd: RawFd) -> Option<Registration> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.regs.get(i).copied().flatten())
    }

    /// Changes the knotes of `fd` from `from` to `to`. If one change fails, those that
    /// succeeded are undone and the first error is returned, so the kqueue still matches `from`.
    fn change(&self, fd: RawFd, from: Interest, to: Interest) -> io::Result<()> {
        let kq = self.kq.as_raw_fd();
        let list = changes(fd, from, to);
        let mut reached = from;
        let mut error = None;
        for (change, result) in list.iter().zip(submit(kq, &list)?) {
            match result {
                Ok(()) if change.filter == sys::EVFILT_READ => reached.toggle(Interest::READABLE),
                Ok(()) => reached.toggle(Interest::WRITABLE),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        match error {
            None => Ok(()),
            Some(e) => {
                // Best effort: the error to report is the first one.
                let _ = submit(kq, &changes(fd, reached, from));
                Err(e)
            }
        }
    }
}

// SAFETY: the only fields that are not `Send` and `Sync` are the `udata` pointers of the
// kevents in `ready`, which this backend never dereferences: they carry waker tokens as integers.
unsafe impl Send for Kqueue {}
// SAFETY: as above; `&Kqueue` gives access to nothing but the fd number and a count.
unsafe impl Sync for Kqueue {}

impl fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kqueue")
            .field("kq", &self.kq.as_raw_fd())
            .field("registered", &self.regs.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

impl Selector for Kqueue {
    fn name(&self) -> &'static str {
        "kqueue"
    }

    fn new() -> io::Result<Kqueue> {
        // SAFETY: kqueue takes no arguments.
        let fd = unsafe { sys::kqueue() };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by kqueue and is owned by nothing else.
        let kq = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: fcntl on an fd we own, with integer flags.
        syscall!(fcntl(kq.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC))?;
        Ok(Kqueue {
            kq: Arc::new(kq),
            regs: Vec::new(),
            ready: Vec::new(),
            merged: Vec::new(),
            next_user_ident: 0,
        })
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        if self.registration(fd).is_some() {
            return Err(already_registered(fd));
        }
        self.change(fd, Interest::empty(), interest)?;
        let index = fd as usize;
        if self.regs.len() <= index {
            self.regs.resize(index + 1, None);
        }
        self.regs[index] = Some(Registration {
            token,
            interest,
            merged_at: None,
        });
        Ok(())
    }

    /// A native kqueue's fd can be watched by another loop; libkqueue's cannot.
    fn readiness_fd(&self) -> Option<RawFd> {
        (!cfg!(rawloop_libkqueue)).then(|| self.kq.as_raw_fd())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        let reg = self.registration(fd).ok_or_else(|| not_registered(fd))?;
        self.change(fd, reg.interest, interest)?;
        self.regs[fd as usize] = Some(Registration {
            token,
            interest,
            merged_at: None,
        });
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let reg = self.registration(fd).ok_or_else(|| not_registered(fd))?;
        // Forgotten whatever happens: if a delete fails, the fd was closed too early and its
        // knote is gone (BSD) or can no longer be reached (libkqueue).
        self.regs[fd as usize] = None;
        let list = changes(fd, reg.interest, Interest::empty());
        submit(self.kq.as_raw_fd(), &list)?
            .into_iter()
            .collect::<io::Result<()>>()
    }

    /// On the BSDs and macOS closing a descriptor removes its knotes: only the table entry
    /// goes. libkqueue (Linux) cannot see a close, so there the knotes are deleted first.
    #[cfg(not(rawloop_libkqueue))]
    fn deregister_before_close(&mut self, fd: RawFd) -> io::Result<()> {
        self.registration(fd).ok_or_else(|| not_registered(fd))?;
        self.regs[fd as usize] = None;
        Ok(())
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let capacity = events.capacity();
        if self.ready.len() != capacity {
            self.ready.resize(capacity, kev(0, 0, 0, 0));
        }
        let Kqueue {
            kq,
            regs,
            ready,
            merged,
            ..
        } = self;
        let kq = kq.as_raw_fd();
        wait_loop(events, timeout, |events, left| {
            let timeout = left.map(timespec);
            let n = kevent(kq, &[], ready, timeout.as_ref())?;
            merged.clear();
            for kev in &ready[..n] {
                if kev.filter == sys::EVFILT_USER {
                    // A waker: its token travels in udata.
                    let token = Token(kev.udata as usize);
                    merged.push(Event::new(token, Readiness::READABLE));
                    continue;
                }
                let Some(Some(reg)) = regs.get_mut(kev.ident) else {
                    continue;
                };
                let r = readiness(kev);
                match reg.merged_at {
                    Some(i) => merged[i] = Event::new(reg.token, merged[i].readiness() | r),
                    None => {
                        reg.merged_at = Some(merged.len());
                        merged.push(Event::new(reg.token, r));
                    }
                }
            }
            for kev in &ready[..n] {
                if let Some(Some(reg)) = regs.get_mut(kev.ident) {
                    reg.merged_at = None;
                }
            }
            for event in merged.iter() {
                events.push(*event);
            }
            Ok(())
        })
    }

    /// An `EVFILT_USER` event with `EV_CLEAR`, triggered with `NOTE_TRIGGER`; `reset` deletes
    /// and re-adds it to drop triggers that came after it was reported.
    fn new_waker(&mut self, token: Token) -> io::Result<WakeSource> {
        let wake = UserWake {
            kq: self.kq.clone(),
            ident: self.next_user_ident,
            token,
        };
        self.next_user_ident += 1;
        submit(self.kq.as_raw_fd(), &[wake.add()])?
            .into_iter()
            .collect::<io::Result<()>>()?;
        Ok(WakeSource::from_wake(Box::new(wake), token))
    }
}

/// A waker's `EVFILT_USER` event; it keeps the kqueue open and deletes the event when dropped.
struct UserWake {
    kq: Arc<OwnedFd>,
    ident: usize,
    /// Carried in `udata`, where `select` finds it.
    token: Token,
}

impl UserWake {
    /// This waker's event with `flags` and `fflags`. Every change passes the token again, since
    /// macOS replaces the stored `udata` on every change.
    fn event(&self, flags: Flags, fflags: u32) -> sys::kevent {
        let mut event = kev(self.ident, sys::EVFILT_USER, flags, fflags);
        event.udata = self.token.0 as _;
        event
    }

    /// The change that adds the event, untriggered.
    fn add(&self) -> sys::kevent {
        self.event(
            sys::EV_ADD | sys::EV_ENABLE | sys::EV_CLEAR | sys::EV_RECEIPT,
            0,
        )
    }
}

impl Wake for UserWake {
    fn wake(&self) -> io::Result<()> {
        let trigger = self.event(0, sys::NOTE_TRIGGER);
        loop {
            match kevent(self.kq.as_raw_fd(), &[trigger], &mut [], None) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A concurrent `reset` is between its delete and its add: it consumes this
                // wake, as it would one that came just before it.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                result => return result.map(drop),
            }
        }
    }

    fn reset(&self) -> io::Result<()> {
        // EV_CLEAR untriggered the event when it was reported, but wakes since then have
        // triggered it again; there is no "untrigger", so replace the event.
        let delete = self.event(sys::EV_DELETE | sys::EV_RECEIPT, 0);
        submit(self.kq.as_raw_fd(), &[delete, self.add()])?
            .into_iter()
            .collect()
    }
}

impl Drop for UserWake {
    fn drop(&mut self) {
        // Best effort: the kqueue stays open until this, the last user of it, is gone.
        let _ = submit(
            self.kq.as_raw_fd(),
            &[self.event(sys::EV_DELETE | sys::EV_RECEIPT, 0)],
        );
    }
}
