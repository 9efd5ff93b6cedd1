//! Timers: one-shot or periodic, earliest first.
//!
//! Each timer lives in a slab and knows where it is queued, so cancelling, rescheduling and
//! removing every timer of a closed registration leave nothing behind. Most timers sit in a
//! binary heap ordered by deadline. One-shot timers set with the same delay — a server's
//! request or idle timeout, one per connection — come due in the order they were set, so
//! they queue in a *lane* instead: a list in deadline order whose first timer alone is in the
//! heap. Setting such a timer appends it, cancelling one unlinks it: O(1), where the heap
//! would move timers up and down its height, touching one slab entry per level.

use std::time::{Duration, Instant};

use slab::Slab;

/// Names a timer: returned when it is set, given to the handler when it fires, and used to
/// cancel or reschedule it. An id names one timer only; once that timer is gone (fired, if
/// one-shot, or cancelled), the id names nothing, even after its slot is reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    key: u32,
    serial: u32,
}

/// How a timer comes back after it fires.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Fires once; `delay` is what [`Timers::reset`] waits again.
    Once { delay: Duration },
    /// Fires every `period`, each deadline counted from the previous one.
    Every { period: Duration },
}

#[derive(Debug)]
struct Timer<T> {
    deadline: Instant,
    /// Breaks ties between equal deadlines: the timer set (or rescheduled) first fires first.
    order: u64,
    serial: u32,
    repeat: Repeat,
    /// The registration the timer belongs to, if any.
    owner: Option<usize>,
    /// The neighbours in the owner's list of timers (`NONE` at the ends).
    prev: usize,
    next: usize,
    /// Its position in `heap`, or `NONE` for a timer queued in a lane behind its first.
    at: usize,
    /// The lane it is queued in (an index into `lanes`), or `NONE`.
    lane: usize,
    /// The neighbours in its lane (`NONE` at the ends).
    lane_prev: usize,
    lane_next: usize,
    target: T,
}

/// One-shot timers of one delay, in deadline order (ties in set order): the first is in the
/// heap, the others wait behind it.
#[derive(Debug)]
struct Lane {
    delay: Duration,
    /// `NONE` when the lane is free.
    first: usize,
    last: usize,
}

/// The most lanes: distinct delays beyond these go to the heap.
const MAX_LANES: usize = 8;

/// Pending timers, earliest first.
#[derive(Debug)]
pub(crate) struct Timers<T> {
    timers: Slab<Timer<T>>,
    /// Keys into `timers`, a binary min-heap on `(deadline, order)`.
    heap: Vec<usize>,
    lanes: Vec<Lane>,
    next_order: u64,
    next_serial: u32,
    /// `first_owned[owner]` is the first timer of registration `owner` (`NONE` if it has none).
    first_owned: Vec<usize>,
}

const NONE: usize = usize::MAX;

/// `now + delay`, or the latest instant that can be represented: a delay too long to add
/// means "never", not a panic.
pub(crate) fn instant_after(now: Instant, delay: Duration) -> Instant {
    if let Some(t) = now.checked_add(delay) {
        return t;
    }
    let mut step = delay;
    let mut t = now;
    while !step.is_zero() {
        match t.checked_add(step) {
            Some(later) => t = later,
            None => step /= 2,
        }
    }
    t
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Timers<T> {
        Timers {
            timers: Slab::new(),
            heap: Vec::new(),
            lanes: Vec::new(),
            next_order: 0,
            next_serial: 0,
            first_owned: Vec::new(),
        }
    }

    /// Adds a timer due at `deadline`, owned by registration `owner` if given.
    pub(crate) fn insert(
        &mut self,
        deadline: Instant,
        repeat: Repeat,
        owner: Option<usize>,
        target: T,
    ) -> TimerId {
        self.next_serial = self.next_serial.wrapping_add(1);
        let next = match owner {
            Some(owner) => {
                if self.first_owned.len() <= owner {
                    self.first_owned.resize(owner + 1, NONE);
                }
                self.first_owned[owner]
            }
            None => NONE,
        };
        let order = self.take_order();
        let key = self.timers.insert(Timer {
            deadline,
            order,
            serial: self.next_serial,
            repeat,
            owner,
            prev: NONE,
            next,
            at: NONE,
            lane: NONE,
            lane_prev: NONE,
            lane_next: NONE,
            target,
        });
        if let Some(owner) = owner {
            if next != NONE {
                self.timers[next].prev = key;
            }
            self.first_owned[owner] = key;
        }
        self.enqueue(key);
        TimerId {
            key: key as u32,
            serial: self.next_serial,
        }
    }

    fn take_order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    fn key_of(&self, id: TimerId) -> Option<usize> {
        let key = id.key as usize;
        self.timers
            .get(key)
            .is_some_and(|t| t.serial == id.serial)
            .then_some(key)
    }

    /// Whether `id` names a pending timer.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: TimerId) -> bool {
        self.key_of(id).is_some()
    }

    /// The deadline of a pending timer.
    pub(crate) fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.key_of(id).map(|key| self.timers[key].deadline)
    }

    /// Removes a pending timer and returns its target.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<T> {
        let key = self.key_of(id)?;
        Some(self.remove_key(key))
    }

    /// Moves a pending timer to `deadline` (a periodic timer keeps its period from there).
    pub(crate) fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        let Some(key) = self.key_of(id) else {
            return false;
        };
        self.unqueue(key);
        let order = self.take_order();
        let timer = &mut self.timers[key];
        timer.deadline = deadline;
        timer.order = order;
        self.enqueue(key);
        true
    }

    /// Moves a pending timer to `now` plus its delay (or period).
    pub(crate) fn reset(&mut self, id: TimerId, now: Instant) -> bool {
        let Some(key) = self.key_of(id) else {
            return false;
        };
        let (Repeat::Once { delay } | Repeat::Every { period: delay }) = self.timers[key].repeat;
        self.reschedule(id, instant_after(now, delay))
    }

    /// Removes every timer owned by registration `owner`; returns how many there were.
    pub(crate) fn remove_owned_by(&mut self, owner: usize) -> usize {
        let mut removed = 0;
        while let Some(&key) = self.first_owned.get(owner).filter(|&&key| key != NONE) {
            self.remove_key(key);
            removed += 1;
        }
        removed
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|&key| self.timers[key].deadline)
    }

    /// Takes the earliest timer due at `now`. A one-shot timer is removed and its target
    /// handed over; a periodic one stays, moved to its next deadline, and its target can be
    /// reached with [`Timers::target_mut`].
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Fired<T>> {
        let &key = self.heap.first()?;
        let timer = &self.timers[key];
        if timer.deadline > now {
            return None;
        }
        let id = TimerId {
            key: key as u32,
            serial: timer.serial,
        };
        let owner = timer.owner;
        let taken = match timer.repeat {
            Repeat::Once { .. } => Some(self.remove_key(key)),
            Repeat::Every { period } => {
                let next = next_tick(timer.deadline, period, now);
                self.reschedule(id, next);
                None
            }
        };
        Some(Fired { id, owner, taken })
    }

    /// The target of a pending timer.
    pub(crate) fn target_mut(&mut self, id: TimerId) -> Option<&mut T> {
        let key = self.key_of(id)?;
        Some(&mut self.timers[key].target)
    }

    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }

    fn remove_key(&mut self, key: usize) -> T {
        self.unqueue(key);
        let timer = self.timers.remove(key);
        if timer.next != NONE {
            self.timers[timer.next].prev = timer.prev;
        }
        if timer.prev != NONE {
            self.timers[timer.prev].next = timer.next;
        } else if let Some(owner) = timer.owner {
            self.first_owned[owner] = timer.next;
        }
        timer.target
    }

    /// Queues timer `key`: at the end of the lane of its delay if it is a one-shot timer due
    /// no earlier than that lane's last (or in a free lane), else in the heap.
    fn enqueue(&mut self, key: usize) {
        let timer = &self.timers[key];
        if let Repeat::Once { delay } = timer.repeat {
            if let Some(lane) = self.lane_for(delay, timer.deadline) {
                let last = self.lanes[lane].last;
                let timer = &mut self.timers[key];
                timer.lane = lane;
                timer.lane_prev = last;
                timer.lane_next = NONE;
                self.lanes[lane].last = key;
                if last != NONE {
                    self.timers[last].lane_next = key;
                    self.timers[key].at = NONE;
                    return;
                }
                self.lanes[lane].first = key;
            }
        }
        self.timers[key].at = self.heap.len();
        self.heap.push(key);
        self.sift_up(self.heap.len() - 1);
    }

    /// The lane a one-shot timer of `delay` due at `deadline` joins: the lane of that delay if
    /// its last timer is due no later, else a free lane if there is no lane of that delay.
    fn lane_for(&mut self, delay: Duration, deadline: Instant) -> Option<usize> {
        let mut free = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            if lane.first == NONE {
                free = free.or(Some(i));
            } else if lane.delay == delay {
                return (self.timers[lane.last].deadline <= deadline).then_some(i);
            }
        }
        if free.is_none() && self.lanes.len() < MAX_LANES {
            free = Some(self.lanes.len());
            self.lanes.push(Lane {
                delay,
                first: NONE,
                last: NONE,
            });
        }
        let free = free?;
        self.lanes[free].delay = delay;
        Some(free)
    }

    /// Takes timer `key` out of its lane and the heap; its slab entry stays.
    fn unqueue(&mut self, key: usize) {
        let timer = &mut self.timers[key];
        let (at, lane, prev, next) = (timer.at, timer.lane, timer.lane_prev, timer.lane_next);
        timer.lane = NONE;
        timer.at = NONE;
        if lane != NONE {
            if next != NONE {
                self.timers[next].lane_prev = prev;
            } else {
                self.lanes[lane].last = prev;
            }
            if prev != NONE {
                self.timers[prev].lane_next = next;
                return;
            }
            self.lanes[lane].first = next;
            if next != NONE {
                // The next of the lane takes the first's place in the heap: it is due no
                // earlier, so it can only move down.
                self.heap[at] = next;
                self.timers[next].at = at;
                self.sift_down(at);
                return;
            }
        }
        let last = self.heap.len() - 1;
        self.swap(at, last);
        self.heap.pop();
        if at < self.heap.len() {
            let moved = self.heap[at];
            self.sift_up(at);
            self.sift_down(self.timers[moved].at);
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.timers[self.heap[a]], &self.timers[self.heap[b]]);
        (a.deadline, a.order) < (b.deadline, b.order)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.timers[self.heap[a]].at = a;
        self.timers[self.heap[b]].at = b;
    }

    fn sift_up(&mut self, mut at: usize) {
        while at > 0 {
            let parent = (at - 1) / 2;
            if !self.less(at, parent) {
                break;
            }
            self.swap(at, parent);
            at = parent;
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let mut least = at;
            for child in [2 * at + 1, 2 * at + 2] {
                if child < self.heap.len() && self.less(child, least) {
                    least = child;
                }
            }
            if least == at {
                break;
            }
            self.swap(at, least);
            at = least;
        }
    }
}

/// A timer that came due.
#[derive(Debug)]
pub(crate) struct Fired<T> {
    pub(crate) id: TimerId,
    /// The registration it belongs to, if any.
    pub(crate) owner: Option<usize>,
    /// A one-shot timer's target (the timer is gone); `None` for a periodic timer, which
    /// stays, already moved to its next deadline.
    pub(crate) taken: Option<T>,
}

/// The first deadline after `now` on the grid `last + k * period`: a periodic timer keeps its
/// phase however late it fires, and ticks missed while the loop was busy are skipped rather
/// than run back to back. A zero period counts as one nanosecond.
fn next_tick(last: Instant, period: Duration, now: Instant) -> Instant {
    let period = period.max(Duration::from_nanos(1));
    let next = instant_after(last, period);
    if next > now {
        return next;
    }
    let behind = now.duration_since(last).as_nanos();
    let periods = behind / period.as_nanos() + 1;
    let skip = period
        .checked_mul(u32::try_from(periods).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX);
    instant_after(last, skip).max(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn once(t: &mut Timers<u32>, at: Instant, v: u32, owner: Option<usize>) -> TimerId {
        t.insert(at, Repeat::Once { delay: ms(1) }, owner, v)
    }

    fn drain(t: &mut Timers<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(f) = t.pop_expired(now) {
            match f.taken {
                Some(v) => out.push(v),
                None => out.push(*t.target_mut(f.id).unwrap()),
            }
        }
        out
    }

    #[test]
    fn fires_in_deadline_order_ties_in_set_order() {
        let now = Instant::now();
        let mut t = Timers::new();
        for (i, d) in [5u64, 1, 3, 1, 4, 2, 5].into_iter().enumerate() {
            once(&mut t, now + ms(d), i as u32, None);
        }
        assert_eq!(drain(&mut t, now + ms(3)), vec![1, 3, 5, 2]);
        assert_eq!(drain(&mut t, now + ms(10)), vec![4, 0, 6]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn cancel_and_reschedule_keep_the_heap_exact() {
        let now = Instant::now();
        let mut t = Timers::new();
        let ids: Vec<TimerId> = (0..100)
            .map(|i| once(&mut t, now + ms(i), i as u32, None))
            .collect();
        for id in ids.iter().step_by(2) {
            assert!(t.cancel(*id).is_some());
            assert!(t.cancel(*id).is_none(), "an id names its timer once");
        }
        assert!(t.reschedule(ids[99], now));
        assert!(!t.reschedule(ids[0], now), "cancelled");
        assert_eq!(t.len(), 50);
        let fired = drain(&mut t, now + ms(200));
        let mut expected: Vec<u32> = vec![99];
        expected.extend((1..99).step_by(2).map(|i| i as u32));
        assert_eq!(fired, expected);
    }

    /// The lanes against a model: random sets (a few delays, so that lanes fill up and
    /// some deadlines come out of order), cancels, reschedules, owner removals and expiries,
    /// against a plain list sorted by `(deadline, order)`.
    #[test]
    fn lanes_and_heap_fire_as_one_sorted_list() {
        let start = Instant::now();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut t = Timers::new();
        // The model: (deadline, order, value, owner, id), sorted when due timers are taken.
        let mut model: Vec<(Instant, u64, u32, usize, TimerId)> = Vec::new();
        let mut order = 0;
        let mut now = start;
        for value in 0..20_000u32 {
            match random(10) {
                0..=4 => {
                    // Delays 1..=12 ms: more distinct ones than there are lanes.
                    let delay = ms(1 + random(12));
                    let deadline = if random(8) == 0 {
                        now + ms(random(20))
                    } else {
                        now + delay
                    };
                    let owner = random(5) as usize;
                    let id = t.insert(deadline, Repeat::Once { delay }, Some(owner), value);
                    order += 1;
                    model.push((deadline, order, value, owner, id));
                }
                5 if !model.is_empty() => {
                    let (_, _, v, _, id) = model.remove(random(model.len() as u64) as usize);
                    assert_eq!(t.cancel(id), Some(v));
                }
                6 if !model.is_empty() => {
                    let i = random(model.len() as u64) as usize;
                    let deadline = now + ms(random(15));
                    assert!(t.reschedule(model[i].4, deadline));
                    order += 1;
                    (model[i].0, model[i].1) = (deadline, order);
                }
                7 if random(10) == 0 => {
                    let owner = random(5) as usize;
                    let gone = model.iter().filter(|m| m.3 == owner).count();
                    model.retain(|m| m.3 != owner);
                    assert_eq!(t.remove_owned_by(owner), gone);
                }
                _ => {
                    now += ms(random(3));
                    model.sort_by_key(|m| (m.0, m.1));
                    let due = model.iter().take_while(|m| m.0 <= now).count();
                    let expected: Vec<u32> = model.drain(..due).map(|m| m.2).collect();
                    assert_eq!(drain(&mut t, now), expected);
                }
            }
            assert_eq!(t.len(), model.len());
            let first = model.iter().map(|m| (m.0, m.1)).min().map(|m| m.0);
            assert_eq!(t.next_deadline(), first);
        }
        assert_eq!(t.lanes.len(), MAX_LANES, "every lane was used");
    }

    #[test]
    fn an_old_id_does_not_name_a_timer_in_its_reused_slot() {
        let now = Instant::now();
        let mut t = Timers::new();
        let old = once(&mut t, now, 1, None);
        assert_eq!(drain(&mut t, now), vec![1]);
        let new = once(&mut t, now + ms(5), 2, None);
        assert_ne!(old, new);
        assert!(t.cancel(old).is_none());
        assert!(t.contains(new));
    }

    #[test]
    fn removing_an_owner_removes_only_its_timers() {
        let now = Instant::now();
        let mut t = Timers::new();
        for i in 0..30 {
            once(&mut t, now + ms(i), i as u32, Some(i as usize % 3));
        }
        assert_eq!(t.remove_owned_by(1), 10);
        assert_eq!(t.remove_owned_by(1), 0);
        let fired = drain(&mut t, now + ms(100));
        assert_eq!(fired.len(), 20);
        assert!(fired.iter().all(|v| v % 3 != 1));
    }

    #[test]
    fn periodic_deadlines_count_from_the_previous_deadline() {
        let start = Instant::now();
        let mut t = Timers::new();
        let id = t.insert(start + ms(10), Repeat::Every { period: ms(10) }, None, 7);
        // Fired 3 ms late: the next deadline is still on the 10 ms grid.
        let fired = t.pop_expired(start + ms(13)).unwrap();
        assert_eq!((fired.id, fired.taken), (id, None));
        assert_eq!(t.deadline(id), Some(start + ms(20)));
        assert!(t.pop_expired(start + ms(13)).is_none());
        // Fired 35 ms late: the ticks at 20, 30, 40 and 50 are skipped, not bunched.
        assert!(t.pop_expired(start + ms(55)).is_some());
        assert_eq!(t.deadline(id), Some(start + ms(60)));
        assert!(t.pop_expired(start + ms(55)).is_none());
    }

    #[test]
    fn zero_period_fires_once_per_call() {
        let now = Instant::now();
        let mut t = Timers::new();
        t.insert(
            now,
            Repeat::Every {
                period: Duration::ZERO,
            },
            None,
            1,
        );
        assert_eq!(drain(&mut t, now), vec![1]);
    }

    #[test]
    fn reset_waits_the_delay_again_from_now() {
        let start = Instant::now();
        let mut t = Timers::new();
        let id = t.insert(start + ms(10), Repeat::Once { delay: ms(10) }, None, 1);
        assert!(t.reset(id, start + ms(8)));
        assert_eq!(t.deadline(id), Some(start + ms(18)));
    }

    #[test]
    fn a_delay_past_the_end_of_time_saturates() {
        let now = Instant::now();
        let far = instant_after(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(1 << 40));
        let mut t = Timers::new();
        let id = t.insert(
            far,
            Repeat::Every {
                period: Duration::MAX,
            },
            None,
            1,
        );
        assert!(t.pop_expired(now).is_none());
        assert_eq!(next_tick(far, Duration::MAX, far), far);
        assert!(t.contains(id));
    }
}
