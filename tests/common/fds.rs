//! The process's count of open fds, and the turn a test takes to measure it alone.

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use rawloop::Selector;

/// The fd count is process-wide: a test that measures it holds this, so that no other test
/// opens or closes fds meanwhile.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How many fds this process has open now.
pub fn open_fds() -> usize {
    super::open_fd_count().expect("counting open fds")
}

/// The process's fd count before a test opened anything, and the test's turn: from
/// [`Fds::baseline`] until the `Fds` is dropped no other test of this binary that takes one
/// runs. Take it first in a test, before anything that opens an fd, so that it is dropped
/// last.
pub struct Fds {
    baseline: usize,
    _alone: MutexGuard<'static, ()>,
}

impl Fds {
    /// Waits for the test's turn, then takes the baseline. libkqueue opens process-wide fds
    /// with its first kqueue and closes a kqueue's own fds later, on a thread of its own: one
    /// kqueue is made and dropped, and that is let settle, before counting.
    pub fn baseline<S: Selector>() -> Fds {
        let alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        drop(S::new().expect("a selector"));
        if super::backend_name::<S>() == "kqueue" {
            thread::sleep(Duration::from_millis(200));
        }
        Fds {
            baseline: open_fds(),
            _alone: alone,
        }
    }

    /// The baseline: how many fds were open when the test began.
    pub fn count(&self) -> usize {
        self.baseline
    }

    /// Waits up to `limit` for exactly `want` fds to be open; panics with `what` otherwise.
    pub fn wait_for(&self, want: usize, limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        loop {
            let now = open_fds();
            if now == want {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: {now} fds open after {limit:?}, expected {want} (baseline {})",
                    self.baseline
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the test opened is closed again (within 2 s, for libkqueue's deferred
    /// closes).
    pub fn assert_back(&self) {
        self.wait_for(self.baseline, Duration::from_secs(2), "fds leaked");
    }
}
