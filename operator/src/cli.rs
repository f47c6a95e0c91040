//! Command-line interface of the `usher` binary (flags with `USHER_*` environment equivalents).

use std::io::Write;

use clap::{Parser, Subcommand};

/// Usher: Kubernetes-native user management for multi-organisation platforms.
#[derive(Debug, Parser)]
#[command(name = "usher", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The `usher` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (`usher crds | kubectl apply -f -`).
    Crds,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds => {
            let yaml = usher_crds::crds_yaml()?;
            std::io::stdout().lock().write_all(yaml.as_bytes())?;
            Ok(())
        }
    }
}
