//! Access tokens whose signature this replica checked, by the SHA-256 of the token: a token is
//! verified once, then each request only checks what can end it (expiry, its session, grant and
//! membership, from the caches). Only a token that verified is kept; past [`MAX_VERIFIED`] the
//! map starts again empty (a flood of distinct valid tokens is bounded by the tokens issued).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::core::AccessClaims;
use crate::crypto::sha256;

/// Most tokens kept.
const MAX_VERIFIED: usize = 20_000;

/// The verified tokens.
#[derive(Default)]
pub struct Verified {
    map: RwLock<HashMap<[u8; 32], Arc<AccessClaims>>>,
}

impl Verified {
    /// The claims of `token`: kept ones, or those `verify` returns (then kept).
    pub fn claims(
        &self,
        token: &str,
        verify: impl FnOnce() -> Option<AccessClaims>,
    ) -> Option<Arc<AccessClaims>> {
        let key = sha256(token.as_bytes());
        if let Some(c) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Some(c.clone());
        }
        let claims = Arc::new(verify()?);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_VERIFIED {
            map.clear();
        }
        map.insert(key, claims.clone());
        Some(claims)
    }
}

/// A userinfo answer kept for one token while the caches it was computed from do not change.
struct Kept {
    generation: u64,
    expires: i64,
    body: axum::body::Bytes,
}

/// Userinfo answers by the SHA-256 of the access token (see `Directory::generation`).
#[derive(Default)]
pub struct UserinfoAnswers {
    map: RwLock<HashMap<[u8; 32], Arc<Kept>>>,
}

impl UserinfoAnswers {
    /// The answer for `token` computed at `generation`, while `now_s` is before its expiry.
    pub fn get(&self, token: &str, generation: u64, now_s: i64) -> Option<axum::body::Bytes> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&sha256(token.as_bytes()))
            .filter(|k| k.generation == generation && now_s < k.expires)
            .map(|k| k.body.clone())
    }

    /// Keeps `body` for `token`, computed at `generation`, until `expires` (Unix seconds).
    pub fn put(&self, token: &str, generation: u64, expires: i64, body: axum::body::Bytes) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_VERIFIED {
            map.clear();
        }
        map.insert(
            sha256(token.as_bytes()),
            Arc::new(Kept {
                generation,
                expires,
                body,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(sub: &str) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: "a".into(),
            client_id: "a".into(),
            exp: 0,
            iat: 0,
            jti: "j".into(),
            scope: "openid".into(),
            auth_time: 0,
            sid: "s".into(),
            gid: "g".into(),
            org: "o".into(),
            auid: "u".into(),
            muid: "m".into(),
            siat: 0,
        }
    }

    #[test]
    fn a_userinfo_answer_holds_for_its_generation_and_until_the_token_expires() {
        let a = UserinfoAnswers::default();
        a.put("t", 7, 100, axum::body::Bytes::from_static(b"{}"));
        assert!(a.get("t", 7, 99).is_some());
        assert!(a.get("t", 8, 99).is_none(), "something changed");
        assert!(a.get("t", 7, 100).is_none(), "expired");
        assert!(a.get("other", 7, 99).is_none());
    }

    #[test]
    fn a_token_is_verified_once_and_a_refused_one_is_never_kept() {
        let v = Verified::default();
        let mut calls = 0;
        for _ in 0..3 {
            let c = v.claims("t1", || {
                calls += 1;
                Some(claims("alice"))
            });
            assert_eq!(c.unwrap().sub, "alice");
        }
        assert_eq!(calls, 1);
        assert!(v.claims("forged", || None).is_none());
        let mut asked = false;
        assert!(
            v.claims("forged", || {
                asked = true;
                None
            })
            .is_none()
        );
        assert!(
            asked,
            "a refused token is checked again, never answered from memory"
        );
    }
}
