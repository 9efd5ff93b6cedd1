//! Accepting within limits: an idle timeout and a cap on open connections, around any
//! connection handler.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::diag::warn_limited;
use crate::net::Listener;
use crate::{AcceptOptions, Acceptor, Context, Event, Handler, Interest, TimerId, Token};

/// What a server allows each connection, and how many at once; start from
/// `Limits::default()` (no idle timeout, no cap, lines up to 64 KiB).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// A connection that reports no readiness for this long is closed (the idle timeout of
    /// nginx's `keepalive_timeout`, or Python's `StreamRequestHandler.timeout`). Off by
    /// default, as in the seed programs; a server exposed to strangers should set it, or a
    /// few idle connections can hold every fd.
    pub idle_timeout: Option<Duration>,
    /// At most this many connections are open at once; a connection accepted beyond it is
    /// refused at once: reset (SO_LINGER 0), so that its client sees `ECONNRESET`, not an
    /// answer, and counted in [`ServeStats::refused`]. No cap by default.
    pub max_connections: Option<usize>,
    /// The longest line a [`StreamHandler`](super::StreamHandler) may read (and, for any
    /// stream handler, the most input it may leave unread); past it the connection is
    /// closed with `InvalidData`. 64 KiB by default.
    pub max_line: usize,
    /// How the listener accepts.
    pub accept: AcceptOptions,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle_timeout: None,
            max_connections: None,
            max_line: 64 * 1024,
            accept: AcceptOptions::default(),
        }
    }
}

impl Limits {
    /// Sets [`idle_timeout`](Limits::idle_timeout).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Limits {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Limits::max_connections).
    pub fn max_connections(mut self, max: Option<usize>) -> Limits {
        self.max_connections = max;
        self
    }

    /// Sets [`max_line`](Limits::max_line) (at least 1).
    pub fn max_line(mut self, max: usize) -> Limits {
        self.max_line = max.max(1);
        self
    }

    /// Sets [`accept`](Limits::accept).
    pub fn accept(mut self, accept: AcceptOptions) -> Limits {
        self.accept = accept;
        self
    }
}

/// Counters of one listener served with [`serve`], shared with whoever started it.
#[derive(Debug, Default)]
pub struct ServeStats {
    accepted: Cell<u64>,
    refused: Cell<u64>,
    idle_closed: Cell<u64>,
    open: Cell<usize>,
}

impl ServeStats {
    /// Connections accepted and registered.
    pub fn accepted(&self) -> u64 {
        self.accepted.get()
    }

    /// Connections refused: over [`Limits::max_connections`], or turned away by the
    /// connection factory (a failed `verify_request`, say).
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Connections closed by the idle timeout.
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.get()
    }

    /// Connections open now. Counted only when the limits set an idle timeout or a cap (a
    /// connection then carries a small wrapper that counts it); 0 otherwise.
    pub fn open(&self) -> usize {
        self.open.get()
    }
}

/// Registers `listener` with an [`Acceptor`] that gives each connection the handler `make`
/// returns for its peer, within `limits`. `make` returning an error refuses that connection
/// (logged, counted in [`ServeStats::refused`]). Returns the listener's token (closing it
/// stops accepting) and the counters.
///
/// ```no_run
/// use std::io::{self, Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use rawloop::net::{self, ListenOptions};
/// use rawloop::server::{serve, Limits};
/// use rawloop::{Context, Event, Reactor};
///
/// let mut reactor: Reactor = Reactor::new()?;
/// let listener = net::listen_tcp(net::resolve("", 7000)?, &ListenOptions::default())?;
/// let limits = Limits::default()
///     .idle_timeout(Some(Duration::from_secs(30)))
///     .max_connections(Some(1000));
/// serve(&mut reactor.context(), listener, limits, |_peer| {
///     Ok(|s: &mut TcpStream, cx: &mut Context<'_>, _: Event| {
///         let mut buf = [0u8; 512];
///         match s.read(&mut buf)? {
///             0 => cx.close(),
///             n => s.write_all(&buf[..n])?,
///         }
///         Ok(())
///     })
/// })?;
/// reactor.run()?;
/// # Ok::<(), io::Error>(())
/// ```
pub fn serve<L, H, F>(
    cx: &mut Context<'_>,
    listener: L,
    limits: Limits,
    mut make: F,
) -> io::Result<(Token, Rc<ServeStats>)>
where
    L: Listener,
    L::Addr: Clone,
    H: Handler<L::Stream>,
    F: FnMut(&L::Addr) -> io::Result<H> + 'static,
{
    let stats = Rc::new(ServeStats::default());
    let shared = stats.clone();
    let on_accept = move |stream: L::Stream, peer: L::Addr, cx: &mut Context<'_>| {
        if let Some(max) = limits.max_connections {
            if shared.open.get() >= max {
                shared.refused.set(shared.refused.get() + 1);
                warn_limited!("refusing the connection from {peer:?}: {max} connections are open");
                reset(&stream);
                return Ok(());
            }
        }
        let handler = match make(&peer) {
            Ok(handler) => handler,
            Err(e) => {
                shared.refused.set(shared.refused.get() + 1);
                log::debug!("refusing the connection from {peer:?}: {e}");
                reset(&stream);
                return Ok(());
            }
        };
        if limits.idle_timeout.is_none() && limits.max_connections.is_none() {
            // Nothing to enforce: the handler alone, so that a connection costs no more
            // than its handler.
            cx.register(stream, Interest::READABLE, handler)?;
        } else {
            let guarded = Guarded {
                inner: handler,
                idle: limits.idle_timeout.map(|after| {
                    Box::new(Idle {
                        after,
                        timer: None,
                        last: cx.now(),
                    })
                }),
                open: OpenCount::new(shared.clone()),
            };
            cx.register(stream, Interest::READABLE, guarded)?;
        }
        shared.accepted.set(shared.accepted.get() + 1);
        Ok(())
    };
    let acceptor = Acceptor::<L, _>::with_options(on_accept, limits.accept);
    let token = cx.register(listener, Interest::READABLE, acceptor)?;
    Ok((token, stats))
}

/// Closes `stream` with a reset: the client learns at once that it was refused.
fn reset(stream: &impl std::os::fd::AsFd) {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // Unix sockets have no reset; they just close.
    let _ = setsockopt(stream, Linger, &linger);
}

/// One open connection, counted in [`ServeStats::open`] for as long as it lives.
struct OpenCount(Rc<ServeStats>);

impl OpenCount {
    fn new(stats: Rc<ServeStats>) -> OpenCount {
        stats.open.set(stats.open.get() + 1);
        OpenCount(stats)
    }
}

impl Drop for OpenCount {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
    }
}

/// The idle timeout of one connection. The timer is not moved on every event (that would
/// cost a heap update per read): each event notes its time, and when the timer fires it
/// either closes the connection or is set again for the rest of the period.
struct Idle {
    after: Duration,
    timer: Option<TimerId>,
    last: Instant,
}

/// A connection's handler within the [`Limits`].
struct Guarded<H> {
    inner: H,
    idle: Option<Box<Idle>>,
    open: OpenCount,
}

impl<S: 'static, H: Handler<S>> Handler<S> for Guarded<H> {
    fn registered(&mut self, source: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(idle) = &mut self.idle {
            idle.timer = Some(cx.set_timer(idle.after)?);
        }
        self.inner.registered(source, cx)
    }

    fn ready(&mut self, source: &mut S, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        if let Some(idle) = &mut self.idle {
            idle.last = cx.now();
        }
        self.inner.ready(source, cx, event)
    }

    fn connected(
        &mut self,
        source: &mut S,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        self.inner.connected(source, cx, result)
    }

    fn timeout(&mut self, source: &mut S, cx: &mut Context<'_>, timer: TimerId) -> io::Result<()> {
        let Some(idle) = self.idle.as_mut().filter(|idle| idle.timer == Some(timer)) else {
            return self.inner.timeout(source, cx, timer);
        };
        let due = idle.last + idle.after;
        if due > cx.now() {
            idle.timer = Some(cx.set_timer_at(due)?);
            return Ok(());
        }
        idle.timer = None;
        let stats = &self.open.0;
        stats.idle_closed.set(stats.idle_closed.get() + 1);
        log::debug!("closing a connection idle for {:?}", idle.after);
        cx.close();
        Ok(())
    }

    fn shutdown(&mut self, source: &mut S, cx: &mut Context<'_>) -> io::Result<()> {
        self.inner.shutdown(source, cx)
    }

    fn closed(&mut self, source: &mut S, cx: &mut Context<'_>, error: Option<&io::Error>) {
        self.inner.closed(source, cx, error)
    }
}
