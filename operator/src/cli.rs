//! Command-line interface of the `usher` binary (flags with `USHER_*` environment equivalents).

use std::{io::Write, net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{controller, mailer::Mailer, metrics::Metrics};

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
    /// Platform-operator commands on accounts: list, reset-mfa, unlock, rename.
    Account(crate::account_cli::AccountArgs),
    /// Everything locally: control plane, webhook, controller, examples, invitation links.
    Dev(crate::dev::DevArgs),
    /// End every session of a User's account (kubectl plugin: `kubectl usher kill-session`).
    KillSession(crate::plugin::Target),
    /// Renew a User's API key (`kubectl usher renew-key`).
    RenewKey(crate::plugin::Target),
    /// Send a User a new invitation (`kubectl usher resend-invitation`).
    ResendInvitation(crate::plugin::Target),
}

/// Flags the controller and the auth server share.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The operator namespace, holding account Secrets.
    #[arg(long, env = "USHER_NAMESPACE", default_value = "usher-system")]
    pub namespace: String,
    /// Base URL people reach the auth server at: invitation links point there, and https makes
    /// the session cookie `__Host-` prefixed and Secure.
    #[arg(
        long,
        env = "USHER_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

/// Flags of `usher controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Namespace and public URL.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where invitation emails go: smtp://host:port, smtp://host:587?tls=required,
    /// smtps://user:password@host:465, or file:///dir.
    #[arg(long, env = "USHER_SMTP_URL")]
    pub smtp_url: String,
    /// A PEM CA certificate to trust for STARTTLS / SMTPS (an internal mail relay's CA).
    #[arg(long, env = "USHER_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// A file holding the SMTP password (a mounted Secret), instead of the URL.
    #[arg(long, env = "USHER_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<std::path::PathBuf>,
    /// Sender of invitation emails.
    #[arg(
        long,
        env = "USHER_MAIL_FROM",
        default_value = "Usher <usher@usher.invalid>"
    )]
    pub mail_from: String,
    /// Lifetime of an invitation link, such as 24h or 3d.
    #[arg(long, env = "USHER_INVITATION_TTL", default_value = "24h")]
    pub invitation_ttl: usher_crds::Duration,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "USHER_PROBE_LISTEN", default_value = "0.0.0.0:8081")]
    pub probe_listen: SocketAddr,
    /// How long a leader's Lease lasts without renewal; a standby takes over after it.
    #[arg(long, env = "USHER_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: usher_crds::Duration,
}

/// Flags of `usher auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Address to listen on.
    #[arg(long, env = "USHER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Namespace and public URL.
    #[command(flatten)]
    pub common: CommonArgs,
    /// TOTP for the platform: false hides enrolment and never asks for a code.
    #[arg(long, env = "USHER_MFA_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub mfa_enabled: bool,
    /// Issuer shown by authenticator apps.
    #[arg(long, env = "USHER_MFA_ISSUER", default_value = crate::totp::DEFAULT_ISSUER)]
    pub mfa_issuer: String,
    /// A session unused this long ends.
    #[arg(long, env = "USHER_SESSION_IDLE_TIMEOUT", default_value = "1h")]
    pub session_idle_timeout: usher_crds::Duration,
    /// A session ends this long after login.
    #[arg(long, env = "USHER_SESSION_MAX_LIFETIME", default_value = "24h")]
    pub session_max_lifetime: usher_crds::Duration,
    /// How long an account stays soft-locked after too many failed logins.
    #[arg(long, env = "USHER_SOFT_LOCK_DURATION", default_value = "15m")]
    pub soft_lock_duration: usher_crds::Duration,
    /// Failed logins of one account that start a soft lock.
    #[arg(long, env = "USHER_SOFT_LOCK_AFTER", default_value_t = 10)]
    pub soft_lock_after: u32,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds => {
            let yaml = usher_crds::crds_yaml()?;
            std::io::stdout().lock().write_all(yaml.as_bytes())?;
            Ok(())
        }
        Command::Controller(args) => run_controller(args).await,
        Command::Auth(args) => run_auth(args).await,
        Command::Dev(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            crate::dev::run(args).await
        }
        Command::KillSession(t) => plugin(crate::plugin::Action::KillSession, t).await,
        Command::RenewKey(t) => plugin(crate::plugin::Action::RenewKey, t).await,
        Command::ResendInvitation(t) => plugin(crate::plugin::Action::ResendInvitation, t).await,
        Command::Account(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = kube::Client::try_default().await?;
            crate::account_cli::run(client, args, &mut std::io::stdout().lock()).await
        }
    }
}

async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await?;
    // Built inside the runtime: the SMTP pool starts a task.
    let options = crate::mailer::SmtpOptions {
        ca_pem: args.smtp_ca_file.as_ref().map(std::fs::read).transpose()?,
        password: args
            .smtp_password_file
            .as_ref()
            .map(std::fs::read_to_string)
            .transpose()?
            .map(|p| p.trim_end_matches(['\r', '\n']).to_owned()),
    };
    let mailer = Mailer::from_url_with(&args.smtp_url, &options)?;
    let metrics = Metrics::default();
    let listener = tokio::net::TcpListener::bind(args.probe_listen).await?;
    tokio::spawn(serve_probes(listener, metrics.clone()));
    let elector = crate::lease::Elector::new(
        client.clone(),
        &args.common.namespace,
        crate::lease::identity(),
        args.lease_duration.get().max(Duration::from_secs(3)),
    );
    // Standby until this replica leads; a shutdown signal meanwhile simply exits.
    tokio::select! {
        acquired = elector.acquire() => acquired?,
        () = shutdown_signal() => return Ok(()),
    }
    let settings = controller::Settings {
        namespace: args.common.namespace,
        public_url: args.common.public_url,
        mail_from: args.mail_from,
        invitation_ttl: args.invitation_ttl.get().max(Duration::from_secs(60)),
    };
    let result = tokio::select! {
        r = controller::run(client, settings, mailer, metrics) => r,
        () = elector.hold() => Err(anyhow::anyhow!("lost the leader Lease")),
    };
    elector.release().await;
    result
}

async fn plugin(
    action: crate::plugin::Action,
    target: crate::plugin::Target,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::plugin::run(action, target, &mut std::io::stdout().lock()).await
}

async fn run_auth(args: AuthArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await?;
    let mut settings = crate::auth::Settings::new(&args.common.namespace, &args.common.public_url);
    settings.mfa_enabled = args.mfa_enabled;
    settings.mfa_issuer = args.mfa_issuer;
    settings.idle_timeout = args.session_idle_timeout.get();
    settings.max_lifetime = args.session_max_lifetime.get();
    settings.soft_lock = args.soft_lock_duration.get();
    settings.soft_lock_after = args.soft_lock_after.max(1);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    crate::auth::run(client, settings, listener).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

async fn serve_probes(listener: tokio::net::TcpListener, metrics: Metrics) {
    use axum::{Router, routing::get};
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let body = metrics.encode();
                async move { body }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "probe server stopped");
    }
}
