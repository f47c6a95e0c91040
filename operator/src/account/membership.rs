//! What an account keeps about each of its memberships, in the operator namespace where tenants
//! cannot write: the API key (its hash, which is what authenticates, and the key sealed for its
//! owner's view and for the controller's delivery Secret) and Kill Session's revocation time for
//! that organisation. Stored as JSON under the account Secret's `memberships` key, by membership
//! (`namespace/name` of the User).

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use usher_crds::User;

use crate::crypto::constant_time_eq;

/// The key of a membership in [`super::Account::memberships`]: `namespace/name` of its User.
pub fn membership_key(user: &User) -> String {
    format!(
        "{}/{}",
        user.metadata.namespace.as_deref().unwrap_or_default(),
        user.metadata.name.as_deref().unwrap_or_default()
    )
}

/// One membership's credentials and revocation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipRecord {
    /// The User's UID: a User deleted and made again under the same name is another membership,
    /// which inherits nothing from this record.
    pub uid: String,
    /// Kill Session in this organisation: sessions acting in it (or switching into it) that
    /// started before this are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_revoked_at: Option<Timestamp>,
    /// The membership's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<KeyRecord>,
}

/// An API key as the account keeps it. Its `Debug` shows no secret: the hash cannot be inverted
/// and the sealed key opens only with the seal key in `usher-keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// Hex SHA-256 of the current key: the only thing a Bearer key is checked against.
    pub hash: String,
    /// The current key, sealed (AES-256-GCM) for this account and membership.
    pub sealed: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// The Secret (in the membership's namespace) the key is delivered in.
    pub secret_name: String,
    /// The previous key's hash, valid until `previous_until` (a renewal's grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_hash: Option<String>,
    /// See `previous_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<Timestamp>,
}

impl KeyRecord {
    /// True when `hash` is the current key's, or the previous key's within its grace period;
    /// compared in constant time.
    pub fn accepts(&self, hash: &str, now: Timestamp) -> bool {
        constant_time_eq(self.hash.as_bytes(), hash.as_bytes())
            || (self.previous_until.is_some_and(|until| now < until)
                && self
                    .previous_hash
                    .as_deref()
                    .is_some_and(|p| constant_time_eq(p.as_bytes(), hash.as_bytes())))
    }

    /// The hashes that may authenticate (the previous one only until its deadline, which the
    /// caller checks with [`KeyRecord::accepts`]).
    pub fn hashes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.hash.as_str()).chain(self.previous_hash.as_deref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record() -> KeyRecord {
        KeyRecord {
            hash: "aa".repeat(32),
            sealed: "sealed".into(),
            issued_at: "2026-11-27T12:00:00Z".parse().unwrap(),
            secret_name: "alice-api-key".into(),
            previous_hash: Some("bb".repeat(32)),
            previous_until: Some("2026-11-27T13:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn the_current_key_is_accepted_and_the_previous_one_only_until_its_deadline() {
        let r = record();
        let before: Timestamp = "2026-11-27T12:30:00Z".parse().unwrap();
        let after: Timestamp = "2026-11-27T13:00:00Z".parse().unwrap();
        assert!(r.accepts(&"aa".repeat(32), after));
        assert!(r.accepts(&"bb".repeat(32), before));
        assert!(!r.accepts(&"bb".repeat(32), after));
        assert!(!r.accepts(&"cc".repeat(32), before));
    }

    #[test]
    fn records_read_back_from_json_with_their_times() {
        let m = MembershipRecord {
            uid: "uid-1".into(),
            sessions_revoked_at: Some("2026-11-27T12:00:00.123Z".parse().unwrap()),
            api_key: Some(record()),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.contains("\"sessionsRevokedAt\":\"2026-11-27T12:00:00.123Z\""),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<MembershipRecord>(&json).unwrap(), m);
    }
}
