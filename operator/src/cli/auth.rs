//! `usher auth`: flags, then the auth server until a shutdown signal.

use std::net::SocketAddr;

use clap::Args;

use super::common::CommonArgs;
use crate::auth;

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

/// Runs the auth server.
pub async fn run_auth(args: AuthArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let mut settings = auth::Settings::new(&args.common.namespace, &args.common.public_url);
    settings.mfa_enabled = args.mfa_enabled;
    settings.mfa_issuer = args.mfa_issuer;
    settings.idle_timeout = args.session_idle_timeout.get();
    settings.max_lifetime = args.session_max_lifetime.get();
    settings.soft_lock = args.soft_lock_duration.get();
    settings.soft_lock_after = args.soft_lock_after.max(1);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    auth::run(client, settings, listener).await
}
