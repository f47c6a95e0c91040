//! A password reset in progress, kept in the account: requested (by the person, an admin, the
//! platform operator), then issued and mailed by the controller (the one mailer), then used once
//! on `/reset`. Like an invitation: the token is stored only hashed, a newer link replaces the
//! older, and a link issued but never recorded as sent is issued again.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Reset links emailed to one account in an hour at most, whoever asks (the person, an admin,
/// the platform operator): a flood of mail is no weapon.
pub const MAX_PER_HOUR: usize = 3;

/// The reset of an account's password.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordReset {
    /// The last time a reset link was asked for.
    pub requested_at: Option<Timestamp>,
    /// Hex SHA-256 of the link's token, once issued.
    pub token_hash: Option<String>,
    /// When the link stops working.
    pub expires_at: Option<Timestamp>,
    /// When the email was accepted by the mail server.
    pub sent_at: Option<Timestamp>,
    /// When the last links went out (at most [`MAX_PER_HOUR`], oldest first).
    pub sent_recent: Vec<Timestamp>,
}

impl PasswordReset {
    /// True when a link was asked for after the last one was sent (or none was): the
    /// controller issues and mails a new one.
    pub fn wanted(&self) -> bool {
        match (self.requested_at, self.sent_at) {
            (Some(asked), Some(sent)) => asked > sent,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Another link may go out at `now`, or `Some(when)` it may: [`MAX_PER_HOUR`] went in the
    /// hour before.
    pub fn next_send(&self, now: Timestamp) -> Option<Timestamp> {
        let hour = SignedDuration::from_hours(1);
        let in_the_hour: Vec<Timestamp> = self
            .sent_recent
            .iter()
            .copied()
            .filter(|t| now.duration_since(*t) < hour)
            .collect();
        if in_the_hour.len() < MAX_PER_HOUR {
            return None;
        }
        in_the_hour
            .iter()
            .min()
            .and_then(|oldest| oldest.checked_add(hour).ok())
    }

    /// Records that the link issued at `issued_at`, answering the request of `answered` (the
    /// one it was issued for, as recorded then), went out. It counts as sent then, or at that
    /// request if its clock ran ahead: a request recorded since (while the mail was on its way)
    /// stays wanted and gets a link of its own.
    pub fn record_answered(&mut self, issued_at: Timestamp, answered: Option<Timestamp>) {
        self.record_sent(answered.map_or(issued_at, |a| a.max(issued_at)));
    }

    /// Records that a link went out at `at`.
    pub fn record_sent(&mut self, at: Timestamp) {
        self.sent_at = Some(at);
        self.sent_recent.push(at);
        let extra = self.sent_recent.len().saturating_sub(MAX_PER_HOUR);
        self.sent_recent.drain(..extra);
    }

    /// The token hash of a link that still works at `now`.
    pub fn valid_hash(&self, now: Timestamp) -> Option<&str> {
        let expires = self.expires_at?;
        self.sent_at?;
        (now < expires).then_some(self.token_hash.as_deref()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn at_most_three_links_an_hour_whoever_asks() {
        let at = |m: i64| Timestamp::from_second(1_800_000_000 + m * 60).unwrap();
        let mut r = PasswordReset::default();
        for m in [0, 10, 20] {
            assert_eq!(r.next_send(at(m)), None);
            r.record_sent(at(m));
        }
        // The fourth in the hour waits until the first is an hour old.
        assert_eq!(r.next_send(at(30)), Some(at(60)));
        assert_eq!(r.next_send(at(60)), None);
        r.record_sent(at(60));
        assert_eq!(r.sent_recent, vec![at(10), at(20), at(60)]);
    }

    #[test]
    fn a_request_after_the_last_mail_wants_a_new_link() {
        let mut r = PasswordReset::default();
        assert!(!r.wanted());
        r.requested_at = Some(at("2026-11-27T12:00:00Z"));
        assert!(r.wanted());
        r.token_hash = Some("h".into());
        r.expires_at = Some(at("2026-11-27T13:00:00Z"));
        assert_eq!(
            r.valid_hash(at("2026-11-27T12:30:00Z")),
            None,
            "not sent yet"
        );
        r.sent_at = Some(at("2026-11-27T12:00:01Z"));
        assert!(!r.wanted());
        assert_eq!(r.valid_hash(at("2026-11-27T12:30:00Z")), Some("h"));
        assert_eq!(r.valid_hash(at("2026-11-27T13:00:00Z")), None, "expired");
        r.requested_at = Some(at("2026-11-27T12:10:00Z"));
        assert!(r.wanted());
    }

    #[test]
    fn a_request_made_while_the_mail_was_on_its_way_still_gets_a_link() {
        let mut r = PasswordReset {
            requested_at: Some(at("2026-11-27T12:00:00.100Z")),
            ..Default::default()
        };
        // The controller issues the link for that request at .200 and mails it; the person
        // asks again at .300, before the controller records the mail as sent.
        let (issued_at, answered) = (at("2026-11-27T12:00:00.200Z"), r.requested_at);
        r.requested_at = Some(at("2026-11-27T12:00:00.300Z"));
        r.record_answered(issued_at, answered);
        assert!(r.wanted(), "the second request was swallowed");
        // A request whose pod's clock ran ahead of the controller's is answered, not asked
        // again and again.
        let mut ahead = PasswordReset {
            requested_at: Some(at("2026-11-27T12:00:05Z")),
            ..Default::default()
        };
        let answered = ahead.requested_at;
        ahead.record_answered(at("2026-11-27T12:00:00Z"), answered);
        assert!(!ahead.wanted());
    }
}
