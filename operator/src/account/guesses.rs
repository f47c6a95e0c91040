//! Guessing that never ends: the failed attempts of each factor counted in the account, across
//! replicas and restarts, not forgotten after a quarter of an hour like the throttles' soft
//! lock. Past [`LIMIT`] consecutive failures (NIST SP 800-63B §5.2.2) sign-in with that factor
//! stops until the person resets their password or the platform operator resets it
//! (`usher account unlock`; `reset-mfa` for the code); the controller emails the person once.
//! Pure: the auth server and the CLI write through the account store.

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Consecutive failures of one factor that lock it.
pub const LIMIT: u32 = 100;

/// What is guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    /// The password.
    Password,
    /// The TOTP code.
    Code,
}

/// The account's count of failed attempts per factor, since the last success.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Guesses {
    /// Failed passwords in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub password: u32,
    /// Failed codes in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u32,
    /// When a factor locked (the controller emails the person about it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_at: Option<Timestamp>,
    /// When that email was accepted by the mail server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_sent_at: Option<Timestamp>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Guesses {
    fn count(&mut self, factor: Factor) -> &mut u32 {
        match factor {
            Factor::Password => &mut self.password,
            Factor::Code => &mut self.code,
        }
    }

    /// True when sign-in with `factor` is stopped.
    pub fn locked(&self, factor: Factor) -> bool {
        match factor {
            Factor::Password => self.password >= LIMIT,
            Factor::Code => self.code >= LIMIT,
        }
    }

    /// Counts a failure at `now`; true when it is the one that locks the factor.
    pub fn failed(&mut self, factor: Factor, now: Timestamp) -> bool {
        let n = self.count(factor);
        *n = n.saturating_add(1);
        let locks = *n == LIMIT;
        if locks {
            self.locked_at = Some(now);
        }
        locks
    }

    /// A success with `factor` (below the limit) starts its count again; true when it changed.
    pub fn succeeded(&mut self, factor: Factor) -> bool {
        let n = self.count(factor);
        let changed = *n != 0;
        *n = 0;
        changed
    }

    /// Ends the locks and the counts (a password reset, `usher account unlock`); true when it
    /// changed.
    pub fn clear(&mut self) -> bool {
        let changed = *self != Guesses::default();
        *self = Guesses::default();
        changed
    }

    /// True when a lock happened and the person has not been emailed about it yet.
    pub fn notice_due(&self) -> bool {
        match (self.locked_at, self.notice_sent_at) {
            (Some(locked), Some(sent)) => locked > sent,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// True when nothing is counted or locked.
    pub fn is_empty(&self) -> bool {
        *self == Guesses::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_factor_locks_at_the_hundredth_failure_in_a_row_and_says_so_once() {
        let mut g = Guesses::default();
        let now = at("2026-12-03T10:00:00Z");
        for _ in 1..LIMIT {
            assert!(!g.failed(Factor::Code, now));
        }
        assert!(!g.locked(Factor::Code) && !g.notice_due());
        assert!(g.failed(Factor::Code, now));
        assert!(g.locked(Factor::Code) && !g.locked(Factor::Password));
        assert!(g.notice_due());
        g.notice_sent_at = Some(at("2026-12-03T10:01:00Z"));
        assert!(!g.notice_due());
        // Further failures lock nothing new.
        assert!(!g.failed(Factor::Code, now));
        assert!(g.clear() && !g.locked(Factor::Code) && g.is_empty());
    }

    #[test]
    fn a_success_starts_the_count_again() {
        let mut g = Guesses::default();
        let now = at("2026-12-03T10:00:00Z");
        for _ in 0..LIMIT - 1 {
            g.failed(Factor::Password, now);
        }
        assert!(g.succeeded(Factor::Password));
        assert!(!g.succeeded(Factor::Password));
        for _ in 0..LIMIT - 1 {
            g.failed(Factor::Password, now);
        }
        assert!(!g.locked(Factor::Password));
    }
}
