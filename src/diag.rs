//! Log lines whose volume a peer controls, kept bounded: [`warn_limited!`] logs the first
//! warning of its kind in each second at `warn`, the rest at `debug`, and says at the next
//! `warn` how many it held back. A flood of bad connections costs one warning a second per
//! kind, not one per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The state of one kind of warning (one call site).
#[derive(Debug)]
pub(crate) struct Throttle {
    /// The second (since the process's first throttled warning) of the last `warn` line.
    second: AtomicU64,
    /// Lines logged at `debug` since then.
    held_back: AtomicU64,
}

impl Throttle {
    pub(crate) const fn new() -> Throttle {
        Throttle {
            second: AtomicU64::new(u64::MAX),
            held_back: AtomicU64::new(0),
        }
    }

    /// Whether this line may go out at `warn`; if so, how many were held back before it.
    pub(crate) fn admit(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = START.get_or_init(Instant::now).elapsed().as_secs();
        let last = self.second.load(Ordering::Relaxed);
        if last != now
            && self
                .second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `log::warn!` at most once a second for this call site; the other lines go to `debug`.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::diag::Throttle = $crate::diag::Throttle::new();
        match THROTTLE.admit() {
            Some(0) => log::warn!($($arg)+),
            Some(held) => log::warn!("{} ({held} more like it in the last second, at debug level)", format_args!($($arg)+)),
            None => log::debug!($($arg)+),
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_and_a_count_of_the_rest() {
        let t = Throttle::new();
        assert_eq!(t.admit(), Some(0));
        for _ in 0..5 {
            assert_eq!(t.admit(), None);
        }
        // The next second's first line reports the five held back.
        t.second.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(t.admit(), Some(5));
    }
}
