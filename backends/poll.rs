//! The poll(2) backend (every Unix).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::selector::{
    already_registered, check_interest, check_open, not_registered, syscall, wait_loop, Event,
    Events, Interest, Readiness, Selector, Token,
};

/// A selector on poll(2), level-triggered.
///
/// Keeps the `pollfd` array the syscall reads, the token of each entry, and an index from fd
/// to entry, so that register, reregister and deregister are O(1).
#[derive(Debug, Default)]
pub struct Poll {
    fds: Vec<libc::pollfd>,
    tokens: Vec<Token>,
    /// `slot_of[fd]` is the position of `fd` in `fds`, if registered.
    slot_of: Vec<Option<usize>>,
    /// Where the next scan of ready entries starts, so that when more fds are ready than the
    /// events buffer holds, the ones left over are reported first next time.
    scan_from: usize,
}

fn interest_bits(interest: Interest) -> libc::c_short {
    let mut bits = 0;
    if interest.contains(Interest::READABLE) {
        bits |= libc::POLLIN;
    }
    if interest.contains(Interest::WRITABLE) {
        bits |= libc::POLLOUT;
    }
    bits
}

fn readiness(revents: libc::c_short) -> Readiness {
    let mut r = Readiness::empty();
    if revents & (libc::POLLIN | libc::POLLPRI) != 0 {
        r |= Readiness::READABLE;
    }
    if revents & libc::POLLOUT != 0 {
        r |= Readiness::WRITABLE;
    }
    if revents & libc::POLLHUP != 0 {
        r |= Readiness::HUP;
    }
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        r |= Readiness::ERROR;
    }
    r
}

impl Poll {
    fn slot(&self, fd: RawFd) -> Option<usize> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slot_of.get(i).copied().flatten())
    }
}

impl Selector for Poll {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn new() -> io::Result<Poll> {
        Ok(Poll::default())
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        check_open(fd)?;
        if self.slot(fd).is_some() {
            return Err(already_registered(fd));
        }
        let index = fd as usize;
        if self.slot_of.len() <= index {
            self.slot_of.resize(index + 1, None);
        }
        self.slot_of[index] = Some(self.fds.len());
        self.fds.push(libc::pollfd {
            fd,
            events: interest_bits(interest),
            revents: 0,
        });
        self.tokens.push(token);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        let slot = self.slot(fd).ok_or_else(|| not_registered(fd))?;
        self.fds[slot].events = interest_bits(interest);
        self.tokens[slot] = token;
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let slot = self.slot(fd).ok_or_else(|| not_registered(fd))?;
        self.slot_of[fd as usize] = None;
        self.fds.swap_remove(slot);
        self.tokens.swap_remove(slot);
        if let Some(moved) = self.fds.get(slot) {
            self.slot_of[moved.fd as usize] = Some(slot);
        }
        Ok(())
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let Poll {
            fds,
            tokens,
            scan_from,
            ..
        } = self;
        wait_loop(events, timeout, |events, deadline| {
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
            let mut ready = syscall!(poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                deadline.remaining_ms()
            ))? as usize;
            let n = fds.len();
            let start = if *scan_from < n { *scan_from } else { 0 };
            let mut i = start;
            while ready > 0 && !events.is_full() {
                let revents = fds[i].revents;
                if revents != 0 {
                    ready -= 1;
                    events.push(Event::new(tokens[i], readiness(revents)));
                }
                i = if i + 1 == n { 0 } else { i + 1 };
                if i == start {
                    break;
                }
            }
            *scan_from = i;
            Ok(())
        })
    }
}
