//! Forward-auth: `GET /api/v1/verify` for ingress controllers.

use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use crate::{
    account::membership_key,
    apikey::ApiKey,
    auth::{
        answers::KeyAnswer,
        error::{ApiError, ErrorCode},
        middleware::common_headers,
        principal::{Principal, Via, bearer_token, looks_like_jwt},
        state::AuthState,
    },
};

/// The query parameter `name`, if asked.
fn query_param(req: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Forward-auth for ingress controllers (nginx `auth_request`, Traefik ForwardAuth, Envoy
/// ext_authz): 200 with the `X-Usher-*` headers, or 401/403. `?permission=x` also requires
/// that permission, `?organisation=name` that the session or key acts in that organisation. Every answer carries the common headers (it is served outside the guard).
pub async fn verify(State(st): State<AuthState>, req: Request) -> Response {
    let answer = match answer(&st, &req) {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    common_headers(&st, answer)
}

fn answer(st: &AuthState, req: &Request) -> Result<Response, ApiError> {
    // The request is read in place: the hot path of every forward-auth call copies nothing.
    let started = Instant::now();
    let now = st.clock.now();
    // Read before anything is looked up: an answer computed from what changes meanwhile is
    // stamped stale.
    let generation = st.directory.generation() + st.oidc.generation();
    let key_hash = bearer_hash(req);
    if let Some(hash) = &key_hash
        && let Some(kept) = st.key_answers.get(hash, generation, now)
    {
        let answer = permitted(&kept.organisation, &kept.permissions, req).map(|()| {
            let mut res = StatusCode::OK.into_response();
            res.headers_mut().extend(kept.headers.iter().cloned());
            res
        });
        st.metrics
            .verified("bearer", started.elapsed().as_secs_f64());
        return answer;
    }
    let result = st.authenticate_forward(req.headers());
    let via = match &result {
        Ok(Principal {
            via: Via::Bearer, ..
        }) => "bearer",
        Ok(Principal {
            via: Via::Token { .. },
            ..
        }) => "token",
        Ok(_) => "session",
        Err(_) => "none",
    };
    let answer = result.and_then(|p| {
        p.not_restricted()?;
        let permissions = p.membership.permissions();
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
        let organisation = p.membership.org_name();
        let allowed = permitted(&organisation, &permissions, req);
        let until = match (&p.via, &key_hash) {
            // The current key never lapses by itself; a previous one at its grace deadline.
            (Via::Bearer, Some(hash)) => Some(
                p.account
                    .memberships
                    .get(&membership_key(&p.membership.user))
                    .and_then(|m| m.api_key.as_ref())
                    .filter(|k| k.hash != *hash)
                    .and_then(|k| k.previous_until),
            ),
            // An access token at its expiry.
            (Via::Token { expires, .. }, Some(_)) => Some(Some(
                k8s_openapi::jiff::Timestamp::from_second(*expires)
                    .unwrap_or(k8s_openapi::jiff::Timestamp::MIN),
            )),
            _ => None,
        };
        if let (Some(until), Some(hash)) = (until, key_hash) {
            st.key_answers.put(
                hash,
                KeyAnswer {
                    generation,
                    until,
                    headers: headers.clone(),
                    permissions,
                    organisation,
                },
            );
        }
        allowed?;
        Ok(p.respond((StatusCode::OK, headers)))
    });
    st.metrics.verified(via, started.elapsed().as_secs_f64());
    answer
}

/// The hash of the request's Bearer key or access token, when it carries a well-formed key or
/// something shaped like a JWT (which only answers from memory once it verified).
fn bearer_hash(req: &Request) -> Option<String> {
    let token = bearer_token(req.headers())?;
    if looks_like_jwt(token) {
        return Some(format!(
            "jwt:{}",
            crate::crypto::hex(&crate::crypto::sha256(token.as_bytes()))
        ));
    }
    Some(ApiKey::parse(token).ok()?.hash())
}

/// Refuses a request for another organisation than `organisation` (`?organisation=`), or whose
/// `?permission=` the membership lacks.
fn permitted(organisation: &str, permissions: &[String], req: &Request) -> Result<(), ApiError> {
    if let Some(wanted) = query_param(req, "organisation")
        && wanted != organisation
    {
        return Err(ApiError::of(
            ErrorCode::WrongOrganisation,
            format!("this is for organisation {wanted:?}: sign in to it, or switch to it"),
        ));
    }
    match query_param(req, "permission") {
        Some(needed) if !permissions.contains(&needed) => Err(ApiError::of(
            ErrorCode::PermissionDenied,
            format!("this needs the permission {needed}"),
        )),
        _ => Ok(()),
    }
}

/// Characters kept as they are in an identity header: visible ASCII but `%` (which starts an
/// escape); everything else is percent-encoded (RFC 3986), so every login has one, readable
/// header value and no two logins share one.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'%');

/// The header value naming `value`: itself when it is visible ASCII, else percent-encoded.
fn identity(value: &str) -> HeaderValue {
    if value.bytes().all(|b| b.is_ascii_graphic() && b != b'%')
        && let Ok(v) = HeaderValue::from_str(value)
    {
        return v;
    }
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
