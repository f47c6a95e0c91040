//! Retry delays of failed reconciles: per object, 5 s doubling to 5 min, reset by a success.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use kube::Resource;

/// Consecutive failures per object.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The retry delay after one more consecutive failure of `key`.
    pub fn failed(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

/// The retry delay after `n` (≥ 1) consecutive failures: 5 s doubling, at most 5 min.
pub fn delay(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(6);
    Duration::from_secs((5u64 << doublings).min(300))
}

/// The key of an object in the backoff table.
pub fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_from_five_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1u32..=9).map(|n| super::delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(super::delay(u32::MAX).as_secs(), 300);
        let b = super::Backoff::default();
        assert_eq!(b.failed("k".into()).as_secs(), 5);
        assert_eq!(b.failed("k".into()).as_secs(), 10);
        b.succeeded("k");
        assert_eq!(b.failed("k".into()).as_secs(), 5);
    }
}
