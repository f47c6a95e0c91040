//! Serving the auth server: its keys, its caches, its router, until a shutdown signal.

use std::net::SocketAddr;

use kube::Client;

use super::{router::router, settings::Settings, state::State};
use crate::keys::Keys;
use crate::runtime::shutdown::shutdown_signal;

/// Runs the auth server on `listener` until SIGTERM or Ctrl-C.
pub async fn run(
    client: Client,
    settings: Settings,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let keys = Keys::load_or_create(client.clone(), &settings.namespace).await?;
    let state = State::new(client, settings, keys)?;
    state.start_caches();
    let app = router(state);
    tracing::info!(address = %listener.local_addr()?, "auth server listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    Ok(())
}
