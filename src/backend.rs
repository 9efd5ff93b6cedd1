//! Choosing a backend at run time, by name, for programs that take `--backend`.

use std::fmt;
use std::str::FromStr;

use crate::Selector;

/// One of the four backends, named as `--backend` spells it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
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

/// Code to run with a selector type chosen at run time: [`Backend::run`] calls
/// [`run`](WithSelector::run) with the backend's type, so the body is compiled once per
/// backend and runs without dynamic dispatch.
pub trait WithSelector {
    /// What the code returns.
    type Output;
    /// Runs the code with selector type `S`.
    fn run<S: Selector + 'static>(self) -> Self::Output;
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

    /// Runs `job` with this backend's selector type, or returns `None` when the backend is
    /// not compiled in this build.
    pub fn run<J: WithSelector>(self, job: J) -> Option<J::Output> {
        match self {
            Backend::Select => Some(job.run::<crate::Select>()),
            Backend::Poll => Some(job.run::<crate::Poll>()),
            #[cfg(rawloop_epoll)]
            Backend::Epoll => Some(job.run::<crate::Epoll>()),
            #[cfg(rawloop_kqueue)]
            Backend::Kqueue => Some(job.run::<crate::Kqueue>()),
            #[allow(unreachable_patterns)]
            _ => None,
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
