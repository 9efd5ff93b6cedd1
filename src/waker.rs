//! Waking a selector from another thread.
//!
//! A [`WakeSource`] is created by the selector ([`Selector::new_waker`]): on Linux an eventfd,
//! on kqueue an `EVFILT_USER` event, elsewhere a pipe, each reported as a readable event with
//! the token it was made for. [`Waker`] handles to it are cheap to clone and can be sent to
//! other threads.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::selector::{syscall, Interest, Selector, Token};

/// How one kind of wake-up source is triggered and reset.
pub(crate) trait Wake: Send + Sync {
    /// Makes the selector report the source as ready; callable from any thread.
    fn wake(&self) -> io::Result<()>;
    /// Consumes pending wake-ups, on the selector's thread, after the source was reported.
    fn reset(&self) -> io::Result<()>;
}

struct Shared {
    wake: Box<dyn Wake>,
    stop_requested: AtomicBool,
}

/// The selector's end of a wake-up source: kept by whoever runs the selector.
pub struct WakeSource {
    shared: Arc<Shared>,
    token: Token,
}

/// A handle that wakes a selector (or stops a [`Reactor`](crate::Reactor)) from any thread.
#[derive(Clone)]
pub struct Waker {
    shared: Arc<Shared>,
}

impl WakeSource {
    /// Wraps a backend's own wake mechanism.
    pub(crate) fn from_wake(wake: Box<dyn Wake>, token: Token) -> WakeSource {
        WakeSource {
            shared: Arc::new(Shared {
                wake,
                stop_requested: AtomicBool::new(false),
            }),
            token,
        }
    }

    /// The fd-based source every backend can watch: an eventfd on Linux, a pipe elsewhere,
    /// registered as readable with `token`.
    pub(crate) fn new_fd<S: Selector + ?Sized>(
        selector: &mut S,
        token: Token,
    ) -> io::Result<WakeSource> {
        let wake = FdWake::new()?;
        selector.register(wake.read_fd(), token, Interest::READABLE)?;
        Ok(WakeSource::from_wake(Box::new(wake), token))
    }

    /// The token the selector reports this source with.
    pub fn token(&self) -> Token {
        self.token
    }

    /// A new handle for other threads.
    pub fn waker(&self) -> Waker {
        Waker {
            shared: self.shared.clone(),
        }
    }

    /// Consumes pending wake-ups after the selector reported this source, and says whether a
    /// [`Waker::stop`] was asked for since the last call.
    pub fn reset(&self) -> io::Result<bool> {
        self.shared.wake.reset()?;
        Ok(self.shared.stop_requested.swap(false, Ordering::AcqRel))
    }
}

impl Waker {
    /// Wakes the selector: its current or next `select` returns with the wake source ready.
    /// Repeated wakes before the selector runs coalesce into one event.
    pub fn wake(&self) -> io::Result<()> {
        self.shared.wake.wake()
    }

    /// Asks the loop to stop, and wakes it so that it notices.
    pub fn stop(&self) -> io::Result<()> {
        self.shared.stop_requested.store(true, Ordering::Release);
        self.wake()
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}

impl fmt::Debug for WakeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeSource")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// An eventfd (Linux) or a non-blocking pipe (elsewhere).
struct FdWake {
    read: OwnedFd,
    /// The pipe's write end; `None` for an eventfd, which is read and written through `read`.
    write: Option<OwnedFd>,
}

impl FdWake {
    /// An eventfd where the system has one and allows it, else a pipe: containers whose
    /// seccomp filter refuses eventfd2 still get a working waker.
    fn new() -> io::Result<FdWake> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: eventfd takes an initial value and flags.
            match syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)) {
                Ok(fd) => {
                    return Ok(FdWake {
                        // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
                        read: unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) },
                        write: None,
                    });
                }
                Err(e) => log::debug!("eventfd: {e}; the waker uses a pipe instead"),
            }
        }
        FdWake::pipe()
    }

    fn pipe() -> io::Result<FdWake> {
        let (read, write) = crate::sys::pipe()?;
        Ok(FdWake {
            read,
            write: Some(write),
        })
    }

    fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

impl Wake for FdWake {
    fn wake(&self) -> io::Result<()> {
        let fd = self.write.as_ref().unwrap_or(&self.read).as_raw_fd();
        let one: u64 = 1;
        // An eventfd takes an 8-byte counter increment; a pipe takes any byte.
        let len = if self.write.is_some() { 1 } else { 8 };
        // SAFETY: `one` is 8 readable bytes, `len` is at most 8.
        match syscall!(write(fd, (&one as *const u64).cast(), len)) {
            Ok(_) => Ok(()),
            // Full pipe or saturated counter: a wake-up is already pending.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn reset(&self) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: `buf` is writable for its whole length.
            match syscall!(read(
                self.read.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len()
            )) {
                Ok(n) if (n as usize) < buf.len() && self.write.is_some() => return Ok(()),
                Ok(_) if self.write.is_none() => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
