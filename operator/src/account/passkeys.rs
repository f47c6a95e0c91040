//! The passkeys an account keeps (pure; DESIGN.md, "Passkeys"): at most [`MAX_PASSKEYS`], each
//! with its name, when it was added and last used, and the credential webauthn-rs verifies
//! against (public key, counter, backup flags); the random user handle the authenticators
//! store; and the challenges already answered, so each ceremony is accepted once.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Most passkeys per account.
pub const MAX_PASSKEYS: usize = 10;
/// Longest name kept.
pub const MAX_NAME: usize = 64;
/// Most answered challenges remembered (each only until its ceremony would have expired).
const MAX_SPENT: usize = 64;

/// One passkey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyRecord {
    /// The credential id, base64url (what the API's `{id}` is).
    pub id: String,
    /// What the person called it.
    pub name: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    /// The credential as webauthn-rs keeps it (`Passkey`, serialised).
    pub credential: serde_json::Value,
}

/// What an account keeps of passkeys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Passkeys {
    /// The user handle (a random UUID) every passkey of the account carries; made with the
    /// first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The passkeys, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<PasskeyRecord>,
    /// Hex SHA-256 of answered challenges → until when (Unix ms) they are remembered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spent: BTreeMap<String, i64>,
}

/// Why a passkey change or use was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The account holds [`MAX_PASSKEYS`] already.
    Full,
    /// This credential is registered already.
    Duplicate,
    /// The ceremony's challenge was answered before.
    ChallengeUsed,
    /// No passkey with that id.
    Unknown,
}

impl Passkeys {
    /// True when the account has a passkey.
    pub fn any(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The passkey with credential id `id`.
    pub fn get(&self, id: &str) -> Option<&PasskeyRecord> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Marks `challenge` (its hash) answered until `until_ms`, forgetting those past `now_ms`;
    /// refused when it was answered before.
    pub fn spend(&mut self, challenge: &str, until_ms: i64, now_ms: i64) -> Result<(), Refused> {
        self.spent.retain(|_, until| *until > now_ms);
        if self.spent.contains_key(challenge) {
            return Err(Refused::ChallengeUsed);
        }
        if self.spent.len() >= MAX_SPENT {
            // Full of ceremonies still open: the one closest to expiring goes first.
            if let Some(oldest) = self
                .spent
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(k, _)| k.clone())
            {
                self.spent.remove(&oldest);
            }
        }
        self.spent.insert(challenge.to_owned(), until_ms);
        Ok(())
    }

    /// Adds `record` (its name cut to [`MAX_NAME`] characters).
    pub fn add(&mut self, mut record: PasskeyRecord) -> Result<(), Refused> {
        if self.keys.iter().any(|k| k.id == record.id) {
            return Err(Refused::Duplicate);
        }
        if self.keys.len() >= MAX_PASSKEYS {
            return Err(Refused::Full);
        }
        record.name = clean_name(&record.name);
        self.keys.push(record);
        Ok(())
    }

    /// Removes passkey `id`.
    pub fn remove(&mut self, id: &str) -> Result<(), Refused> {
        let before = self.keys.len();
        self.keys.retain(|k| k.id != id);
        if self.keys.len() == before {
            return Err(Refused::Unknown);
        }
        Ok(())
    }

    /// Records a use of passkey `id` at `now`, with its credential as updated (the counter).
    pub fn used(
        &mut self,
        id: &str,
        credential: serde_json::Value,
        now: Timestamp,
    ) -> Result<(), Refused> {
        let k = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or(Refused::Unknown)?;
        k.credential = credential;
        k.last_used_at = Some(now);
        Ok(())
    }

    /// Forgets every passkey (the platform operator's MFA reset); the user handle stays.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.spent.clear();
    }
}

/// A passkey's name as kept: control characters out, trimmed, at most [`MAX_NAME`] characters,
/// "Passkey" when nothing is left.
pub fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect::<String>()
        .trim()
        .to_owned();
    if cleaned.is_empty() {
        "Passkey".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn record(id: &str) -> PasskeyRecord {
        PasskeyRecord {
            id: id.into(),
            name: " Laptop\n ".into(),
            created_at: at(0),
            last_used_at: None,
            credential: serde_json::json!({"cred": id}),
        }
    }

    #[test]
    fn at_most_ten_passkeys_each_once_with_clean_names() {
        let mut p = Passkeys::default();
        for i in 0..MAX_PASSKEYS {
            p.add(record(&format!("k{i}"))).unwrap();
        }
        assert_eq!(p.add(record("k0")), Err(Refused::Duplicate));
        assert_eq!(p.add(record("k10")), Err(Refused::Full));
        assert_eq!(p.keys[0].name, "Laptop");
        assert_eq!(clean_name("\u{7}"), "Passkey");
        assert_eq!(clean_name(&"x".repeat(100)).len(), MAX_NAME);
        p.remove("k3").unwrap();
        assert_eq!(p.remove("k3"), Err(Refused::Unknown));
        p.add(record("k10")).unwrap();
    }

    #[test]
    fn a_challenge_is_answered_once_and_forgotten_after_it_expired() {
        let mut p = Passkeys::default();
        p.spend("c1", 1_000, 0).unwrap();
        assert_eq!(p.spend("c1", 1_000, 500), Err(Refused::ChallengeUsed));
        // Past its ceremony's expiry it is forgotten (the ceremony itself is refused then).
        p.spend("c2", 3_000, 1_500).unwrap();
        assert!(!p.spent.contains_key("c1"));
        for i in 0..100 {
            p.spend(&format!("x{i}"), 10_000 + i, 2_000).unwrap();
        }
        assert!(p.spent.len() <= MAX_SPENT);
    }

    #[test]
    fn a_use_updates_the_credential_and_the_time() {
        let mut p = Passkeys::default();
        p.add(record("k")).unwrap();
        p.used("k", serde_json::json!({"counter": 2}), at(5))
            .unwrap();
        assert_eq!(p.keys[0].last_used_at, Some(at(5)));
        assert_eq!(p.keys[0].credential["counter"], 2);
        assert_eq!(
            p.used("nope", serde_json::Value::Null, at(6)),
            Err(Refused::Unknown)
        );
    }
}
