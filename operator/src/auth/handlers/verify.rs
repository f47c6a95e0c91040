//! Forward-auth: `GET /api/v1/verify` for ingress controllers.

use std::time::Instant;

use axum::{
    extract::{Query, State as Extract},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::Response,
};
use serde::Deserialize;

use crate::auth::{
    error::{ApiError, ErrorCode},
    principal::{Principal, Via},
    state::State,
};

#[derive(Deserialize)]
pub struct VerifyQuery {
    permission: Option<String>,
}

/// Forward-auth for ingress controllers (nginx `auth_request`, Traefik ForwardAuth, Envoy
/// ext_authz): 200 with the `X-Usher-*` headers, or 401/403. `?permission=x` also requires
/// that permission.
pub async fn verify(
    Extract(st): Extract<State>,
    Query(q): Query<VerifyQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = st.authenticate(&headers, true);
    let via = match &result {
        Ok(Principal {
            via: Via::Bearer, ..
        }) => "bearer",
        Ok(_) => "session",
        Err(_) => "none",
    };
    let answer = result.and_then(|p| {
        p.not_restricted()?;
        let permissions = p.membership.permissions();
        if let Some(needed) = &q.permission
            && !permissions.iter().any(|have| have == needed)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PermissionDenied,
                format!("this needs the permission {needed}"),
            ));
        }
        let headers = [
            (
                HeaderName::from_static("x-usher-login"),
                identity(&p.account.login),
            ),
            (
                HeaderName::from_static("x-usher-account"),
                identity(&p.account.id),
            ),
            (
                HeaderName::from_static("x-usher-organisation"),
                identity(&p.membership.org_name()),
            ),
            (
                HeaderName::from_static("x-usher-profile"),
                identity(&p.membership.user.spec.profile),
            ),
            (
                HeaderName::from_static("x-usher-permissions"),
                identity(&permissions.join(",")),
            ),
        ];
        Ok(p.respond((StatusCode::OK, headers)))
    });
    st.metrics.verified(via, started.elapsed().as_secs_f64());
    answer
}

/// Characters kept as they are in an identity header: visible ASCII but `%` (which starts an
/// escape); everything else is percent-encoded (RFC 3986), so every login has one, readable
/// header value and no two logins share one.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'%');

/// The header value naming `value`: itself when it is visible ASCII, else percent-encoded.
fn identity(value: &str) -> HeaderValue {
    let encoded = percent_encoding::utf8_percent_encode(value, ESCAPED).to_string();
    // Only visible ASCII is left, which a header value always takes.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_login_gets_a_readable_distinct_header() {
        assert_eq!(identity("alice@example.com"), "alice@example.com");
        assert_eq!(
            identity("jürgen@xn--bcher-kva.de"),
            "j%C3%BCrgen@xn--bcher-kva.de"
        );
        assert_ne!(
            identity("jürgen@example.com"),
            identity("jörgen@example.com")
        );
        assert_eq!(identity("50%@example.com"), "50%25@example.com");
        assert_eq!(identity("a\u{7f}b"), "a%7Fb");
    }
}
