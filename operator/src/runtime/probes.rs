//! The controller's probe server: `/healthz`, `/readyz` and `/metrics`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, http::StatusCode, routing::get};

/// Serves the probes on `listener`: `/readyz` answers 200 while `ready` holds (503 otherwise);
/// `metrics` renders the Prometheus text on each scrape.
pub async fn serve_probes(
    listener: tokio::net::TcpListener,
    ready: Arc<AtomicBool>,
    metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Acquire);
                async move {
                    if ready {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics();
                async move { body }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "probe server stopped");
    }
}
