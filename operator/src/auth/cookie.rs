//! The session cookie: its name, attributes, and where to find it in a request.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie name: `__Host-usher_session` when the public URL is https (the browser then
/// insists on Secure, Path=/ and no Domain), else `usher_session`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-usher_session"
    } else {
        "usher_session"
    }
}

/// The Set-Cookie value carrying `token` for `max_age`.
pub fn session_cookie(secure: bool, token: &str, max_age: Duration) -> HeaderValue {
    let secure_attr = if secure { "; Secure" } else { "" };
    let value = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure_attr}",
        cookie_name(secure),
        max_age.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The Set-Cookie value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    session_cookie(secure, "", Duration::ZERO)
}

/// The session token in the request's cookies, if any.
pub fn session_token(headers: &HeaderMap, secure: bool) -> Option<&str> {
    let name = cookie_name(secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_attributes_and_are_found_among_others() {
        let c = session_cookie(true, "tok", Duration::from_secs(60));
        assert_eq!(
            c.to_str().unwrap(),
            "__Host-usher_session=tok; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        let plain = session_cookie(false, "tok", Duration::from_secs(60));
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; usher_session=xyz.abc; b=2"),
        );
        assert_eq!(session_token(&h, false), Some("xyz.abc"));
        assert_eq!(session_token(&h, true), None);
    }
}
