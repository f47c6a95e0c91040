//! The session cookie: its name, attributes, and where to find it in a request.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};

/// Where the session cookie goes: https or not, and the domain it is scoped to.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// The public URL is https.
    pub secure: bool,
    /// `USHER_COOKIE_DOMAIN`, if set.
    pub domain: Option<&'a str>,
}

impl Scope<'_> {
    /// The cookie name: `__Host-usher_session` on https for the public host alone (the
    /// browser then insists on Secure, Path=/ and no Domain), `__Secure-usher_session` on https
    /// with a cookie domain, else `usher_session`.
    pub fn name(&self) -> &'static str {
        match (self.secure, self.domain) {
            (true, None) => "__Host-usher_session",
            (true, Some(_)) => "__Secure-usher_session",
            (false, _) => "usher_session",
        }
    }

    /// The Set-Cookie value carrying `token` for `max_age`.
    pub fn cookie(&self, token: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let domain = self
            .domain
            .map(|d| format!("; Domain={d}"))
            .unwrap_or_default();
        let value = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{domain}{secure}",
            self.name(),
            max_age.as_secs()
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The Set-Cookie value that removes the session cookie.
    pub fn clear(&self) -> HeaderValue {
        self.cookie("", Duration::ZERO)
    }

    /// The session token in the request's cookies, if any.
    pub fn token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        values(headers, self.name()).next()
    }
}

/// The values of the request's cookies named `name`, in the order sent.
pub fn values<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_attributes_and_are_found_among_others() {
        let host_only = Scope {
            secure: true,
            domain: None,
        };
        let c = host_only.cookie("tok", Duration::from_secs(60));
        assert_eq!(
            c.to_str().unwrap(),
            "__Host-usher_session=tok; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        let shared = Scope {
            secure: true,
            domain: Some("example.com"),
        };
        assert_eq!(
            shared
                .cookie("tok", Duration::from_secs(60))
                .to_str()
                .unwrap(),
            "__Secure-usher_session=tok; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Domain=example.com; Secure"
        );
        let plain = Scope {
            secure: false,
            domain: None,
        };
        assert!(
            !plain
                .cookie("tok", Duration::from_secs(60))
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; usher_session=xyz.abc; b=2"),
        );
        assert_eq!(plain.token(&h), Some("xyz.abc"));
        assert_eq!(host_only.token(&h), None);
    }
}
