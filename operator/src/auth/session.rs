//! Session tokens: the `usher_session` cookie's value, `base64url(claims JSON).base64url(HMAC)`,
//! signed with the shared session key so any replica can check it without shared memory. What
//! can end a session early lives in the account Secret (Kill Session's `sessionsRevokedAt`,
//! logout's ended session ids), which every replica watches.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::crypto::{RandomError, random_bytes};

/// Longest token accepted: a real one is about 250 bytes.
pub const MAX_TOKEN_LEN: usize = 2048;

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Random session id (128 bits, base64url): new on login and on organisation switch.
    pub sid: String,
    /// The account id.
    pub acct: String,
    /// The account Secret's UID when the session began: an account deleted and made again
    /// under the same login has another, and never honours this session.
    #[serde(default)]
    pub auid: String,
    /// The active organisation.
    pub org: String,
    /// The UID of the User the session acts through in `org`: a User deleted and made again
    /// under the same name has another, so Kill Session and removal stay in force for the
    /// sessions they ended.
    #[serde(default)]
    pub muid: String,
    /// When the session started (Unix milliseconds); the absolute lifetime counts from here and
    /// survives organisation switches.
    pub iat: i64,
    /// Last activity seen (Unix seconds); the idle timeout counts from here.
    pub seen: i64,
    /// The last time the person proved who they are (Unix milliseconds): the sign-in, or a
    /// re-authentication. Viewing keys and changing TOTP need it recent.
    #[serde(default)]
    pub auth: i64,
    /// True when that proof included a second factor (a TOTP code): the `amr` apps see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa: bool,
    /// `hwk` or `swk` (RFC 8176) when that proof was a passkey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<String>,
}

impl Claims {
    /// A new session of `account` (whose Secret has UID `account_uid`) acting through
    /// `membership`, started at `iat` and seen at `now_ms`.
    pub fn new(
        account: &str,
        account_uid: &str,
        membership: Acting<'_>,
        iat: i64,
        now_ms: i64,
    ) -> Result<Claims, RandomError> {
        Ok(Claims {
            sid: URL_SAFE_NO_PAD.encode(random_bytes::<16>()?),
            acct: account.to_owned(),
            auid: account_uid.to_owned(),
            org: membership.organisation.to_owned(),
            muid: membership.user_uid.to_owned(),
            iat,
            seen: now_ms.div_euclid(1000),
            auth: iat,
            mfa: false,
            passkey: None,
        })
    }

    /// The same session under a new id (a re-authentication, a password change): same account
    /// and membership, started at `iat`, seen at `now_ms`.
    pub fn anew(&self, iat: i64, now_ms: i64) -> Result<Claims, RandomError> {
        let mut c = Claims::new(&self.acct, &self.auid, self.acting(), iat, now_ms)?;
        c.mfa = self.mfa;
        Ok(c)
    }

    /// The membership the session acts through.
    pub fn acting(&self) -> Acting<'_> {
        Acting {
            organisation: &self.org,
            user_uid: &self.muid,
        }
    }
}

/// The membership a session acts through: the organisation, and the UID of the User that
/// makes the person a member of it.
#[derive(Clone, Copy, Debug)]
pub struct Acting<'a> {
    /// The organisation's name.
    pub organisation: &'a str,
    /// The User's UID.
    pub user_uid: &'a str,
}

/// Signs `claims` into a token.
pub fn seal(key: &ring::hmac::Key, claims: &Claims) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let tag = ring::hmac::sign(key, body.as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The claims of a token signed with `key`, or `None` for anything else: checked in constant
/// time before the claims are parsed, so only tokens this server made are ever decoded.
pub fn open(key: &ring::hmac::Key, token: &str) -> Option<Claims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (body, tag) = token.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    ring::hmac::verify(key, body.as_bytes(), &tag).ok()?;
    let json = URL_SAFE_NO_PAD.decode(body).ok()?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: Acting<'static> = Acting {
        organisation: "acme",
        user_uid: "uid-alice",
    };

    fn key(b: u8) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[b; 32])
    }

    #[test]
    fn a_token_opens_with_its_key_only_and_any_change_breaks_it() {
        let claims =
            Claims::new("acct", "uid", ACME, 1_764_000_000_000, 1_764_000_000_500).unwrap();
        assert_eq!(claims.seen, 1_764_000_000);
        let token = seal(&key(1), &claims);
        assert!(token.len() < 400, "{}", token.len());
        assert_eq!(open(&key(1), &token), Some(claims.clone()));
        assert_eq!(open(&key(2), &token), None);
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            if let Ok(t) = String::from_utf8(bytes) {
                assert_eq!(open(&key(1), &t), None, "changed byte {i}");
            }
        }
        // Two sessions never share an id.
        let other = Claims::new("acct", "uid", ACME, 1, 1).unwrap();
        assert_ne!(other.sid, claims.sid);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for t in [
            "",
            ".",
            "a.b",
            "..",
            "🙂.🙂",
            &"a".repeat(MAX_TOKEN_LEN + 1),
            "eyJ9.AAAA",
        ] {
            assert_eq!(open(&key(1), t), None, "{t:?}");
        }
    }
}
