//! Checks of what the example clients return.

use std::io;
use std::time::{Duration, Instant};

use rawloop::{Reactor, Selector};

/// How long a reactor client waits for a complete echo before it reports `TimedOut`.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// `result` is the error `kind`; `what` names the case.
pub fn assert_error<T: std::fmt::Debug>(result: io::Result<T>, kind: io::ErrorKind, what: &str) {
    match result {
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected {kind:?}, got Ok({v:?})"),
    }
}

/// A refused connect, as backend `S` reports it: `ConnectionRefused`, or on kqueue over
/// libkqueue `NotConnected` (libkqueue reads, and so clears, SO_ERROR when it builds the
/// event: the reason is lost, the failure is not).
pub fn assert_refused<S: Selector, T: std::fmt::Debug>(result: io::Result<T>, what: &str) {
    let libkqueue = cfg!(rawloop_libkqueue) && crate::common::backend_name::<S>() == "kqueue";
    match result {
        Err(e) if libkqueue && e.kind() == io::ErrorKind::NotConnected => {}
        other => assert_error(other, io::ErrorKind::ConnectionRefused, what),
    }
}

/// The client's reactor has nothing left: no registration, no timer.
pub fn assert_clean_reactor<S: Selector>(reactor: &Reactor<S>) {
    assert!(reactor.is_empty(), "{reactor:?}");
    assert_eq!(reactor.timer_count(), 0, "{reactor:?}");
}

/// Runs `client` with a timeout of 300 ms against a server that never answers, checks that
/// it returns after the timeout and not much later (within 2 s), and returns what it
/// returned.
pub fn against_silent_server<T>(client: impl FnOnce(Duration) -> T) -> T {
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = client(timeout);
    let took = started.elapsed();
    assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
    result
}
