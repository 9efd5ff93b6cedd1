//! The epoll(7) backend (Linux and Android).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::selector::{
    already_registered, check_interest, not_registered, syscall, timeout_ms, wait_loop, Event,
    Events, Interest, Readiness, Selector, Token,
};

/// A selector on one epoll instance, level-triggered.
#[derive(Debug)]
pub struct Epoll {
    epfd: OwnedFd,
    ready: Vec<libc::epoll_event>,
}

impl Epoll {
    fn ctl(&self, op: libc::c_int, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest_bits(interest),
            u64: token.0 as u64,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call; the kernel
        // checks `epfd` and `fd`.
        syscall!(epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event)).map(drop)
    }
}

fn interest_bits(interest: Interest) -> u32 {
    let mut bits = 0;
    if interest.contains(Interest::READABLE) {
        bits |= libc::EPOLLIN | libc::EPOLLRDHUP;
    }
    if interest.contains(Interest::WRITABLE) {
        bits |= libc::EPOLLOUT;
    }
    bits as u32
}

fn readiness(bits: u32) -> Readiness {
    let bits = bits as libc::c_int;
    let mut r = Readiness::empty();
    if bits & (libc::EPOLLIN | libc::EPOLLPRI) != 0 {
        r |= Readiness::READABLE;
    }
    if bits & libc::EPOLLOUT != 0 {
        r |= Readiness::WRITABLE;
    }
    if bits & (libc::EPOLLHUP | libc::EPOLLRDHUP) != 0 {
        r |= Readiness::HUP;
    }
    if bits & libc::EPOLLERR != 0 {
        r |= Readiness::ERROR;
    }
    r
}

impl Selector for Epoll {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes only flags.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        Ok(Epoll {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nothing else.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            ready: Vec::new(),
        })
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EEXIST) => already_registered(fd),
                _ => e,
            })
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => not_registered(fd),
                _ => e,
            })
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        syscall!(epoll_ctl(
            self.epfd.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut()
        ))
        .map(drop)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => not_registered(fd),
            _ => e,
        })
    }

    /// Nothing to do: closing the last descriptor of an open file takes it out of every
    /// epoll set.
    fn deregister_before_close(&mut self, _: RawFd) -> io::Result<()> {
        Ok(())
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.epfd.as_raw_fd())
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let capacity = events.capacity();
        if self.ready.len() != capacity {
            self.ready
                .resize(capacity, libc::epoll_event { events: 0, u64: 0 });
        }
        let epfd = self.epfd.as_raw_fd();
        let ready = &mut self.ready;
        wait_loop(events, timeout, |events, left| {
            // SAFETY: `ready` holds `capacity` initialised epoll_events the kernel may overwrite.
            let n = syscall!(epoll_wait(
                epfd,
                ready.as_mut_ptr(),
                capacity as libc::c_int,
                timeout_ms(left)
            ))?;
            for e in &ready[..n as usize] {
                let token = Token(e.u64 as usize);
                events.push(Event::new(token, readiness(e.events)));
            }
            Ok(())
        })
    }
}
