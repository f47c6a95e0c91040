//! Passkeys (DESIGN.md, "Passkeys"): adding, listing and removing one's own (a recent sign-in
//! for changes; no route lets anyone add one for somebody else), and signing in with one: as
//! the second factor after the password, or without a password with a discoverable credential.
//! The ceremonies and the relying party are `auth::passkey`; what the account keeps is
//! `account::passkeys`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use usher_crds::login::canonical_login;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Uuid, Webauthn};

use super::login::{Proof, signing_into};
use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::{
    account::{guesses::Factor, passkeys::Refused},
    auth::{
        device,
        directory::Membership,
        error::{ApiError, ErrorCode, JsonBody},
        passkey::{
            self, Ceremony,
            ceremony::{self, Refusal, Started},
        },
        principal::Principal,
        state::AuthState,
    },
    crypto::random_bytes,
};

fn unavailable(why: &str) -> ApiError {
    ApiError::of(ErrorCode::PasskeysUnavailable, why.to_owned())
}

fn expired() -> ApiError {
    ApiError::of(
        ErrorCode::CeremonyExpired,
        "this passkey request is unknown, expired or finished already: start again",
    )
}

/// The answer to a refused ceremony.
fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Expired => expired(),
        Refusal::Invalid => invalid_passkey(),
    }
}

fn invalid_passkey() -> ApiError {
    ApiError::of(
        ErrorCode::InvalidPasskey,
        "the passkey was not accepted: it is not one of this account, or its answer is not valid for this site",
    )
}

impl AuthState {
    fn webauthn(&self) -> Result<&Webauthn, ApiError> {
        self.passkeys.get().map_err(unavailable)
    }

    /// The session that may change its own passkeys: signed in with a session (not a key or
    /// token), recently.
    fn passkey_owner(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let p = self.authenticate(headers, false)?;
        p.recently_authenticated(self.settings.reauth_window, self.clock.now_ms())?;
        Ok(p)
    }

    /// The options of `started`, with its ceremony sealed in the cookie.
    fn with_ceremony(&self, started: Started) -> Result<Response, ApiError> {
        let cookie = passkey::cookie(&self.keys.seal, &started.sealed, self.settings.secure())
            .ok_or_else(|| ApiError::internal(&"cannot seal the passkey ceremony"))?;
        let mut res = Json(started.options).into_response();
        res.headers_mut().append(header::SET_COOKIE, cookie);
        Ok(res)
    }
}

/// `POST /api/v1/me/passkeys/register/start`: creation options (`{publicKey: …}`) for a
/// discoverable credential with user verification; needs a recent sign-in.
pub async fn register_start(
    State(st): State<AuthState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = st.passkey_owner(&headers)?;
    let sid = p.session()?.sid.clone();
    let webauthn = st.webauthn()?;
    let new_user = Uuid::from_bytes(random_bytes::<16>().map_err(|e| ApiError::internal(&e))?);
    let started = ceremony::start_registration(
        webauthn,
        &p.account,
        &sid,
        &p.membership.user.spec.full_name,
        new_user,
        st.clock.now_ms(),
    )
    .map_err(|e| ApiError::internal(&e))?;
    let res = st.with_ceremony(started)?;
    Ok(p.respond(res))
}

/// What `POST /api/v1/me/passkeys/register/finish` takes.
#[derive(Deserialize)]
pub struct RegisterFinish {
    name: String,
    credential: RegisterPublicKeyCredential,
}

/// A passkey as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyView {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<Timestamp>,
}

/// `POST /api/v1/me/passkeys/register/finish {name, credential}`: 201 `{id, name}`.
pub async fn register_finish(
    State(st): State<AuthState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RegisterFinish>,
) -> Result<Response, ApiError> {
    let p = st.passkey_owner(&headers)?;
    let sid = p.session()?.sid.clone();
    let webauthn = st.webauthn()?;
    let sealed =
        passkey::presented(&st.keys.seal, &headers, st.clock.now_ms()).ok_or_else(expired)?;
    let registered =
        ceremony::finish_registration(webauthn, &sealed, &p.account.id, &sid, &req.credential)
            .map_err(refused)?;
    let now = st.clock.now();
    let (mut id, mut name) = (String::new(), String::new());
    st.update_account(&p.account.id, |a| {
        (id, name) =
            ceremony::add(&mut a.passkeys, &sealed, &registered, &req.name, now).map_err(|r| {
                match r {
                    Refused::ChallengeUsed => expired(),
                    Refused::Full => ApiError::of(
                        ErrorCode::TooManyPasskeys,
                        format!(
                            "an account has at most {} passkeys: remove one first",
                            crate::account::passkeys::MAX_PASSKEYS
                        ),
                    ),
                    Refused::Duplicate | Refused::Unknown => {
                        ApiError::of(ErrorCode::Conflict, "this passkey is added already")
                    }
                }
            })?;
        Ok(true)
    })
    .await?;
    tracing::info!(account = %p.account.id, "a passkey was added");
    st.audit(
        st.audit_record(Action::PasskeyAdded, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::account_target(&p.account)),
    );
    let mut res = (
        StatusCode::CREATED,
        Json(PasskeyView {
            id,
            name,
            created_at: None,
            last_used_at: None,
        }),
    )
        .into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, passkey::clear(st.settings.secure()));
    Ok(p.respond(res))
}

/// `GET /api/v1/me/passkeys`: `[{id, name, createdAt, lastUsedAt}]`.
pub async fn list(State(st): State<AuthState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let p = st.authenticate(&headers, false)?;
    p.session()?;
    let list: Vec<PasskeyView> = p
        .account
        .passkeys
        .keys
        .iter()
        .map(|k| PasskeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            created_at: Some(k.created_at),
            last_used_at: k.last_used_at,
        })
        .collect();
    Ok(p.respond(Json(list)))
}

/// `DELETE /api/v1/me/passkeys/{id}`: 204; needs a recent sign-in. The last second factor of
/// someone whose organisation requires one stays.
pub async fn remove(
    State(st): State<AuthState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = st.passkey_owner(&headers)?;
    if p.account.passkeys.get(&id).is_none() {
        return Err(ApiError::of(ErrorCode::NotFound, "no such passkey"));
    }
    let last_factor = p.account.totp_secret.is_none() && p.account.passkeys.keys.len() == 1;
    if last_factor
        && let Some(m) = st
            .directory
            .memberships(&p.account.login)
            .into_iter()
            .find(|m| m.organisation.requires_mfa())
    {
        return Err(ApiError::of(
            ErrorCode::MfaRequiredByOrganisation,
            format!(
                "organisation {} requires two-factor authentication: add another passkey or TOTP before removing this one",
                m.organisation.spec.display_name
            ),
        ));
    }
    st.update_account(&p.account.id, |a| {
        a.passkeys
            .remove(&id)
            .map_err(|_| ApiError::of(ErrorCode::NotFound, "no such passkey"))?;
        Ok(true)
    })
    .await?;
    tracing::info!(account = %p.account.id, "a passkey was removed");
    st.audit(
        st.audit_record(Action::PasskeyRemoved, Outcome::Success, &headers)
            .by(trail::actor(&p))
            .on(trail::account_target(&p.account)),
    );
    Ok(p.respond(StatusCode::NO_CONTENT))
}

/// What `POST /api/v1/login/passkey/start` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    #[serde(default)]
    login: Option<String>,
}

/// `POST /api/v1/login/passkey/start {login?}`: request options (`{publicKey: …}`): for the
/// passkeys of `login` (the second factor after its password), or, without a login (or for
/// one without passkeys), for any discoverable passkey.
pub async fn login_start(
    State(st): State<AuthState>,
    JsonBody(req): JsonBody<LoginStart>,
) -> Result<Response, ApiError> {
    let webauthn = st.webauthn()?;
    let account = req
        .login
        .as_deref()
        .and_then(|l| canonical_login(l).ok())
        .and_then(|l| st.directory.account(&crate::account::account_id(&l)));
    let started = ceremony::start_sign_in(webauthn, account.as_deref(), st.clock.now_ms())
        .map_err(|e| ApiError::internal(&e))?;
    st.with_ceremony(started)
}

/// What `POST /api/v1/login/passkey/finish` takes.
#[derive(Deserialize)]
pub struct LoginFinish {
    credential: PublicKeyCredential,
    #[serde(default)]
    organisation: Option<String>,
}

/// `POST /api/v1/login/passkey/finish {credential, organisation?}`: 200 with the session body
/// and cookie, as a complete sign-in. A passkey that does not prove itself counts like a wrong
/// code, and is throttled like a sign-in.
pub async fn login_finish(
    State(st): State<AuthState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: JsonBody<LoginFinish>,
) -> Result<Response, ApiError> {
    let seen = headers.clone();
    let answer = finish(&st, peer, headers, body).await;
    if let Err(e) = &answer
        && matches!(
            e.code,
            ErrorCode::InvalidPasskey | ErrorCode::TooManyAttempts | ErrorCode::CodeLocked
        )
    {
        let action = if e.code == ErrorCode::TooManyAttempts {
            Action::LoginThrottled
        } else {
            Action::LoginFailed
        };
        st.audit(
            st.audit_record(action, Outcome::Denied, &seen)
                .because(e.code.as_str()),
        );
    }
    answer
}

async fn finish(
    st: &AuthState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LoginFinish>,
) -> Result<Response, ApiError> {
    let webauthn = st.webauthn()?;
    let sealed =
        passkey::presented(&st.keys.seal, &headers, st.clock.now_ms()).ok_or_else(expired)?;
    let address = st
        .settings
        .trusted_proxies
        .client(peer.ip(), &headers)
        .to_string();
    // The account the credential claims: the one the ceremony was for, or its user handle's.
    let account = match &sealed.ceremony {
        Ceremony::Login { account, .. } => st.directory.account(account),
        Ceremony::Discover { .. } => webauthn
            .identify_discoverable_authentication(&req.credential)
            .ok()
            .and_then(|(user, _)| st.directory.account_by_passkey_user(&user.to_string())),
        Ceremony::Register { .. } => return Err(expired()),
    };
    let login_key = account
        .as_ref()
        .map_or_else(|| format!("passkey@{address}"), |a| a.login.clone());
    let id = account.as_ref().map_or_else(String::new, |a| a.id.clone());
    let device = device::presented(&st.keys.device, &headers, &id, st.clock.now_s());
    let reserved =
        st.reserve_sign_in(&login_key, &address, device.as_deref(), st.clock.instant())?;
    let Some(account) = account.filter(|a| a.is_activated()) else {
        st.sign_in_failed(reserved, &login_key, None, Factor::Code)
            .await;
        st.metrics.login("invalid_passkey");
        return Err(invalid_passkey());
    };
    if let Some(e) = st.soft_lock(&reserved, Some(&account)) {
        reserved.cancel();
        return Err(e);
    }
    if let Err(e) = st.factor_open(&account, Factor::Code) {
        reserved.cancel();
        return Err(e);
    }
    let verified = match ceremony::finish_sign_in(webauthn, &sealed, &account, &req.credential) {
        Ok(v) => v,
        // Answered already (the write below checks again, at the write).
        Err(Refusal::Expired) => {
            reserved.cancel();
            return Err(expired());
        }
        Err(Refusal::Invalid) => {
            st.sign_in_failed(reserved, &login_key, Some(&account), Factor::Code)
                .await;
            st.metrics.login("invalid_passkey");
            return Err(invalid_passkey());
        }
    };
    let active: Vec<Membership> = st
        .directory
        .memberships(&account.login)
        .into_iter()
        .filter(Membership::can_sign_in)
        .collect();
    let membership = match signing_into(&active, &account, req.organisation.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            reserved.cancel();
            return Err(e);
        }
    };
    // Recorded: the challenge answered (once), the counter, when it was used.
    let now = st.clock.now();
    let written = st
        .update_account(&account.id, |a| {
            ceremony::record_use(&mut a.passkeys, &sealed, &verified, now).map_err(refused)?;
            a.guesses.succeeded(Factor::Code);
            Ok(true)
        })
        .await;
    let account = match written {
        Ok(a) => Arc::new(a),
        Err(e) => {
            reserved.cancel();
            return Err(e);
        }
    };
    reserved.succeeded();
    st.metrics.login("ok");
    let mut res = st
        .open_session(
            &account,
            &membership,
            &headers,
            &address,
            Proof {
                mfa: true,
                passkey: Some(verified.amr()),
            },
            device.is_none(),
        )
        .await?;
    res.headers_mut()
        .append(header::SET_COOKIE, passkey::clear(st.settings.secure()));
    Ok(res)
}
