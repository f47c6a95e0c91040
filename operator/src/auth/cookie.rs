//! Usher's two cookies, their names and attributes, and where to find them in a request.
//!
//! - The **session** cookie is host-only (`__Host-usher_session` on https): it alone opens the
//!   API and the pages, and no other host ever sees it.
//! - With `USHER_COOKIE_DOMAIN`, a **forward-auth** cookie (`__Secure-usher_forward` on https) is
//!   set for the domain beside it, so that ingresses of apps on sibling hosts can ask
//!   `/api/v1/verify`. Every host under the domain sees it, so it opens nothing else: it is
//!   signed with a key of its own, carries the same session, and ends with it.

use std::time::Duration;

use axum::{
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, IntoResponseParts, Response, ResponseParts},
};

/// Which of the two cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Host-only; opens the API and the pages.
    Session,
    /// For the cookie domain; opens forward-auth only.
    Forward,
}

/// Where the cookies go: https or not, and the cookie domain of the forward-auth cookie.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// The public URL is https.
    pub secure: bool,
    /// `USHER_COOKIE_DOMAIN`, if set: only then is there a forward-auth cookie.
    pub domain: Option<&'a str>,
}

impl Scope<'_> {
    /// The cookie's name: the `__Host-` prefix (the browser then insists on Secure, Path=/ and
    /// no Domain, and no sibling host can set it) or `__Secure-` on https.
    pub fn name(&self, kind: Kind) -> &'static str {
        match (kind, self.secure) {
            (Kind::Session, true) => "__Host-usher_session",
            (Kind::Session, false) => "usher_session",
            (Kind::Forward, true) => "__Secure-usher_forward",
            (Kind::Forward, false) => "usher_forward",
        }
    }

    /// The kinds this server sets: the session, and the forward-auth cookie with a domain.
    pub fn kinds(&self) -> &'static [Kind] {
        if self.domain.is_some() {
            &[Kind::Session, Kind::Forward]
        } else {
            &[Kind::Session]
        }
    }

    fn cookie(&self, kind: Kind, token: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let domain = match (kind, self.domain) {
            (Kind::Forward, Some(d)) => format!("; Domain={d}"),
            _ => String::new(),
        };
        let value = format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{domain}{secure}",
            self.name(kind),
            max_age.as_secs()
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The Set-Cookies carrying a session: `token(kind)` signs it for each kind set here.
    pub fn set(&self, token: impl Fn(Kind) -> String, max_age: Duration) -> SetCookies {
        SetCookies(
            self.kinds()
                .iter()
                .map(|k| self.cookie(*k, &token(*k), max_age))
                .collect(),
        )
    }

    /// The Set-Cookies that remove every cookie this server sets.
    pub fn clear(&self) -> SetCookies {
        self.set(|_| String::new(), Duration::ZERO)
    }

    /// Every value of the `kind` cookie in the request, in the order sent: a sibling host may
    /// plant one of the same name, so the caller takes the first that is valid, not the first.
    pub fn tokens<'h>(&self, headers: &'h HeaderMap, kind: Kind) -> impl Iterator<Item = &'h str> {
        values(headers, self.name(kind))
    }
}

/// Set-Cookie headers to send, one per cookie.
#[derive(Clone, Debug, Default)]
pub struct SetCookies(pub Vec<HeaderValue>);

impl SetCookies {
    /// Appends them to `headers`.
    pub fn append_to(&self, headers: &mut HeaderMap) {
        for c in &self.0 {
            headers.append(header::SET_COOKIE, c.clone());
        }
    }
}

impl IntoResponse for SetCookies {
    fn into_response(self) -> Response {
        (self, ()).into_response()
    }
}

impl IntoResponseParts for SetCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.append_to(res.headers_mut());
        Ok(res)
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

    fn texts(c: &SetCookies) -> Vec<&str> {
        c.0.iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn the_session_cookie_is_host_only_and_the_domain_gets_the_forward_auth_cookie_alone() {
        let host_only = Scope {
            secure: true,
            domain: None,
        };
        let token = |k: Kind| format!("{k:?}");
        assert_eq!(
            texts(&host_only.set(token, Duration::from_secs(60))),
            ["__Host-usher_session=Session; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"]
        );
        let shared = Scope {
            secure: true,
            domain: Some("example.com"),
        };
        assert_eq!(
            texts(&shared.set(token, Duration::from_secs(60))),
            [
                "__Host-usher_session=Session; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure",
                "__Secure-usher_forward=Forward; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Domain=example.com; Secure"
            ]
        );
        assert_eq!(
            texts(&shared.clear()),
            [
                "__Host-usher_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure",
                "__Secure-usher_forward=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Domain=example.com; Secure"
            ]
        );
        let plain = Scope {
            secure: false,
            domain: Some("example.com"),
        };
        assert!(
            texts(&plain.set(token, Duration::from_secs(60)))
                .iter()
                .all(|c| !c.contains("Secure"))
        );
    }

    #[test]
    fn every_value_of_a_name_is_found_in_the_order_sent() {
        let plain = Scope {
            secure: false,
            domain: None,
        };
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; usher_session=planted; b=2"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("usher_session=real"),
        );
        let found: Vec<&str> = plain.tokens(&h, Kind::Session).collect();
        assert_eq!(found, ["planted", "real"]);
        let https = Scope {
            secure: true,
            domain: None,
        };
        assert_eq!(https.tokens(&h, Kind::Session).next(), None);
    }
}
