//! How many REST API events may be in flight at once (queued for the
//! writer or being written, until answered): a bound that follows how long
//! admitted events actually wait.
//!
//! A fixed bound (one full batch, 2,048 events) is about two commits'
//! worth when the writer runs at full speed, but under overload the writer
//! shares the cores with thousands of requests and commits far fewer events
//! a second, and the same 2,048 events then wait seconds (RELIABILITY.md,
//! "Overload"). So the bound adapts, the way a congestion window does: the
//! gate watches the time from admission to answer, and every `INTERVAL` in
//! which even the quickest admitted event waited more than `TARGET_WAIT` (a
//! standing queue, not a burst) it lowers the bound by a quarter; in an
//! interval whose quickest event waited less it raises it by a quarter, up
//! to `MAX_ADMITTED_EVENTS`. It never falls below `MIN_ADMITTED_EVENTS`,
//! and a request for more events than the bound (a large batch) is still
//! admitted when nothing else is in flight, so a quiet server takes any
//! batch.
//!
//! Times are read by the caller and passed in (`admit_at`, `release_at`),
//! so tests drive the gate with instants of their own.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// The most events admitted at once: one full batch of the writer.
pub const MAX_ADMITTED_EVENTS: usize = super::writer::MAX_BATCH;
/// The bound never goes lower: enough for a few commits' worth.
pub const MIN_ADMITTED_EVENTS: usize = 64;
/// The wait (admission to answer) the bound aims to keep admitted events under.
pub const TARGET_WAIT: Duration = Duration::from_millis(100);
/// How often the bound is reconsidered.
pub const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Gate {
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    /// The quickest answer in this interval, if any was given.
    quickest: Option<Duration>,
}

/// Room for `n` REST API events; given back when dropped (once they are
/// answered), which also tells the gate how long they waited.
#[derive(Debug)]
pub struct Admission {
    gate: Arc<Gate>,
    n: usize,
    at: Instant,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.gate.release_at(self.n, self.at, Instant::now());
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(MAX_ADMITTED_EVENTS),
            window: Mutex::new(Window { started: None, quickest: None }),
        }
    }
}

impl Gate {
    /// The bound now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Events admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether any further event would be refused now (the bound is
    /// reached and something is in flight): `admit_at` would refuse every
    /// `n`, so a caller may shed a request before reading its body.
    pub fn full(&self) -> bool {
        let in_flight = self.in_flight();
        in_flight > 0 && in_flight >= self.limit()
    }

    /// Admits `n` events, or `None` when that would take the events in
    /// flight past the bound (unless none are in flight). Never waits.
    pub fn admit_at(self: &Arc<Self>, n: usize, now: Instant) -> Option<Admission> {
        let limit = self.limit();
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                let total = current.checked_add(n)?;
                (total <= limit || current == 0).then_some(total)
            })
            .ok()
            .map(|_| Admission { gate: self.clone(), n, at: now })
    }

    /// `n` events admitted at `admitted` were answered at `now`.
    pub fn release_at(&self, n: usize, admitted: Instant, now: Instant) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
        let waited = now.saturating_duration_since(admitted);
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.quickest = Some(window.quickest.map_or(waited, |q| q.min(waited)));
        let started = *window.started.get_or_insert(now);
        if now.saturating_duration_since(started) < INTERVAL {
            return;
        }
        let quickest = window.quickest.take().unwrap_or_default();
        window.started = Some(now);
        let limit = self.limit();
        let next = if quickest > TARGET_WAIT {
            (limit - limit / 4).max(MIN_ADMITTED_EVENTS)
        } else {
            (limit + limit / 4).min(MAX_ADMITTED_EVENTS)
        };
        self.limit.store(next, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Admits one event at `at` and answers it `wait` later.
    fn one(gate: &Arc<Gate>, at: Instant, wait: Duration) {
        let a = gate.admit_at(1, at).expect("room");
        std::mem::forget(a);
        gate.release_at(1, at, at + wait);
    }

    /// A gate whose every answer came 400 ms after admission, for 2 s: its
    /// bound has fallen to the floor. The gate and the time after.
    fn at_the_floor() -> (Arc<Gate>, Instant) {
        let gate = Arc::new(Gate::default());
        let mut t = Instant::now();
        for _ in 0..40 {
            one(&gate, t, ms(400));
            t += ms(50);
        }
        assert_eq!(gate.limit(), MIN_ADMITTED_EVENTS);
        (gate, t)
    }

    #[test]
    fn the_bound_holds_and_room_comes_back() {
        let gate = Arc::new(Gate::default());
        let t = Instant::now();
        let held = gate.admit_at(MAX_ADMITTED_EVENTS - 1, t).unwrap();
        let last = gate.admit_at(1, t).unwrap();
        assert!(gate.admit_at(1, t).is_none());
        assert_eq!(gate.in_flight(), MAX_ADMITTED_EVENTS);
        drop(last);
        assert!(gate.admit_at(2, t).is_none(), "two do not fit in one place");
        drop(held);
        assert_eq!(gate.in_flight(), 0);
    }

    #[test]
    fn a_standing_queue_lowers_the_bound_and_quick_answers_raise_it_again() {
        let (gate, mut t) = at_the_floor();
        // A burst with one quick answer in the interval does not lower it.
        let before = gate.limit();
        one(&gate, t, ms(5));
        t += ms(50);
        one(&gate, t, ms(400));
        t += ms(60);
        one(&gate, t, ms(400));
        assert!(gate.limit() >= before, "{} < {before}", gate.limit());
        // Quick answers again: back up to the full batch.
        for _ in 0..100 {
            t += ms(50);
            one(&gate, t, ms(5));
        }
        assert_eq!(gate.limit(), MAX_ADMITTED_EVENTS);
    }

    #[test]
    fn a_batch_larger_than_the_bound_passes_when_nothing_else_is_in_flight() {
        let (gate, t) = at_the_floor();
        let batch = gate.admit_at(1000, t).expect("alone, a large batch passes");
        assert!(gate.admit_at(1, t).is_none(), "nothing more while it is past the bound");
        drop(batch);
        let small = gate.admit_at(MIN_ADMITTED_EVENTS, t).expect("the bound's worth");
        assert!(gate.admit_at(1000, t).is_none(), "not alone: refused");
        drop(small);
    }

    /// `full` says what `admit_at` would do for any `n`: nothing in flight
    /// is never full (a lone large batch passes), the bound reached is.
    #[test]
    fn full_when_every_place_is_taken() {
        let gate = Arc::new(Gate::default());
        let now = Instant::now();
        assert!(!gate.full());
        let most = gate.admit_at(MAX_ADMITTED_EVENTS - 1, now).expect("room");
        assert!(!gate.full());
        let last = gate.admit_at(1, now).expect("the last place");
        assert!(gate.full());
        assert!(gate.admit_at(1, now).is_none());
        drop(last);
        assert!(!gate.full());
        drop(most);
        assert!(!gate.full());
    }
}
