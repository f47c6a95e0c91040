//! Login throttling, in memory per replica: after `free` failures for one key (a login, a client
//! address) each further attempt waits twice as long as the last (1 s, 2 s, 4 s, … up to
//! `max_delay`), answered with 429 and Retry-After before any password is hashed. Failures are
//! forgotten after `forget_after` without one, or on success. The soft lock that every replica
//! honours is written to the account by the caller when [`Throttle::failure`] says so.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Most keys remembered; beyond it, forgotten entries are swept, then the oldest go.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

/// Failure counts per key.
pub struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
    free: u32,
    max_delay: Duration,
    forget_after: Duration,
}

impl Throttle {
    /// Lets `free` failures through without delay.
    pub fn new(free: u32, max_delay: Duration, forget_after: Duration) -> Throttle {
        Throttle {
            entries: Mutex::default(),
            free,
            max_delay,
            forget_after,
        }
    }

    fn delay(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let exp = (failures - self.free).min(20);
        Duration::from_secs(1u64 << exp).min(self.max_delay)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry_after)` while `key` must wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let entries = self.lock();
        let Some(e) = entries.get(key) else {
            return Ok(());
        };
        let since = now.saturating_duration_since(e.last);
        if since >= self.forget_after {
            return Ok(());
        }
        let wait = self.delay(e.failures);
        if since < wait {
            Err((wait - since).max(Duration::from_secs(1)))
        } else {
            Ok(())
        }
    }

    /// Records a failure; returns the failures counted so far.
    pub fn failure(&self, key: &str, now: Instant) -> u32 {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            let forget = self.forget_after;
            entries.retain(|_, e| now.saturating_duration_since(e.last) < forget);
            if entries.len() >= MAX_ENTRIES
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        let e = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(e.last) >= self.forget_after {
            e.failures = 0;
        }
        e.failures += 1;
        e.last = now;
        e.failures
    }

    /// Forgets `key`'s failures (a successful login, or a soft lock that took over).
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_failures_and_are_forgotten_later() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(900));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(t.check("k", start).is_ok());
            t.failure("k", start);
        }
        assert_eq!(t.check("k", start), Err(Duration::from_secs(1)));
        assert!(t.check("k", start + Duration::from_secs(1)).is_ok());
        assert!(t.check("other", start).is_ok());
        t.failure("k", start);
        assert_eq!(t.check("k", start), Err(Duration::from_secs(2)));
        for _ in 0..20 {
            t.failure("k", start);
        }
        assert_eq!(t.check("k", start), Err(Duration::from_secs(60)));
        assert!(t.check("k", start + Duration::from_secs(900)).is_ok());
        t.reset("k");
        assert!(t.check("k", start).is_ok());
    }
}
