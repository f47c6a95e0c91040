//! Probes of the auth server.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::auth::{
    error::{ApiError, ErrorCode},
    state::AuthState,
};

/// 200 once every watch cache holds its first list.
pub async fn readyz(State(st): State<AuthState>) -> Response {
    if st.directory.is_ready() {
        "ok".into_response()
    } else {
        ApiError::of(ErrorCode::NotReady, "the watch caches are still loading").into_response()
    }
}

/// Prometheus metrics.
pub async fn metrics(State(st): State<AuthState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}
