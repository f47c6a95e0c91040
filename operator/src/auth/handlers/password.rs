//! Passwords after the invitation: changing one's own (`POST /api/v1/me/password`), and the
//! reset by email (`POST /api/v1/password-reset`, then `POST /api/v1/password-reset/accept`
//! with the link's token). The controller mails the reset links (it is the one mailer); this
//! server records the request in the account and accepts the token.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use usher_crds::login::canonical_login;

use crate::audit::{Action, Outcome};
use crate::auth::principal::SignedIn;
use crate::auth::trail;
use crate::{
    account::{Account, PasswordReset, account_id},
    auth::{
        client,
        directory::Membership,
        error::{ApiError, ErrorCode, JsonBody},
        state::AuthState,
    },
    link_token::{hash_token, token_matches},
    password::{self, HashError},
};

/// What `POST /api/v1/me/password` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangeRequest {
    current_password: String,
    new_password: String,
}

impl AuthState {
    /// Checks `password` against the policy with the person's own words as context, and
    /// hashes it: every place a password is set (invitation, change, reset) goes through here.
    pub async fn new_password_hash(
        &self,
        account: &Account,
        password: &str,
    ) -> Result<String, ApiError> {
        // Words a guesser tries first: the login, the person's names, the organisations.
        let memberships = self.directory.memberships(&account.login);
        let mut context: Vec<&str> = vec![account.login.as_str()];
        for m in &memberships {
            context.push(&m.user.spec.full_name);
            context.push(&m.organisation.spec.display_name);
        }
        let nfc = password::check_policy(password, &context)
            .map_err(|e| ApiError::of(ErrorCode::WeakPassword, e.to_string()))?;
        self.hasher.hash(nfc).await.map_err(|e| match e {
            HashError::Busy => ApiError::busy(),
            HashError::Failed => ApiError::internal(&e),
        })
    }
}

/// `POST /api/v1/me/password`: 204; every other session of the account ends, this one is
/// issued again (a new id, signed in now).
pub async fn change(
    State(st): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    SignedIn(p): SignedIn,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ChangeRequest>,
) -> Result<Response, ApiError> {
    let claims = p.session()?.clone();
    let account = st
        .prove(
            peer,
            &headers,
            &p.account,
            &req.current_password,
            None,
            false,
        )
        .await?;
    let hash = st.new_password_hash(&account, &req.new_password).await?;
    let revoked = st.clock.now();
    st.update_account(&account.id, |a| {
        a.password_hash = Some(hash.clone());
        a.end_all_sessions(revoked);
        Ok(true)
    })
    .await?;
    // A session begun after the revocation, to the millisecond.
    let now = st.clock.now_ms().max(revoked.as_millisecond() + 1);
    let fresh = claims.anew(now, now).map_err(|e| ApiError::internal(&e))?;
    st.start_session(
        &fresh,
        user_agent(&headers),
        &st.client_address(peer, &headers),
    )
    .await?;
    tracing::info!(account = %account.id, "password changed by its owner; other sessions end");
    st.audit(
        st.audit_record(Action::PasswordChanged, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::account_target(&account)),
    );
    Ok((StatusCode::NO_CONTENT, st.cookies(&fresh)).into_response())
}

/// What `POST /api/v1/password-reset` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    login: String,
}

/// The one answer to a reset request, whatever the login.
fn reset_requested() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "message": "if an account with this login can sign in, a link to choose a new password is on its way by email"
        })),
    )
        .into_response()
}

/// `POST /api/v1/password-reset`: always 202 with the same body (nothing tells whether the
/// login exists); throttled per login and per client address. An activated account with an
/// unlocked membership gets a link (mailed by the controller); an invited one has its
/// invitation.
pub async fn request(
    State(st): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<Response, ApiError> {
    let login = canonical_login(&req.login).unwrap_or_else(|_| {
        req.login
            .chars()
            .take(320)
            .collect::<String>()
            .to_lowercase()
    });
    let address = client::throttle_key(&st.client_address(peer, &headers));
    let now = st.clock.instant();
    // Each request counts: a flood of mail to one person, or a sweep of many logins from one
    // address, is slowed like guessing.
    for (throttle, key, scope) in [
        (&st.resets_by_address, address.as_str(), "reset_address"),
        (&st.resets_by_login, login.as_str(), "reset_login"),
    ] {
        match throttle.reserve(key, now) {
            Ok(attempt) => {
                attempt.failed();
            }
            Err(wait) => {
                st.metrics.throttled(scope);
                return Err(ApiError::throttled(wait));
            }
        }
    }
    let eligible = st.directory.account(&account_id(&login)).filter(|a| {
        a.is_activated()
            && st
                .directory
                .memberships(&a.login)
                .iter()
                .any(Membership::can_sign_in)
    });
    // Recorded whether the login can sign in or not (the trail may say what the answer may not).
    st.audit(
        st.audit_record(Action::PasswordResetRequested, Outcome::Success, &headers)
            .on(eligible
                .as_deref()
                .map_or_else(|| trail::login_target(&login), trail::account_target)),
    );
    if let Some(account) = eligible {
        // Recorded after the answer: the answer takes as long whether the login exists or not.
        let st = st.clone();
        tokio::spawn(async move {
            let asked = st.clock.now();
            let recorded = st
                .update_account(&account.id, |a| {
                    a.reset.requested_at = Some(asked);
                    Ok(true)
                })
                .await;
            if let Err(e) = recorded {
                tracing::warn!(
                    code = e.code.as_str(),
                    "could not record a password reset request"
                );
            }
        });
    }
    Ok(reset_requested())
}

/// What `POST /api/v1/password-reset/accept` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    token: String,
    password: String,
}

/// `POST /api/v1/password-reset/accept`: 204; the link works once, every session of the account
/// ends, MFA stays enrolled.
pub async fn accept(
    State(st): State<AuthState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<AcceptRequest>,
) -> Result<Response, ApiError> {
    let invalid = |m: &str| ApiError::of(ErrorCode::InvalidToken, m);
    let not_valid = "this link is not valid: it was used already, replaced by a newer one, or copied incompletely. Ask for a new one on the sign-in page";
    let token = req.token.trim();
    let account = st
        .directory
        .account_by_reset(&hash_token(token))
        .ok_or_else(|| invalid(not_valid))?;
    let check = |a: &Account| -> Result<(), ApiError> {
        let stored = a.reset.token_hash.as_deref().unwrap_or_default();
        if a.reset.sent_at.is_none() || !token_matches(token, stored) {
            return Err(invalid(not_valid));
        }
        match a.reset.expires_at {
            Some(at) if at > st.clock.now() => Ok(()),
            Some(at) => Err(invalid(&format!(
                "this link expired at {at}. Ask for a new one on the sign-in page"
            ))),
            None => Err(invalid(not_valid)),
        }
    };
    check(&account)?;
    let hash = st.new_password_hash(&account, &req.password).await?;
    st.update_account(&account.id, |a| {
        // Single use: on a conflict the account is read again and the token checked again.
        check(a)?;
        a.password_hash = Some(hash.clone());
        // The link is used up; how many went out this hour still counts.
        a.reset = PasswordReset {
            sent_recent: std::mem::take(&mut a.reset.sent_recent),
            ..PasswordReset::default()
        };
        a.locked_until = None;
        // A new password ends the locks of guessing, of the password and of the code alike.
        a.guesses.clear();
        a.end_all_sessions(st.clock.now());
        Ok(true)
    })
    .await?;
    tracing::info!(account = %account.id, "password reset with an emailed link; every session ends");
    st.audit(
        st.audit_record(Action::PasswordResetCompleted, Outcome::Success, &headers)
            .by(trail::person(&account, None))
            .on(trail::account_target(&account)),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The client's user agent, as the session record shows it.
pub fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
