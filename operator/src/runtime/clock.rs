//! Time as Usher stores it, and the [`Clock`] a server reads it from.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::jiff::Timestamp;

/// Where a server reads the time: the system's, or a manual one that a test moves
/// ([`Clock::manual`], [`Clock::advance`]) to cross a timeout without waiting for it.
/// Cheap to clone; clones share the manual time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    /// Milliseconds moved since the clock was made.
    moved_ms: AtomicI64,
    start: Timestamp,
    start_instant: Instant,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: Timestamp) -> Clock {
        Clock {
            manual: Some(Arc::new(Manual {
                moved_ms: AtomicI64::new(0),
                start,
                start_instant: Instant::now(),
            })),
        }
    }

    /// Moves a manual clock forward (the system's moves by itself: this does nothing to it).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            m.moved_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    fn moved(m: &Manual) -> i64 {
        m.moved_ms.load(Ordering::SeqCst)
    }

    /// Now, to the millisecond.
    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => Timestamp::now(),
            Some(m) => m
                .start
                .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(Self::moved(
                    m,
                )))
                .unwrap_or(m.start),
        }
    }

    /// Now truncated to whole seconds, as the API server stores `Time` (see [`now`]).
    pub fn whole_seconds(&self) -> Timestamp {
        Timestamp::from_second(self.now_s()).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Now in Unix milliseconds (session clocks).
    pub fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }

    /// Now in Unix seconds.
    pub fn now_s(&self) -> i64 {
        self.now().as_second()
    }

    /// The monotonic now (throttles), moved with a manual clock.
    pub fn instant(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => {
                m.start_instant + Duration::from_millis(u64::try_from(Self::moved(m)).unwrap_or(0))
            }
        }
    }
}

/// Now, truncated to whole seconds: the API server stores `Time` that way, so comparing a
/// finer value with a stored one would never be equal and status would be rewritten forever.
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Clock;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_with_it() {
        let start = "2026-12-03T10:00:00Z".parse().unwrap();
        let clock = Clock::manual(start);
        let (t0, i0) = (clock.now(), clock.instant());
        assert_eq!(t0, start);
        clock.clone().advance(Duration::from_millis(1500));
        assert_eq!(clock.now_ms() - t0.as_millisecond(), 1500);
        assert_eq!(clock.instant() - i0, Duration::from_millis(1500));
    }

    #[test]
    fn the_system_clock_is_not_moved() {
        let clock = Clock::system();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now().duration_since(before).as_secs() < 60);
    }

    #[test]
    fn now_has_whole_seconds() {
        assert_eq!(super::now().subsec_nanosecond(), 0);
    }
}
