use clap::Parser;
use usher_operator::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `usher dev` polls the starting API server, whose not-ready answers kube logs as errors.
    let quiet_dev = cli.command.is_dev();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The local control plane's kubeconfig skips TLS verification, and kube warns on every
                // connection; that warning is not news.
                .unwrap_or_else(|_| {
                    if quiet_dev {
                        "info,kube=warn,kube_client=off".into()
                    } else {
                        "info,kube=warn,kube_client::client::tls=error".into()
                    }
                }),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a Pod's log (or a file) gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    run(cli).await
}
