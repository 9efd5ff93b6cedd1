//! Checks of what clients return.

use std::io;

use rawloop::Selector;

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
