//! The auth server's errors: the body `{"error": code, "message": …}` with a stable [`ErrorCode`] and
//! no internals, and a JSON extractor whose refusals use it.

use std::time::Duration;

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::account::StoreError;

/// Request bodies on auth routes are capped at this.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The stable, machine-readable error codes of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed.
    InvalidRequest,
    /// The body is over [`BODY_LIMIT`].
    PayloadTooLarge,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// Throttled: too many failed attempts.
    TooManyAttempts,
    /// The server failed; the cause is in its log.
    InternalError,
    /// The Kubernetes API could not be reached.
    Unavailable,
    /// No such route.
    NotFound,
    /// The route does not take that method.
    MethodNotAllowed,
    /// A state-changing request from another site.
    CrossSiteRequest,
    /// No session and no key.
    Unauthenticated,
    /// An API key where only a session is accepted.
    SessionRequired,
    /// The session was ended (killed, signed out, membership gone).
    SessionEnded,
    /// The session was idle too long or reached its lifetime.
    SessionExpired,
    /// An invitation token or API key that is not valid.
    InvalidToken,
    /// Wrong login or password (or an account that cannot sign in).
    InvalidCredentials,
    /// The password was right; a TOTP code is needed.
    MfaRequired,
    /// A TOTP code that is not valid.
    InvalidCode,
    /// A passkey did not prove who it claims: a bad signature, a foreign origin or RP ID, a
    /// counter that went backwards, another account's credential, user verification missing.
    InvalidPasskey,
    /// The passkey ceremony is unknown, expired, or was finished already.
    CeremonyExpired,
    /// Passkeys cannot work with this server's public URL (an IP address, say).
    PasskeysUnavailable,
    /// The account has the most passkeys it may have.
    TooManyPasskeys,
    /// Not an active member of that organisation.
    NotAMember,
    /// The organisation requires TOTP enrolment first.
    MfaEnrolmentRequired,
    /// TOTP is already set up.
    MfaAlreadyEnrolled,
    /// No TOTP enrolment was started.
    NoPendingEnrolment,
    /// TOTP is not set up.
    MfaNotEnrolled,
    /// An organisation requires TOTP, so it cannot be turned off.
    MfaRequiredByOrganisation,
    /// TOTP is off for the platform.
    MfaDisabled,
    /// The membership has no API key.
    NoApiKey,
    /// A permission is missing.
    PermissionDenied,
    /// Forward-auth for one organisation, asked by a session or key of another.
    WrongOrganisation,
    /// Password sign-in stopped after too many failures in a row.
    SignInLocked,
    /// Code sign-in stopped after too many wrong codes in a row.
    CodeLocked,
    /// The actor's own membership is locked.
    MembershipLocked,
    /// The account no longer exists.
    AccountGone,
    /// The password policy refused the password.
    WeakPassword,
    /// The API server or the webhook refused a User.
    InvalidUser,
    /// A conflicting write.
    Conflict,
    /// No such User in the organisation.
    UserNotFound,
    /// An admin cannot lock themselves.
    CannotLockSelf,
    /// The login already has a membership in this organisation.
    LoginTaken,
    /// The caches are still loading.
    NotReady,
    /// Too many passwords are being checked at once.
    Busy,
    /// This needs a recent sign-in: re-authenticate first.
    ReauthenticationRequired,
    /// No such session (of this person, or in this organisation).
    SessionNotFound,
    /// The organisation's Users are managed in Git (`spec.userManagement: GitOps`).
    ManagedInGit,
    /// A service user has no password or sessions.
    ServiceUser,
    /// The request took longer than the server allows.
    Timeout,
}

impl ErrorCode {
    /// The HTTP status it is answered with, unless a route says otherwise (a wrong TOTP code on
    /// the settings routes is a 400, not a failed sign-in's 401).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::CrossSiteRequest => StatusCode::FORBIDDEN,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::SessionRequired => StatusCode::FORBIDDEN,
            ErrorCode::SessionEnded => StatusCode::FORBIDDEN,
            ErrorCode::SessionExpired => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ErrorCode::MfaRequired => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCode => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidPasskey => StatusCode::UNAUTHORIZED,
            ErrorCode::CeremonyExpired => StatusCode::BAD_REQUEST,
            ErrorCode::PasskeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyPasskeys => StatusCode::CONFLICT,
            ErrorCode::NotAMember => StatusCode::FORBIDDEN,
            ErrorCode::MfaEnrolmentRequired => StatusCode::FORBIDDEN,
            ErrorCode::MfaAlreadyEnrolled => StatusCode::CONFLICT,
            ErrorCode::NoPendingEnrolment => StatusCode::CONFLICT,
            ErrorCode::MfaNotEnrolled => StatusCode::CONFLICT,
            ErrorCode::MfaRequiredByOrganisation => StatusCode::CONFLICT,
            ErrorCode::MfaDisabled => StatusCode::NOT_FOUND,
            ErrorCode::NoApiKey => StatusCode::NOT_FOUND,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::WrongOrganisation => StatusCode::FORBIDDEN,
            ErrorCode::SignInLocked => StatusCode::FORBIDDEN,
            ErrorCode::CodeLocked => StatusCode::FORBIDDEN,
            ErrorCode::MembershipLocked => StatusCode::FORBIDDEN,
            ErrorCode::AccountGone => StatusCode::NOT_FOUND,
            ErrorCode::WeakPassword => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidUser => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::UserNotFound => StatusCode::NOT_FOUND,
            ErrorCode::CannotLockSelf => StatusCode::CONFLICT,
            ErrorCode::LoginTaken => StatusCode::CONFLICT,
            ErrorCode::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ReauthenticationRequired => StatusCode::FORBIDDEN,
            ErrorCode::SessionNotFound => StatusCode::NOT_FOUND,
            ErrorCode::ManagedInGit => StatusCode::CONFLICT,
            ErrorCode::ServiceUser => StatusCode::CONFLICT,
            ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code as it appears in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::CrossSiteRequest => "cross_site_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::SessionRequired => "session_required",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::MfaRequired => "mfa_required",
            ErrorCode::InvalidCode => "invalid_code",
            ErrorCode::InvalidPasskey => "invalid_passkey",
            ErrorCode::CeremonyExpired => "ceremony_expired",
            ErrorCode::PasskeysUnavailable => "passkeys_unavailable",
            ErrorCode::TooManyPasskeys => "too_many_passkeys",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::MfaEnrolmentRequired => "mfa_enrolment_required",
            ErrorCode::MfaAlreadyEnrolled => "mfa_already_enrolled",
            ErrorCode::NoPendingEnrolment => "no_pending_enrolment",
            ErrorCode::MfaNotEnrolled => "mfa_not_enrolled",
            ErrorCode::MfaRequiredByOrganisation => "mfa_required_by_organisation",
            ErrorCode::MfaDisabled => "mfa_disabled",
            ErrorCode::NoApiKey => "no_api_key",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::WrongOrganisation => "wrong_organisation",
            ErrorCode::SignInLocked => "sign_in_locked",
            ErrorCode::CodeLocked => "code_locked",
            ErrorCode::MembershipLocked => "membership_locked",
            ErrorCode::AccountGone => "account_gone",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::InvalidUser => "invalid_user",
            ErrorCode::Conflict => "conflict",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::CannotLockSelf => "cannot_lock_self",
            ErrorCode::LoginTaken => "login_taken",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::Busy => "busy",
            ErrorCode::ReauthenticationRequired => "reauthentication_required",
            ErrorCode::SessionNotFound => "session_not_found",
            ErrorCode::ManagedInGit => "managed_in_git",
            ErrorCode::ServiceUser => "service_user",
            ErrorCode::Timeout => "timeout",
        }
    }
}

/// An error answer: status, stable code, a message for people, and extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// What happened and what to do.
    pub message: String,
    /// Headers such as Retry-After or WWW-Authenticate.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// For `mfa_required`: the second factors the person can use (`totp`, `passkey`).
    pub methods: Vec<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[&str]>::is_empty")]
    methods: &'a [&'static str],
}

impl ApiError {
    /// An error with `code`, answered with the code's status, and `message`.
    pub fn of(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(code.status(), code, message)
    }

    /// An error with `status` other than `code`'s own, `code` and `message`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            methods: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::of(ErrorCode::InvalidRequest, message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large() -> ApiError {
        ApiError::of(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {} KiB", BODY_LIMIT / 1024),
        )
    }

    /// 429 `too_many_attempts` with Retry-After.
    pub fn throttled(retry_after: Duration) -> ApiError {
        let secs = retry_after.as_secs().max(1);
        ApiError::of(
            ErrorCode::TooManyAttempts,
            "too many failed attempts; wait as long as Retry-After says, then try again",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    /// 503 `busy` with Retry-After: the password hashing queue is full.
    pub fn busy() -> ApiError {
        ApiError::of(
            ErrorCode::Busy,
            "too many sign-ins are being checked right now; try again in a moment",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// 500 `internal_error`; the cause goes to the log, never to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::of(
            ErrorCode::InternalError,
            "the server could not complete the request; try again",
        )
    }

    /// 503 `unavailable` (the Kubernetes API could not be reached), logged.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "request could not reach the Kubernetes API");
        ApiError::of(
            ErrorCode::Unavailable,
            "the server is busy or cannot reach its storage; try again shortly",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(Body {
                error: self.code.as_str(),
                message: &self.message,
                methods: &self.methods,
            }),
        )
            .into_response();
        for (k, v) in self.headers {
            res.headers_mut().append(k, v);
        }
        res
    }
}

impl From<kube::Error> for ApiError {
    fn from(e: kube::Error) -> Self {
        ApiError::unavailable(&e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Kube(k) => ApiError::unavailable(&k),
            StoreError::Gone => {
                ApiError::of(ErrorCode::AccountGone, "the account no longer exists")
            }
            StoreError::Contention => ApiError::unavailable(&"the account kept changing"),
            other => ApiError::internal(&other),
        }
    }
}

/// A JSON body whose refusals are [`ApiError`]s: 413 over [`BODY_LIMIT`], 415 when not
/// `application/json`, 400 when it does not parse. The parser's own text is not echoed (it can
/// quote the input, which may be a password).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::of(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ),
        _ => ApiError::bad_request(
            "the body is not the JSON object this endpoint takes; see the API reference for its fields",
        ),
    }
}
