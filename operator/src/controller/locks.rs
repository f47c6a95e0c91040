//! Per-account locks: the reconciles of an account's memberships take turns. A reconcile takes
//! every lock it needs at once, in one global order (sorted account ids, from
//! `user::plan::accounts_to_lock`), so two Users swapping logins never each hold the lock the
//! other waits for. Locks nobody holds or awaits are pruned, so the map stays as small as the
//! work in flight.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The registry of account locks.
#[derive(Default)]
pub struct AccountLocks {
    map: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// The locks one reconcile holds; released when dropped.
pub struct Held(#[allow(dead_code)] Vec<OwnedMutexGuard<()>>);

impl AccountLocks {
    /// Waits for the lock of each of `ids` (sorted, no repeats) in that order; all of them are
    /// held when it returns.
    pub async fn lock(&self, ids: &[String]) -> Held {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]), "one global order");
        let locks: Vec<_> = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            // The map's own reference is the only one left: nobody holds or waits for it.
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
            ids.iter()
                .map(|id| map.entry(id.clone()).or_default().clone())
                .collect()
        };
        let mut held = Vec::with_capacity(locks.len());
        for lock in locks {
            held.push(lock.lock_owned().await);
        }
        Held(held)
    }

    /// How many locks the map keeps (held or awaited, and those not pruned yet).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn two_reconciles_needing_the_same_accounts_both_finish() {
        let locks = Arc::new(AccountLocks::default());
        // Many rounds of two tasks that each need {a, b} (a swap of logins), each holding its
        // locks across an await as a reconcile does.
        for _ in 0..200 {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let locks = locks.clone();
                    tokio::spawn(async move {
                        let _held = locks.lock(&ids(&["a", "b"])).await;
                        tokio::task::yield_now().await;
                    })
                })
                .collect();
            for task in tasks {
                tokio::time::timeout(Duration::from_secs(5), task)
                    .await
                    .expect("a reconcile waited forever")
                    .unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_held_lock_excludes_and_released_locks_are_pruned() {
        let locks = AccountLocks::default();
        let held = locks.lock(&ids(&["a", "b"])).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), locks.lock(&ids(&["b"])))
                .await
                .is_err(),
            "b is held"
        );
        let _c = locks.lock(&ids(&["c"])).await;
        drop(held);
        for i in 0..100 {
            drop(locks.lock(&[format!("x{i}")]).await);
        }
        // Only what is still held (c) and the last one taken remain.
        assert!(locks.len() <= 2, "{} locks kept", locks.len());
    }
}
