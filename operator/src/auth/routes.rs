//! The auth server's HTTP API (DESIGN.md, "Auth server HTTP API").

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Json, Router,
    extract::{ConnectInfo, DefaultBodyLimit, Query, Request, State as Extract},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use k8s_openapi::{
    api::core::v1::Secret,
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, ResourceExt, api::PostParams};
use serde::Deserialize;
use usher_crds::login::canonical_login;

use super::{
    State,
    directory::Membership,
    http::{ApiError, BODY_LIMIT, JsonBody, clear_cookie, session_cookie, session_token},
    session::{self, Claims},
};
use crate::{
    account::{Account, account_id},
    apikey::ApiKey,
    apikey_secret,
    invitation::{hash_token, token_matches},
    password::{self, Verified},
    totp,
};

/// The server: every route of [`api`] behind [`layers`].
pub fn router(state: State) -> Router {
    layers(api(), state)
}

/// Wraps routes in what every request goes through: the body cap, the cross-site rule and the
/// common headers.
pub fn layers(routes: Router<State>, state: State) -> Router {
    routes
        .layer(middleware::from_fn_with_state(state.clone(), cross_site))
        .layer(middleware::from_fn(body_cap))
        .layer(middleware::map_response(common_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The routes of DESIGN.md's HTTP API and the probes.
pub fn api() -> Router<State> {
    Router::new()
        .route("/api/v1/invitations/accept", post(accept_invitation))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/organisation", post(switch_organisation))
        .route("/api/v1/me/mfa/totp", post(totp_start).delete(totp_disable))
        .route("/api/v1/me/mfa/totp/confirm", post(totp_confirm))
        .route("/api/v1/me/api-key", get(api_key_view))
        .route("/api/v1/me/api-key/renew", post(api_key_renew))
        .route("/api/v1/verify", get(verify))
        .merge(super::admin::routes())
        .merge(super::pages::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
}

async fn common_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages load only their own script, style and (QR code) data images; no framing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// Bodies announced larger than the cap are refused with 413 before any handler runs. Up to
/// 4 MiB of such a body is read and dropped first: closing a connection with unread data makes
/// the kernel reset it, and the client would see a reset instead of the 413.
async fn body_cap(req: Request, next: Next) -> Response {
    const DRAIN_LIMIT: usize = 4 << 20;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(len) = announced
        && len > BODY_LIMIT
    {
        if len <= DRAIN_LIMIT {
            let drain = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        }
        return ApiError::too_large().into_response();
    }
    next.run(req).await
}

/// State-changing requests that carry a cookie (and every login) are refused when the browser
/// says they come from another site: `Sec-Fetch-Site: cross-site` or a foreign `Origin`.
/// Requests without those headers (curl, scripts) pass.
async fn cross_site(Extract(st): Extract<State>, req: Request, next: Next) -> Response {
    let changes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if changes {
        let h = req.headers();
        let guarded = h.contains_key(header::COOKIE) || req.uri().path() == "/api/v1/login";
        let cross = h
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        // Same origin: the public URL's, or the host the browser addressed (127.0.0.1 and
        // localhost are both this server during `usher dev`).
        let scheme = if st.settings.secure() {
            "https"
        } else {
            "http"
        };
        let addressed = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|host| format!("{scheme}://{host}"));
        let foreign = h.get(header::ORIGIN).is_some_and(|o| {
            o.to_str()
                .map_or(true, |o| o != st.origin && Some(o) != addressed.as_deref())
        });
        if guarded && (cross || foreign) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                "requests from other sites cannot change anything here",
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

fn www_authenticate(error: Option<&str>) -> HeaderValue {
    let v = match error {
        Some(e) => format!("Bearer realm=\"usher\", error=\"{e}\""),
        None => "Bearer realm=\"usher\"".to_owned(),
    };
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

fn session_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "session_required",
        "API keys cannot be used here; sign in",
    )
}

fn unauthenticated(code: &'static str, message: &str, bearer_error: Option<&str>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
        .with_header(header::WWW_AUTHENTICATE, www_authenticate(bearer_error))
}

/// How a request authenticated.
pub enum Via {
    /// A session cookie; `refresh` renews its idle clock.
    Session {
        /// The session.
        claims: Claims,
        /// A Set-Cookie to send back.
        refresh: Option<HeaderValue>,
    },
    /// An API key (no MFA, no idle timeout, its own organisation only).
    Bearer,
}

/// Who is asking, and in which organisation.
pub struct Principal {
    /// The account.
    pub account: Arc<Account>,
    /// The membership acted in.
    pub membership: Membership,
    /// Session or key.
    pub via: Via,
    /// Only TOTP enrolment is open (sessions of organisations requiring MFA, past the grace).
    pub enrolment_required: bool,
}

impl Principal {
    /// `res` with the renewed session cookie, if any.
    pub fn respond(&self, res: impl IntoResponse) -> Response {
        let mut res = res.into_response();
        if let Via::Session {
            refresh: Some(cookie),
            ..
        } = &self.via
        {
            res.headers_mut().append(header::SET_COOKIE, cookie.clone());
        }
        res
    }

    fn session(&self) -> Result<&Claims, ApiError> {
        match &self.via {
            Via::Session { claims, .. } => Ok(claims),
            Via::Bearer => Err(session_required()),
        }
    }

    /// Refuses sessions that must enroll TOTP first.
    pub fn not_restricted(&self) -> Result<(), ApiError> {
        if self.enrolment_required {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_enrolment_required",
                "your organisation requires two-factor authentication: enroll TOTP in your account settings first",
            ));
        }
        Ok(())
    }
}

impl State {
    /// True when `account` acting in `m` must enroll TOTP before anything else.
    fn enrolment_required(&self, account: &Account, m: &Membership) -> bool {
        if !self.settings.mfa_enabled
            || !m.organisation.requires_mfa()
            || account.totp_secret.is_some()
        {
            return false;
        }
        let grace = m
            .organisation
            .spec
            .mfa
            .as_ref()
            .and_then(|p| p.grace_period)
            .map(|d| d.get())
            .unwrap_or_default();
        let start = account.activated_at.unwrap_or_else(Timestamp::now);
        let ends = start
            .checked_add(SignedDuration::try_from(grace).unwrap_or_default())
            .unwrap_or(start);
        Timestamp::now() >= ends
    }

    /// Authenticates a request by its API key (when `bearer_ok`) or its session cookie.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        bearer_ok: bool,
    ) -> Result<Principal, ApiError> {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            if !bearer_ok {
                return Err(session_required());
            }
            return self.authenticate_key(auth);
        }
        self.authenticate_session(headers)
    }

    fn authenticate_key(&self, auth: &HeaderValue) -> Result<Principal, ApiError> {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("send the API key as: Authorization: Bearer usk_…")
                    .with_header(
                        header::WWW_AUTHENTICATE,
                        www_authenticate(Some("invalid_request")),
                    )
            })?;
        let invalid =
            |message: &str| unauthenticated("invalid_token", message, Some("invalid_token"));
        let key = ApiKey::parse(token).map_err(|e| invalid(&e.to_string()))?;
        let m = self
            .directory
            .key_owner(&key.hash(), Timestamp::now())
            .ok_or_else(|| {
                invalid("the API key is not valid: it was renewed, revoked or never issued")
            })?;
        if !m.is_active() {
            return Err(invalid("the API key's membership is locked"));
        }
        // The cache holds logins in canonical form.
        let account = self
            .directory
            .account(&account_id(&m.user.spec.login))
            .ok_or_else(|| invalid("the API key's account does not exist yet"))?;
        Ok(Principal {
            account,
            membership: m,
            via: Via::Bearer,
            enrolment_required: false,
        })
    }

    fn authenticate_session(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let secure = self.settings.secure();
        let token = session_token(headers, secure)
            .ok_or_else(|| unauthenticated("unauthenticated", "sign in first", None))?;
        let ended = |message: &str| unauthenticated("session_ended", message, None);
        let claims = session::open(&self.keys.session, token)
            .ok_or_else(|| ended("the session is not valid; sign in again"))?;
        let now = now_ms();
        let max_ms = i64::try_from(self.settings.max_lifetime.as_millis()).unwrap_or(i64::MAX);
        let idle_s = i64::try_from(self.settings.idle_timeout.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(claims.iat) >= max_ms {
            return Err(unauthenticated(
                "session_expired",
                "the session reached its maximum lifetime; sign in again",
                None,
            ));
        }
        if now.div_euclid(1000).saturating_sub(claims.seen) >= idle_s {
            return Err(unauthenticated(
                "session_expired",
                "the session was idle too long; sign in again",
                None,
            ));
        }
        let account = self
            .directory
            .account(&claims.acct)
            .ok_or_else(|| ended("the account no longer exists"))?;
        // Kill Session and MFA reset: sessions begun before (or in the same second as) the
        // revocation end.
        if let Some(revoked) = account.sessions_revoked_at
            && claims.iat < revoked.as_second().saturating_add(1).saturating_mul(1000)
        {
            return Err(ended(
                "the session was ended by an administrator; sign in again",
            ));
        }
        if account.sessions_ended.contains_key(&claims.sid) {
            return Err(ended("the session was signed out; sign in again"));
        }
        let membership = self
            .directory
            .membership(&account.login, &claims.org)
            .ok_or_else(|| {
                ended("you are no longer a member of this organisation; sign in again")
            })?;
        // The idle clock is renewed by a new cookie once a quarter of it (at most a minute)
        // has passed, rather than on every request.
        let refresh_after = (idle_s / 4).clamp(1, 60);
        let refresh = (now.div_euclid(1000) - claims.seen >= refresh_after).then(|| {
            let renewed = Claims {
                seen: now.div_euclid(1000),
                ..claims.clone()
            };
            self.cookie(&renewed)
        });
        let enrolment_required = self.enrolment_required(&account, &membership);
        Ok(Principal {
            account,
            membership,
            via: Via::Session { claims, refresh },
            enrolment_required,
        })
    }

    fn cookie(&self, claims: &Claims) -> HeaderValue {
        let left_ms = i64::try_from(self.settings.max_lifetime.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_sub(now_ms().saturating_sub(claims.iat))
            .max(0);
        session_cookie(
            self.settings.secure(),
            &session::seal(&self.keys.session, claims),
            // Whole seconds, rounded up: a fresh session says the full lifetime.
            std::time::Duration::from_secs(
                u64::try_from(left_ms.saturating_add(999) / 1000).unwrap_or(0),
            ),
        )
    }

    /// Applies `change` to the account with id `id` and writes it with the resourceVersion it
    /// read; on a conflict it reads the account live and applies `change` again, so checks made
    /// in `change` (a TOTP step not yet used, an invitation still pending) hold at the write.
    /// `change` returns false to leave the account as it is.
    async fn update_account<F>(&self, id: &str, mut change: F) -> Result<Account, ApiError>
    where
        F: FnMut(&mut Account) -> Result<bool, ApiError>,
    {
        let mut current = match self.directory.account(id) {
            Some(a) => (*a).clone(),
            None => self.live_account(id).await?,
        };
        for _ in 0..8 {
            let mut changed = current.clone();
            if !change(&mut changed)? {
                return Ok(current);
            }
            match self.accounts.update(&changed).await? {
                Some(written) => {
                    self.directory
                        .accounts
                        .apply_own_write(written.to_secret(&self.settings.namespace));
                    return Ok(written);
                }
                None => current = self.live_account(id).await?,
            }
        }
        Err(ApiError::unavailable(&"the account kept changing"))
    }

    async fn live_account(&self, id: &str) -> Result<Account, ApiError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let secret = api
            .get_opt(&crate::account::secret_name(id))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "account_gone",
                    "the account no longer exists",
                )
            })?;
        Account::from_secret(&secret).map_err(|e| ApiError::internal(&e))
    }

    /// Checks a TOTP code of `account` against its confirmed secret (or the pending one) and
    /// records its step; a replay, here or on another replica, is refused.
    async fn accept_code(&self, id: &str, code: &str, pending: bool) -> Result<Account, ApiError> {
        self.update_account(id, |a| {
            let (sealed, missing) = if pending {
                (&a.totp_pending, no_pending_enrolment as fn() -> ApiError)
            } else {
                (&a.totp_secret, mfa_not_enrolled as fn() -> ApiError)
            };
            a.totp_last_step = Some(self.check_code(a, sealed.as_deref(), code, missing)?);
            if pending {
                a.totp_secret = a.totp_pending.take();
                a.mfa_enrolled_at = Some(crate::conditions::now());
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
            .and_then(|s| self.keys.mfa.open(&a.id, s))
            .ok_or_else(missing)?;
        let now = u64::try_from(Timestamp::now().as_second()).unwrap_or(0);
        totp::verify(secret, code, now, a.totp_last_step)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_code", e.to_string()))
    }

    /// Counts a failed login of `login_key` from `address`; past the limit, the account gets a
    /// soft lock every replica honours.
    async fn login_failed(&self, login_key: &str, address: &str, account: Option<&Account>) {
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
                Err(e) => tracing::warn!(code = e.code, "could not record a soft lock"),
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
struct AcceptRequest {
    token: String,
    password: String,
}

async fn accept_invitation(
    Extract(st): Extract<State>,
    JsonBody(req): JsonBody<AcceptRequest>,
) -> Result<Response, ApiError> {
    let invalid = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_token", m);
    let not_valid = "this invitation link is not valid: it was used already, replaced by a newer one, or copied incompletely. Ask your administrator to send a new invitation";
    let token_hash = hash_token(req.token.trim());
    let account = st
        .directory
        .account_by_invitation(&token_hash)
        .ok_or_else(|| invalid(not_valid))?;
    let check = |a: &Account| -> Result<(), ApiError> {
        let inv = a
            .invitation
            .as_ref()
            .filter(|i| token_matches(req.token.trim(), &i.token_hash))
            .ok_or_else(|| invalid(not_valid))?;
        if inv.expires_at <= Timestamp::now() {
            return Err(invalid(&format!(
                "this invitation expired at {}. Ask your administrator to send a new one",
                inv.expires_at
            )));
        }
        Ok(())
    };
    check(&account)?;
    // Words a guesser tries first: the login, the person's names, the organisations.
    let memberships = st.directory.memberships(&account.login);
    let mut context: Vec<&str> = vec![account.login.as_str()];
    for m in &memberships {
        context.push(&m.user.spec.full_name);
        context.push(&m.organisation.spec.display_name);
    }
    let nfc = password::check_policy(&req.password, &context)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "weak_password", e.to_string()))?;
    let hash = st
        .hasher
        .hash(nfc)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    st.update_account(&account.id, |a| {
        // Single use: on a conflict the account is read again and the token checked again.
        check(a)?;
        a.password_hash = Some(hash.clone());
        a.activated_at = Some(crate::conditions::now());
        a.invitation = None;
        a.locked_until = None;
        Ok(true)
    })
    .await?;
    tracing::info!(account = %account.id, "invitation accepted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    login: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    organisation: Option<String>,
}

fn not_a_member(org: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_a_member",
        format!("you are not an active member of organisation {org:?}"),
    )
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the login or password is wrong, or this account cannot sign in",
    )
}

async fn login(
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
                "mfa_required",
                "enter the 6-digit code from your authenticator app",
            ));
        };
        match st.accept_code(&account.id, code, false).await {
            Ok(a) => account = Arc::new(a),
            Err(e) => {
                if e.code == "invalid_code" {
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
    let claims = Claims::new(&account.id, &membership.org_name(), now, now)
        .map_err(|e| ApiError::internal(&e))?;
    let restricted = st.enrolment_required(&account, &membership);
    let body = st.directory.me(&account, &membership, restricted);
    Ok(([(header::SET_COOKIE, st.cookie(&claims))], Json(body)).into_response())
}

#[derive(Deserialize)]
struct LogoutQuery {
    /// Ends every session of the account (the person's own Kill Session).
    #[serde(default)]
    everywhere: bool,
}

async fn logout(
    Extract(st): Extract<State>,
    Query(q): Query<LogoutQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Ok(p) = st.authenticate_session(&headers)
        && let Via::Session { claims, .. } = &p.via
    {
        if q.everywhere {
            st.update_account(&claims.acct, |a| {
                a.sessions_revoked_at = Some(crate::conditions::now());
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

/// Most ended sessions remembered per account.
const MAX_ENDED_SESSIONS: usize = 500;

impl State {
    /// Records that a session ended (logout, organisation switch), dropping records of
    /// sessions that have expired anyway.
    async fn end_session(&self, claims: &Claims) -> Result<(), ApiError> {
        let now = now_ms();
        let expires = claims.iat.saturating_add(
            i64::try_from(self.settings.max_lifetime.as_millis()).unwrap_or(i64::MAX),
        );
        self.update_account(&claims.acct, |a| {
            a.sessions_ended.retain(|_, until| *until > now);
            if a.sessions_ended.len() >= MAX_ENDED_SESSIONS {
                // Keeps the account Secret small: past this many sign-outs within one session
                // lifetime, every session ends instead (the safe way to forget them).
                a.sessions_ended.clear();
                a.sessions_revoked_at = Some(crate::conditions::now());
            } else {
                a.sessions_ended.insert(claims.sid.clone(), expires);
            }
            Ok(true)
        })
        .await?;
        Ok(())
    }
}

async fn me(Extract(st): Extract<State>, headers: HeaderMap) -> Result<Response, ApiError> {
    let p = st.authenticate(&headers, true)?;
    let body = st
        .directory
        .me(&p.account, &p.membership, p.enrolment_required);
    Ok(p.respond(Json(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchRequest {
    organisation: String,
}

async fn switch_organisation(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SwitchRequest>,
) -> Result<Response, ApiError> {
    let p = st.authenticate(&headers, false)?;
    let claims = p.session()?;
    let target = st
        .directory
        .membership(&p.account.login, &req.organisation)
        .filter(Membership::is_active)
        .ok_or_else(|| not_a_member(&req.organisation))?;
    // A new session id; the lifetime still counts from the login.
    let fresh = Claims::new(&p.account.id, &target.org_name(), claims.iat, now_ms())
        .map_err(|e| ApiError::internal(&e))?;
    st.end_session(claims).await?;
    let restricted = st.enrolment_required(&p.account, &target);
    let body = st.directory.me(&p.account, &target, restricted);
    Ok(([(header::SET_COOKIE, st.cookie(&fresh))], Json(body)).into_response())
}

impl State {
    /// The session of a TOTP route: no API keys, and 404 when MFA is off for the platform.
    fn mfa_session(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let p = self.authenticate(headers, false)?;
        if !self.settings.mfa_enabled {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "mfa_disabled",
                "two-factor authentication is turned off on this platform",
            ));
        }
        Ok(p)
    }
}

async fn totp_start(Extract(st): Extract<State>, headers: HeaderMap) -> Result<Response, ApiError> {
    let p = st.mfa_session(&headers)?;
    if p.account.totp_secret.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mfa_already_enrolled",
            "TOTP is already set up; turn it off first to enroll a new device",
        ));
    }
    let enrolment = totp::enrol(&st.settings.mfa_issuer, &p.account.login)
        .map_err(|e| ApiError::internal(&e))?;
    let sealed = st
        .keys
        .mfa
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
    ApiError::new(
        StatusCode::CONFLICT,
        "no_pending_enrolment",
        "start TOTP enrolment first",
    )
}

fn mfa_not_enrolled() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "mfa_not_enrolled",
        "TOTP is not set up",
    )
}

/// On the settings routes a wrong code is a typo, not a sign-in failure: 400, the session stays.
fn typo(e: ApiError) -> ApiError {
    match e.code {
        "invalid_code" => ApiError::new(StatusCode::BAD_REQUEST, e.code, e.message),
        _ => e,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    code: String,
}

async fn totp_confirm(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let p = st.mfa_session(&headers)?;
    st.accept_code(&p.account.id, &req.code, true)
        .await
        .map_err(typo)?;
    Ok(p.respond(StatusCode::NO_CONTENT))
}

async fn totp_disable(
    Extract(st): Extract<State>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let p = st.mfa_session(&headers)?;
    if p.account.totp_secret.is_none() {
        return Err(mfa_not_enrolled());
    }
    if let Some(m) = st
        .directory
        .memberships(&p.account.login)
        .into_iter()
        .find(|m| m.organisation.requires_mfa())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mfa_required_by_organisation",
            format!(
                "organisation {} requires two-factor authentication, so it cannot be turned off",
                m.organisation.spec.display_name
            ),
        ));
    }
    st.update_account(&p.account.id, |a| {
        st.check_code(a, a.totp_secret.as_deref(), &req.code, mfa_not_enrolled)
            .map_err(typo)?;
        a.forget_totp();
        Ok(true)
    })
    .await?;
    Ok(p.respond(StatusCode::NO_CONTENT))
}

fn no_api_key() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_api_key",
        "this membership has no API key; ask an organisation admin to create one",
    )
}

async fn api_key_view(
    Extract(st): Extract<State>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Sessions only: authenticate(.., false) refuses API keys.
    let p = st.authenticate(&headers, false)?;
    p.not_restricted()?;
    let user = &p.membership.user;
    if !user.api_key_enabled() {
        return Err(no_api_key());
    }
    // The cache keeps only hashes: the key is read from its Secret.
    let issued = st
        .api_key_secret(user)
        .await?
        .map(|s| apikey_secret::Issued::read(&s, user));
    let key = issued
        .filter(|i| i.ours)
        .and_then(|i| i.key)
        .ok_or_else(no_api_key)?;
    Ok(p.respond(Json(serde_json::json!({ "key": key.expose() }))))
}

async fn api_key_renew(
    Extract(st): Extract<State>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Sessions only: authenticate(.., false) refuses API keys.
    let p = st.authenticate(&headers, false)?;
    p.not_restricted()?;
    let key = st.renew_api_key(&p.membership).await?;
    Ok(p.respond(Json(serde_json::json!({ "key": key.expose() }))))
}

impl State {
    /// The API-key Secret of a User, read live.
    async fn api_key_secret(&self, user: &usher_crds::User) -> Result<Option<Secret>, ApiError> {
        let ns = user.namespace().unwrap_or_default();
        Ok(Api::<Secret>::namespaced(self.client.clone(), &ns)
            .get_opt(&user.api_key_secret_name())
            .await?)
    }

    /// Replaces the membership's API key in one write (resourceVersion-preconditioned, retried
    /// on conflict with a fresh read): the key returned is the one in the Secret.
    pub async fn renew_api_key(&self, m: &Membership) -> Result<ApiKey, ApiError> {
        let user = &m.user;
        let spec = user
            .spec
            .api_key
            .as_ref()
            .filter(|k| k.enabled)
            .ok_or_else(no_api_key)?;
        let ns = user.namespace().unwrap_or_default();
        let name = user.api_key_secret_name();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let mut current = self.api_key_secret(user).await?;
        let grace = spec.grace_period.map(|d| d.get()).unwrap_or_default();
        // The key this request set out to replace.
        let mut replacing: Option<ApiKey> = None;
        for _ in 0..8 {
            let Some(existing) = current.take() else {
                return Err(no_api_key());
            };
            let issued = apikey_secret::Issued::read(&existing, user);
            if !issued.ours {
                return Err(no_api_key());
            }
            match (&replacing, &issued.key) {
                // Another renewal (or a rotation) replaced it while this one was under way: that
                // key is the one in the Secret, so it is this request's answer too.
                (Some(old), Some(now_there)) if old != now_there => return Ok(now_there.clone()),
                (None, _) => replacing = issued.key.clone(),
                _ => {}
            }
            let now = crate::conditions::now();
            let key = ApiKey::generate().map_err(|e| ApiError::internal(&e))?;
            let until = now
                .checked_add(SignedDuration::try_from(grace).unwrap_or_default())
                .unwrap_or(now);
            let previous = issued
                .key
                .as_ref()
                .filter(|_| !grace.is_zero())
                .map(|old| (old, until));
            let secret = apikey_secret::secret(
                user,
                &m.org_name(),
                &key,
                now,
                previous,
                issued.resource_version.clone(),
            );
            match api.replace(&name, &PostParams::default(), &secret).await {
                Ok(written) => {
                    self.directory.api_keys.apply_own_write(written);
                    tracing::info!(user = %user.name_any(), namespace = %ns, fingerprint = %key.fingerprint(), "API key renewed by its user");
                    return Ok(key);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    current = api.get_opt(&name).await?;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return Err(no_api_key()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::unavailable(&"the API-key Secret kept changing"))
    }
}

#[derive(Deserialize)]
struct VerifyQuery {
    permission: Option<String>,
}

/// Forward-auth for ingress controllers (nginx `auth_request`, Traefik ForwardAuth, Envoy
/// ext_authz): 200 with the `X-Usher-*` headers, or 401/403. `?permission=x` also requires
/// that permission.
async fn verify(
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
                "permission_denied",
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

async fn readyz(Extract(st): Extract<State>) -> Response {
    if st.directory.is_ready() {
        "ok".into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the watch caches are still loading",
        )
        .into_response()
    }
}

async fn metrics(Extract(st): Extract<State>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}
