//! A password reset in progress, kept in the account: requested (by the person, an admin, the
//! platform operator), then issued and mailed by the controller (the one mailer), then used once
//! on `/reset`. Like an invitation: the token is stored only hashed, a newer link replaces the
//! older, and a link issued but never recorded as sent is issued again.

use k8s_openapi::jiff::Timestamp;

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
}
