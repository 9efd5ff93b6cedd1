//! One-shot timers ordered by deadline.

use std::collections::BTreeMap;
use std::time::Instant;

/// Names a timer so that it can be cancelled; also tells the handler which timer fired.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    deadline: Instant,
    seq: u64,
}

impl TimerId {
    /// When the timer fires (or fired).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Pending timers, earliest first; ties fire in the order they were set.
#[derive(Debug)]
pub(crate) struct Timers<T> {
    queue: BTreeMap<TimerId, T>,
    next_seq: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Timers<T> {
        Timers {
            queue: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, target: T) -> TimerId {
        let id = TimerId {
            deadline,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.queue.insert(id, target);
        id
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.queue.remove(&id)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|(id, _)| id.deadline)
    }

    /// Removes and returns the earliest timer whose deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(TimerId, T)> {
        if self.next_deadline()? <= now {
            self.queue.pop_first()
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
