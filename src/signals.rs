//! Signals as readiness: one fd per reactor that becomes readable when a watched signal
//! arrives, so a signal is handled inside the loop like any other event, with no code
//! running in signal context beyond a forward or a one-byte write.
//!
//! - **Linux and Android: signalfd.** The watched signals are blocked in the reactor's
//!   thread and read from a signalfd there. A process-directed signal can still land on a
//!   thread that does not block it (one spawned before the signal was watched); a small
//!   handler installed for the signal forwards it to the reactor's thread with
//!   `pthread_kill`, where it is blocked and so waits for the signalfd.
//! - **macOS and the BSDs: `EVFILT_SIGNAL`** on a kqueue of its own (so it works under every
//!   backend). kqueue records a signal even while it is ignored, so the signal's disposition
//!   is set to ignore while it is watched, as libdispatch does.
//! - **Elsewhere, or when signalfd is refused: a self-pipe.** A handler writes the signal's
//!   number to a non-blocking pipe.
//!
//! A signal can be watched by one reactor of the process at a time; the disposition and
//! mask that were there before are restored when it is no longer watched. Like the signals
//! themselves, several deliveries of one signal before the loop reads them count as one.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Signal numbers the process-wide table covers (every `Signal` is below this).
const NSIG: usize = 65;

/// Who watches one signal in this process.
struct Owner {
    /// The watching process (a forked child inherits the table and may claim again).
    pid: AtomicI32,
    /// signalfd: the watching thread, where strays are forwarded.
    thread: AtomicUsize,
    /// Self-pipe: the write end.
    pipe: AtomicI32,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise OWNERS
const FREE: Owner = Owner {
    pid: AtomicI32::new(0),
    thread: AtomicUsize::new(0),
    pipe: AtomicI32::new(-1),
};
static OWNERS: [Owner; NSIG] = [FREE; NSIG];

fn owner(signal: Signal) -> &'static Owner {
    &OWNERS[signal as usize]
}

/// Marks `signal` as watched by this process, or fails if it already is.
fn claim(signal: Signal) -> io::Result<()> {
    let me = std::process::id() as i32;
    let slot = &owner(signal).pid;
    let mut current = slot.load(Ordering::Acquire);
    loop {
        if current == me {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{signal} is already watched by a reactor of this process"),
            ));
        }
        match slot.compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(seen) => current = seen,
        }
    }
}

fn release(signal: Signal) {
    let o = owner(signal);
    o.thread.store(0, Ordering::Release);
    o.pipe.store(-1, Ordering::Release);
    o.pid.store(0, Ordering::Release);
}

/// In a process just forked from one that watched signals: forgets the parent's watchers,
/// gives the signals they watched their default action back and unblocks every signal, so
/// that the child starts as a fresh process would and can watch signals itself.
pub(crate) fn reset_after_fork() {
    for signal in Signal::iterator() {
        if owner(signal).pid.load(Ordering::Acquire) != 0 {
            release(signal);
            let _ = set_action(signal, SigHandler::SigDfl);
        }
    }
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

/// Installs `handler` for `signal`, returning what was there.
fn set_action(signal: Signal, handler: SigHandler) -> io::Result<SigAction> {
    let action = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handlers installed here (`forward`, `to_pipe`) only load atomics and make
    // async-signal-safe calls (getpid, pthread_kill, write), saving and restoring errno.
    unsafe { sigaction(signal, &action) }.map_err(io::Error::from)
}

fn restore_action(signal: Signal, old: &SigAction) {
    // SAFETY: puts back the action that was installed before this module changed it.
    if let Err(e) = unsafe { sigaction(signal, old) } {
        log::warn!("restoring the action of {signal}: {e}");
    }
}

/// In signal context: passes a stray signal on to the thread that reads the signalfd.
#[cfg(any(target_os = "linux", target_os = "android"))]
extern "C" fn forward(signum: libc::c_int) {
    let Some(o) = OWNERS.get(signum as usize) else {
        return;
    };
    let thread = o.thread.load(Ordering::Acquire);
    // SAFETY: getpid is async-signal-safe and cannot fail.
    if thread != 0 && o.pid.load(Ordering::Acquire) == unsafe { libc::getpid() } {
        let saved = Errno::last_raw();
        // SAFETY: pthread_kill is async-signal-safe; `thread` is the live thread that
        // watches the signal (it is cleared before that thread stops watching).
        unsafe { libc::pthread_kill(thread as libc::pthread_t, signum) };
        Errno::set_raw(saved);
    }
}

/// In signal context: writes the signal's number to the watching reactor's pipe.
extern "C" fn to_pipe(signum: libc::c_int) {
    let Some(o) = OWNERS.get(signum as usize) else {
        return;
    };
    let fd = o.pipe.load(Ordering::Acquire);
    if fd >= 0 {
        let saved = Errno::last_raw();
        let byte = signum as u8;
        // SAFETY: write is async-signal-safe; `byte` is one readable byte. A full pipe
        // (EAGAIN) already holds a wake-up.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        Errno::set_raw(saved);
    }
}

/// One watched signal and what to restore when it is no longer watched.
struct Watched {
    signal: Signal,
    old_action: SigAction,
    /// signalfd: whether this thread blocked the signal already.
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    was_blocked: bool,
}

enum Imp {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    SignalFd {
        fd: nix::sys::signalfd::SignalFd,
        mask: SigSet,
    },
    #[cfg(rawloop_native_kqueue)]
    Kqueue(nix::sys::event::Kqueue),
    Pipe {
        read: OwnedFd,
        write: OwnedFd,
    },
}

/// An fd that becomes readable when a watched signal arrives: what a [`Reactor`] uses for
/// [`Context::on_signal`], usable on its own with a bare [`Selector`] as the seeds' loops
/// use Python's `signal.set_wakeup_fd`. Register [`fd`](SignalSource::fd) for readable; when
/// it is reported, [`drain`](SignalSource::drain) says which signals came. Dropping it stops
/// watching its signals and restores their earlier dispositions (and, on Linux, masks).
///
/// [`Reactor`]: crate::Reactor
/// [`Context::on_signal`]: crate::Context::on_signal
/// [`Selector`]: crate::Selector
///
/// ```
/// use rawloop::{Signal, SignalSource};
///
/// let mut signals = SignalSource::new()?;
/// signals.add(Signal::SIGUSR2)?;
/// nix::sys::signal::raise(Signal::SIGUSR2)?;
/// let mut arrived = Vec::new();
/// signals.drain(&mut arrived)?;
/// assert_eq!(arrived, [Signal::SIGUSR2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SignalSource {
    imp: Imp,
    watched: Vec<Watched>,
}

impl SignalSource {
    /// The platform's mechanism (see the module docs), or a self-pipe where it is refused.
    pub fn new() -> io::Result<SignalSource> {
        match SignalSource::native() {
            Ok(source) => Ok(source),
            Err(e) => {
                log::debug!("signals: {e}; using a self-pipe instead");
                SignalSource::pipe()
            }
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn native() -> io::Result<SignalSource> {
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        let mask = SigSet::empty();
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(SignalSource::with(Imp::SignalFd { fd, mask }))
    }

    #[cfg(rawloop_native_kqueue)]
    fn native() -> io::Result<SignalSource> {
        let kq = nix::sys::event::Kqueue::new()?;
        crate::sys::set_cloexec(&kq)?;
        Ok(SignalSource::with(Imp::Kqueue(kq)))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android", rawloop_native_kqueue)))]
    fn native() -> io::Result<SignalSource> {
        SignalSource::pipe()
    }

    /// The self-pipe mechanism, available everywhere (the fallback; also for tests).
    pub(crate) fn pipe() -> io::Result<SignalSource> {
        let (read, write) = crate::sys::pipe()?;
        Ok(SignalSource::with(Imp::Pipe { read, write }))
    }

    fn with(imp: Imp) -> SignalSource {
        SignalSource {
            imp,
            watched: Vec::new(),
        }
    }

    /// The fd to register for readable.
    pub fn fd(&self) -> RawFd {
        match &self.imp {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Imp::SignalFd { fd, .. } => fd.as_raw_fd(),
            #[cfg(rawloop_native_kqueue)]
            Imp::Kqueue(kq) => {
                use std::os::fd::AsFd;
                kq.as_fd().as_raw_fd()
            }
            Imp::Pipe { read, .. } => read.as_raw_fd(),
        }
    }

    /// Whether `signal` is watched here.
    pub fn watches(&self, signal: Signal) -> bool {
        self.watched.iter().any(|w| w.signal == signal)
    }

    /// Starts watching `signal`; fails with [`io::ErrorKind::AlreadyExists`] if another
    /// source of this process watches it.
    pub fn add(&mut self, signal: Signal) -> io::Result<()> {
        if self.watches(signal) {
            return Ok(());
        }
        claim(signal)?;
        match self.start(signal) {
            Ok(watched) => {
                self.watched.push(watched);
                Ok(())
            }
            Err(e) => {
                release(signal);
                Err(e)
            }
        }
    }

    fn start(&mut self, signal: Signal) -> io::Result<Watched> {
        match &mut self.imp {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Imp::SignalFd { fd, mask } => {
                use nix::sys::signal::{pthread_sigmask, SigmaskHow};
                let mut one = SigSet::empty();
                one.add(signal);
                let mut old = SigSet::empty();
                pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&one), Some(&mut old))?;
                let was_blocked = old.contains(signal);
                mask.add(signal);
                // SAFETY: pthread_self only names the calling thread.
                let me = unsafe { libc::pthread_self() };
                owner(signal).thread.store(me as usize, Ordering::Release);
                let result = fd
                    .set_mask(mask)
                    .map_err(io::Error::from)
                    .and_then(|()| set_action(signal, SigHandler::Handler(forward)));
                match result {
                    Ok(old_action) => Ok(Watched {
                        signal,
                        old_action,
                        was_blocked,
                    }),
                    Err(e) => {
                        mask.remove(signal);
                        let _ = fd.set_mask(mask);
                        if !was_blocked {
                            let _ = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None);
                        }
                        Err(e)
                    }
                }
            }
            #[cfg(rawloop_native_kqueue)]
            Imp::Kqueue(kq) => {
                kqueue_change(kq, signal, nix::sys::event::EvFlags::EV_ADD)?;
                match set_action(signal, SigHandler::SigIgn) {
                    Ok(old_action) => Ok(Watched {
                        signal,
                        old_action,
                        was_blocked: false,
                    }),
                    Err(e) => {
                        let _ = kqueue_change(kq, signal, nix::sys::event::EvFlags::EV_DELETE);
                        Err(e)
                    }
                }
            }
            Imp::Pipe { write, .. } => {
                owner(signal)
                    .pipe
                    .store(write.as_raw_fd(), Ordering::Release);
                let old_action = set_action(signal, SigHandler::Handler(to_pipe))?;
                Ok(Watched {
                    signal,
                    old_action,
                    was_blocked: false,
                })
            }
        }
    }

    /// Stops watching `signal`, restoring its earlier disposition; returns whether it was
    /// watched.
    pub fn remove(&mut self, signal: Signal) -> bool {
        let Some(i) = self.watched.iter().position(|w| w.signal == signal) else {
            return false;
        };
        let watched = self.watched.swap_remove(i);
        self.stop(&watched);
        true
    }

    fn stop(&mut self, watched: &Watched) {
        let signal = watched.signal;
        restore_action(signal, &watched.old_action);
        match &mut self.imp {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Imp::SignalFd { fd, mask } => {
                use nix::sys::signal::{pthread_sigmask, SigmaskHow};
                mask.remove(signal);
                let _ = fd.set_mask(mask);
                if !watched.was_blocked {
                    let mut one = SigSet::empty();
                    one.add(signal);
                    let _ = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None);
                }
            }
            #[cfg(rawloop_native_kqueue)]
            Imp::Kqueue(kq) => {
                let _ = kqueue_change(kq, signal, nix::sys::event::EvFlags::EV_DELETE);
            }
            Imp::Pipe { .. } => {}
        }
        release(signal);
    }

    /// Appends the signals that arrived since the last call to `out`, each at most once.
    pub fn drain(&mut self, out: &mut Vec<Signal>) -> io::Result<()> {
        let mut note = |signum: i32| {
            if let Ok(signal) = Signal::try_from(signum) {
                if !out.contains(&signal) {
                    out.push(signal);
                }
            }
        };
        match &mut self.imp {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Imp::SignalFd { fd, .. } => {
                while let Some(info) = fd.read_signal()? {
                    note(info.ssi_signo as i32);
                }
            }
            #[cfg(rawloop_native_kqueue)]
            Imp::Kqueue(kq) => {
                use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent};
                let empty = KEvent::new(
                    0,
                    EventFilter::EVFILT_SIGNAL,
                    EvFlags::empty(),
                    FilterFlag::empty(),
                    0,
                    0,
                );
                let mut events = [empty; 16];
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                loop {
                    let n = kq.kevent(&[], &mut events, Some(zero))?;
                    for e in &events[..n] {
                        note(e.ident() as i32);
                    }
                    if n < events.len() {
                        break;
                    }
                }
            }
            Imp::Pipe { read, .. } => {
                let mut buf = [0u8; 64];
                loop {
                    match nix::unistd::read(&*read, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => buf[..n].iter().for_each(|&b| note(b as i32)),
                        Err(Errno::EAGAIN) => break,
                        Err(Errno::EINTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(rawloop_native_kqueue)]
fn kqueue_change(
    kq: &nix::sys::event::Kqueue,
    signal: Signal,
    action: nix::sys::event::EvFlags,
) -> io::Result<()> {
    use nix::sys::event::{EventFilter, FilterFlag, KEvent};
    let change = KEvent::new(
        signal as usize,
        EventFilter::EVFILT_SIGNAL,
        action,
        FilterFlag::empty(),
        0,
        0,
    );
    kq.kevent(&[change], &mut [], None)?;
    Ok(())
}

impl std::fmt::Debug for SignalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let watched: Vec<Signal> = self.watched.iter().map(|w| w.signal).collect();
        f.debug_struct("SignalSource")
            .field("fd", &self.fd())
            .field("watched", &watched)
            .finish()
    }
}

impl Drop for SignalSource {
    fn drop(&mut self) {
        for watched in std::mem::take(&mut self.watched) {
            self.stop(&watched);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raises `signal` in this thread and reads it back from `source`.
    fn raise_and_read(source: &mut SignalSource, signal: Signal) -> Vec<Signal> {
        nix::sys::signal::raise(signal).unwrap();
        let mut got = Vec::new();
        for _ in 0..100 {
            source.drain(&mut got).unwrap();
            if !got.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        got
    }

    /// The self-pipe is what platforms without signalfd or kqueue use, and the fallback where
    /// signalfd is refused; it runs here on purpose.
    #[test]
    fn self_pipe_reports_a_raised_signal_and_restores_the_old_action() {
        let mut source = SignalSource::pipe().unwrap();
        source.add(Signal::SIGWINCH).unwrap();
        assert_eq!(
            raise_and_read(&mut source, Signal::SIGWINCH),
            vec![Signal::SIGWINCH]
        );
        let mut again = SignalSource::pipe().unwrap();
        let err = again.add(Signal::SIGWINCH).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(source.remove(Signal::SIGWINCH));
        assert!(!source.remove(Signal::SIGWINCH));
        // SAFETY: reads the current action without changing it (a null new action).
        let current = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGWINCH, std::ptr::null(), &mut old);
            old.sa_sigaction
        };
        assert_eq!(current, libc::SIG_DFL, "the default action is back");
        again.add(Signal::SIGWINCH).unwrap();
    }

    #[test]
    fn native_source_reports_a_raised_signal() {
        let mut source = SignalSource::new().unwrap();
        source.add(Signal::SIGURG).unwrap();
        assert_eq!(
            raise_and_read(&mut source, Signal::SIGURG),
            vec![Signal::SIGURG]
        );
        let mut got = Vec::new();
        source.drain(&mut got).unwrap();
        assert!(got.is_empty(), "read once: {got:?}");
    }
}
