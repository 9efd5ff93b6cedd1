//! rawloop: an event loop written directly on the readiness syscalls.
//!
//! Two layers, as in Python's `selectors` module and the programs built on it:
//!
//! 1. **[`Selector`]**: register an fd with a [`Token`] and an [`Interest`], then
//!    [`select`](Selector::select) into [`Events`]. Four backends implement it, one file each
//!    in `backends/`: [`Select`] (select(2)), [`Poll`] (poll(2)), `Epoll` (Linux) and `Kqueue`
//!    (macOS and the BSDs, or Linux with the `libkqueue` feature). Every backend the target
//!    supports is compiled; [`DefaultSelector`] names the one chosen at build time.
//! 2. **[`Reactor`]**: owns a selector and the registered sources, each with a callback or a
//!    state machine ([`Handler`]), and runs them, with timers, a cross-thread [`Waker`] and
//!    clean shutdown.
//!
//! ```no_run
//! use std::net::TcpListener;
//! use rawloop::{Interest, Reactor};
//!
//! let mut reactor: Reactor = Reactor::new()?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! reactor.register(listener, Interest::READABLE, |listener: &mut TcpListener, cx: &mut rawloop::Context<'_>, _ev| {
//!     let (stream, peer) = listener.accept()?;
//!     println!("accepted {peer}");
//!     drop(stream);
//!     cx.stop();
//!     Ok(())
//! })?;
//! reactor.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

/// The README's code, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod acceptor;
mod alarm;
mod backend;
pub mod buffer;
mod context;
mod diag;
mod handler;
pub mod net;
#[cfg(feature = "protocol")]
pub mod protocol;
mod reactor;
mod remote;
mod selector;
pub mod server;
mod signals;
mod sys;
mod timers;
mod waker;

#[path = "../backends/select.rs"]
mod select;

#[path = "../backends/poll.rs"]
mod poll;

#[cfg(rawloop_epoll)]
#[path = "../backends/epoll.rs"]
mod epoll;

#[cfg(rawloop_kqueue)]
#[path = "../backends/kqueue.rs"]
mod kqueue;

#[cfg(rawloop_libkqueue)]
#[path = "../backends/libkqueue.rs"]
mod libkqueue;

pub use acceptor::{AcceptFailure, AcceptOptions, Acceptor};
pub use backend::{AnySelector, Backend, UnknownBackend};
pub use context::Context;
pub use handler::{Handler, Panicked};
pub use nix::sys::signal::Signal;
pub use reactor::{Reactor, Stats, READ_BUFFER_SIZE};
pub use remote::Remote;
pub use selector::{Event, Events, Interest, Readiness, Selector, Token};
pub use signals::SignalSource;
pub use timers::TimerId;
pub use waker::{WakeSource, Waker};

pub use poll::Poll;
pub use select::Select;

#[cfg(rawloop_epoll)]
pub use epoll::Epoll;

#[cfg(rawloop_kqueue)]
pub use kqueue::Kqueue;

#[cfg(rawloop_default = "select")]
use select::Select as Chosen;

#[cfg(rawloop_default = "poll")]
use poll::Poll as Chosen;

#[cfg(rawloop_default = "epoll")]
use epoll::Epoll as Chosen;

#[cfg(rawloop_default = "kqueue")]
use kqueue::Kqueue as Chosen;

/// The backend chosen at build time: epoll on Linux, kqueue on macOS and the BSDs, poll
/// elsewhere; a `default-select`/`default-poll`/`default-epoll`/`default-kqueue` feature
/// overrides it.
pub type DefaultSelector = Chosen;
