//! The sessions an account keeps a record of, so people and their admins can see them: one per
//! sign-in (and per organisation switch), at most [`MAX_SESSIONS`]; the oldest ends when another
//! starts. What can end a session is elsewhere in the account (`sessions_ended`, the revocation
//! times); a record only says that a session exists and where it came from.

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Most sessions recorded per account.
pub const MAX_SESSIONS: usize = 20;
/// Longest user agent kept.
const MAX_USER_AGENT: usize = 200;

/// One session, as people and admins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// The session id (in the signed cookie; it cannot make one).
    pub id: String,
    /// The organisation it acts in.
    pub organisation: String,
    /// When it started (the sign-in, kept across switches).
    pub started_at: Timestamp,
    /// When it expires at the latest (its maximum lifetime).
    pub expires_at: Timestamp,
    /// The browser or client that signed in.
    pub user_agent: String,
    /// The client's address.
    pub address: String,
}

impl SessionRecord {
    /// A record; the user agent is cut to 200 characters and stripped of control characters.
    pub fn new(
        id: &str,
        organisation: &str,
        started_at: Timestamp,
        expires_at: Timestamp,
        user_agent: &str,
        address: &str,
    ) -> SessionRecord {
        SessionRecord {
            id: id.to_owned(),
            organisation: organisation.to_owned(),
            started_at,
            expires_at,
            user_agent: user_agent
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT)
                .collect(),
            address: address.to_owned(),
        }
    }
}

/// Adds `record` to `sessions`, dropping those that expired by `now`; when that makes more than
/// [`MAX_SESSIONS`], the oldest go. Returns the records pushed out (their sessions must end).
pub fn add(
    sessions: &mut Vec<SessionRecord>,
    record: SessionRecord,
    now: Timestamp,
) -> Vec<SessionRecord> {
    sessions.retain(|s| s.expires_at > now && s.id != record.id);
    sessions.push(record);
    sessions.sort_by_key(|s| s.started_at);
    let over = sessions.len().saturating_sub(MAX_SESSIONS);
    sessions.drain(..over).collect()
}

/// Removes the record of session `id`; true when there was one.
pub fn remove(sessions: &mut Vec<SessionRecord>, id: &str) -> bool {
    let before = sessions.len();
    sessions.retain(|s| s.id != id);
    sessions.len() != before
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_764_000_000 + s).unwrap()
    }

    #[test]
    fn the_twenty_first_session_pushes_out_the_oldest_and_expired_ones_go() {
        let mut all = Vec::new();
        for i in 0..20 {
            let r = SessionRecord::new(&format!("s{i}"), "acme", at(i), at(i + 3600), "b", "a");
            assert!(add(&mut all, r, at(i)).is_empty());
        }
        let out = add(
            &mut all,
            SessionRecord::new("s20", "acme", at(20), at(3620), "b", "a"),
            at(20),
        );
        assert_eq!(
            out.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["s0"]
        );
        assert_eq!(all.len(), MAX_SESSIONS);
        // Later, the expired ones are dropped when another starts.
        add(
            &mut all,
            SessionRecord::new("late", "acme", at(3610), at(7210), "b", "a"),
            at(3610),
        );
        assert!(all.iter().all(|r| r.expires_at > at(3610)));
        assert!(remove(&mut all, "late"));
        assert!(!remove(&mut all, "late"));
    }

    #[test]
    fn user_agents_are_cut_and_cleaned() {
        let r = SessionRecord::new(
            "s",
            "o",
            at(0),
            at(1),
            &format!("a\nb{}", "x".repeat(500)),
            "1.2.3.4",
        );
        assert!(!r.user_agent.contains('\n'));
        assert_eq!(r.user_agent.chars().count(), 200);
    }
}
