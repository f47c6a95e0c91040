//! Login throttling, in memory per replica. An attempt is reserved before any password is
//! hashed ([`Throttle::reserve`]) and counts as a failure until it is settled as a success, so
//! parallel guesses count as guesses. After `free` failures for one key (a login, a client
//! address, a device) each further attempt waits twice as long as the last (1 s, 2 s, 4 s, … up
//! to `max_delay`); after `lock_after` failures the key is locked for `lock_for`. At most
//! `in_flight` attempts of one key are under way at once. Refusals are 429 with Retry-After,
//! before any work. Failures are forgotten after `forget_after` without one, or on success.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::crypto::sha256;

/// Most keys remembered; beyond it, forgotten entries are swept, then any other idle one goes.
const MAX_ENTRIES: usize = 100_000;
/// The map is split so that no request waits on, or sweeps, more than a sixteenth of it.
const SHARDS: usize = 16;

/// A key as kept: 16 bytes of its SHA-256, whatever its length (keys are logins and addresses
/// an attacker chooses: kept as given, 100,000 of them took tens of MiB per map).
type Key = [u8; 16];

fn key_of(key: &str) -> Key {
    let digest = sha256(key.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    in_flight: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// How a [`Throttle`] treats one key.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Failures let through without delay.
    pub free: u32,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Failures after which the key is locked (`None`: never).
    pub lock_after: Option<u32>,
    /// How long a lock lasts.
    pub lock_for: Duration,
    /// Attempts of one key under way at once.
    pub in_flight: u32,
    /// A key without a failure for this long starts afresh.
    pub forget_after: Duration,
}

/// Failure counts per key; cheap to clone (shared).
#[derive(Clone)]
pub struct Throttle {
    shards: Arc<[Mutex<HashMap<Key, Entry>>; SHARDS]>,
    policy: Policy,
}

/// An attempt reserved for a key. It counts as a failure unless [`Attempt::succeeded`] is
/// called, also when it is dropped unsettled (a request that gave up half-way).
pub struct Attempt {
    throttle: Throttle,
    key: Key,
    /// When it was reserved: the time its failure counts from.
    at: Instant,
    settled: bool,
}

impl Attempt {
    /// The attempt succeeded: the key's failures are forgotten.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle.settle(self.key, Some(true), self.at);
    }

    /// The attempt failed; returns the failures counted so far (the soft lock follows them).
    pub fn failed(mut self) -> u32 {
        self.settled = true;
        self.throttle.settle(self.key, Some(false), self.at)
    }

    /// The attempt was not made after all (the server was busy, or it gave no verdict): it
    /// counts neither way.
    pub fn cancel(mut self) {
        self.settled = true;
        self.throttle.settle(self.key, None, self.at);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.settle(self.key, Some(false), self.at);
        }
    }
}

impl Throttle {
    /// A throttle applying `policy` to every key.
    pub fn new(policy: Policy) -> Throttle {
        Throttle {
            shards: Arc::new(std::array::from_fn(|_| Mutex::default())),
            policy,
        }
    }

    fn delay(&self, failures: u32) -> Duration {
        if failures < self.policy.free {
            return Duration::ZERO;
        }
        let exp = (failures - self.policy.free).min(20);
        Duration::from_secs(1u64 << exp).min(self.policy.max_delay)
    }

    fn lock(&self, key: &Key) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.shards[usize::from(key[0]) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves an attempt for `key` at `now`, or `Err(retry_after)` while it must wait.
    pub fn reserve(&self, key: &str, now: Instant) -> Result<Attempt, Duration> {
        let key = key_of(key);
        let mut entries = self.lock(&key);
        if entries.len() >= MAX_ENTRIES / SHARDS && !entries.contains_key(&key) {
            let forget = self.policy.forget_after;
            entries
                .retain(|_, e| e.in_flight > 0 || now.saturating_duration_since(e.last) < forget);
            // Still full: any idle entry goes (the map's order is random), at the cost of one
            // step, not a search of the shard.
            if entries.len() >= MAX_ENTRIES / SHARDS
                && let Some(idle) = entries
                    .iter()
                    .find(|(_, e)| e.in_flight == 0)
                    .map(|(k, _)| *k)
            {
                entries.remove(&idle);
            }
        }
        let e = entries.entry(key).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            last: now,
            locked_until: None,
        });
        if let Some(until) = e.locked_until {
            if now < until {
                return Err((until - now).max(Duration::from_secs(1)));
            }
            e.locked_until = None;
            e.failures = 0;
        }
        let since = now.saturating_duration_since(e.last);
        if e.in_flight == 0 && since >= self.policy.forget_after {
            e.failures = 0;
        }
        if e.in_flight >= self.policy.in_flight {
            return Err(Duration::from_secs(1));
        }
        // Attempts under way count as failures until they are settled.
        let wait = self.delay(e.failures + e.in_flight);
        if since < wait {
            return Err((wait - since).max(Duration::from_secs(1)));
        }
        e.in_flight += 1;
        e.last = now;
        Ok(Attempt {
            throttle: self.clone(),
            key,
            at: now,
            settled: false,
        })
    }

    /// Settles an attempt of `key` (`Some(success)`, or `None`: not counted); returns the
    /// failures counted (0 after a success).
    fn settle(&self, key: Key, outcome: Option<bool>, now: Instant) -> u32 {
        let mut entries = self.lock(&key);
        let Some(e) = entries.get_mut(&key) else {
            return 0;
        };
        e.in_flight = e.in_flight.saturating_sub(1);
        match outcome {
            Some(true) => {
                entries.remove(&key);
                return 0;
            }
            None => return e.failures,
            Some(false) => {}
        }
        e.failures = e.failures.saturating_add(1);
        e.last = e.last.max(now);
        if self.policy.lock_after.is_some_and(|n| e.failures >= n) {
            e.locked_until = Some(now + self.policy.lock_for);
        }
        e.failures
    }

    /// How long `key` stays locked, if it is.
    pub fn locked_for(&self, key: &str, now: Instant) -> Option<Duration> {
        let key = key_of(key);
        let until = self.lock(&key).get(&key)?.locked_until?;
        (now < until).then(|| until - now)
    }

    /// Locks `key` for `lock_for` from `now` (a soft lock kept here, for a login without an
    /// account to keep it in).
    pub fn lock_key(&self, key: &str, now: Instant) {
        let key = key_of(key);
        let mut entries = self.lock(&key);
        let e = entries.entry(key).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            last: now,
            locked_until: None,
        });
        e.locked_until = Some(now + self.policy.lock_for);
    }

    /// Forgets `key`.
    pub fn reset(&self, key: &str) {
        let key = key_of(key);
        self.lock(&key).remove(&key);
    }

    /// Keys remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn policy() -> Policy {
        Policy {
            free: 3,
            max_delay: Duration::from_secs(60),
            lock_after: None,
            lock_for: Duration::from_secs(900),
            in_flight: 100,
            forget_after: Duration::from_secs(900),
        }
    }

    #[test]
    fn waits_double_after_the_free_failures_and_are_forgotten_later() {
        let t = Throttle::new(policy());
        let start = Instant::now();
        for _ in 0..3 {
            t.reserve("k", start).unwrap().failed();
        }
        assert_eq!(t.reserve("k", start).err(), Some(Duration::from_secs(1)));
        assert!(t.reserve("other", start).is_ok());
        t.reserve("k", start + Duration::from_secs(1))
            .unwrap()
            .failed();
        let later = start + Duration::from_secs(1);
        assert_eq!(t.reserve("k", later).err(), Some(Duration::from_secs(2)));
        for i in 0..20 {
            let at = later + Duration::from_secs(100 * (i + 1));
            t.reserve("k", at).unwrap().failed();
        }
        let at = later + Duration::from_secs(2000);
        assert_eq!(t.reserve("k", at).err(), Some(Duration::from_secs(60)));
        assert!(t.reserve("k", at + Duration::from_secs(900)).is_ok());
        t.reset("k");
        let ok = t.reserve("k", at).unwrap();
        ok.succeeded();
        assert!(t.reserve("k", at).is_ok());
    }

    #[test]
    fn parallel_attempts_count_before_they_are_settled() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        // A burst of 50 at once: only the free three get through, the rest wait.
        let granted: Vec<Attempt> = (0..50).filter_map(|_| t.reserve("k", now).ok()).collect();
        assert_eq!(granted.len(), 3);
        // Dropping them unsettled counts them as failures.
        drop(granted);
        assert!(t.reserve("k", now).is_err());
    }

    #[test]
    fn a_success_clears_the_key_and_in_flight_attempts_are_capped() {
        let t = Throttle::new(Policy {
            in_flight: 2,
            ..policy()
        });
        let now = Instant::now();
        let a = t.reserve("k", now).unwrap();
        let b = t.reserve("k", now).unwrap();
        assert_eq!(t.reserve("k", now).err(), Some(Duration::from_secs(1)));
        a.succeeded();
        b.failed();
        assert!(t.reserve("k", now).is_ok());
        // A cancelled attempt does not count.
        let t = Throttle::new(Policy {
            free: 1,
            ..policy()
        });
        t.reserve("k", now).unwrap().cancel();
        t.reserve("k", now).unwrap().failed();
        assert!(t.reserve("k", now).is_err());
    }

    #[test]
    fn enough_failures_lock_the_key_for_the_lock_duration() {
        let t = Throttle::new(Policy {
            free: 100,
            lock_after: Some(3),
            ..policy()
        });
        let now = Instant::now();
        for _ in 0..3 {
            t.reserve("k", now).unwrap().failed();
        }
        let wait = t.reserve("k", now).err().unwrap();
        assert_eq!(wait, Duration::from_secs(900));
        assert_eq!(t.locked_for("k", now), Some(Duration::from_secs(900)));
        assert!(t.reserve("k", now + Duration::from_secs(900)).is_ok());
    }

    #[test]
    fn attacker_chosen_keys_are_bounded_and_never_evict_an_attempt_under_way() {
        let t = Throttle::new(Policy {
            forget_after: Duration::from_secs(3600),
            ..policy()
        });
        let now = Instant::now();
        let held = t.reserve("the-person", now).unwrap();
        for i in 0..(MAX_ENTRIES + 5_000) {
            // Long keys, as an attacker picks them: kept as 16 bytes each.
            let key = format!("{i:0>300}@example.com");
            t.reserve(&key, now).unwrap().failed();
        }
        assert!(t.len() <= MAX_ENTRIES, "{} keys", t.len());
        // The attempt under way was kept: settling it still counts.
        assert_eq!(held.failed(), 1);
    }
}
