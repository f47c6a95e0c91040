//! Sign-in (password, then a TOTP code when enrolled) with throttling per login and per client
//! address and the soft lock in the account, and sign-out (this session, or everywhere).

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Json,
    extract::{ConnectInfo, Query, State as Extract},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use usher_crds::login::canonical_login;

use crate::{
    account::{Account, account_id},
    auth::{
        cookie::clear_cookie,
        directory::Membership,
        error::{ApiError, ErrorCode, JsonBody},
        principal::Via,
        session::Claims,
        state::State,
    },
    password::{self, Verified},
    runtime::clock::{now, now_ms},
};

impl State {
    /// Counts a failed login of `login_key` from `address`; past the limit, the account gets a
    /// soft lock every replica honours.
    pub async fn login_failed(&self, login_key: &str, address: &str, account: Option<&Account>) {
        let now = Instant::now();
        self.by_address.failure(address, now);
        let failures = self.by_login.failure(login_key, now);
        if failures >= self.settings.soft_lock_after
            && let Some(account) = account
        {
            let until = Timestamp::now()
                .checked_add(SignedDuration::try_from(self.settings.soft_lock).unwrap_or_default())
                .unwrap_or_else(|_| Timestamp::now());
            let locked = self
                .update_account(&account.id, |a| {
                    a.locked_until = Some(until);
                    Ok(true)
                })
                .await;
            match locked {
                Ok(_) => {
                    self.by_login.reset(login_key);
                    tracing::warn!(account = %account.id, until = %until, "soft lock after repeated failed logins");
                }
                Err(e) => tracing::warn!(code = e.code.as_str(), "could not record a soft lock"),
            }
        }
    }
}

fn soft_locked(account: &Account) -> Option<std::time::Duration> {
    let until = account.locked_until?;
    let left = until.duration_since(Timestamp::now());
    (left.is_positive()).then(|| std::time::Duration::try_from(left).unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    login: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    organisation: Option<String>,
}

/// 403 `not_a_member`: not an active member of `org`.
pub fn not_a_member(org: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::NotAMember,
        format!("you are not an active member of organisation {org:?}"),
    )
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidCredentials,
        "the login or password is wrong, or this account cannot sign in",
    )
}

pub async fn login(
    Extract(st): Extract<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let canonical = canonical_login(&req.login).ok();
    let login_key = canonical.clone().unwrap_or_else(|| {
        req.login
            .chars()
            .take(320)
            .collect::<String>()
            .to_lowercase()
    });
    let address = peer.ip().to_string();
    let now = Instant::now();
    for (throttle, key, scope) in [
        (&st.by_address, address.as_str(), "address"),
        (&st.by_login, login_key.as_str(), "login"),
    ] {
        if let Err(wait) = throttle.check(key, now) {
            st.metrics.throttled(scope);
            st.metrics.login("throttled");
            return Err(ApiError::throttled(wait));
        }
    }
    let account = canonical
        .as_deref()
        .and_then(|l| st.directory.account(&account_id(l)));
    if let Some(left) = account.as_deref().and_then(soft_locked) {
        st.metrics.throttled("soft_lock");
        st.metrics.login("locked");
        return Err(ApiError::throttled(left));
    }
    let active: Vec<Membership> = account
        .as_ref()
        .map(|a| {
            st.directory
                .memberships(&a.login)
                .into_iter()
                .filter(Membership::is_active)
                .collect()
        })
        .unwrap_or_default();
    // Unknown, invited and wholly locked logins are checked against the dummy hash: the same
    // answer in about the same time as a wrong password.
    let stored = account
        .as_ref()
        .filter(|a| a.is_activated() && !active.is_empty())
        .and_then(|a| a.password_hash.clone());
    // No password longer than the policy allows was ever stored.
    let password = if req.password.len() > 4 * password::MAX_CHARS {
        String::new()
    } else {
        unicode_normalization::UnicodeNormalization::nfc(req.password.as_str()).collect()
    };
    let verified = st.hasher.verify(stored, password.clone()).await;
    let Verified::Ok { rehash } = verified else {
        st.login_failed(&login_key, &address, account.as_deref())
            .await;
        st.metrics.login("invalid_credentials");
        return Err(invalid_credentials());
    };
    let Some(mut account) = account else {
        return Err(invalid_credentials());
    };
    let membership = match &req.organisation {
        Some(org) => active
            .iter()
            .find(|m| m.org_name() == *org)
            .cloned()
            .ok_or_else(|| not_a_member(org))?,
        None => active.first().cloned().ok_or_else(invalid_credentials)?,
    };
    if st.settings.mfa_enabled && account.totp_secret.is_some() {
        let Some(code) = req.code.as_deref() else {
            st.metrics.login("mfa_required");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::MfaRequired,
                "enter the 6-digit code from your authenticator app",
            ));
        };
        match st.accept_code(&account.id, code, false).await {
            Ok(a) => account = Arc::new(a),
            Err(e) => {
                if e.code == ErrorCode::InvalidCode {
                    st.login_failed(&login_key, &address, Some(&account)).await;
                    st.metrics.login("invalid_code");
                }
                return Err(e);
            }
        }
    }
    st.by_login.reset(&login_key);
    if rehash {
        let st2 = st.clone();
        let id = account.id.clone();
        tokio::spawn(async move {
            if let Ok(hash) = st2.hasher.hash(password).await {
                let _ = st2
                    .update_account(&id, |a| {
                        a.password_hash = Some(hash.clone());
                        Ok(true)
                    })
                    .await;
            }
        });
    }
    st.metrics.login("ok");
    let now = now_ms();
    let claims = Claims::new(
        &account.id,
        account.uid.as_deref().unwrap_or_default(),
        &membership.org_name(),
        now,
        now,
    )
    .map_err(|e| ApiError::internal(&e))?;
    let restricted = st.enrolment_required(&account, &membership);
    let body = st.directory.me(&account, &membership, restricted);
    Ok(([(header::SET_COOKIE, st.cookie(&claims))], Json(body)).into_response())
}

#[derive(Deserialize)]
pub struct LogoutQuery {
    /// Ends every session of the account (the person's own Kill Session).
    #[serde(default)]
    everywhere: bool,
}

pub async fn logout(
    Extract(st): Extract<State>,
    Query(q): Query<LogoutQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Ok(p) = st.authenticate_session(&headers)
        && let Via::Session { claims, .. } = &p.via
    {
        if q.everywhere {
            st.update_account(&claims.acct, |a| {
                a.sessions_revoked_at = Some(now());
                Ok(true)
            })
            .await?;
        } else {
            st.end_session(claims).await?;
        }
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie(st.settings.secure()))],
    )
        .into_response())
}
