//! Passkeys (WebAuthn level 2, with webauthn-rs; DESIGN.md, "Passkeys"): the relying party and
//! the ceremonies' state. RP ID: the cookie domain when one is set (passkeys then work on every
//! host under it), else the public URL's host; origin: the public URL. User verification is
//! always required, so a passkey is two factors on its own.
//!
//! A ceremony's state travels sealed (AES-256-GCM, the shared seal key) in a short-lived
//! host-only cookie, so the replica that finishes need not be the one that started; it names
//! the account it is for and its challenge, which the account records as answered when the
//! ceremony succeeds (`account::passkeys`), so each is accepted once.

use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration, Url, Webauthn,
    WebauthnBuilder,
};

use crate::{
    crypto::{hex, sha256},
    keys::Sealer,
};

pub mod ceremony;

/// The ceremony cookie.
pub const COOKIE: &str = "usher_passkey";
/// How long a ceremony may take.
pub const CEREMONY_MS: i64 = 5 * 60 * 1000;

/// The relying party, when the public URL allows one.
pub struct RelyingParty {
    webauthn: Result<Webauthn, String>,
}

impl RelyingParty {
    /// The relying party of `public_url`, with `cookie_domain` as RP ID when set.
    pub fn new(public_url: &str, cookie_domain: Option<&str>) -> RelyingParty {
        let webauthn = (|| {
            let origin = Url::parse(public_url).map_err(|e| e.to_string())?;
            let host = origin
                .host_str()
                .ok_or("the public URL has no host")?
                .to_owned();
            let rp_id = cookie_domain
                .map(|d| d.trim_start_matches('.').to_owned())
                .unwrap_or(host);
            if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') {
                return Err(format!(
                    "passkeys need a host name, and the public URL's host is the address {rp_id}"
                ));
            }
            WebauthnBuilder::new(&rp_id, &origin)
                .and_then(|b| b.rp_name("Usher").build())
                .map_err(|e| format!("cannot set up passkeys for {rp_id}: {e}"))
        })();
        if let Err(why) = &webauthn {
            tracing::warn!(reason = %why, "passkeys are off");
        }
        RelyingParty { webauthn }
    }

    /// webauthn-rs, or why passkeys are off.
    pub fn get(&self) -> Result<&Webauthn, &str> {
        self.webauthn.as_ref().map_err(String::as_str)
    }
}

/// What a ceremony must remember between its start and its finish.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Ceremony {
    /// Adding a passkey to `account`, by session `sid`.
    Register {
        account: String,
        sid: String,
        /// The user handle the passkey will carry (the account's, or a new one).
        user: String,
        state: PasskeyRegistration,
    },
    /// Signing in to `account` (its passkeys were offered).
    Login {
        account: String,
        state: PasskeyAuthentication,
    },
    /// Signing in with whichever discoverable passkey the person picks.
    Discover { state: DiscoverableAuthentication },
}

/// A ceremony as sealed in its cookie.
#[derive(Serialize, Deserialize)]
pub struct Sealed {
    /// The ceremony.
    pub ceremony: Ceremony,
    /// Hex SHA-256 of its challenge (what the account records once it is answered).
    pub challenge: String,
    /// When it expires (Unix ms).
    pub expires_ms: i64,
}

/// Hex SHA-256 of a challenge.
pub fn challenge_hash(challenge: &[u8]) -> String {
    hex(&sha256(challenge))
}

/// The Set-Cookie that carries `sealed` (host-only, for the API only, five minutes).
pub fn cookie(sealer: &Sealer, sealed: &Sealed, secure: bool) -> Option<HeaderValue> {
    let json = serde_json::to_vec(sealed).ok()?;
    let value = sealer.seal_ceremony(&json).ok()?;
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/api/v1/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        CEREMONY_MS / 1000
    ))
    .ok()
}

/// The Set-Cookie that removes the ceremony cookie.
pub fn clear(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/api/v1/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The ceremony the request's cookie carries, when it opens and has not expired at `now_ms`.
pub fn presented(sealer: &Sealer, headers: &HeaderMap, now_ms: i64) -> Option<Sealed> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)?;
    let plain = sealer.open_ceremony(value)?;
    let sealed: Sealed = serde_json::from_slice(&plain).ok()?;
    (sealed.expires_ms > now_ms).then_some(sealed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::Keys;

    /// A ceremony as the server sealed it in the recording of `ceremony.rs`'s tests.
    fn recorded() -> Sealed {
        let recording: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/passkeys.json")).unwrap();
        serde_json::from_value(recording["ceremonies"]["sign-in-1"]["sealed"].clone()).unwrap()
    }

    fn request_with(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {pair}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_ceremony_travels_sealed_and_opens_only_unaltered_with_the_key_and_in_time() {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let sealed = recorded();
        let set = cookie(&keys.seal, &sealed, true).unwrap();
        let text = set.to_str().unwrap();
        assert!(
            text.contains("; HttpOnly; SameSite=Strict; Secure"),
            "{text}"
        );
        assert!(text.contains("Path=/api/v1/; Max-Age=300"), "{text}");
        // The state is not readable in the cookie.
        let challenge =
            serde_json::to_value(&sealed.ceremony).unwrap()["state"]["ast"]["challenge"]
                .as_str()
                .unwrap()
                .to_owned();
        assert!(!text.contains(&challenge));

        let headers = request_with(&set);
        let before = sealed.expires_ms - 1;
        let opened = presented(&keys.seal, &headers, before).unwrap();
        assert_eq!(opened.challenge, sealed.challenge);
        assert!(matches!(opened.ceremony, Ceremony::Login { .. }));
        // Expired, sealed with another key, or altered: nothing.
        assert!(presented(&keys.seal, &headers, sealed.expires_ms).is_none());
        let other = Keys::from_bytes([1; 32], [3; 32]);
        assert!(presented(&other.seal, &headers, before).is_none());
        let altered = text.replacen("usher_passkey=", "usher_passkey=A", 1);
        let headers = request_with(&HeaderValue::from_str(&altered).unwrap());
        assert!(presented(&keys.seal, &headers, before).is_none());
    }

    #[test]
    fn an_ip_address_gets_no_relying_party_and_a_host_or_the_cookie_domain_does() {
        assert!(
            RelyingParty::new("http://127.0.0.1:8080", None)
                .get()
                .is_err()
        );
        assert!(
            RelyingParty::new("http://localhost:8080", None)
                .get()
                .is_ok()
        );
        assert!(
            RelyingParty::new("https://login.example.com", Some(".example.com"))
                .get()
                .is_ok()
        );
        // A cookie domain the public URL is not under cannot be the RP ID.
        assert!(
            RelyingParty::new("https://login.example.com", Some("other.test"))
                .get()
                .is_err()
        );
    }
}
