//! What every request goes through, in one layer ([`guard`], so the common path costs one
//! boxed future rather than one per rule): the body cap (413 before any handler), the
//! cross-site rule for state-changing requests, the time bound, and the security headers of
//! every answer.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    error::{ApiError, BODY_LIMIT, ErrorCode},
    state::AuthState,
    trail,
};

/// Every rule of this module, in order: the body cap, the cross-site rule, the time bound; then
/// the common headers on whatever answered.
pub async fn guard(State(st): State<AuthState>, mut req: Request, next: Next) -> Response {
    stamp(&st, &mut req);
    let res = if let Some(refused) = too_large(req.headers()) {
        drain(req).await;
        refused
    } else if let Some(refused) = cross_site_refusal(&st, &req) {
        refused
    } else {
        time_bound(&st, next.run(req)).await
    };
    common_headers(&st, res)
}

/// Stamps the request with the client's address (behind trusted proxies, the one they name)
/// and a request id, for the audit trail: what a client sent under those names does not count.
fn stamp(st: &AuthState, req: &mut Request) {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let h = req.headers_mut();
    h.remove(trail::CLIENT_HEADER);
    if let Some(peer) = peer
        && let Ok(v) = HeaderValue::from_str(&st.client_address(peer, h))
    {
        h.insert(trail::CLIENT_HEADER, v);
    }
    let given = h
        .get(trail::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::audit::record::request_id);
    if given.is_none()
        && let Ok(v) = HeaderValue::from_str(&trail::new_id())
    {
        h.insert(trail::REQUEST_ID, v);
    }
}

/// Adds the headers every answer carries: no caching, no sniffing, no referrer; HSTS when the
/// public URL is https; on pages, a strict CSP and no framing.
pub fn common_headers(st: &AuthState, mut res: Response) -> Response {
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let h = res.headers_mut();
    if st.settings.secure() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if html {
        // Pages load only their own script, style and (QR code) data images; no framing.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    res
}

/// Bounds a request's time (`USHER_REQUEST_TIMEOUT`), its body included: past it, 503
/// `timeout` and the work is dropped.
async fn time_bound(st: &AuthState, work: impl std::future::Future<Output = Response>) -> Response {
    match tokio::time::timeout(st.settings.request_timeout, work).await {
        Ok(res) => res,
        Err(_) => ApiError::of(ErrorCode::Timeout, "the request took too long; try again")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            .into_response(),
    }
}

/// 413 for a body announced larger than the cap, before any handler runs.
fn too_large(headers: &axum::http::HeaderMap) -> Option<Response> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())?;
    (announced > BODY_LIMIT).then(|| ApiError::too_large().into_response())
}

/// Reads and drops up to 4 MiB of a refused body: closing a connection with unread data makes
/// the kernel reset it, and the client would see a reset instead of the 413.
async fn drain(req: Request) {
    const DRAIN_LIMIT: usize = 4 << 20;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    if announced <= DRAIN_LIMIT {
        let body = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), body).await;
    }
}

/// State-changing requests that carry a cookie (and every login) are refused when the browser
/// says they come from another site: `Sec-Fetch-Site: cross-site` or a foreign `Origin`.
/// Requests without those headers (curl, scripts) pass.
fn cross_site_refusal(st: &AuthState, req: &Request) -> Option<Response> {
    let changes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !changes {
        return None;
    }
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
    (guarded && (cross || foreign)).then(|| {
        ApiError::of(
            ErrorCode::CrossSiteRequest,
            "requests from other sites cannot change anything here",
        )
        .into_response()
    })
}
