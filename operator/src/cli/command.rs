//! The `usher` command line: its subcommands and the dispatch to each (flags have `USHER_*`
//! environment equivalents).

use std::io::Write;

use clap::{Parser, Subcommand};

#[cfg(feature = "dev")]
use super::dev;
use super::{
    account::{self, AccountArgs},
    auth::{AuthArgs, run_auth},
    common::install_crypto,
    controller::{ControllerArgs, run_controller},
    plugin::{self, Action, Target},
};

/// Usher: Kubernetes-native user management for multi-organisation platforms.
#[derive(Debug, Parser)]
#[command(name = "usher", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The `usher` subcommands.
// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (`usher crds | kubectl apply -f -`).
    Crds,
    /// Run the controller: organisations, profiles, accounts, invitations.
    Controller(ControllerArgs),
    /// Run the auth server: invitations, login, sessions, TOTP, forward-auth, API keys.
    Auth(AuthArgs),
    /// Platform-operator commands on accounts: list, reset-mfa, reset-password, kill-sessions,
    /// unlock, rename.
    Account(AccountArgs),
    /// Everything locally: control plane, webhook, controller, examples, invitation links.
    #[cfg(feature = "dev")]
    Dev(dev::DevArgs),
    /// End every session of a User's account (kubectl plugin: `kubectl usher kill-session`).
    KillSession(Target),
    /// Renew a User's API key (`kubectl usher renew-key`).
    RenewKey(Target),
    /// Send a User a new invitation (`kubectl usher resend-invitation`).
    ResendInvitation(Target),
    /// Email a User a password reset link (`kubectl usher reset-password`).
    ResetPassword(Target),
}

impl Command {
    /// True for `usher dev`, whose logs are quieter (it polls a starting API server).
    pub fn is_dev(&self) -> bool {
        #[cfg(feature = "dev")]
        if matches!(self, Command::Dev(_)) {
            return true;
        }
        false
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    install_crypto();
    match cli.command {
        Command::Crds => {
            let yaml = usher_crds::crds_yaml()?;
            std::io::stdout().lock().write_all(yaml.as_bytes())?;
            Ok(())
        }
        Command::Controller(args) => run_controller(args).await,
        Command::Auth(args) => run_auth(args).await,
        #[cfg(feature = "dev")]
        Command::Dev(args) => dev::run(args).await,
        Command::KillSession(t) => one_shot(Action::KillSession, t).await,
        Command::RenewKey(t) => one_shot(Action::RenewKey, t).await,
        Command::ResendInvitation(t) => one_shot(Action::ResendInvitation, t).await,
        Command::ResetPassword(t) => one_shot(Action::ResetPassword, t).await,
        Command::Account(args) => {
            let client = kube::Client::try_default().await?;
            account::run(client, args, &mut std::io::stdout().lock()).await
        }
    }
}

async fn one_shot(action: Action, target: Target) -> anyhow::Result<()> {
    plugin::run(action, target, &mut std::io::stdout().lock()).await
}
