//! Device cookies (OWASP, "slow down online guessing with device cookies"): a browser that
//! completed a sign-in for a login gets `usher_device`, signed, HttpOnly, for a year, bound to
//! that login's account. Failed sign-ins from clients without a valid one for the login lock out
//! only such clients; a client presenting one has its own small allowance, so nobody can lock a
//! person out of the device they use, and a stolen device cookie is still throttled.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::crypto::{RandomError, random_bytes};

/// The cookie's name.
pub const COOKIE: &str = "usher_device";
/// How long a device cookie lasts.
pub const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest cookie value read.
const MAX_LEN: usize = 512;

#[derive(Serialize, Deserialize)]
struct Claims {
    /// The account id of the login it was issued for.
    acct: String,
    /// A random id: the device's throttling key.
    dev: String,
    /// Issued at (Unix seconds).
    iat: i64,
}

/// A new device cookie value for `account_id`, issued at `now` (Unix seconds).
pub fn issue(key: &ring::hmac::Key, account_id: &str, now: i64) -> Result<String, RandomError> {
    let claims = Claims {
        acct: account_id.to_owned(),
        dev: URL_SAFE_NO_PAD.encode(random_bytes::<16>()?),
        iat: now,
    };
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let tag = ring::hmac::sign(key, body.as_bytes());
    Ok(format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
}

/// The device id of a valid device cookie in `headers` for `account_id`, if one is presented:
/// signed with `key`, issued for that account, not older than [`LIFETIME`].
pub fn presented(
    key: &ring::hmac::Key,
    headers: &HeaderMap,
    account_id: &str,
    now: i64,
) -> Option<String> {
    super::cookie::values(headers, COOKIE)
        .filter(|v| v.len() <= MAX_LEN)
        .find_map(|token| {
            let (body, tag) = token.split_once('.')?;
            let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
            ring::hmac::verify(key, body.as_bytes(), &tag).ok()?;
            let claims: Claims =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
            let fresh = now.saturating_sub(claims.iat) < LIFETIME.as_secs() as i64;
            (claims.acct == account_id && fresh).then_some(claims.dev)
        })
}

/// Where the browser sends the device cookie: the API, so that every check of the password or
/// a code (sign-in, re-authentication, password change, TOTP changes) knows the device. Were it
/// sent to the sign-in alone, an attacker who locked the login would lock the person out of
/// those too.
const PATH: &str = "/api/v1";

/// The Set-Cookie value of a device cookie.
pub fn cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path={PATH}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME.as_secs()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::header;

    use super::*;

    fn key(b: u8) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[b; 32])
    }

    fn with(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("usher_session=x; {COOKIE}={token}")).unwrap(),
        );
        h
    }

    #[test]
    fn the_device_cookie_reaches_every_check_of_a_password_or_code() {
        let c = cookie("tok", true);
        let c = c.to_str().unwrap();
        let path = c.split("; ").find_map(|a| a.strip_prefix("Path=")).unwrap();
        for checked in [
            "/api/v1/login",
            "/api/v1/me/reauthenticate",
            "/api/v1/me/password",
            "/api/v1/me/mfa/totp",
            "/api/v1/me/mfa/totp/confirm",
        ] {
            assert!(checked.starts_with(path), "{checked} does not get {c}");
        }
        assert!(
            c.contains("SameSite=Strict") && c.contains("HttpOnly"),
            "{c}"
        );
    }

    #[test]
    fn a_device_cookie_counts_for_its_login_only_while_fresh_and_untouched() {
        let now = 1_764_000_000;
        let t = issue(&key(1), "acct-a", now).unwrap();
        let dev = presented(&key(1), &with(&t), "acct-a", now).unwrap();
        assert_eq!(presented(&key(1), &with(&t), "acct-a", now + 10), Some(dev));
        assert_eq!(presented(&key(1), &with(&t), "acct-b", now), None);
        assert_eq!(presented(&key(2), &with(&t), "acct-a", now), None);
        let year = LIFETIME.as_secs() as i64;
        assert_eq!(presented(&key(1), &with(&t), "acct-a", now + year), None);
        let mut tampered = t.clone().into_bytes();
        tampered[2] ^= 1;
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(presented(&key(1), &with(&tampered), "acct-a", now), None);
        // Two devices never share an id.
        let other = issue(&key(1), "acct-a", now).unwrap();
        assert_ne!(
            presented(&key(1), &with(&other), "acct-a", now),
            presented(&key(1), &with(&t), "acct-a", now)
        );
        let c = cookie(&t, true).to_str().unwrap().to_owned();
        assert!(
            c.contains("HttpOnly") && c.contains("Secure") && c.contains("Max-Age=31536000"),
            "{c}"
        );
    }
}
