//! Proving who you are again, inside a session: `POST /api/v1/me/reauthenticate` renews the
//! re-authentication window (`USHER_REAUTH_WINDOW`) that viewing keys and changing TOTP need, and
//! the same check guards a password change. Every guess counts like a sign-in failure.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::{
    login::{Reserved, invalid_credentials},
    password::user_agent,
};
use crate::account::guesses::Factor;
use crate::auth::principal::SignedIn;
use crate::{
    account::Account,
    auth::{
        device,
        error::{ApiError, ErrorCode, JsonBody},
        session::Claims,
        state::AuthState,
    },
    password::Verified,
};

impl AuthState {
    /// Reserves an attempt to prove who `account`'s owner is, for a request from `peer`: as a
    /// sign-in would (per device cookie, else per address and per login), soft lock included.
    pub fn reserve_for(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        account: &Account,
    ) -> Result<Reserved, ApiError> {
        let address = self.client_address(peer, headers);
        let now = self.clock.now_s();
        let device = device::presented(&self.keys.device, headers, &account.id, now);
        let reserved = self.reserve_sign_in(
            &account.login,
            &address,
            device.as_deref(),
            self.clock.instant(),
        )?;
        if let Some(refused) = self.soft_lock(&reserved, Some(account)) {
            reserved.cancel();
            return Err(refused);
        }
        if let Err(locked) = self.factor_open(account, Factor::Password) {
            reserved.cancel();
            return Err(locked);
        }
        Ok(reserved)
    }

    /// Settles `reserved` by how a code check ended: a wrong code counts as a failed sign-in.
    pub async fn settle_code<T>(
        &self,
        reserved: Reserved,
        account: &Account,
        result: &Result<T, ApiError>,
    ) {
        match result {
            Ok(_) => reserved.succeeded(),
            Err(e) if e.code == ErrorCode::InvalidCode => {
                self.sign_in_failed(reserved, &account.login, Some(account), Factor::Code)
                    .await;
            }
            Err(_) => reserved.cancel(),
        }
    }

    /// Checks `password` (and `code`, when the account has TOTP and `with_code`) of `account`,
    /// for a request from `peer`: throttled and counted like a sign-in, so a stolen session
    /// cannot guess them faster than a stranger could.
    pub async fn prove(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        account: &Account,
        password: &str,
        code: Option<&str>,
        with_code: bool,
    ) -> Result<Account, ApiError> {
        let reserved = self.reserve_for(peer, headers, account)?;
        let password = if password.len() > 4 * crate::password::MAX_CHARS {
            String::new()
        } else {
            unicode_normalization::UnicodeNormalization::nfc(password).collect()
        };
        let verified = match self
            .hasher
            .verify(account.password_hash.clone(), password)
            .await
        {
            Ok(v) => v,
            Err(_) => {
                reserved.cancel();
                return Err(ApiError::busy());
            }
        };
        if !matches!(verified, Verified::Ok { .. }) {
            self.sign_in_failed(reserved, &account.login, Some(account), Factor::Password)
                .await;
            return Err(invalid_credentials());
        }
        if account.guesses.password > 0 {
            self.update_account(&account.id, |a| Ok(a.guesses.succeeded(Factor::Password)))
                .await?;
        }
        if !(with_code && self.settings.mfa_enabled && account.totp_secret.is_some()) {
            reserved.succeeded();
            return Ok(account.clone());
        }
        let Some(code) = code else {
            reserved.cancel();
            return Err(ApiError::of(
                ErrorCode::MfaRequired,
                "enter the 6-digit code from your authenticator app",
            ));
        };
        let result = self.accept_code(&account.id, code, false).await;
        self.settle_code(reserved, account, &result).await;
        result
    }
}

/// What `POST /api/v1/me/reauthenticate` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReauthRequest {
    password: String,
    #[serde(default)]
    code: Option<String>,
}

/// `POST /api/v1/me/reauthenticate`: 204 and a cookie of a new session id with a fresh
/// authentication time.
pub async fn reauthenticate(
    State(st): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    SignedIn(p): SignedIn,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ReauthRequest>,
) -> Result<Response, ApiError> {
    let claims = p.session()?.clone();
    st.prove(
        peer,
        &headers,
        &p.account,
        &req.password,
        req.code.as_deref(),
        true,
    )
    .await?;
    // A new session id, as at a sign-in: a copy of the cookie from before (fixed by someone
    // else, or stolen) ends here. The lifetime still counts from the sign-in.
    let now = st.clock.now_ms();
    let renewed = Claims {
        auth: now,
        ..claims
            .anew(claims.iat, now)
            .map_err(|e| ApiError::internal(&e))?
    };
    st.end_session(&claims).await?;
    st.start_session(
        &renewed,
        user_agent(&headers),
        &st.client_address(peer, &headers),
    )
    .await?;
    Ok((StatusCode::NO_CONTENT, st.cookies(&renewed)).into_response())
}
