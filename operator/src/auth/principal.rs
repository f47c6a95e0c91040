//! Who is asking: a request authenticated by its API key or its session cookie, as a
//! [`Principal`] (the account, the membership acted in, and how).

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use k8s_openapi::jiff::SignedDuration;

use super::{
    cookie::{Kind, Scope, SetCookies},
    directory::{Membership, Sees},
    error::{ApiError, ErrorCode},
    oidc::core::AccessClaims,
    session::{self, Acting, Claims},
    state::AuthState,
};
use crate::{
    account::{Account, grants::Grant},
    apikey::ApiKey,
};

/// The `WWW-Authenticate` challenge, with RFC 6750's `error=` when a token was sent.
pub fn www_authenticate(error: Option<&str>) -> HeaderValue {
    let v = match error {
        Some(e) => format!("Bearer realm=\"usher\", error=\"{e}\""),
        None => "Bearer realm=\"usher\"".to_owned(),
    };
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// The token of an `Authorization: Bearer <token>` value, if it is one.
fn bearer_value(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The request's Bearer token (an API key or an access token), if it sends one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    bearer_value(headers.get(header::AUTHORIZATION)?)
}

/// True when a Bearer token is shaped as a JWT (an access token) rather than an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    !token.starts_with("usk_") && token.matches('.').count() == 2
}

/// 403 `session_required`: an API key where only a session is accepted.
pub fn session_required() -> ApiError {
    ApiError::of(
        ErrorCode::SessionRequired,
        "API keys cannot be used here; sign in",
    )
}

/// 401 with the Bearer challenge.
pub fn unauthenticated(code: ErrorCode, message: &str, bearer_error: Option<&str>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
        .with_header(header::WWW_AUTHENTICATE, www_authenticate(bearer_error))
}

/// True when an admin of `m`'s organisation ended the sessions acting in it after a session that
/// started at `iat` (Unix milliseconds) began.
pub fn killed_since(account: &Account, m: &Membership, iat: i64) -> bool {
    account
        .membership(&m.user)
        .and_then(|r| r.sessions_revoked_at)
        .is_some_and(|at| iat <= at.as_millisecond())
}

/// True when Kill Session in organisation `org` ended a session of `account` that started at
/// `iat`.
pub fn killed_since_in(st: &AuthState, account: &Account, org: &str, iat: i64) -> bool {
    st.directory
        .membership(&account.login, org)
        .is_some_and(|m| killed_since(account, &m, iat))
}

/// How a request authenticated.
pub enum Via {
    /// A session cookie; `refresh` renews its idle clock.
    Session {
        /// The session.
        claims: Claims,
        /// The Set-Cookies to send back.
        refresh: Option<SetCookies>,
    },
    /// An API key (no MFA, no idle timeout, its own organisation only).
    Bearer,
    /// An OpenID Connect access token: its own organisation only, ending with the session and
    /// grant it came from.
    Token {
        /// The client it was issued to.
        client_id: String,
        /// Its scopes.
        scope: String,
        /// When it expires (Unix seconds).
        expires: i64,
    },
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
    /// What this caller may see of the person's organisations: a session, all of them; a key,
    /// its own membership's alone.
    pub fn sees(&self) -> Sees {
        match self.via {
            Via::Session { .. } => Sees::EveryMembership,
            Via::Bearer | Via::Token { .. } => Sees::OneMembership,
        }
    }

    /// `res` with the renewed session cookie, if any.
    pub fn respond(&self, res: impl IntoResponse) -> Response {
        let mut res = res.into_response();
        if let Via::Session {
            refresh: Some(cookies),
            ..
        } = &self.via
        {
            cookies.append_to(res.headers_mut());
        }
        res
    }

    /// The session's claims; API keys are refused with 403 `session_required`.
    pub fn session(&self) -> Result<&Claims, ApiError> {
        match &self.via {
            Via::Session { claims, .. } => Ok(claims),
            Via::Bearer | Via::Token { .. } => Err(session_required()),
        }
    }

    /// Refuses a session whose sign-in (or last re-authentication) is older than `window`:
    /// 403 `reauthentication_required`, answered by `POST /api/v1/me/reauthenticate`.
    pub fn recently_authenticated(
        &self,
        window: std::time::Duration,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let claims = self.session()?;
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(claims.auth) <= window {
            return Ok(());
        }
        Err(ApiError::of(
            ErrorCode::ReauthenticationRequired,
            "confirm it is you: enter your password again (and a code, when two-factor authentication is on)",
        ))
    }

    /// Refuses sessions that must enroll TOTP first.
    pub fn not_restricted(&self) -> Result<(), ApiError> {
        if self.enrolment_required {
            return Err(ApiError::of(
                ErrorCode::MfaEnrolmentRequired,
                "your organisation requires two-factor authentication: add a passkey or enroll TOTP in your account settings first",
            ));
        }
        Ok(())
    }
}

impl AuthState {
    /// True when `account` acting in `m` must enroll a second factor (TOTP or a passkey)
    /// before anything else.
    pub fn enrolment_required(&self, account: &Account, m: &Membership) -> bool {
        if !self.settings.mfa_enabled || !m.organisation.requires_mfa() || account.mfa_enrolled() {
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
        let start = account.activated_at.unwrap_or_else(|| self.clock.now());
        let ends = start
            .checked_add(SignedDuration::try_from(grace).unwrap_or_default())
            .unwrap_or(start);
        self.clock.now() >= ends
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
        let token = bearer_value(auth).ok_or_else(|| {
            ApiError::bad_request("send the API key as: Authorization: Bearer usk_…").with_header(
                header::WWW_AUTHENTICATE,
                www_authenticate(Some("invalid_request")),
            )
        })?;
        let invalid = |message: &str| {
            unauthenticated(ErrorCode::InvalidToken, message, Some("invalid_token"))
        };
        if looks_like_jwt(token) {
            return self.access_token(token).map(|(p, _)| p);
        }
        let key = ApiKey::parse(token).map_err(|e| invalid(&e.to_string()))?;
        let (account, m) = self
            .directory
            .key_owner(&key.hash(), self.clock.now())
            .ok_or_else(|| {
                invalid("the API key is not valid: it was renewed, revoked or never issued")
            })?;
        if !m.is_active() {
            return Err(invalid("the API key's membership is locked"));
        }
        Ok(Principal {
            account,
            membership: m,
            via: Via::Bearer,
            enrolment_required: false,
        })
    }

    /// Authenticates an OpenID Connect access token: signed by a current or retired key, not
    /// expired, and its session, grant and membership still live. With its claims.
    pub fn access_token(&self, token: &str) -> Result<(Principal, Arc<AccessClaims>), ApiError> {
        let invalid = |message: &str| {
            unauthenticated(ErrorCode::InvalidToken, message, Some("invalid_token"))
        };
        let claims = self
            .oidc
            .verified
            .claims(token, || {
                self.oidc
                    .signer()
                    .verify::<AccessClaims>(token, "at+jwt", &self.origin)
            })
            .ok_or_else(|| invalid("the access token is not valid"))?;
        if claims.exp <= self.clock.now_ms().div_euclid(1000) {
            return Err(invalid("the access token expired"));
        }
        let account = self
            .directory
            .account(&claims.sub)
            .ok_or_else(|| invalid("the account no longer exists"))?;
        let grant = account
            .grants
            .iter()
            .find(|g| g.id == claims.gid && g.client_id == claims.client_id)
            .ok_or_else(|| invalid("the access token was revoked"))?;
        if account.uid.as_deref().unwrap_or_default() != claims.auid
            || grant.session != claims.sid
            || self.oidc.client(&claims.client_id).is_none()
        {
            return Err(invalid("the access token was revoked"));
        }
        let membership = self
            .grant_alive(&account, grant)
            .map_err(|_| invalid("the session the access token came from has ended, or the membership is locked or gone"))?;
        let via = Via::Token {
            client_id: claims.client_id.clone(),
            scope: claims.scope.clone(),
            expires: claims.exp,
        };
        Ok((
            Principal {
                account,
                membership,
                via,
                enrolment_required: false,
            },
            claims,
        ))
    }

    /// The membership of `grant` when its session is live (not past its lifetime, and not
    /// ended by the account's rule, `Account::grant_ended`) and the membership it acts through
    /// still is (the same User, not locked, not a service user, no Kill Session since).
    pub fn grant_alive(&self, account: &Account, grant: &Grant) -> Result<Membership, ApiError> {
        let ended = |m: &str| unauthenticated(ErrorCode::SessionEnded, m, None);
        let now = self.clock.now_ms();
        let max_ms = i64::try_from(self.settings.max_lifetime.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(grant.session_iat) >= max_ms {
            return Err(ended("the session ended"));
        }
        let acting = Acting {
            organisation: &grant.organisation,
            user_uid: &grant.user_uid,
        };
        let m = self
            .directory
            .membership(&account.login, &grant.organisation)
            .filter(|m| m.is(acting));
        if account.grant_ended(grant, m.as_ref().map(|m| m.user.as_ref())) {
            return Err(ended(
                "the session ended, or the membership is locked or gone",
            ));
        }
        m.ok_or_else(|| ended("the membership is gone"))
    }

    /// Authenticates a request by its session cookie (host-only): the API and the pages.
    pub fn authenticate_session(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.authenticate_cookies(headers, &[Kind::Session])
    }

    /// Authenticates a forward-auth request: by its API key, its session cookie, or the
    /// forward-auth cookie that hosts under the cookie domain see.
    pub fn authenticate_forward(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        if headers.contains_key(header::AUTHORIZATION) {
            return self.authenticate(headers, true);
        }
        self.authenticate_cookies(headers, &[Kind::Session, Kind::Forward])
    }

    /// The session of the first cookie of `kinds` that is valid (signed by this server with
    /// that kind's key): a cookie planted beside it by a sibling host does not hide it.
    fn authenticate_cookies(
        &self,
        headers: &HeaderMap,
        kinds: &[Kind],
    ) -> Result<Principal, ApiError> {
        let scope = self.cookie_scope();
        let mut presented = false;
        let mut claims = None;
        'kinds: for kind in kinds {
            for token in scope.tokens(headers, *kind) {
                presented = true;
                if let Some(c) = session::open(self.cookie_key(*kind), token) {
                    claims = Some(c);
                    break 'kinds;
                }
            }
        }
        let ended = |message: &str| unauthenticated(ErrorCode::SessionEnded, message, None);
        let claims = match claims {
            Some(c) => c,
            None if presented => return Err(ended("the session is not valid; sign in again")),
            None => {
                return Err(unauthenticated(
                    ErrorCode::Unauthenticated,
                    "sign in first",
                    None,
                ));
            }
        };
        let now = self.clock.now_ms();
        let max_ms = i64::try_from(self.settings.max_lifetime.as_millis()).unwrap_or(i64::MAX);
        let idle_s = i64::try_from(self.settings.idle_timeout.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(claims.iat) >= max_ms {
            return Err(unauthenticated(
                ErrorCode::SessionExpired,
                "the session reached its maximum lifetime; sign in again",
                None,
            ));
        }
        if now.div_euclid(1000).saturating_sub(claims.seen) >= idle_s {
            return Err(unauthenticated(
                ErrorCode::SessionExpired,
                "the session was idle too long; sign in again",
                None,
            ));
        }
        let account = self
            .directory
            .account(&claims.acct)
            .filter(|a| a.uid.as_deref().unwrap_or_default() == claims.auid)
            .ok_or_else(|| ended("the account no longer exists"))?;
        // "Sign out everywhere", password changes and resets, MFA reset, kill-sessions:
        // sessions begun before the revocation (to the millisecond) end.
        if account.revoked_since(claims.iat) {
            return Err(ended(
                "the session was ended by an administrator; sign in again",
            ));
        }
        if account.sessions_ended.contains_key(&claims.sid) {
            return Err(ended("the session was signed out; sign in again"));
        }
        // The very User the session began with: Kill Session and removal stay in force for a
        // User deleted and made again under the same name.
        let membership = self
            .directory
            .membership(&account.login, &claims.org)
            .filter(|m| m.is(claims.acting()))
            .ok_or_else(|| {
                ended("you are no longer a member of this organisation; sign in again")
            })?;
        // A membership made a service user signs in no more (its key still works).
        if membership.user.is_service() {
            return Err(ended(
                "this membership is a service user now: it authenticates with its API key only",
            ));
        }
        // Kill Session in this organisation.
        if killed_since(&account, &membership, claims.iat) {
            return Err(ended(
                "an administrator ended your sessions in this organisation; sign in again",
            ));
        }
        // The idle clock is renewed by a new cookie once a quarter of it (at most a minute)
        // has passed, rather than on every request.
        let refresh_after = (idle_s / 4).clamp(1, 60);
        let refresh = (now.div_euclid(1000) - claims.seen >= refresh_after).then(|| {
            let renewed = Claims {
                seen: now.div_euclid(1000),
                ..claims.clone()
            };
            self.cookies(&renewed)
        });
        let enrolment_required = self.enrolment_required(&account, &membership);
        Ok(Principal {
            account,
            membership,
            via: Via::Session { claims, refresh },
            enrolment_required,
        })
    }

    /// The client's address for a request from `peer` (behind the trusted proxies).
    pub fn client_address(&self, peer: std::net::SocketAddr, headers: &HeaderMap) -> String {
        self.settings
            .trusted_proxies
            .client(peer.ip(), headers)
            .to_string()
    }

    fn cookie_key(&self, kind: Kind) -> &ring::hmac::Key {
        match kind {
            Kind::Session => &self.keys.session,
            Kind::Forward => &self.keys.forward,
        }
    }

    /// Where this server's cookies go.
    pub fn cookie_scope(&self) -> Scope<'_> {
        Scope {
            secure: self.settings.secure(),
            domain: self.settings.cookie_domain.as_deref(),
        }
    }

    /// The Set-Cookies carrying `claims` (the session cookie, and the forward-auth cookie with
    /// a cookie domain), for the rest of the session's lifetime.
    pub fn cookies(&self, claims: &Claims) -> SetCookies {
        let left_ms = i64::try_from(self.settings.max_lifetime.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_sub(self.clock.now_ms().saturating_sub(claims.iat))
            .max(0);
        self.cookie_scope().set(
            |kind| session::seal(self.cookie_key(kind), claims),
            // Whole seconds, rounded up: a fresh session says the full lifetime.
            std::time::Duration::from_secs(
                u64::try_from(left_ms.saturating_add(999) / 1000).unwrap_or(0),
            ),
        )
    }
}

/// A person signed in with a session cookie (an API key is refused: 403 `session_required`).
pub struct SignedIn(pub Principal);

impl FromRequestParts<AuthState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AuthState) -> Result<Self, ApiError> {
        st.authenticate(&parts.headers, false).map(SignedIn)
    }
}

/// A caller with a session cookie or an API key.
pub struct Caller(pub Principal);

impl FromRequestParts<AuthState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AuthState) -> Result<Self, ApiError> {
        st.authenticate(&parts.headers, true).map(Caller)
    }
}
