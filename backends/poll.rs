//! The poll(2) backend (every Unix).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::selector::{
    already_registered, check_interest, check_open, look_then_wait, not_registered, syscall,
    timeout_ms, wait_loop, Event, Events, Interest, Readiness, Selector, Token,
};

/// A selector on poll(2), level-triggered.
///
/// Keeps the `pollfd` array the syscall reads, the token of each entry, and an index from fd
/// to entry, so that register, reregister and deregister are O(1).
///
/// # The order of the array
///
/// Linux's poll registers a wait-queue entry on every fd it checks until it meets a ready
/// one (and frees them all afterwards), so the position of the busy fds in the array decides
/// what a wait costs: with 10,000 idle sockets ahead of the busy ones, every wait registers
/// 10,000 entries. So the entries reported ready are moved to the front after each wait:
/// whatever was busy lately is checked first, whatever the order of registration. The others
/// keep their order (registration order, near enough fd order), in which the kernel reaches
/// their files with fewer cache misses than in a shuffled one. (The order's worst case:
/// connections that become ready one at a time in turn, round-robin, the next always the one
/// ready least recently, which this order puts last.)
///
/// After a wait that found several fds ready (or a look that found work), the next one first
/// looks with a zero timeout, which registers nothing; the real wait follows only if that
/// look finds nothing. The look checks the idle rest of the array first and the busy front
/// last, in two calls: a look starts just after the round wrote its replies, and the scan of
/// the idle fds gives the next requests on the busy ones time to arrive, so that one round
/// serves them all. Every fd is still checked in every round. (No wait is cheap when nothing
/// is ready: with 10,000 fds and none ready, poll registers and frees 10,000 entries whatever
/// the order. Only epoll and kqueue avoid that.)
#[derive(Debug, Default)]
pub struct Poll {
    fds: Vec<libc::pollfd>,
    tokens: Vec<Token>,
    /// `slot_of[fd]` is the position of `fd` in `fds`, or `NONE`.
    slot_of: Vec<u32>,
    /// Where the next scan of ready entries starts, so that when more fds are ready than the
    /// events buffer holds, the ones left over are reported first next time.
    scan_from: usize,
    /// The positions reported ready by the last wait, to move to the front.
    ready_at: Vec<usize>,
    /// How many entries at the front were ready in the last round that found any.
    hot: usize,
    /// Scratch for the ready entries while the others slide back.
    moving: Vec<(libc::pollfd, Token)>,
    /// The last wait found several fds ready: the next one first looks without waiting.
    busy: bool,
}

/// No position: the fd is not registered.
const NONE: u32 = u32::MAX;

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

/// poll(2) on `fds`, waiting at most `timeout_ms` (-1: until something is ready): how many
/// have events.
fn poll_fds(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
    let ready = syscall!(poll(
        fds.as_mut_ptr(),
        fds.len() as libc::nfds_t,
        timeout_ms
    ))?;
    Ok(ready as usize)
}

impl Poll {
    fn slot(&self, fd: RawFd) -> Option<usize> {
        let at = *self.slot_of.get(usize::try_from(fd).ok()?)?;
        (at != NONE).then_some(at as usize)
    }

    /// Moves the entries reported ready to the front of the array, in their order, and keeps
    /// the others in theirs. (Swapping them into place instead would shuffle the idle fds: the
    /// kernel then visits their files in a scattered order, which costs it more cache misses
    /// per fd than registration order does.)
    fn move_ready_to_front(&mut self) {
        let mut ready_at = std::mem::take(&mut self.ready_at);
        ready_at.sort_unstable();
        if !ready_at.is_empty() {
            self.hot = ready_at.len();
        }
        // The ones already at the front stay where they are.
        let skip = ready_at
            .iter()
            .enumerate()
            .take_while(|&(front, &at)| front == at)
            .count();
        if let Some(&last) = ready_at.last().filter(|_| skip < ready_at.len()) {
            let moving = &ready_at[skip..];
            let mut ready = std::mem::take(&mut self.moving);
            ready.extend(moving.iter().map(|&at| (self.fds[at], self.tokens[at])));
            // The others in skip..=last slide towards `last`, in order, behind the ready ones.
            let mut to = last;
            let mut pending = moving.len();
            for from in (skip..=last).rev() {
                if pending > 0 && moving[pending - 1] == from {
                    pending -= 1;
                    continue;
                }
                self.fds[to] = self.fds[from];
                self.tokens[to] = self.tokens[from];
                to -= 1;
            }
            for (i, (fd, token)) in ready.drain(..).enumerate() {
                self.fds[skip + i] = fd;
                self.tokens[skip + i] = token;
            }
            self.moving = ready;
            for at in skip..=last {
                self.slot_of[self.fds[at].fd as usize] = at as u32;
            }
        }
        ready_at.clear();
        self.ready_at = ready_at;
        self.scan_from = 0;
    }

    /// Waits (or, with `look`, looks without waiting) and reports what is ready.
    fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
        look: bool,
    ) -> io::Result<()> {
        let hot = self.hot;
        let Poll {
            fds,
            tokens,
            scan_from,
            ready_at,
            ..
        } = self;
        wait_loop(events, timeout, |events, left| {
            ready_at.clear();
            let n = fds.len();
            let mut ready = if look && 0 < hot && hot < n {
                // The idle part first, the busy front last: replies to what the last round
                // wrote have the time of the long scan to arrive before their fds are checked.
                poll_fds(&mut fds[hot..], 0)? + poll_fds(&mut fds[..hot], 0)?
            } else {
                poll_fds(fds, timeout_ms(left))?
            };
            let start = if *scan_from < n { *scan_from } else { 0 };
            let mut i = start;
            while ready > 0 && !events.is_full() {
                let revents = fds[i].revents;
                if revents != 0 {
                    ready -= 1;
                    events.push(Event::new(tokens[i], readiness(revents)));
                    ready_at.push(i);
                }
                i = if i + 1 == n { 0 } else { i + 1 };
                if i == start {
                    break;
                }
            }
            *scan_from = i;
            Ok(())
        })?;
        // When more were ready than the events buffer holds, the rest are reported first
        // next time (`scan_from`) and the order is left alone.
        if !events.is_full() {
            self.move_ready_to_front();
        }
        Ok(())
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
            self.slot_of.resize(index + 1, NONE);
        }
        self.slot_of[index] = self.fds.len() as u32;
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
        self.slot_of[fd as usize] = NONE;
        self.fds.swap_remove(slot);
        self.tokens.swap_remove(slot);
        if let Some(moved) = self.fds.get(slot) {
            self.slot_of[moved.fd as usize] = slot as u32;
        }
        Ok(())
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.busy = look_then_wait(self, self.busy, events, timeout, Poll::wait)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::test_support::{registered_pipes, sorted_tokens};
    use std::os::fd::AsRawFd;

    fn order(poll: &Poll) -> Vec<usize> {
        for (at, pfd) in poll.fds.iter().enumerate() {
            assert_eq!(
                poll.slot_of[pfd.fd as usize], at as u32,
                "slot_of of fd {}",
                pfd.fd
            );
        }
        poll.tokens.iter().map(|t| t.0).collect()
    }

    fn ready(poll: &mut Poll) -> Vec<usize> {
        let mut events = Events::with_capacity(64);
        poll.select(&mut events, Some(Duration::ZERO)).unwrap();
        sorted_tokens(&events)
    }

    /// The ready entries move to the front in their order; the others keep theirs, so the
    /// kernel keeps visiting the idle fds in registration order.
    #[test]
    fn ready_fds_move_to_the_front_and_the_rest_keep_their_order() {
        let mut poll = Poll::new().unwrap();
        let pipes = registered_pipes(&mut poll, 8);
        for i in [2, 5, 6] {
            nix::unistd::write(&pipes[i].1, b"x").unwrap();
        }
        assert_eq!(ready(&mut poll), [2, 5, 6]);
        assert_eq!(order(&poll), [2, 5, 6, 0, 1, 3, 4, 7]);

        nix::unistd::read(&pipes[5].0, &mut [0u8; 1]).unwrap();
        for i in [0, 7] {
            nix::unistd::write(&pipes[i].1, b"x").unwrap();
        }
        assert_eq!(ready(&mut poll), [0, 2, 6, 7]);
        assert_eq!(order(&poll), [2, 6, 0, 7, 5, 1, 3, 4]);

        poll.deregister(pipes[6].0.as_raw_fd()).unwrap();
        assert_eq!(ready(&mut poll), [0, 2, 7]);
        order(&poll);
    }

    /// After a round that found several ready, the next one first looks in two parts (the
    /// idle rest, then the busy front): what is ready in either part is reported, once.
    #[test]
    fn the_look_in_two_parts_reports_both_parts() {
        let mut poll = Poll::new().unwrap();
        let pipes = registered_pipes(&mut poll, 6);
        for i in [1, 3] {
            nix::unistd::write(&pipes[i].1, b"x").unwrap();
        }
        assert_eq!(ready(&mut poll), [1, 3]);
        assert!(poll.busy);
        assert_eq!(poll.hot, 2);
        nix::unistd::write(&pipes[5].1, b"x").unwrap();
        let mut events = Events::with_capacity(64);
        poll.select(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(sorted_tokens(&events), [1, 3, 5]);
        assert_eq!(order(&poll)[..3], [1, 3, 5]);
    }
}
