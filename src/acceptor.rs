//! [`Acceptor`]: the handler of a listening socket, which accepts connections and hands each
//! to a closure, and keeps accepting whatever happens to one of them.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{self as unix, UnixListener, UnixStream};
use std::time::Duration;

use crate::diag::warn_limited;
use crate::net::Listener;
use crate::{Context, Event, Handler, Interest, TimerId};

/// How an [`Acceptor`] behaves; start from `AcceptOptions::default()`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptOptions {
    /// At most this many connections are accepted per readiness event (default 64). The
    /// listener stays readable while connections wait, so the rest are accepted in the next
    /// round, after the connections' own events: a burst of connects cannot starve the
    /// connections already open.
    ///
    /// Within that cap the acceptor takes what the last events found waiting: after an event
    /// that emptied the queue with n accepts it stops at n next time, without the `accept`
    /// that would only report `WouldBlock`; after 8 events in a row that reached that limit,
    /// it doubles it. A server that gets one connection per event (one request per
    /// connection, say) then makes about 1.1 `accept` calls per connection instead of up to
    /// 2 (`app_server`: 1.08 against 1.5), and a burst reaches the full batch within a few
    /// dozen events.
    pub batch: usize,
    /// How long accepting pauses when the process or system is out of fds or memory
    /// (default 100 ms).
    pub pause: Duration,
}

impl Default for AcceptOptions {
    fn default() -> AcceptOptions {
        AcceptOptions {
            batch: 64,
            pause: Duration::from_millis(100),
        }
    }
}

impl AcceptOptions {
    /// Sets [`batch`](AcceptOptions::batch) (at least 1).
    pub fn batch(mut self, batch: usize) -> AcceptOptions {
        self.batch = batch.max(1);
        self
    }

    /// Sets [`pause`](AcceptOptions::pause).
    pub fn pause(mut self, pause: Duration) -> AcceptOptions {
        self.pause = pause;
        self
    }
}

/// The handler of a listening socket: accepts pending connections and gives each, with its
/// peer's address, to `on_accept`, which typically registers it. Register it for
/// [`Interest::READABLE`]:
///
/// ```no_run
/// use std::net::TcpStream;
/// use rawloop::net::{self, ListenOptions};
/// use rawloop::{Acceptor, Context, Event, Interest, Reactor};
///
/// let mut reactor: Reactor = Reactor::new()?;
/// let listener = net::listen_tcp(net::resolve("127.0.0.1", 65432)?, &ListenOptions::default())?;
/// let acceptor = Acceptor::tcp(|stream, peer, cx| {
///     println!("accepted {peer}");
///     cx.register(stream, Interest::READABLE, |_: &mut TcpStream, cx: &mut Context<'_>, _: Event| {
///         cx.close();
///         Ok(())
///     })?;
///     Ok(())
/// });
/// reactor.register(listener, Interest::READABLE, acceptor)?;
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// What it does with errors is what keeps a server up:
///
/// - An error from `on_accept` (a socket option the peer's reset makes fail, a selector
///   that refuses the fd) closes that connection only — `on_accept` owned it and dropped
///   it — and is logged with the peer's address. The listener goes on.
/// - `accept` errors that belong to one connection that went away before it was accepted
///   (ECONNABORTED, EPROTO, EPERM from a firewall, and the network errors Linux passes on
///   from the new socket) and EINTR are skipped.
/// - Out of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the acceptor stops watching the
///   listener for [`AcceptOptions::pause`], then resumes. It does not spin on the readable
///   listener, and it does not close it. The waiting clients stay in the kernel's backlog
///   and are served as soon as fds free up. (libuv's other answer, closing a spare fd to
///   accept and drop one connection, tells a client at once that it was refused, but turns
///   a passing shortage into refused connections; a server that wants to refuse clients
///   should cap its connections instead, and say so to them.)
/// - Any other error is the listener's own (EBADF, EINVAL): it is returned, which closes
///   the listener's registration and logs the error.
///
/// A graceful shutdown ([`Context::shutdown`]) closes the listener at once, the default of
/// [`Handler::shutdown`].
pub struct Acceptor<L, F> {
    on_accept: F,
    options: AcceptOptions,
    /// How many to accept at the next event (1..=batch; see [`AcceptOptions::batch`]).
    limit: usize,
    /// Events in a row that accepted `limit` connections without finding the queue empty.
    full: u32,
    paused: Option<TimerId>,
    listener: PhantomData<fn(&L)>,
}

impl<L, F> Acceptor<L, F>
where
    L: Listener,
    F: FnMut(L::Stream, L::Addr, &mut Context<'_>) -> io::Result<()> + 'static,
{
    /// An acceptor for listeners of type `L` with the default [`AcceptOptions`]; see
    /// [`tcp`](Acceptor::tcp) and [`unix`](Acceptor::unix) for the usual two.
    pub fn new(on_accept: F) -> Acceptor<L, F> {
        Acceptor::with_options(on_accept, AcceptOptions::default())
    }

    /// An acceptor with `options`.
    pub fn with_options(on_accept: F, options: AcceptOptions) -> Acceptor<L, F> {
        Acceptor {
            on_accept,
            options,
            limit: options.batch,
            full: 0,
            paused: None,
            listener: PhantomData,
        }
    }
}

impl<F> Acceptor<TcpListener, F>
where
    F: FnMut(TcpStream, SocketAddr, &mut Context<'_>) -> io::Result<()> + 'static,
{
    /// An acceptor of TCP connections.
    pub fn tcp(on_accept: F) -> Acceptor<TcpListener, F> {
        Acceptor::new(on_accept)
    }
}

impl<F> Acceptor<UnixListener, F>
where
    F: FnMut(UnixStream, unix::SocketAddr, &mut Context<'_>) -> io::Result<()> + 'static,
{
    /// An acceptor of Unix-domain stream connections.
    pub fn unix(on_accept: F) -> Acceptor<UnixListener, F> {
        Acceptor::new(on_accept)
    }
}

impl<L, F> fmt::Debug for Acceptor<L, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("options", &self.options)
            .field("paused", &self.paused.is_some())
            .finish_non_exhaustive()
    }
}

/// What an accept loop should do after an `accept` error; [`Acceptor`] follows it, and so
/// can an accept loop written on the selector layer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AcceptFailure {
    /// One connection's problem (it went away before it was accepted), or an interruption:
    /// go on with the next.
    Skip,
    /// Out of fds or memory: stop watching the listener for a while, then resume.
    Pause,
    /// The listener's own error: stop accepting on it.
    Fatal,
}

impl AcceptFailure {
    /// How to treat `e`, an error from `accept` other than `WouldBlock`.
    pub fn of(e: &io::Error) -> AcceptFailure {
        use AcceptFailure::*;
        match e.raw_os_error() {
            Some(
                libc::EINTR
                | libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::ECONNRESET,
            ) => Skip,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Some(libc::ENONET) => Skip,
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Pause,
            _ => Fatal,
        }
    }
}

/// Events in a row that reach the accept limit before it doubles.
const GROW_AFTER: u32 = 8;

impl<L, F> Handler<L> for Acceptor<L, F>
where
    L: Listener,
    L::Addr: Clone,
    F: FnMut(L::Stream, L::Addr, &mut Context<'_>) -> io::Result<()> + 'static,
{
    fn ready(&mut self, listener: &mut L, cx: &mut Context<'_>, _: Event) -> io::Result<()> {
        for accepted in 0..self.limit {
            match listener.accept_nonblocking() {
                Ok((stream, peer)) => {
                    if let Err(e) = (self.on_accept)(stream, peer.clone(), cx) {
                        warn_limited!("closing the connection from {peer:?}: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The queue held `accepted`: take that many next time, without this call.
                    self.limit = accepted.max(1);
                    self.full = 0;
                    return Ok(());
                }
                Err(e) => match AcceptFailure::of(&e) {
                    AcceptFailure::Skip => log::debug!("accept: {e}; skipped"),
                    AcceptFailure::Pause => {
                        warn_limited!("accept: {e}; pausing accepts for {:?}", self.options.pause);
                        cx.set_interest(Interest::empty())?;
                        self.paused = Some(cx.set_timer(self.options.pause)?);
                        return Ok(());
                    }
                    AcceptFailure::Fatal => return Err(e),
                },
            }
        }
        // The limit was reached: more may be waiting. Only a run of such events says so, as
        // one connection arriving per event looks the same as a queue left unemptied.
        self.full += 1;
        if self.full == GROW_AFTER {
            self.full = 0;
            self.limit = self.limit.saturating_mul(2).min(self.options.batch);
        }
        Ok(())
    }

    fn timeout(&mut self, _: &mut L, cx: &mut Context<'_>, timer: TimerId) -> io::Result<()> {
        if self.paused == Some(timer) {
            self.paused = None;
            cx.set_interest(Interest::READABLE)?;
        }
        Ok(())
    }
}
