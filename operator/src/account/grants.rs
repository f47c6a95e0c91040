//! What an account keeps of the OpenID Connect grants its sessions gave apps (pure): one per
//! authorization, with its code until redeemed, then the hash of its refresh token (and of
//! those it replaced, so a reused one is recognised and revokes the grant). A grant knows the
//! session and membership it came from: its tokens end with them. At most [`MAX_GRANTS`].

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::crypto::{constant_time_eq, hex, sha256};

/// Most grants kept per account; the oldest goes (its tokens with it).
pub const MAX_GRANTS: usize = 40;
/// Spent refresh-token hashes kept per grant, to recognise reuse.
const MAX_SPENT: usize = 8;

/// A code until it is redeemed (single use, ≤ 60 s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCode {
    /// Hex SHA-256 of the code.
    pub hash: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The redirect URI it was issued for (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE S256 challenge, if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

/// One authorization of one app by one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// Random id (in the tokens).
    pub id: String,
    /// The client it was given to.
    pub client_id: String,
    /// The session it came from, and when that began (Unix ms).
    pub session: String,
    /// See `session`.
    pub session_iat: i64,
    /// The membership it acts through: organisation, and the User's UID.
    pub organisation: String,
    /// See `organisation`.
    pub user_uid: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The authorization request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the person last authenticated (Unix s).
    pub auth_time: i64,
    /// How (RFC 8176).
    pub amr: Vec<String>,
    /// When it ends at the latest (its session's end).
    pub expires_at: Timestamp,
    /// The code, until redeemed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<PendingCode>,
    /// The current refresh token's hash, once the code was redeemed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_hash: Option<String>,
    /// Hashes of refresh tokens already used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spent: Vec<String>,
    /// The issuer its tokens named (a logout token names the same).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// When tokens were last issued from it (the code redeemed, a refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<Timestamp>,
    /// When it was ended on its own, its session going on: the person revoked the app, its
    /// code was replayed, or the app's required permission was lost. Its tokens stop; its app
    /// is told (back-channel logout) like for a session that ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}

impl Grant {
    /// True once tokens were issued from it (its app may hold a session to end).
    pub fn issued_tokens(&self) -> bool {
        self.refresh_hash.is_some()
    }
}

/// Hex SHA-256 of a code or refresh token.
pub fn token_hash(token: &str) -> String {
    hex(&sha256(token.as_bytes()))
}

/// Adds `grant`, dropping those expired by `now` and, past [`MAX_GRANTS`], the oldest. (A grant
/// that ended is kept until the controller has told its app: see `oidc::logout`.)
pub fn add(grants: &mut Vec<Grant>, grant: Grant, now: Timestamp) {
    grants.retain(|g| {
        g.expires_at > now
            && g.code
                .as_ref()
                .is_none_or(|c| c.expires_at > now || g.refresh_hash.is_some())
    });
    grants.push(grant);
    let over = grants.len().saturating_sub(MAX_GRANTS);
    grants.drain(..over);
}

/// Why a code or refresh token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Unknown, expired, or issued to another client or redirect URI, or the PKCE verifier
    /// does not match.
    Invalid,
    /// Used before: the grant ended, with every token it issued.
    Replayed,
}

/// A code as the token request presents it.
pub struct Presented<'a> {
    /// The grant it names.
    pub grant: &'a str,
    /// Its hash.
    pub hash: &'a str,
    /// The authenticated client.
    pub client_id: &'a str,
    /// The `redirect_uri` parameter.
    pub redirect_uri: &'a str,
    /// The PKCE `code_verifier`.
    pub verifier: Option<&'a str>,
}

/// Redeems a presented code, recording `refresh_hash` as its grant's refresh token. A code
/// used before revokes the grant (a replay: the first or the second holder is a thief).
pub fn redeem(
    grants: &mut [Grant],
    presented: &Presented<'_>,
    refresh_hash: String,
    now: Timestamp,
) -> Result<Grant, Refused> {
    let i = grants
        .iter()
        .position(|g| g.id == presented.grant)
        .ok_or(Refused::Invalid)?;
    let g = &mut grants[i];
    if g.client_id != presented.client_id || g.ended_at.is_some() {
        return Err(Refused::Invalid);
    }
    let Some(code) = g.code.clone() else {
        // Redeemed already: whoever holds it now, the grant ends.
        g.ended_at = Some(now);
        return Err(Refused::Replayed);
    };
    if !constant_time_eq(code.hash.as_bytes(), presented.hash.as_bytes())
        || code.expires_at <= now
        || code.redirect_uri != presented.redirect_uri
        || !pkce_ok(code.challenge.as_deref(), presented.verifier)
    {
        return Err(Refused::Invalid);
    }
    g.code = None;
    g.refresh_hash = Some(refresh_hash);
    g.refreshed_at = Some(now);
    Ok(g.clone())
}

/// True when `verifier` answers `challenge` (S256), or neither was sent.
pub fn pkce_ok(challenge: Option<&str>, verifier: Option<&str>) -> bool {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    match (challenge, verifier) {
        (None, None) => true,
        (Some(c), Some(v)) => {
            valid_verifier(v)
                && constant_time_eq(
                    URL_SAFE_NO_PAD.encode(sha256(v.as_bytes())).as_bytes(),
                    c.as_bytes(),
                )
        }
        _ => false,
    }
}

/// RFC 7636: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Rotates the refresh token of grant `id` for `client_id`: the token hashed `hash` is spent
/// and `next_hash` takes its place. A spent token presented again ends the grant (the caller
/// ends its session too).
pub fn refresh(
    grants: &mut [Grant],
    id: &str,
    hash: &str,
    client_id: &str,
    next_hash: String,
    now: Timestamp,
) -> Result<Grant, Refused> {
    let i = grants
        .iter()
        .position(|g| g.id == id)
        .ok_or(Refused::Invalid)?;
    let g = &mut grants[i];
    if g.client_id != client_id || g.expires_at <= now || g.ended_at.is_some() {
        return Err(Refused::Invalid);
    }
    let current = g
        .refresh_hash
        .as_deref()
        .is_some_and(|h| constant_time_eq(h.as_bytes(), hash.as_bytes()));
    if !current {
        if g.spent
            .iter()
            .any(|s| constant_time_eq(s.as_bytes(), hash.as_bytes()))
        {
            g.ended_at = Some(now);
            return Err(Refused::Replayed);
        }
        return Err(Refused::Invalid);
    }
    let old = g.refresh_hash.replace(next_hash);
    g.refreshed_at = Some(now);
    g.spent.extend(old);
    let over = g.spent.len().saturating_sub(MAX_SPENT);
    g.spent.drain(..over);
    Ok(g.clone())
}

/// Removes grant `id` (its own client revoked it: nobody is left to tell); true when there was
/// one.
pub fn revoke(grants: &mut Vec<Grant>, id: &str) -> bool {
    let before = grants.len();
    grants.retain(|g| g.id != id);
    before != grants.len()
}

/// Ends the live grants `which` picks, at `now` (their apps are told); how many it ended.
pub fn end(grants: &mut [Grant], now: Timestamp, which: impl Fn(&Grant) -> bool) -> usize {
    let mut n = 0;
    for g in grants
        .iter_mut()
        .filter(|g| g.ended_at.is_none() && which(g))
    {
        g.ended_at = Some(now);
        n += 1;
    }
    n
}

#[cfg(test)]
pub mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    /// A grant of `acme.app` with a pending code (`code`, challenge of the RFC 7636 example),
    /// for the tests here and the account's.
    pub fn grant(id: &str) -> Grant {
        Grant {
            id: id.into(),
            client_id: "acme.app".into(),
            session: "sid".into(),
            session_iat: 0,
            organisation: "acme".into(),
            user_uid: "u".into(),
            scope: "openid".into(),
            nonce: None,
            auth_time: 0,
            amr: vec!["pwd".into()],
            expires_at: at(86_400),
            code: Some(PendingCode {
                hash: token_hash("code"),
                expires_at: at(60),
                redirect_uri: "https://app/cb".into(),
                challenge: Some(CHALLENGE.into()),
            }),
            refresh_hash: None,
            spent: vec![],
            issuer: String::new(),
            refreshed_at: None,
            ended_at: None,
        }
    }

    #[test]
    fn the_rfc_7636_example_verifies_and_nothing_else_does() {
        assert!(pkce_ok(Some(CHALLENGE), Some(VERIFIER)));
        assert!(!pkce_ok(Some(CHALLENGE), Some(&VERIFIER.replace('d', "e"))));
        assert!(!pkce_ok(Some(CHALLENGE), None));
        assert!(!pkce_ok(None, Some(VERIFIER)));
        // `plain`: the challenge itself as verifier.
        assert!(!pkce_ok(Some(CHALLENGE), Some(CHALLENGE)));
        assert!(!valid_verifier("short"));
    }

    #[test]
    fn a_code_works_once_for_its_client_uri_and_verifier_and_a_replay_revokes_the_grant() {
        let mut gs = vec![];
        add(&mut gs, grant("g1"), at(0));
        let h = token_hash("code");
        let r = |gs: &mut Vec<Grant>, client: &str, uri: &str, v: Option<&str>, now| {
            let p = Presented {
                grant: "g1",
                hash: &h,
                client_id: client,
                redirect_uri: uri,
                verifier: v,
            };
            redeem(gs, &p, token_hash("rt1"), now)
        };
        assert_eq!(
            r(&mut gs, "other", "https://app/cb", Some(VERIFIER), at(1)),
            Err(Refused::Invalid)
        );
        assert_eq!(
            r(
                &mut gs,
                "acme.app",
                "https://app/cb2",
                Some(VERIFIER),
                at(1)
            ),
            Err(Refused::Invalid)
        );
        assert_eq!(
            r(&mut gs, "acme.app", "https://app/cb", None, at(1)),
            Err(Refused::Invalid)
        );
        assert_eq!(
            r(
                &mut gs,
                "acme.app",
                "https://app/cb",
                Some(VERIFIER),
                at(60)
            ),
            Err(Refused::Invalid),
            "expired"
        );
        assert!(r(&mut gs, "acme.app", "https://app/cb", Some(VERIFIER), at(1)).is_ok());
        assert_eq!(
            r(&mut gs, "acme.app", "https://app/cb", Some(VERIFIER), at(2)),
            Err(Refused::Replayed)
        );
        assert_eq!(gs[0].ended_at, Some(at(2)), "the replay ended the grant");
        assert_eq!(
            r(&mut gs, "acme.app", "https://app/cb", Some(VERIFIER), at(3)),
            Err(Refused::Invalid)
        );
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reused_one_revokes_the_grant() {
        let mut gs = vec![];
        add(&mut gs, grant("g1"), at(0));
        let h = token_hash("code");
        let p = Presented {
            grant: "g1",
            hash: &h,
            client_id: "acme.app",
            redirect_uri: "https://app/cb",
            verifier: Some(VERIFIER),
        };
        redeem(&mut gs, &p, token_hash("rt1"), at(1)).unwrap();
        refresh(
            &mut gs,
            "g1",
            &token_hash("rt1"),
            "acme.app",
            token_hash("rt2"),
            at(2),
        )
        .unwrap();
        assert_eq!(
            refresh(
                &mut gs,
                "g1",
                &token_hash("rt2"),
                "other",
                token_hash("x"),
                at(3)
            ),
            Err(Refused::Invalid)
        );
        assert_eq!(
            refresh(
                &mut gs,
                "g1",
                &token_hash("nope"),
                "acme.app",
                token_hash("x"),
                at(3)
            ),
            Err(Refused::Invalid)
        );
        assert_eq!(
            refresh(
                &mut gs,
                "g1",
                &token_hash("rt1"),
                "acme.app",
                token_hash("x"),
                at(3)
            ),
            Err(Refused::Replayed)
        );
        assert_eq!(gs[0].ended_at, Some(at(3)), "the reuse ended the grant");
        assert_eq!(
            refresh(
                &mut gs,
                "g1",
                &token_hash("x"),
                "acme.app",
                token_hash("y"),
                at(4)
            ),
            Err(Refused::Invalid),
            "nothing refreshes an ended grant"
        );
    }

    #[test]
    fn grants_are_bounded_and_expired_ones_dropped() {
        let mut gs = vec![];
        for i in 0..MAX_GRANTS + 5 {
            let mut g = grant(&format!("g{i}"));
            g.refresh_hash = Some("h".into());
            add(&mut gs, g, at(0));
        }
        assert_eq!(gs.len(), MAX_GRANTS);
        assert_eq!(gs[0].id, "g5");
        add(&mut gs, grant("late"), at(86_400));
        assert_eq!(gs.len(), 1);
    }
}
