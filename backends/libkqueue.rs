//! The kqueue(2) interface of libkqueue, a userspace kqueue for Linux (feature `libkqueue`).
//!
//! `libc` declares `kqueue`, `kevent` and their constants only for the systems that have them in
//! the kernel (macOS and the BSDs). On Linux the same interface comes from libkqueue's
//! `sys/event.h` (installed as `<prefix>/include/kqueue/sys/event.h`); this module restates the
//! part the kqueue backend uses, under the names `libc` gives them, so the backend reads the same
//! on every system. `build.rs` links `-lkqueue`.
//!
//! Values are those of libkqueue 2.7's header. Note that `EVFILT_USER` is `-11` here as on
//! FreeBSD, where macOS has `-10`.

use std::os::raw::{c_int, c_short, c_uint, c_ushort, c_void};

/// One change submitted to, or one event returned by, [`kevent()`]: libkqueue's `struct kevent`,
/// which has the FreeBSD 11 layout (no `ext` array).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub(crate) struct kevent {
    /// What the event is about; for the read and write filters, the file descriptor.
    pub ident: usize,
    /// The filter, one of the `EVFILT_*` constants.
    pub filter: c_short,
    /// Actions (`EV_ADD`, `EV_DELETE`, ...) on input; `EV_EOF`, `EV_ERROR` and the stored
    /// flags on output.
    pub flags: c_ushort,
    /// Filter-specific flags: `NOTE_TRIGGER` for `EVFILT_USER`; on output of the read and
    /// write filters, the socket's pending error when `EV_EOF` is set.
    pub fflags: c_uint,
    /// Filter-specific data; in an `EV_ERROR` entry, the errno of the failed change (0 for a
    /// successful `EV_RECEIPT` change).
    pub data: isize,
    /// Opaque user data, returned unchanged.
    pub udata: *mut c_void,
}

// The layout `sys/event.h` gives on LP64 Linux: 8 + 2 + 2 + 4 + 8 + 8 bytes.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<kevent>() == 32);

/// Filter: the descriptor has data to read (or a connection to accept, or end of file).
pub(crate) const EVFILT_READ: c_short = -1;
/// Filter: the descriptor can be written to.
pub(crate) const EVFILT_WRITE: c_short = -2;
/// Filter: a user event, triggered with `NOTE_TRIGGER` (-11 as on FreeBSD; macOS uses -10).
pub(crate) const EVFILT_USER: c_short = -11;

/// Action: add the event (or modify it if it exists), which also enables it.
pub(crate) const EV_ADD: c_ushort = 0x0001;
/// Action: remove the event.
pub(crate) const EV_DELETE: c_ushort = 0x0002;
/// Action: enable the event.
pub(crate) const EV_ENABLE: c_ushort = 0x0004;
/// Flag: reset the event's state after it is returned (edge-triggered).
pub(crate) const EV_CLEAR: c_ushort = 0x0020;
/// Flag: report every change as an `EV_ERROR` entry with `data` 0 on success or an errno.
pub(crate) const EV_RECEIPT: c_ushort = 0x0040;
/// Returned flag: end of file, or the peer closed; `fflags` may hold a socket error.
pub(crate) const EV_EOF: c_ushort = 0x8000;
/// Returned flag: an error (or, with `EV_RECEIPT`, a receipt); `data` holds the errno.
pub(crate) const EV_ERROR: c_ushort = 0x4000;

/// `EVFILT_USER` input flag: trigger the event.
pub(crate) const NOTE_TRIGGER: c_uint = 0x0100_0000;

extern "C" {
    /// Creates a kqueue and returns its descriptor, or -1 with `errno` set.
    ///
    /// The descriptor is libkqueue's own (not pollable); close it with close(2).
    pub(crate) fn kqueue() -> c_int;

    /// Applies `nchanges` changes from `changelist`, then waits up to `timeout` (null: without
    /// limit) for events, storing at most `nevents` into `eventlist`; returns how many were
    /// stored, or -1 with `errno` set.
    ///
    /// Unlike the BSD kernels, libkqueue waits for events whenever `eventlist` has room left
    /// after the `EV_RECEIPT` entries, so callers size it to the changes when only applying them.
    pub(crate) fn kevent(
        kq: c_int,
        changelist: *const kevent,
        nchanges: c_int,
        eventlist: *mut kevent,
        nevents: c_int,
        timeout: *const libc::timespec,
    ) -> c_int;
}
