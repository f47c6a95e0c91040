//! TOTP: enrolment (start, then confirm with a code), turning it off, and the code check that
//! sign-in shares: a code is accepted once, across replicas (its step is written with the
//! account's resourceVersion precondition).

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::Deserialize;

use crate::account::guesses::Factor;
use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::{
    account::Account,
    auth::{
        error::{ApiError, ErrorCode, JsonBody},
        principal::Principal,
        state::AuthState,
    },
    totp,
};

impl AuthState {
    /// Checks a TOTP code of `account` against its confirmed secret (or the pending one) and
    /// records its step; a replay, here or on another replica, is refused.
    pub async fn accept_code(
        &self,
        id: &str,
        code: &str,
        pending: bool,
    ) -> Result<Account, ApiError> {
        self.update_account(id, |a| {
            if !pending {
                self.factor_open(a, Factor::Code)?;
            }
            let (sealed, missing) = if pending {
                (&a.totp_pending, no_pending_enrolment as fn() -> ApiError)
            } else {
                (&a.totp_secret, mfa_not_enrolled as fn() -> ApiError)
            };
            a.totp_last_step = Some(self.check_code(a, sealed.as_deref(), code, missing)?);
            a.guesses.succeeded(Factor::Code);
            if pending {
                a.totp_secret = a.totp_pending.take();
                a.mfa_enrolled_at = Some(self.clock.whole_seconds());
            }
            Ok(true)
        })
        .await
    }

    /// The step of `code` for the sealed secret of `a`, if it is valid now and later than the
    /// last accepted step: `missing()` when there is no secret, 401 `invalid_code` otherwise.
    fn check_code(
        &self,
        a: &Account,
        sealed: Option<&str>,
        code: &str,
        missing: fn() -> ApiError,
    ) -> Result<u64, ApiError> {
        let secret = sealed
            .and_then(|s| self.keys.seal.open(&a.id, s))
            .ok_or_else(missing)?;
        let now = u64::try_from(self.clock.now_s()).unwrap_or(0);
        totp::verify(secret, code, now, a.totp_last_step)
            .map_err(|e| ApiError::of(ErrorCode::InvalidCode, e.to_string()))
    }
}

impl AuthState {
    /// The session of a TOTP route: no API keys, and 404 when MFA is off for the platform.
    pub fn mfa_session(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let p = self.authenticate(headers, false)?;
        if !self.settings.mfa_enabled {
            return Err(ApiError::of(
                ErrorCode::MfaDisabled,
                "two-factor authentication is turned off on this platform",
            ));
        }
        Ok(p)
    }
}

/// `POST /api/v1/me/mfa/totp`: enrolment data; needs a recent sign-in.
pub async fn totp_start(
    State(st): State<AuthState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = st.mfa_session(&headers)?;
    p.recently_authenticated(st.settings.reauth_window, st.clock.now_ms())?;
    if p.account.totp_secret.is_some() {
        return Err(ApiError::of(
            ErrorCode::MfaAlreadyEnrolled,
            "TOTP is already set up; turn it off first to enroll a new device",
        ));
    }
    let enrolment = totp::enrol(&st.settings.mfa_issuer, &p.account.login)
        .map_err(|e| ApiError::internal(&e))?;
    let sealed = st
        .keys
        .seal
        .seal(&p.account.id, &enrolment.secret)
        .map_err(|e| ApiError::internal(&e))?;
    st.update_account(&p.account.id, |a| {
        a.totp_pending = Some(sealed.clone());
        Ok(true)
    })
    .await?;
    Ok(p.respond(Json(serde_json::json!({
        "secret": enrolment.secret_base32,
        "otpauthUri": enrolment.otpauth_uri,
        "qrPng": STANDARD.encode(&enrolment.qr_png),
    }))))
}

fn no_pending_enrolment() -> ApiError {
    ApiError::of(ErrorCode::NoPendingEnrolment, "start TOTP enrolment first")
}

fn mfa_not_enrolled() -> ApiError {
    ApiError::of(ErrorCode::MfaNotEnrolled, "TOTP is not set up")
}

/// On the settings routes a wrong code is a typo, not a sign-in failure: 400, the session stays.
fn typo(e: ApiError) -> ApiError {
    match e.code {
        ErrorCode::InvalidCode => ApiError::new(StatusCode::BAD_REQUEST, e.code, e.message),
        _ => e,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    code: String,
}

/// `POST /api/v1/me/mfa/totp/confirm`: a wrong code counts like a failed sign-in.
pub async fn totp_confirm(
    State(st): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let p = st.mfa_session(&headers)?;
    let reserved = st.reserve_for(peer, &headers, &p.account)?;
    let result = st.accept_code(&p.account.id, &req.code, true).await;
    st.settle_code(reserved, &p.account, &result).await;
    result.map_err(typo)?;
    st.audit(
        st.audit_record(Action::MfaEnrolled, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::account_target(&p.account)),
    );
    Ok(p.respond(StatusCode::NO_CONTENT))
}

/// `DELETE /api/v1/me/mfa/totp`: needs a recent sign-in and a code; a wrong code counts like a
/// failed sign-in.
pub async fn totp_disable(
    State(st): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let p = st.mfa_session(&headers)?;
    p.recently_authenticated(st.settings.reauth_window, st.clock.now_ms())?;
    if p.account.totp_secret.is_none() {
        return Err(mfa_not_enrolled());
    }
    if let Some(m) = st
        .directory
        .memberships(&p.account.login)
        .into_iter()
        .find(|m| m.organisation.requires_mfa())
        .filter(|_| !p.account.passkeys.any())
    {
        return Err(ApiError::of(
            ErrorCode::MfaRequiredByOrganisation,
            format!(
                "organisation {} requires two-factor authentication, so it cannot be turned off",
                m.organisation.spec.display_name
            ),
        ));
    }
    let reserved = st.reserve_for(peer, &headers, &p.account)?;
    let result = st
        .update_account(&p.account.id, |a| {
            st.check_code(a, a.totp_secret.as_deref(), &req.code, mfa_not_enrolled)?;
            a.forget_totp();
            Ok(true)
        })
        .await;
    st.settle_code(reserved, &p.account, &result).await;
    result.map_err(typo)?;
    st.audit(
        st.audit_record(Action::MfaRemoved, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::account_target(&p.account)),
    );
    Ok(p.respond(StatusCode::NO_CONTENT))
}
