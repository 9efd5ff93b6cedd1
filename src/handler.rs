//! What a reactor runs for a registered source: the [`Handler`] trait, and the type-erased
//! registration the reactor keeps in its slab.

use std::any::{Any, TypeId};
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::{Context, Event, TimerId};

/// What a reactor runs for a registered source of type `Src`.
///
/// Closures `FnMut(&mut Src, &mut Context<'_>, Event) -> io::Result<()>` are handlers (only
/// [`ready`](Handler::ready)); implement the trait on a type for a state machine that also
/// takes timers, learns how a connect ended, takes part in a graceful shutdown and hears when
/// it is closed.
///
/// An error returned from any method closes the registration: the reactor deregisters the
/// source, calls [`closed`](Handler::closed) with the error, logs it and drops the source.
/// A panic in any method is caught and treated the same way, as an error of kind
/// [`io::ErrorKind::Other`] whose inner error is a [`Panicked`]; the loop goes on.
pub trait Handler<Src>: 'static {
    /// The source is ready as `event` says. Level-triggered: if the handler leaves data
    /// unread, it is called again in the next round.
    fn ready(&mut self, source: &mut Src, cx: &mut Context<'_>, event: Event) -> io::Result<()>;

    /// The registration was just made; `cx` is its own context (set timers, change
    /// interest). An error undoes the registration and is returned by `register`.
    fn registered(&mut self, source: &mut Src, cx: &mut Context<'_>) -> io::Result<()> {
        let _ = (source, cx);
        Ok(())
    }

    /// A connect started with [`Context::connect`] has ended: `Ok` once the socket is
    /// connected, or the socket's error. Called exactly once per connect, before any
    /// [`ready`](Handler::ready). After a failure the registration closes whatever this
    /// returns; returning the error (the default) has it logged and passed to
    /// [`closed`](Handler::closed), returning `Ok` closes it quietly.
    fn connected(
        &mut self,
        source: &mut Src,
        cx: &mut Context<'_>,
        result: io::Result<()>,
    ) -> io::Result<()> {
        let _ = (source, cx);
        result
    }

    /// A timer set for this registration ([`Context::set_timer`] and friends) fired.
    fn timeout(
        &mut self,
        source: &mut Src,
        cx: &mut Context<'_>,
        timer: TimerId,
    ) -> io::Result<()> {
        let _ = (source, cx, timer);
        Ok(())
    }

    /// A graceful shutdown began ([`Context::shutdown`]); called once per registration, also
    /// for registrations made after it began. The default closes the registration at once:
    /// listeners stop accepting, idle sources go away. A connection with work in flight
    /// overrides this to finish it first (answer the request being read, send what is
    /// queued) and then close itself; whatever is still open when the grace period ends is
    /// closed by the reactor.
    fn shutdown(&mut self, source: &mut Src, cx: &mut Context<'_>) -> io::Result<()> {
        let _ = source;
        cx.close();
        Ok(())
    }

    /// The registration ends: closed by a handler, by an error (given as `error`), at the
    /// end of a graceful shutdown, or by the reactor being dropped. The source is dropped
    /// (and its fd closed) right after. `cx` reaches the reactor's shared state and can
    /// register other sources, but the registration itself is gone: its own timers and
    /// interest are not reachable any more.
    fn closed(&mut self, source: &mut Src, cx: &mut Context<'_>, error: Option<&io::Error>) {
        let _ = (source, cx, error);
    }
}

impl<Src, F> Handler<Src> for F
where
    F: FnMut(&mut Src, &mut Context<'_>, Event) -> io::Result<()> + 'static,
{
    fn ready(&mut self, source: &mut Src, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        self(source, cx, event)
    }
}

/// The error a caught panic becomes: the inner error of an [`io::Error`] of kind
/// [`io::ErrorKind::Other`], with the panic's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    message: String,
}

impl Panicked {
    /// The panic's message (or a placeholder when the payload was not a string).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether `error` is a caught panic.
    pub fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|e| e.is::<Panicked>())
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler panicked: {}", self.message)
    }
}

impl std::error::Error for Panicked {}

/// Runs `f`, turning a panic into a [`Panicked`] error.
pub(crate) fn catch<R>(f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = match payload.downcast::<String>() {
                Ok(s) => *s,
                Err(payload) => match payload.downcast::<&'static str>() {
                    Ok(s) => (*s).to_string(),
                    Err(_) => "(a payload that is not a string)".to_string(),
                },
            };
            Err(io::Error::other(Panicked { message }))
        }
    }
}

/// A source bound to its handler, with the source's type erased.
pub(crate) trait Registered {
    fn registered(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    fn ready(&mut self, cx: &mut Context<'_>, event: Event) -> io::Result<()>;
    fn connected(&mut self, cx: &mut Context<'_>, result: io::Result<()>) -> io::Result<()>;
    fn timeout(&mut self, cx: &mut Context<'_>, timer: TimerId) -> io::Result<()>;
    fn shutdown(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    fn closed(&mut self, cx: &mut Context<'_>, error: Option<&io::Error>);
    /// The `Bound<Src, H>` itself, to reach source and handler by their types.
    fn as_any(&mut self) -> &mut dyn Any;
    fn source_type(&self) -> TypeId;
    fn source_mut(&mut self) -> &mut dyn Any;
    fn into_source(self: Box<Self>) -> Box<dyn Any>;
}

pub(crate) struct Bound<Src, H> {
    pub(crate) source: Src,
    pub(crate) handler: H,
}

impl<Src: 'static, H: Handler<Src>> Registered for Bound<Src, H> {
    fn registered(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.handler.registered(&mut self.source, cx)
    }
    fn ready(&mut self, cx: &mut Context<'_>, event: Event) -> io::Result<()> {
        self.handler.ready(&mut self.source, cx, event)
    }
    fn connected(&mut self, cx: &mut Context<'_>, result: io::Result<()>) -> io::Result<()> {
        self.handler.connected(&mut self.source, cx, result)
    }
    fn timeout(&mut self, cx: &mut Context<'_>, timer: TimerId) -> io::Result<()> {
        self.handler.timeout(&mut self.source, cx, timer)
    }
    fn shutdown(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.handler.shutdown(&mut self.source, cx)
    }
    fn closed(&mut self, cx: &mut Context<'_>, error: Option<&io::Error>) {
        self.handler.closed(&mut self.source, cx, error)
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn source_type(&self) -> TypeId {
        TypeId::of::<Src>()
    }
    fn source_mut(&mut self) -> &mut dyn Any {
        &mut self.source
    }
    fn into_source(self: Box<Self>) -> Box<dyn Any> {
        Box::new(self.source)
    }
}
