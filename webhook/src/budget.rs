//! A token bucket: how many fresh Lists the webhook may ask of the API server. Anyone who can
//! reach the webhook (or create Users) can make it refuse; a refusal must not cost a List each,
//! or a flood of refused reviews becomes a flood of cluster-wide Lists. Pure: the caller passes
//! the time.

use std::{sync::Mutex, time::Instant};

/// Up to `capacity` at once, refilled at `per_second`.
#[derive(Debug)]
pub struct Budget {
    capacity: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl Budget {
    /// A full bucket at `now`.
    pub fn new(capacity: u32, per_second: u32, now: Instant) -> Budget {
        Budget {
            capacity: f64::from(capacity),
            per_second: f64::from(per_second),
            state: Mutex::new((f64::from(capacity), now)),
        }
    }

    /// How many are there at `now` (taking none).
    pub fn available(&self, now: Instant) -> f64 {
        let (tokens, last) = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.refilled(tokens, last, now)
    }

    fn refilled(&self, tokens: f64, last: Instant, now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(last).as_secs_f64() * self.per_second)
            .min(self.capacity)
    }

    /// Takes one at `now`; false when none is left.
    pub fn take(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let refilled = self.refilled(tokens, last, now);
        if refilled < 1.0 {
            *s = (refilled, now);
            return false;
        }
        *s = (refilled - 1.0, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_takes_the_capacity_then_the_rate() {
        let t0 = Instant::now();
        let b = Budget::new(10, 5, t0);
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), 10);
        // A second later: five more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| b.take(t1)).count(), 5);
        // Never more than the capacity, however long it rested.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(b.available(t2), 10.0);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), 10);
        assert_eq!(b.available(t2 + Duration::from_millis(500)), 2.5);
    }
}
