//! The reactor's alarm: a kernel timer that ends a long wait, so that the wait itself passes
//! no timeout.
//!
//! A wait with a timeout costs the kernel a timer of its own each time it sleeps: armed as
//! the thread goes to sleep, cancelled when an event wakes it first. A server with a request
//! or idle timeout always has a timer pending, usually seconds away, and its waits end by
//! I/O thousands of times before that timer is due (BENCHMARKS.md measures what that costs
//! a server with one request per connection). On Linux the reactor instead arms a timerfd, registered with
//! its selector like any source, for the next deadline, and waits without a timeout. The
//! timerfd is armed again only when a sooner deadline comes up or after it has rung: timers
//! set and cancelled behind the next one (a timeout per connection) cost it nothing. Short
//! waits keep the timeout: a deadline that close is likely to be the wait's end, and arming
//! the timerfd for it would cost two syscalls where the timeout costs one kernel timer.
//!
//! Elsewhere (kqueue systems) there is no alarm and every wait carries its timeout.

use std::time::Duration;

/// Waits at least this long are ended by the alarm rather than a timeout.
pub(crate) const ALARM_AFTER: Duration = Duration::from_millis(100);

#[cfg(any(target_os = "linux", target_os = "android"))]
mod timerfd {
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd};
    use std::time::{Duration, Instant};

    use nix::errno::Errno;
    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

    /// A non-blocking, close-on-exec timerfd on the monotonic clock (the clock of
    /// `Instant`), and the deadline it is armed for.
    #[derive(Debug)]
    pub(crate) struct Alarm {
        fd: TimerFd,
        armed: Option<Instant>,
    }

    impl Alarm {
        pub(crate) fn new() -> io::Result<Option<Alarm>> {
            let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
            let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)?;
            Ok(Some(Alarm { fd, armed: None }))
        }

        pub(crate) fn fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }

        /// Makes the alarm ring by `deadline`, which is `until` from now: nothing to do if
        /// it is armed for that deadline or an earlier one.
        pub(crate) fn ring_by(&mut self, deadline: Instant, until: Duration) -> io::Result<()> {
            if self.armed.is_some_and(|armed| armed <= deadline) {
                return Ok(());
            }
            // Relative to the kernel's now, which is later than the caller's: the alarm
            // rings at the deadline or after it, never before.
            let after = Expiration::OneShot(TimeSpec::from_duration(until));
            self.fd.set(after, TimerSetTimeFlags::empty())?;
            self.armed = Some(deadline);
            Ok(())
        }

        /// After the selector reported the timerfd readable: takes its expiration count,
        /// which keeps it readable until read.
        pub(crate) fn rang(&mut self) -> io::Result<()> {
            self.armed = None;
            let mut count = [0u8; 8];
            match nix::unistd::read(self.fd.as_fd(), &mut count) {
                Ok(_) | Err(Errno::EAGAIN) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use timerfd::Alarm;

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::time::{Duration, Instant};

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    use super::Alarm;

    fn rings_within(alarm: &Alarm, ms: u16) -> bool {
        let mut fds = [PollFd::new(alarm.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
    }

    #[test]
    fn armed_once_for_the_soonest_deadline_then_again_after_ringing() {
        let mut alarm = Alarm::new().unwrap().unwrap();
        let now = Instant::now();
        let ms = Duration::from_millis;
        alarm.ring_by(now + ms(50), ms(50)).unwrap();
        // A later deadline leaves it armed for the sooner one.
        alarm.ring_by(now + ms(5000), ms(5000)).unwrap();
        assert!(rings_within(&alarm, 1000), "rings at 50 ms");
        assert!(now.elapsed() >= ms(50), "not before its deadline");
        alarm.rang().unwrap();
        assert!(!rings_within(&alarm, 0), "quiet once read");
        // Rung, it is armed for the next deadline whatever it was armed for before.
        alarm.ring_by(Instant::now() + ms(30), ms(30)).unwrap();
        assert!(rings_within(&alarm, 1000));
    }

    #[test]
    fn a_deadline_at_the_end_of_time_arms_without_error() {
        let mut alarm = Alarm::new().unwrap().unwrap();
        let now = Instant::now();
        let far = crate::timers::instant_after(now, Duration::MAX);
        alarm.ring_by(far, far - now).unwrap();
        assert!(!rings_within(&alarm, 0));
    }
}

/// No alarm on this system: a type with no values, so the reactor's `Option<Alarm>` is
/// always `None` here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[derive(Debug)]
pub(crate) enum Alarm {}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Alarm {
    pub(crate) fn new() -> std::io::Result<Option<Alarm>> {
        Ok(None)
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match *self {}
    }

    pub(crate) fn ring_by(&mut self, _: std::time::Instant, _: Duration) -> std::io::Result<()> {
        match *self {}
    }

    pub(crate) fn rang(&mut self) -> std::io::Result<()> {
        match *self {}
    }
}
