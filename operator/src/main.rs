use clap::Parser;
use usher_operator::cli::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The local control plane's kubeconfig skips TLS verification, and kube warns on every
                // connection; that warning is not news.
                .unwrap_or_else(|_| "info,kube=warn,kube_client::client::tls=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    run(Cli::parse()).await
}
