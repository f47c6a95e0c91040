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
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use usher_crds::login::canonical_login;
use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Uuid, Webauthn,
};

use super::login::{Proof, signing_into};
use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::{
    account::{
        Account,
        guesses::Factor,
        passkeys::{PasskeyRecord, Refused},
    },
    auth::{
        device,
        directory::Membership,
        error::{ApiError, ErrorCode, JsonBody},
        passkey::{self, CEREMONY_MS, Ceremony, Sealed, challenge_hash},
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

    /// `body` with the ceremony cookie of `ceremony` (challenge `challenge`).
    fn with_ceremony(
        &self,
        body: serde_json::Value,
        ceremony: Ceremony,
        challenge: &[u8],
    ) -> Result<Response, ApiError> {
        let sealed = Sealed {
            ceremony,
            challenge: challenge_hash(challenge),
            expires_ms: self.clock.now_ms().saturating_add(CEREMONY_MS),
        };
        let cookie = passkey::cookie(&self.keys.seal, &sealed, self.settings.secure())
            .ok_or_else(|| ApiError::internal(&"cannot seal the passkey ceremony"))?;
        let mut res = Json(body).into_response();
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
    let user = match &p.account.passkeys.user {
        Some(u) => Uuid::parse_str(u).map_err(|e| ApiError::internal(&e))?,
        None => Uuid::from_bytes(random_bytes::<16>().map_err(|e| ApiError::internal(&e))?),
    };
    let exclude = p
        .account
        .passkeys
        .keys
        .iter()
        .filter_map(|k| URL_SAFE_NO_PAD.decode(&k.id).ok())
        .collect::<Vec<_>>();
    let name = p.membership.user.spec.full_name.clone();
    let (ccr, state) = webauthn
        .start_passkey_registration(user, &p.account.login, &name, Some(exclude))
        .map_err(|e| ApiError::internal(&e))?;
    let challenge = ccr.public_key.challenge.to_vec();
    let mut body = serde_json::to_value(&ccr).map_err(|e| ApiError::internal(&e))?;
    // A passkey signs in without a login typed: the credential must be discoverable.
    body["publicKey"]["authenticatorSelection"]["residentKey"] = "required".into();
    body["publicKey"]["authenticatorSelection"]["requireResidentKey"] = true.into();
    let ceremony = Ceremony::Register {
        account: p.account.id.clone(),
        sid,
        user: user.to_string(),
        state,
    };
    let res = st.with_ceremony(body, ceremony, &challenge)?;
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
    let Ceremony::Register {
        account,
        sid: started_by,
        user,
        state,
    } = sealed.ceremony
    else {
        return Err(expired());
    };
    if account != p.account.id || started_by != sid {
        return Err(expired());
    }
    let key: Passkey = webauthn
        .finish_passkey_registration(&req.credential, &state)
        .map_err(|e| {
            tracing::info!(error = %e, "a passkey registration was refused");
            invalid_passkey()
        })?;
    let id = URL_SAFE_NO_PAD.encode(key.cred_id());
    let credential = serde_json::to_value(&key).map_err(|e| ApiError::internal(&e))?;
    let now = st.clock.now();
    let record = PasskeyRecord {
        id: id.clone(),
        name: req.name,
        created_at: now,
        last_used_at: None,
        credential,
    };
    let mut name = String::new();
    st.update_account(&p.account.id, |a| {
        let now_ms = now.as_millisecond();
        a.passkeys
            .spend(&sealed.challenge, sealed.expires_ms, now_ms)
            .map_err(|_| expired())?;
        a.passkeys.add(record.clone()).map_err(|r| match r {
            Refused::Full => ApiError::of(
                ErrorCode::TooManyPasskeys,
                format!(
                    "an account has at most {} passkeys: remove one first",
                    crate::account::passkeys::MAX_PASSKEYS
                ),
            ),
            _ => ApiError::of(ErrorCode::Conflict, "this passkey is added already"),
        })?;
        a.passkeys.user.get_or_insert_with(|| user.clone());
        name = a
            .passkeys
            .keys
            .last()
            .map(|k| k.name.clone())
            .unwrap_or_default();
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
        .and_then(|l| st.directory.account(&crate::account::account_id(&l)))
        .filter(|a| a.passkeys.any());
    let keys: Vec<Passkey> = account
        .as_ref()
        .map(|a| {
            a.passkeys
                .keys
                .iter()
                .filter_map(|k| serde_json::from_value(k.credential.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let (rcr, ceremony) = match (account, keys.is_empty()) {
        (Some(a), false) => {
            let (rcr, state) = webauthn
                .start_passkey_authentication(&keys)
                .map_err(|e| ApiError::internal(&e))?;
            (
                rcr,
                Ceremony::Login {
                    account: a.id.clone(),
                    state,
                },
            )
        }
        _ => {
            let (rcr, state) = webauthn
                .start_discoverable_authentication()
                .map_err(|e| ApiError::internal(&e))?;
            (rcr, Ceremony::Discover { state })
        }
    };
    let challenge = rcr.public_key.challenge.to_vec();
    let body = serde_json::to_value(&rcr).map_err(|e| ApiError::internal(&e))?;
    st.with_ceremony(body, ceremony, &challenge)
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
    // This ceremony was answered already (the write below checks again, at the write).
    if account.passkeys.spent.contains_key(&sealed.challenge) {
        reserved.cancel();
        return Err(expired());
    }
    let verdict = verify(webauthn, &account, &req.credential, sealed.ceremony);
    let Some((record_id, result)) = verdict else {
        st.sign_in_failed(reserved, &login_key, Some(&account), Factor::Code)
            .await;
        st.metrics.login("invalid_passkey");
        return Err(invalid_passkey());
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
            a.passkeys
                .spend(&sealed.challenge, sealed.expires_ms, now.as_millisecond())
                .map_err(|_| expired())?;
            let record = a.passkeys.get(&record_id).ok_or_else(invalid_passkey)?;
            let mut key: Passkey = serde_json::from_value(record.credential.clone())
                .map_err(|e| ApiError::internal(&e))?;
            key.update_credential(&result);
            let credential = serde_json::to_value(&key).map_err(|e| ApiError::internal(&e))?;
            a.passkeys
                .used(&record_id, credential, now)
                .map_err(|_| invalid_passkey())?;
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
    let kind = if result.backup_eligible() {
        "swk"
    } else {
        "hwk"
    };
    let mut res = st
        .open_session(
            &account,
            &membership,
            &headers,
            &address,
            Proof {
                mfa: true,
                passkey: Some(kind),
            },
            device.is_none(),
        )
        .await?;
    res.headers_mut()
        .append(header::SET_COOKIE, passkey::clear(st.settings.secure()));
    Ok(res)
}

/// The passkey of `account` that `credential` answers `ceremony` with, and the result; `None`
/// when it does not prove itself (another account's credential, a foreign origin or RP ID, a
/// bad signature, a counter gone backwards, no user verification).
fn verify(
    webauthn: &Webauthn,
    account: &Account,
    credential: &PublicKeyCredential,
    ceremony: Ceremony,
) -> Option<(String, AuthenticationResult)> {
    let id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
    let record = account.passkeys.get(&id)?;
    let key: Passkey = serde_json::from_value(record.credential.clone()).ok()?;
    let result = match ceremony {
        Ceremony::Login { state, .. } => webauthn.finish_passkey_authentication(credential, &state),
        Ceremony::Discover { state } => {
            webauthn.finish_discoverable_authentication_v2(credential, state, &key)
        }
        Ceremony::Register { .. } => return None,
    };
    match result {
        Ok(r) if r.user_verified() && r.cred_id() == key.cred_id() => Some((id, r)),
        Ok(_) => None,
        Err(e) => {
            tracing::info!(account = %account.id, error = %e, "a passkey sign-in was refused");
            None
        }
    }
}
