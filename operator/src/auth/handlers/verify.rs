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
        let h = |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
        let headers = [
            (
                HeaderName::from_static("x-usher-login"),
                h(&p.account.login),
            ),
            (
                HeaderName::from_static("x-usher-organisation"),
                h(&p.membership.org_name()),
            ),
            (
                HeaderName::from_static("x-usher-profile"),
                h(&p.membership.user.spec.profile),
            ),
            (
                HeaderName::from_static("x-usher-permissions"),
                h(&permissions.join(",")),
            ),
        ];
        Ok(p.respond((StatusCode::OK, headers)))
    });
    st.metrics.verified(via, started.elapsed().as_secs_f64());
    answer
}
