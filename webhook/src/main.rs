use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::Parser;
use usher_webhook::{
    cache::Caches,
    metrics::Metrics,
    rules::Config,
    server::{AppState, Source, router},
    tls,
};

/// Usher's validating admission webhook for Organisations, Profiles and Users.
#[derive(Debug, Parser)]
#[command(name = "usher-webhook", version, about)]
struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, env = "USHER_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// PEM certificate chain (reloaded when it changes).
    #[arg(long, env = "USHER_WEBHOOK_CERT")]
    cert: PathBuf,
    /// PEM private key (reloaded when it changes).
    #[arg(long, env = "USHER_WEBHOOK_KEY")]
    key: PathBuf,
    /// The operator's namespace, which no organisation may hold.
    #[arg(long, env = "USHER_NAMESPACE", default_value = "usher-system")]
    namespace: String,
    /// The accounts namespace, which no organisation may hold either.
    #[arg(long, env = "USHER_ACCOUNTS_NAMESPACE")]
    accounts_namespace: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        // Colours for a terminal only: a Pod's log gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    tls::install_crypto_provider();
    let client = kube::Client::try_default().await?;
    let state = Arc::new(AppState {
        source: Source::Cluster(Caches::start(client)),
        config: Config {
            operator_namespace: args.namespace,
            accounts_namespace: args.accounts_namespace.filter(|n| !n.is_empty()),
        },
        metrics: Metrics::default(),
    });
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
        }
    });
    tracing::info!(listen = %args.listen, "usher-webhook serving");
    tls::serve(args.listen, args.cert, args.key, router(state), handle).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
