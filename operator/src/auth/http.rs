//! HTTP plumbing of the auth server: the error body `{"error": code, "message": …}` with stable
//! codes and no internals, a JSON extractor whose refusals use it, and the session cookie.

use std::time::Duration;

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

/// Request bodies on auth routes are capped at this.
pub const BODY_LIMIT: usize = 64 * 1024;

/// An error answer: status, stable code, a message for people, and extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// Headers such as Retry-After or WWW-Authenticate.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {} KiB", BODY_LIMIT / 1024),
        )
    }

    /// 429 `too_many_attempts` with Retry-After.
    pub fn throttled(retry_after: Duration) -> ApiError {
        let secs = retry_after.as_secs().max(1);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed attempts; try again in {secs} seconds"),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    /// 500 `internal_error`; the cause goes to the log, never to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server could not complete the request; try again",
        )
    }

    /// 503 `unavailable` (the Kubernetes API could not be reached), logged.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "request could not reach the Kubernetes API");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
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
                error: self.code,
                message: &self.message,
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

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Kube(k) => ApiError::unavailable(&k),
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
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ => ApiError::bad_request(
            "the body is not the JSON object this endpoint takes; see the API reference for its fields",
        ),
    }
}

/// The cookie name: `__Host-usher_session` when the public URL is https (the browser then
/// insists on Secure, Path=/ and no Domain), else `usher_session`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-usher_session"
    } else {
        "usher_session"
    }
}

/// The Set-Cookie value carrying `token` for `max_age`.
pub fn session_cookie(secure: bool, token: &str, max_age: Duration) -> HeaderValue {
    let secure_attr = if secure { "; Secure" } else { "" };
    let value = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure_attr}",
        cookie_name(secure),
        max_age.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The Set-Cookie value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    session_cookie(secure, "", Duration::ZERO)
}

/// The session token in the request's cookies, if any.
pub fn session_token(headers: &HeaderMap, secure: bool) -> Option<&str> {
    let name = cookie_name(secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_attributes_and_are_found_among_others() {
        let c = session_cookie(true, "tok", Duration::from_secs(60));
        assert_eq!(
            c.to_str().unwrap(),
            "__Host-usher_session=tok; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        let plain = session_cookie(false, "tok", Duration::from_secs(60));
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; usher_session=xyz.abc; b=2"),
        );
        assert_eq!(session_token(&h, false), Some("xyz.abc"));
        assert_eq!(session_token(&h, true), None);
    }
}
