//! Who am I (`GET /api/v1/me`) and organisation switching.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::login::not_a_member;
use crate::audit::{Action, Outcome};
use crate::auth::principal::{Caller, SignedIn};
use crate::auth::trail;
use crate::auth::{
    directory::{Membership, Sees},
    error::{ApiError, ErrorCode, JsonBody},
    handlers::password::user_agent,
    principal::killed_since,
    session::Claims,
    state::AuthState,
};

/// `GET /api/v1/me`.
pub async fn me(State(st): State<AuthState>, Caller(p): Caller) -> Result<Response, ApiError> {
    let body = st
        .directory
        .me(&p.account, &p.membership, p.enrolment_required, p.sees());
    Ok(p.respond(Json(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    organisation: String,
}

/// `POST /api/v1/me/organisation`: a new session in another organisation of the same login.
pub async fn switch_organisation(
    State(st): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    SignedIn(p): SignedIn,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SwitchRequest>,
) -> Result<Response, ApiError> {
    let claims = p.session()?;
    let target = st
        .directory
        .membership(&p.account.login, &req.organisation)
        .filter(Membership::can_sign_in)
        .ok_or_else(|| not_a_member(&req.organisation))?;
    // Kill Session there ended this session's standing in it: sign in again to go back.
    if killed_since(&p.account, &target, claims.iat) {
        return Err(ApiError::of(
            ErrorCode::SessionEnded,
            format!(
                "an administrator ended your sessions in organisation {:?}; sign in again to use it",
                req.organisation
            ),
        ));
    }
    // A new session id; the lifetime still counts from the login, and so does the last
    // authentication.
    let fresh = Claims {
        auth: claims.auth,
        ..Claims::new(
            &p.account.id,
            &claims.auid,
            target.acting(),
            claims.iat,
            st.clock.now_ms(),
        )
        .map_err(|e| ApiError::internal(&e))?
    };
    st.end_session(claims).await?;
    st.start_session(
        &fresh,
        user_agent(&headers),
        &st.client_address(peer, &headers),
    )
    .await?;
    let restricted = st.enrolment_required(&p.account, &target);
    st.audit(
        st.audit_record(Action::OrganisationSwitched, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::account_target(&p.account))
            .in_organisation(target.org_name()),
    );
    let body = st
        .directory
        .me(&p.account, &target, restricted, Sees::EveryMembership);
    Ok((st.cookies(&fresh), Json(body)).into_response())
}
