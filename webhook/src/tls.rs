//! Serving over rustls; the certificate and key files are reloaded when they change (cert-manager
//! renewals, rotated Secrets), without dropping connections.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use axum::Router;
use axum_server::{Handle, tls_rustls::RustlsConfig};

/// How often the certificate files are checked for changes.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Installs ring as the process's rustls crypto provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves `app` on `addr` over TLS until `handle` is told to shut down.
pub async fn serve(
    addr: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    app: Router,
    handle: Handle<SocketAddr>,
) -> anyhow::Result<()> {
    install_crypto_provider();
    let config = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load the TLS certificate {} and key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
    tokio::spawn(reload_on_change(config.clone(), cert, key));
    axum_server::bind_rustls(addr, config)
        .handle(handle)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

fn modified(paths: [&Path; 2]) -> Option<[SystemTime; 2]> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some([m(paths[0])?, m(paths[1])?])
}

async fn reload_on_change(config: RustlsConfig, cert: PathBuf, key: PathBuf) {
    let mut seen = modified([&cert, &key]);
    loop {
        tokio::time::sleep(RELOAD_CHECK_EVERY).await;
        let now = modified([&cert, &key]);
        if now.is_none() || now == seen {
            continue;
        }
        match config.reload_from_pem_file(&cert, &key).await {
            Ok(()) => {
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
                seen = now;
            }
            // A half-written pair (cert updated, key not yet): keep serving the old one, retry.
            Err(e) => tracing::warn!(error = %e, "TLS certificate not reloaded yet"),
        }
    }
}
