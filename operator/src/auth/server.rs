//! Serving the auth server: its keys, its caches, its router, and its own accept loop, so that
//! a connection whose request head does not arrive in time is closed (slowloris), until a
//! shutdown signal. `/metrics` is served on a listener of its own, off the public port.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::ConnectInfo, http::Request, routing::get};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
};
use kube::Client;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{handlers::probes, router::router, settings::Settings, state::AuthState};
use crate::{
    keys::Keys,
    runtime::{clock::Clock, shutdown::shutdown_signal},
};

/// Runs the auth server on `listener` (and `/metrics` on `metrics`) until SIGTERM or Ctrl-C.
pub async fn run(
    client: Client,
    settings: Settings,
    listener: TcpListener,
    metrics: Option<TcpListener>,
) -> anyhow::Result<()> {
    let keys = Keys::wait_for(client.clone(), &settings.namespace).await?;
    let header_timeout = settings.header_timeout;
    let state = AuthState::new(client, settings, keys, Clock::system())?;
    state.start_caches();
    if let Some(metrics) = metrics {
        let app = Router::new()
            .route("/metrics", get(probes::metrics))
            .with_state(state.clone());
        tracing::info!(address = %metrics.local_addr()?, "auth metrics listening");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
    }
    tracing::info!(address = %listener.local_addr()?, "auth server listening");
    serve(listener, router(state), header_timeout).await
}

/// Connections served at once; the next one is accepted when one closes.
const MAX_CONNECTIONS: usize = 4096;

/// Serves `app` on `listener` with HTTP/1 and HTTP/2; a connection whose first request has not
/// come within `header_timeout` is closed (HTTP/1's header-read timeout covers each request
/// head; HTTP/2 has none, so the first request's arrival is watched here), and at most
/// [`MAX_CONNECTIONS`] are open at once. Each request carries its peer as `ConnectInfo`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
) -> anyhow::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(100);
    let builder = Arc::new(builder);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let asked = Arc::new(AtomicBool::new(false));
        let service = hyper::service::service_fn({
            let asked = asked.clone();
            move |mut req: Request<Incoming>| {
                asked.store(true, Ordering::Release);
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                app.clone().oneshot(req)
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            // Closed by the peer, by a timeout, or (no request yet when the header timeout
            // passed) by dropping it here: nothing to report.
            tokio::select! {
                _ = &mut conn => return,
                () = tokio::time::sleep(header_timeout) => {}
            }
            if asked.load(Ordering::Acquire) {
                let _ = conn.await;
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; stopping anyway");
        }
    }
    Ok(())
}
