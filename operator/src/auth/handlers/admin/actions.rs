//! One-shot actions on a member: Kill Session, a password reset link, creating and renewing
//! its API key.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use usher_crds::{ANNOTATION_KILL_SESSIONS, ANNOTATION_RESET_PASSWORD};

use super::actor::Admin;
use crate::{
    auth::{
        error::{ApiError, ErrorCode},
        state::AuthState,
    },
    reason::Reason,
};

/// A fresh value for a one-shot annotation.
fn action_value() -> String {
    Timestamp::now().as_nanosecond().to_string()
}

/// Asks the controller for a one-shot action on User `name` (a fresh value of `annotation`,
/// which it carries out once): 202.
async fn one_shot(
    st: &AuthState,
    admin: &Admin,
    name: &str,
    annotation: &str,
    reason: Reason,
    what: &str,
) -> Result<Response, ApiError> {
    let patch = json!({"metadata": {"annotations": {annotation: action_value()}}});
    admin.change(st, name, patch, reason, what).await?;
    Ok(admin.principal.respond(StatusCode::ACCEPTED))
}

/// `POST /api/v1/users/{name}/kill-session`: 202; the controller ends the sessions.
pub async fn kill_session(
    State(st): State<AuthState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    one_shot(
        &st,
        &admin,
        &name,
        ANNOTATION_KILL_SESSIONS,
        Reason::KillSessionRequested,
        "Kill Session requested",
    )
    .await
}

/// `POST /api/v1/users/{name}/reset-password`: 202; the controller mails the person a link.
pub async fn reset_password(
    State(st): State<AuthState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if admin.user(&st, &name)?.is_service() {
        return Err(ApiError::of(
            ErrorCode::ServiceUser,
            "a service user has no password: it authenticates with its API key (renew the key instead)",
        ));
    }
    one_shot(
        &st,
        &admin,
        &name,
        ANNOTATION_RESET_PASSWORD,
        Reason::PasswordResetRequested,
        "password reset requested",
    )
    .await
}

/// `POST /api/v1/users/{name}/api-key`: 202 and the Secret the key is delivered to.
pub async fn create_api_key(
    State(st): State<AuthState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    admin.may_edit()?;
    let u = admin
        .change(
            &st,
            &name,
            json!({"spec": {"apiKey": {"enabled": true}}}),
            Reason::ApiKeyRequested,
            "API key requested",
        )
        .await?;
    Ok(admin.principal.respond((
        StatusCode::ACCEPTED,
        Json(json!({ "secretName": u.api_key_secret_name() })),
    )))
}

/// `POST /api/v1/users/{name}/api-key/renew`: 202; the old key stops at once.
pub async fn renew_api_key(
    State(st): State<AuthState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let user = admin.user(&st, &name)?;
    if let Err(e) = admin.may_act_on(&st, &user) {
        admin.denied(&st, Reason::ApiKeyRenewed, &user, &e);
        return Err(e);
    }
    if !user.api_key_enabled() {
        return Err(ApiError::of(
            ErrorCode::NoApiKey,
            "this user has no API key; create one first",
        ));
    }
    // The account first: the old key stops at once; the controller delivers the new one.
    let key = st.renew_key(&user).await?;
    admin
        .record(
            &st,
            &user,
            Reason::ApiKeyRenewed,
            &format!("API key renewed ({})", key.fingerprint()),
        )
        .await;
    Ok(admin.principal.respond((
        StatusCode::ACCEPTED,
        Json(json!({ "secretName": user.api_key_secret_name() })),
    )))
}
