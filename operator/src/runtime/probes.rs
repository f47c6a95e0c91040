//! The controller's probe server: `/healthz`, `/readyz` and `/metrics`.

use axum::{Router, routing::get};

/// Serves the probes on `listener`; `metrics` renders the Prometheus text on each scrape.
pub async fn serve_probes(
    listener: tokio::net::TcpListener,
    metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
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
