//! `usher auth`: flags, then the auth server until a shutdown signal.

use std::{net::SocketAddr, time::Duration};

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
    /// Password hashes computed at once; default: every core the container may use, at most
    /// what half its memory limit holds (the hashing threads run at nice 19).
    #[arg(long, env = "USHER_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Password hashes that may wait for a thread (default 16 per thread); more get 503.
    #[arg(long, env = "USHER_HASH_QUEUE")]
    pub hash_queue: Option<usize>,
    /// Proxies (comma-separated CIDRs) whose X-Forwarded-For names the client, such as the
    /// ingress controller's pod network.
    #[arg(long, env = "USHER_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: auth::TrustedProxies,
    /// Close a connection whose request head has not arrived within this.
    #[arg(long, env = "USHER_HEADER_TIMEOUT", default_value = "10s")]
    pub header_timeout: usher_crds::Duration,
    /// The longest a request may take.
    #[arg(long, env = "USHER_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: usher_crds::Duration,
    /// Scope the session cookie to this domain (such as example.com), so that apps on its
    /// other hosts can use forward-auth.
    #[arg(long, env = "USHER_COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,
    /// Viewing one's API key and changing TOTP need a sign-in this recent (else the password
    /// is asked again).
    #[arg(long, env = "USHER_REAUTH_WINDOW", default_value = "10m")]
    pub reauth_window: usher_crds::Duration,
    /// Address for /metrics (kept off the public port).
    #[arg(long, env = "USHER_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,
}

/// Runs the auth server.
pub async fn run_auth(args: AuthArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let mut settings =
        auth::Settings::new(&args.common.accounts_namespace(), &args.common.public_url);
    settings.operator_namespace = args.common.namespace.clone();
    settings.mfa_enabled = args.mfa_enabled;
    settings.mfa_issuer = args.mfa_issuer;
    settings.idle_timeout = args.session_idle_timeout.get();
    settings.max_lifetime = args.session_max_lifetime.get();
    settings.soft_lock = args.soft_lock_duration.get();
    settings.soft_lock_after = args.soft_lock_after.max(1);
    if let Some(n) = args.hash_concurrency {
        settings.hash_concurrency = n.max(1);
        settings = settings.with_default_queue();
    }
    if let Some(q) = args.hash_queue {
        settings.hash_queue = q.max(1);
    }
    settings.trusted_proxies = args.trusted_proxies;
    settings.reauth_window = args.reauth_window.get();
    settings.header_timeout = args.header_timeout.get().max(Duration::from_secs(1));
    settings.request_timeout = args.request_timeout.get().max(Duration::from_secs(1));
    settings.cookie_domain = args
        .cookie_domain
        .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen).await?;
    auth::run(client, settings, listener, Some(metrics)).await
}
