//! Choosing a backend at run time, by name, for programs that take `--backend`.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Duration;

use crate::waker::WakeSource;
use crate::{Events, Interest, Reactor, Selector, Token};

/// One of the four backends, named as `--backend` spells it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// select(2): every Unix.
    Select,
    /// poll(2): every Unix.
    Poll,
    /// epoll(7): Linux and Android.
    Epoll,
    /// kqueue(2): macOS and the BSDs, or Linux with the `libkqueue` feature.
    Kqueue,
}

impl Backend {
    /// Every backend, compiled here or not.
    pub const ALL: [Backend; 4] = [
        Backend::Select,
        Backend::Poll,
        Backend::Epoll,
        Backend::Kqueue,
    ];

    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::Kqueue => "kqueue",
        }
    }

    /// Whether this build has the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Select | Backend::Poll => true,
            Backend::Epoll => cfg!(rawloop_epoll),
            Backend::Kqueue => cfg!(rawloop_kqueue),
        }
    }

    /// The backends this build has, in [`Backend::ALL`] order.
    pub fn compiled() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_compiled())
            .collect()
    }

    /// The backend of [`DefaultSelector`](crate::DefaultSelector).
    pub fn default_for_build() -> Backend {
        if cfg!(rawloop_default = "select") {
            Backend::Select
        } else if cfg!(rawloop_default = "poll") {
            Backend::Poll
        } else if cfg!(rawloop_default = "epoll") {
            Backend::Epoll
        } else {
            Backend::Kqueue
        }
    }
}

impl Default for Backend {
    fn default() -> Backend {
        Backend::default_for_build()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a backend name that is unknown or not compiled in this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBackend(String);

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Backend::compiled().iter().map(|b| b.name()).collect();
        write!(
            f,
            "backend {:?} is not available in this build (available: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownBackend {}

impl FromStr for Backend {
    type Err = UnknownBackend;

    /// Parses a backend name, accepting only backends compiled in this build.
    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s && b.is_compiled())
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// A selector whose backend is chosen at run time: any backend compiled in this build,
/// behind one type. `Reactor<AnySelector>` is what a program that takes `--backend` uses;
/// a program that knows its backend at build time names it (`Reactor<Epoll>`) or takes
/// [`DefaultSelector`](crate::DefaultSelector).
///
/// ```
/// use rawloop::{AnySelector, Backend, Reactor};
///
/// let backend: Backend = "poll".parse()?;
/// let reactor = Reactor::with_backend(backend)?;
/// assert_eq!(reactor.backend(), "poll");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AnySelector {
    /// select(2).
    Select(crate::Select),
    /// poll(2).
    Poll(crate::Poll),
    /// epoll(7).
    #[cfg(rawloop_epoll)]
    Epoll(crate::Epoll),
    /// kqueue(2).
    #[cfg(rawloop_kqueue)]
    Kqueue(crate::Kqueue),
}

/// Runs `$body` with `$s` bound to the selector inside `$any`.
macro_rules! each {
    ($any:expr, $s:ident => $body:expr) => {
        match $any {
            AnySelector::Select($s) => $body,
            AnySelector::Poll($s) => $body,
            #[cfg(rawloop_epoll)]
            AnySelector::Epoll($s) => $body,
            #[cfg(rawloop_kqueue)]
            AnySelector::Kqueue($s) => $body,
        }
    };
}

impl AnySelector {
    /// A new selector of `backend`; fails with [`io::ErrorKind::Unsupported`] for a backend
    /// this build does not have.
    pub fn with_backend(backend: Backend) -> io::Result<AnySelector> {
        Ok(match backend {
            Backend::Select => AnySelector::Select(crate::Select::new()?),
            Backend::Poll => AnySelector::Poll(crate::Poll::new()?),
            #[cfg(rawloop_epoll)]
            Backend::Epoll => AnySelector::Epoll(crate::Epoll::new()?),
            #[cfg(rawloop_kqueue)]
            Backend::Kqueue => AnySelector::Kqueue(crate::Kqueue::new()?),
            #[allow(unreachable_patterns)]
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the {other} backend is not compiled in this build"),
                ))
            }
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            AnySelector::Select(_) => Backend::Select,
            AnySelector::Poll(_) => Backend::Poll,
            #[cfg(rawloop_epoll)]
            AnySelector::Epoll(_) => Backend::Epoll,
            #[cfg(rawloop_kqueue)]
            AnySelector::Kqueue(_) => Backend::Kqueue,
        }
    }
}

impl Selector for AnySelector {
    fn name(&self) -> &'static str {
        self.backend().name()
    }

    /// A selector of the build's default backend.
    fn new() -> io::Result<AnySelector> {
        AnySelector::with_backend(Backend::default_for_build())
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        each!(self, s => s.register(fd, token, interest))
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        each!(self, s => s.reregister(fd, token, interest))
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        each!(self, s => s.deregister(fd))
    }

    fn deregister_before_close(&mut self, fd: RawFd) -> io::Result<()> {
        each!(self, s => s.deregister_before_close(fd))
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.select(events, timeout))
    }

    fn new_waker(&mut self, token: Token) -> io::Result<WakeSource> {
        each!(self, s => s.new_waker(token))
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        each!(self, s => s.readiness_fd())
    }
}

impl Reactor<AnySelector> {
    /// A reactor on the backend chosen at run time, e.g. parsed from `--backend`.
    pub fn with_backend(backend: Backend) -> io::Result<Reactor<AnySelector>> {
        Reactor::with_selector(AnySelector::with_backend(backend)?)
    }
}
