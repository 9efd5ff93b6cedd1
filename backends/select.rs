//! The select(2) backend (every Unix).
//!
//! A fixed `fd_set` holds only fds below `FD_SETSIZE` (1024 on most systems). On Linux, Android
//! and the BSDs the kernel reads and writes exactly `nfds` bits, so this backend keeps its own bit
//! arrays, sized to the highest registered fd, and passes them as `fd_set`s: any fd can be
//! watched. Elsewhere (macOS and iOS, where select(2) fails beyond `FD_SETSIZE`, and systems not
//! known to take larger sets) `register` refuses such an fd with [`io::ErrorKind::InvalidInput`].
//!
//! Only the read and write sets are used. The exception set means TCP urgent data on Linux, not
//! errors: a socket error or a closed peer shows as readable (and writable), so the caller's
//! next read or write returns it.

use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Duration;

use crate::selector::{
    already_registered, check_interest, check_open, look_then_wait, not_registered, syscall,
    wait_loop, Event, Events, Interest, Readiness, Selector, Token,
};

/// One word of an fd bitmap, as the kernel's `fd_mask`: 32 bits on macOS, NetBSD and OpenBSD,
/// `unsigned long` on Linux and FreeBSD.
#[cfg(any(
    target_vendor = "apple",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "haiku"
))]
type Word = u32;
/// One word of an fd bitmap, as the kernel's `fd_mask`.
#[cfg(not(any(
    target_vendor = "apple",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "haiku"
)))]
type Word = libc::c_ulong;

// A word of the wrong size would put every bit above the first word at the wrong fd.
const _: () = assert!(mem::align_of::<Word>() == mem::align_of::<libc::fd_set>());

const WORD_BITS: usize = Word::BITS as usize;

/// Words in one `fd_set`: the least each set holds, so that it is always a whole `fd_set`.
const SET_WORDS: usize = mem::size_of::<libc::fd_set>() / mem::size_of::<Word>();

/// Whether select(2) takes sets larger than `fd_set`.
const GROWS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
));

/// The longest single wait: macOS rejects a timeval above 10^8 seconds, and `wait_loop` waits
/// again for the rest.
const MAX_WAIT_SECS: u128 = 100_000_000;

/// A selector on select(2), level-triggered.
///
/// Keeps the read and write sets as bit arrays indexed by fd, the scratch copies the kernel
/// overwrites, and the token of each fd, so that register, reregister and deregister are O(1).
#[derive(Debug)]
pub struct Select {
    /// `tokens[fd]` is the token of `fd`; `fd` is registered when its bit is set in `read` or
    /// `write` (an interest is never empty). Its length is `nfds` once trailing unregistered
    /// fds are trimmed. (A plain token, not an `Option`: 8 bytes per fd instead of 16.)
    tokens: Vec<Token>,
    read: Vec<Word>,
    write: Vec<Word>,
    read_out: Vec<Word>,
    write_out: Vec<Word>,
    /// Where the next scan of ready fds starts, so that when more fds are ready than the
    /// events buffer holds, the ones left over are reported first next time.
    scan_from: usize,
    /// The last wait found several fds ready: the next one first looks without waiting.
    busy: bool,
    /// The fds reported by the last round that found any: a look checks them last.
    hot: Vec<usize>,
    /// Scratch sets for the look at the `hot` fds.
    hot_read: Vec<Word>,
    hot_write: Vec<Word>,
    /// Scratch: the fds this round reports.
    found: Vec<usize>,
}

fn is_set(set: &[Word], fd: usize) -> bool {
    set[fd / WORD_BITS] & (1 << (fd % WORD_BITS)) != 0
}

/// Whether `fd` is registered: an interest is never empty, so it has a bit in one of the sets.
fn registered(read: &[Word], write: &[Word], fd: usize) -> bool {
    is_set(read, fd) || is_set(write, fd)
}

fn put(set: &mut [Word], fd: usize, on: bool) {
    let bit: Word = 1 << (fd % WORD_BITS);
    if on {
        set[fd / WORD_BITS] |= bit;
    } else {
        set[fd / WORD_BITS] &= !bit;
    }
}

fn readiness(read: &[Word], write: &[Word], fd: usize) -> Readiness {
    let mut r = Readiness::empty();
    if is_set(read, fd) {
        r |= Readiness::READABLE;
    }
    if is_set(write, fd) {
        r |= Readiness::WRITABLE;
    }
    r
}

/// A timeval for select(2), sub-microsecond parts rounded up.
fn timeval(d: Duration) -> libc::timeval {
    let micros = d.as_nanos().div_ceil(1_000);
    libc::timeval {
        tv_sec: (micros / 1_000_000).min(MAX_WAIT_SECS) as libc::time_t,
        tv_usec: (micros % 1_000_000) as _,
    }
}

fn check_setsize(fd: RawFd) -> io::Result<()> {
    if GROWS || (fd as usize) < libc::FD_SETSIZE {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "fd {fd} is not below FD_SETSIZE ({}), which select(2) cannot watch on this \
             system; use the poll backend",
            libc::FD_SETSIZE
        ),
    ))
}

impl Select {
    fn token(&self, fd: RawFd) -> Option<Token> {
        let fd = usize::try_from(fd).ok()?;
        let token = *self.tokens.get(fd)?;
        self.is_registered(fd).then_some(token)
    }

    fn is_registered(&self, fd: usize) -> bool {
        registered(&self.read, &self.write, fd)
    }

    fn set_interest(&mut self, fd: usize, interest: Interest) {
        put(&mut self.read, fd, interest.contains(Interest::READABLE));
        put(&mut self.write, fd, interest.contains(Interest::WRITABLE));
    }
}

impl Selector for Select {
    fn name(&self) -> &'static str {
        "select"
    }

    fn new() -> io::Result<Select> {
        Ok(Select {
            tokens: Vec::new(),
            read: vec![0; SET_WORDS],
            write: vec![0; SET_WORDS],
            read_out: vec![0; SET_WORDS],
            write_out: vec![0; SET_WORDS],
            scan_from: 0,
            busy: false,
            hot: Vec::new(),
            hot_read: vec![0; SET_WORDS],
            hot_write: vec![0; SET_WORDS],
            found: Vec::new(),
        })
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        check_open(fd)?;
        if self.token(fd).is_some() {
            return Err(already_registered(fd));
        }
        check_setsize(fd)?;
        let index = fd as usize;
        if self.tokens.len() <= index {
            self.tokens.resize(index + 1, Token(0));
        }
        let words = index / WORD_BITS + 1;
        for set in [
            &mut self.read,
            &mut self.write,
            &mut self.read_out,
            &mut self.write_out,
        ] {
            if set.len() < words {
                set.resize(words, 0);
            }
        }
        self.tokens[index] = token;
        self.set_interest(index, interest);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_interest(interest)?;
        self.token(fd).ok_or_else(|| not_registered(fd))?;
        self.tokens[fd as usize] = token;
        self.set_interest(fd as usize, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.token(fd).ok_or_else(|| not_registered(fd))?;
        self.set_interest(fd as usize, Interest::empty());
        Ok(())
    }

    /// Waits as select(2) does, with one difference that costs nothing in the answer: after
    /// a wait that found several fds ready (or a look that found work), it first looks
    /// without waiting (`look_then_wait` in the selector module says why). With 10,000 idle
    /// sockets below the busy ones (opened first, so lower fd numbers) a waiting call costs
    /// about twice a looking one. The look checks the fds the last round reported after all
    /// the others, in a second call: it starts just after that round wrote its replies, and
    /// the scan of the idle fds gives the next requests time to arrive. Every fd is still
    /// checked in every round.
    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        while self
            .tokens
            .len()
            .checked_sub(1)
            .is_some_and(|last| !self.is_registered(last))
        {
            self.tokens.pop();
        }
        self.busy = look_then_wait(self, self.busy, events, timeout, Select::wait)?;
        Ok(())
    }
}

impl Select {
    /// Waits (or, with `look`, looks without waiting) and reports what is ready.
    fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
        look: bool,
    ) -> io::Result<()> {
        let Select {
            tokens,
            read,
            write,
            read_out,
            write_out,
            scan_from,
            hot,
            hot_read,
            hot_write,
            found,
            ..
        } = self;
        let n = tokens.len();
        let words = n.div_ceil(WORD_BITS);
        wait_loop(events, timeout, |events, left| {
            read_out[..words].copy_from_slice(&read[..words]);
            write_out[..words].copy_from_slice(&write[..words]);
            found.clear();
            let result = if look && !hot.is_empty() && hot.len() < n {
                // The idle fds first, the busy ones last: replies to what the last round
                // wrote have the time of the long scan to arrive before their fds are checked.
                let hot_n = hot.iter().max().map_or(0, |&fd| fd + 1);
                let hot_words = hot_n.div_ceil(WORD_BITS);
                if hot_read.len() < hot_words {
                    hot_read.resize(hot_words, 0);
                    hot_write.resize(hot_words, 0);
                }
                hot_read[..hot_words].fill(0);
                hot_write[..hot_words].fill(0);
                for &fd in hot.iter() {
                    put(read_out, fd, false);
                    put(write_out, fd, false);
                    put(hot_read, fd, is_set(read, fd));
                    put(hot_write, fd, is_set(write, fd));
                }
                let now = Some(Duration::ZERO);
                select_sets(n, read_out, write_out, now).and_then(|idle| {
                    let busy = select_sets(hot_n, hot_read, hot_write, now)?;
                    for w in 0..hot_words {
                        read_out[w] |= hot_read[w];
                        write_out[w] |= hot_write[w];
                    }
                    Ok(idle + busy)
                })
            } else {
                select_sets(n, read_out, write_out, left)
            };
            let mut ready = match result {
                Ok(ready) => ready,
                // A registered fd was closed without deregister: report it, as poll does.
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                    for (fd, &token) in tokens.iter().enumerate() {
                        if registered(read, write, fd) && check_open(fd as RawFd).is_err() {
                            events.push(Event::new(token, Readiness::ERROR));
                        }
                    }
                    return if events.is_empty() { Err(e) } else { Ok(()) };
                }
                Err(e) => return Err(e),
            };
            let start = if *scan_from < n { *scan_from } else { 0 };
            let mut next = start;
            // From where the last scan stopped to the end, then from 0: a word at a time,
            // skipping words with nothing set.
            for (lo, hi) in [(start, n), (0, start)] {
                let done = for_each_set(read_out, write_out, lo, hi, |fd| {
                    if ready == 0 || events.is_full() {
                        return false;
                    }
                    let r = readiness(read_out, write_out, fd);
                    ready = ready.saturating_sub(r.bits().count_ones() as usize);
                    events.push(Event::new(tokens[fd], r));
                    found.push(fd);
                    next = fd + 1;
                    true
                });
                if !done {
                    break;
                }
            }
            *scan_from = if next >= n { 0 } else { next };
            Ok(())
        })?;
        if !self.found.is_empty() {
            std::mem::swap(&mut self.hot, &mut self.found);
        }
        Ok(())
    }
}

/// select(2) on the first `nfds` bits of `read` and `write`, waiting at most `timeout` (`None`:
/// until something is ready): how many bits it left set.
fn select_sets(
    nfds: usize,
    read: &mut [Word],
    write: &mut [Word],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let mut tv = timeout.map(timeval);
    let tv_ptr = tv.as_mut().map_or(ptr::null_mut(), ptr::from_mut);
    // SAFETY: each set is at least a whole fd_set and holds `nfds` bits, all the kernel reads
    // or writes; `tv_ptr` is null or points to a timeval that outlives the call.
    let ready = syscall!(select(
        nfds as libc::c_int,
        read.as_mut_ptr().cast(),
        write.as_mut_ptr().cast(),
        ptr::null_mut(),
        tv_ptr
    ))?;
    Ok(ready as usize)
}

/// Calls `f` with every fd in `lo..hi` set in `read` or `write`, in order, until it returns
/// false; returns whether it went through them all.
fn for_each_set(
    read: &[Word],
    write: &[Word],
    lo: usize,
    hi: usize,
    mut f: impl FnMut(usize) -> bool,
) -> bool {
    let mut fd = lo;
    while fd < hi {
        let word = fd / WORD_BITS;
        // The bits of this word from `fd` on.
        let mut bits = (read[word] | write[word]) >> (fd % WORD_BITS);
        if bits == 0 {
            fd = (word + 1) * WORD_BITS;
            continue;
        }
        while bits != 0 {
            let at = fd + bits.trailing_zeros() as usize;
            if at >= hi {
                return true;
            }
            if !f(at) {
                return false;
            }
            bits &= bits - 1;
        }
        fd = (word + 1) * WORD_BITS;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::test_support::{registered_pipes, sorted_tokens};
    use std::os::fd::AsRawFd;

    /// After a round that found several ready, the next one first looks in two parts (the
    /// idle fds, then the ones the last round reported): what is ready in either part is
    /// reported, once, and the busy ones keep their interest.
    #[test]
    fn the_look_in_two_parts_reports_both_parts() {
        let mut select = Select::new().unwrap();
        let pipes = registered_pipes(&mut select, 6);
        for i in [1, 3] {
            nix::unistd::write(&pipes[i].1, b"x").unwrap();
        }
        let mut events = Events::with_capacity(64);
        select.select(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(sorted_tokens(&events), [1, 3]);
        assert!(select.busy);
        nix::unistd::write(&pipes[5].1, b"x").unwrap();
        select
            .select(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(sorted_tokens(&events), [1, 3, 5]);
        for (i, (r, _)) in pipes.iter().enumerate() {
            assert_eq!(select.token(r.as_raw_fd()), Some(Token(i)));
        }
    }
}
