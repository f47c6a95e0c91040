//! Sign-in (password, then a TOTP code when enrolled) with throttling per login and per client
//! address and the soft lock in the account, and sign-out (this session, or everywhere).

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Json,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use usher_crds::login::canonical_login;

use crate::audit::{Action, Outcome};
use crate::auth::trail;
use crate::{
    account::{
        Account, account_id,
        guesses::{self, Factor},
    },
    auth::{
        client, device,
        directory::{Membership, Sees},
        error::{ApiError, ErrorCode, JsonBody},
        handlers::password::user_agent,
        principal::Via,
        session::Claims,
        state::AuthState,
        throttle::{Attempt, Throttle},
    },
    password::{self, Verified},
};

/// The attempts one sign-in reserved before any hashing: per device, for a client presenting a
/// device cookie for the login; else per client address and per login.
pub struct Reserved {
    attempts: Vec<Attempt>,
    /// True when a device cookie for the login was presented.
    pub device: bool,
}

impl Reserved {
    /// The sign-in failed; the failures of the login (or device) so far.
    pub fn failed(mut self) -> u32 {
        let last = self.attempts.pop().map_or(0, Attempt::failed);
        for a in self.attempts.drain(..) {
            a.failed();
        }
        last
    }

    /// The sign-in succeeded: the failures are forgotten.
    pub fn succeeded(self) {
        for a in self.attempts {
            a.succeeded();
        }
    }

    /// No verdict was given: nothing counts.
    pub fn cancel(self) {
        for a in self.attempts {
            a.cancel();
        }
    }
}

impl AuthState {
    /// Reserves a sign-in of `login_key` from `address` (with the device id of a device cookie
    /// valid for that login, if presented), or the 429 to answer. Known and unknown logins get
    /// the same answer.
    pub fn reserve_sign_in(
        &self,
        login_key: &str,
        address: &str,
        device: Option<&str>,
        now: Instant,
    ) -> Result<Reserved, ApiError> {
        let keys: Vec<(&Throttle, String, &str)> = match device {
            Some(d) => vec![(&self.by_device, format!("{login_key}\n{d}"), "device")],
            None => vec![
                (&self.by_address, client::throttle_key(address), "address"),
                (&self.by_login, login_key.to_owned(), "login"),
            ],
        };
        let mut attempts = Vec::with_capacity(keys.len());
        for (throttle, key, scope) in keys {
            match throttle.reserve(&key, now) {
                Ok(a) => attempts.push(a),
                Err(wait) => {
                    for a in attempts {
                        a.cancel();
                    }
                    self.metrics.throttled(scope);
                    self.metrics.login("throttled");
                    return Err(ApiError::throttled(wait));
                }
            }
        }
        Ok(Reserved {
            attempts,
            device: device.is_some(),
        })
    }

    /// Counts a failed sign-in with `factor`: in the account (past [`guesses::LIMIT`] in a row,
    /// that factor stops until a password reset or the platform operator), and in the
    /// throttles, where past the limit an account known here gets a soft lock every replica
    /// honours (clients with a device cookie for the login are not held by it).
    pub async fn sign_in_failed(
        &self,
        reserved: Reserved,
        login_key: &str,
        account: Option<&Account>,
        factor: Factor,
    ) {
        let device = reserved.device;
        let failures = reserved.failed();
        let soft_lock = !device && failures >= self.settings.soft_lock_after;
        if soft_lock {
            // Unknown logins are locked here alike, for as long: the answer says nothing of
            // whether a login exists.
            self.by_login.lock_key(login_key, self.clock.instant());
        }
        let Some(account) = account else {
            return;
        };
        if factor == Factor::Password {
            // Counted in the background: the answer to a wrong password must not wait for an
            // account write that an unknown login's answer never waits for (its timing would
            // tell them apart). The throttles above already hold this replica.
            let st = self.clone();
            let id = account.id.clone();
            tokio::spawn(async move { st.count_failure(&id, factor, soft_lock).await });
        } else {
            // A wrong second factor comes after the right password: nothing left to hide.
            self.count_failure(&account.id, factor, soft_lock).await;
        }
    }

    /// Records a failed sign-in with `factor` in account `id` (and the soft lock).
    async fn count_failure(&self, id: &str, factor: Factor, soft_lock: bool) {
        let now = self.clock.now();
        let until = now
            .checked_add(SignedDuration::try_from(self.settings.soft_lock).unwrap_or_default())
            .unwrap_or(now);
        let mut locked_factor = false;
        let written = self
            .update_account(id, |a| {
                locked_factor = a.guesses.failed(factor, now);
                if soft_lock {
                    a.locked_until = Some(until);
                }
                Ok(true)
            })
            .await;
        match written {
            Ok(_) => {
                if soft_lock {
                    // The account holds the lock from now on, for every replica; this one keeps
                    // its own too, as it does for an unknown login, so that here as well the two
                    // are answered alike.
                    tracing::warn!(account = %id, until = %until, "soft lock after repeated failed logins");
                }
                if locked_factor {
                    tracing::warn!(account = %id, ?factor, "sign-in with this factor locked after {} failures in a row", guesses::LIMIT);
                }
            }
            Err(e) => tracing::warn!(code = e.code.as_str(), "could not count a failed sign-in"),
        }
    }

    /// Refuses a sign-in with `factor` past [`guesses::LIMIT`] failures in a row.
    pub fn factor_open(&self, account: &Account, factor: Factor) -> Result<(), ApiError> {
        if !account.guesses.locked(factor) {
            return Ok(());
        }
        Err(match factor {
            Factor::Password => ApiError::of(
                ErrorCode::SignInLocked,
                "sign-in with this password is locked after too many failed attempts: choose a new password (Forgot password?) or ask the platform team",
            ),
            Factor::Code => ApiError::of(
                ErrorCode::CodeLocked,
                "two-factor sign-in is locked after too many wrong codes: choose a new password (Forgot password?) or ask the platform team to reset it",
            ),
        })
    }

    /// True when sign-in to `account` is held for this client: its soft lock (a client with a
    /// device cookie for the login is not held by it), or its password stopped after too many
    /// failures in a row.
    pub fn held(&self, reserved: &Reserved, account: &Account) -> bool {
        let soft = !reserved.device && soft_locked(account, self.clock.now()).is_some();
        soft || account.guesses.locked(Factor::Password)
    }

    /// The 429 for a soft-locked account, for a client without a device cookie for it (where
    /// the caller is signed in already, so the account's existence is no secret).
    pub fn soft_lock(&self, reserved: &Reserved, account: Option<&Account>) -> Option<ApiError> {
        if reserved.device {
            return None;
        }
        let left = account.and_then(|a| soft_locked(a, self.clock.now()))?;
        self.metrics.throttled("soft_lock");
        self.metrics.login("locked");
        Some(ApiError::throttled(left))
    }
}

fn soft_locked(account: &Account, now: Timestamp) -> Option<std::time::Duration> {
    let until = account.locked_until?;
    let left = until.duration_since(now);
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

/// 401 `mfa_required`, with the second factors `account` has (`totp`, `passkey`).
pub fn mfa_required(account: &Account) -> ApiError {
    let mut e = ApiError::of(
        ErrorCode::MfaRequired,
        if account.totp_secret.is_some() {
            "enter the 6-digit code from your authenticator app, or use your passkey"
        } else {
            "use your passkey to finish signing in"
        },
    );
    if account.totp_secret.is_some() {
        e.methods.push("totp");
    }
    if account.passkeys.any() {
        e.methods.push("passkey");
    }
    e
}

/// 403 `not_a_member`: not an active member of `org`.
pub fn not_a_member(org: &str) -> ApiError {
    ApiError::of(
        ErrorCode::NotAMember,
        format!("you are not an active member of organisation {org:?}"),
    )
}

/// 401 `invalid_credentials`, the one answer for every failed sign-in.
pub fn invalid_credentials() -> ApiError {
    ApiError::of(
        ErrorCode::InvalidCredentials,
        "the login or password is wrong, or this account cannot sign in",
    )
}

/// `POST /api/v1/login`.
pub async fn login(
    st: State<AuthState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let (state, seen) = (st.0.clone(), headers.clone());
    let login = body.0.login.chars().take(320).collect::<String>();
    let answer = sign_in(st, peer, headers, body).await;
    if let Err(e) = &answer {
        let action = if e.code == ErrorCode::TooManyAttempts {
            Action::LoginThrottled
        } else {
            Action::LoginFailed
        };
        // A second factor still to come is no failure, nor a server too busy to check.
        if !matches!(e.code, ErrorCode::MfaRequired | ErrorCode::Busy) {
            state.audit(
                state
                    .audit_record(action, Outcome::Denied, &seen)
                    .on(trail::login_target(&login))
                    .because(e.code.as_str()),
            );
        }
    }
    // A refusal that comes before any hashing (throttled, or the hash queue full) is cheap to
    // make, so a flood would get them as fast as it can ask and crowd out every other request:
    // it waits a moment, which a person retrying never notices.
    if let Err(e) = &answer
        && matches!(e.code, ErrorCode::TooManyAttempts | ErrorCode::Busy)
    {
        tokio::time::sleep(REFUSAL_DELAY).await;
    }
    answer
}

/// How long a throttled or busy sign-in waits before its answer.
const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

async fn sign_in(
    State(st): State<AuthState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
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
    let address = st
        .settings
        .trusted_proxies
        .client(peer.ip(), &headers)
        .to_string();
    let id = account_id(&login_key);
    let device = device::presented(&st.keys.device, &headers, &id, st.clock.now_s());
    let reserved =
        st.reserve_sign_in(&login_key, &address, device.as_deref(), st.clock.instant())?;
    let account = canonical.as_deref().and_then(|_| st.directory.account(&id));
    // A held login (soft-locked in its account, or its password stopped after too many
    // failures in a row) is answered as a wrong password is, after the same dummy hash: a 429
    // from a replica that counted nothing would tell it from an unknown login, whose lock is
    // only in the memory of the replica that counted.
    let held = |a: &Account| st.held(&reserved, a);
    let active: Vec<Membership> = account
        .as_ref()
        .map(|a| {
            st.directory
                .memberships(&a.login)
                .into_iter()
                .filter(Membership::can_sign_in)
                .collect()
        })
        .unwrap_or_default();
    // Unknown, invited and wholly locked logins are checked against the dummy hash: the same
    // answer in about the same time as a wrong password.
    let stored = account
        .as_ref()
        .filter(|a| a.is_activated() && !active.is_empty() && !held(a))
        .and_then(|a| a.password_hash.clone());
    // No password longer than the policy allows was ever stored.
    let password = if req.password.len() > 4 * password::MAX_CHARS {
        String::new()
    } else {
        unicode_normalization::UnicodeNormalization::nfc(req.password.as_str()).collect()
    };
    // The hash the verdict is about: a rehash replaces this one only.
    let verified_hash = stored.clone();
    let verified = match st.hasher.verify(stored, password.clone()).await {
        Ok(v) => v,
        Err(_) => {
            reserved.cancel();
            st.metrics.login("busy");
            return Err(ApiError::busy());
        }
    };
    // Waiting for a hash thread may have outlasted a soft lock written meanwhile (here or on
    // another replica): it holds this attempt too, whatever the verdict.
    let account = account.and_then(|a| st.directory.account(&a.id).or(Some(a)));
    let is_held = account.as_deref().is_some_and(held);
    let verified = if is_held { Verified::Wrong } else { verified };
    let (Verified::Ok { rehash }, Some(mut account)) = (verified, account.clone()) else {
        // A held login's failure is counted as an unknown login's: here, not in the account.
        let counted = account.as_deref().filter(|_| !is_held);
        st.sign_in_failed(reserved, &login_key, counted, Factor::Password)
            .await;
        st.metrics.login(if is_held {
            "locked"
        } else {
            "invalid_credentials"
        });
        return Err(invalid_credentials());
    };
    let membership = match signing_into(&active, &account, req.organisation.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            reserved.cancel();
            return Err(e);
        }
    };
    if st.settings.mfa_enabled && account.mfa_enrolled() {
        let code = req
            .code
            .as_deref()
            .filter(|_| account.totp_secret.is_some());
        let Some(code) = code else {
            reserved.cancel();
            st.metrics.login("mfa_required");
            return Err(mfa_required(&account));
        };
        match st.accept_code(&account.id, code, false).await {
            Ok(a) => account = Arc::new(a),
            Err(e) => {
                if e.code == ErrorCode::InvalidCode {
                    st.sign_in_failed(reserved, &login_key, Some(&account), Factor::Code)
                        .await;
                    st.metrics.login("invalid_code");
                } else {
                    reserved.cancel();
                }
                return Err(e);
            }
        }
    }
    reserved.succeeded();
    if rehash && let Some(verified_hash) = verified_hash {
        let st2 = st.clone();
        let id = account.id.clone();
        tokio::spawn(async move {
            if let Ok(hash) = st2.hasher.hash(password).await {
                let _ = st2
                    .update_account(&id, |a| Ok(a.rehash(&verified_hash, &hash)))
                    .await;
            }
        });
    }
    st.metrics.login("ok");
    let mfa = st.settings.mfa_enabled && account.totp_secret.is_some();
    st.open_session(
        &account,
        &membership,
        &headers,
        &address,
        Proof { mfa, passkey: None },
        device.is_none(),
    )
    .await
}

/// What a sign-in proved, beside the login: a second factor (TOTP, or a passkey with user
/// verification), and which kind of passkey (RFC 8176 `hwk` device-bound, `swk` synced).
pub struct Proof {
    /// A second factor was shown.
    pub mfa: bool,
    /// `hwk` or `swk` for a passkey sign-in.
    pub passkey: Option<&'static str>,
}

impl AuthState {
    /// A complete sign-in of `account` acting through `membership`: the session recorded, its
    /// cookies, the `/api/v1/me` body, and (`new_device`) a device cookie for this browser.
    pub async fn open_session(
        &self,
        account: &Account,
        membership: &Membership,
        headers: &HeaderMap,
        address: &str,
        proof: Proof,
        new_device: bool,
    ) -> Result<Response, ApiError> {
        let now = self.clock.now_ms();
        let mut claims = Claims::new(
            &account.id,
            account.uid.as_deref().unwrap_or_default(),
            membership.acting(),
            now,
            now,
        )
        .map_err(|e| ApiError::internal(&e))?;
        claims.mfa = proof.mfa;
        claims.passkey = proof.passkey.map(str::to_owned);
        self.start_session(&claims, user_agent(headers), address)
            .await?;
        let restricted = self.enrolment_required(account, membership);
        self.audit(
            self.audit_record(Action::LoginSucceeded, Outcome::Success, headers)
                .by(trail::person(account, Some(membership.org_name())))
                .on(trail::account_target(account))
                .in_organisation(membership.org_name()),
        );
        let body = self
            .directory
            .me(account, membership, restricted, Sees::EveryMembership);
        let mut res = (self.cookies(&claims), Json(body)).into_response();
        // A complete sign-in: this browser is a device of this login from now on.
        if new_device
            && let Ok(token) = device::issue(&self.keys.device, &account.id, self.clock.now_s())
        {
            res.headers_mut().append(
                header::SET_COOKIE,
                device::cookie(&token, self.settings.secure()),
            );
        }
        Ok(res)
    }
}

#[derive(Deserialize)]
pub struct LogoutQuery {
    /// Ends every session of the account (the person's own Kill Session).
    #[serde(default)]
    everywhere: bool,
}

pub async fn logout(
    State(st): State<AuthState>,
    Query(q): Query<LogoutQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Ok(p) = st.authenticate_session(&headers)
        && let Via::Session { claims, .. } = &p.via
    {
        st.audit(
            st.audit_record(Action::SessionEnded, Outcome::Success, &headers)
                .by(trail::actor(&p))
                .on(trail::account_target(&p.account)),
        );
        if q.everywhere {
            st.update_account(&claims.acct, |a| {
                a.end_all_sessions(st.clock.now());
                Ok(true)
            })
            .await?;
        } else {
            st.end_session(claims).await?;
        }
    }
    Ok((StatusCode::NO_CONTENT, st.cookie_scope().clear()).into_response())
}

/// The membership a sign-in of `account` acts through: the organisation it names (one of
/// `active`, else 403 `not_a_member`), or where it lands ([`landing`]).
pub fn signing_into(
    active: &[Membership],
    account: &Account,
    named: Option<&str>,
) -> Result<Membership, ApiError> {
    match named {
        Some(org) => active
            .iter()
            .find(|m| m.org_name() == org)
            .cloned()
            .ok_or_else(|| not_a_member(org)),
        None => landing(active, account).ok_or_else(invalid_credentials),
    }
}

/// Where a sign-in that names no organisation lands: the one the person last used, else the one
/// they joined first. Never merely the alphabetically first: an organisation that links the
/// login later (without the person's say) must not become their default, and see their address
/// and browser in its sessions list.
fn landing(active: &[Membership], account: &Account) -> Option<Membership> {
    account
        .last_organisation
        .as_ref()
        .and_then(|last| active.iter().find(|m| m.org_name() == *last))
        .or_else(|| {
            active.iter().min_by_key(|m| {
                (
                    m.user.metadata.creation_timestamp.clone().map(|t| t.0),
                    m.org_name(),
                )
            })
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use usher_crds::{Organisation, OrganisationSpec, User, UserSpec};

    use super::*;

    fn joined(org: &str, at: &str) -> Membership {
        let mut user = User::new("person", UserSpec::default());
        user.metadata.creation_timestamp = Some(Time(at.parse().unwrap()));
        Membership {
            user: Arc::new(user),
            organisation: Arc::new(Organisation::new(org, OrganisationSpec::default())),
            profile: None,
        }
    }

    #[test]
    fn a_sign_in_lands_where_the_person_was_last_else_where_they_joined_first() {
        // Sorted by name, as the directory lists them: "aaa" linked the login later.
        let active = [
            joined("aaa-linked-later", "2026-12-01T00:00:00Z"),
            joined("zeta", "2026-11-01T00:00:00Z"),
        ];
        let mut account = Account::new("person@example.com");
        assert_eq!(landing(&active, &account).unwrap().org_name(), "zeta");
        account.last_organisation = Some("aaa-linked-later".into());
        assert_eq!(
            landing(&active, &account).unwrap().org_name(),
            "aaa-linked-later"
        );
        // An organisation left since is no landing place.
        account.last_organisation = Some("gone".into());
        assert_eq!(landing(&active, &account).unwrap().org_name(), "zeta");
        assert!(landing(&[], &account).is_none());
    }
}
