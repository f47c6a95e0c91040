//! `usher controller`: flags, leader election, then the reconcilers until a shutdown signal.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

use super::common::CommonArgs;
use crate::{
    controller::{self, Metrics},
    mail::{Mailer, SmtpOptions},
    runtime::{
        lease::{Elector, identity},
        probes::serve_probes,
        shutdown::shutdown_signal,
    },
};

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
    /// Lifetime of a password reset link, such as 1h or 30m.
    #[arg(long, env = "USHER_RESET_TTL", default_value = "1h")]
    pub reset_ttl: usher_crds::Duration,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "USHER_PROBE_LISTEN", default_value = "0.0.0.0:8081")]
    pub probe_listen: SocketAddr,
    /// The ClusterRole (Secrets: read, write, delete) the controller binds to itself in each
    /// organisation namespace, so that it needs no cluster-wide rule on Secrets. Unset: it binds
    /// nothing and relies on the rights it has.
    #[arg(long, env = "USHER_SECRETS_ROLE")]
    pub secrets_role: Option<String>,
    /// How often the OpenID Connect signing keys are replaced, such as 30d (at least 10s); the
    /// previous key stays published until the tokens it signed have expired.
    #[arg(long, env = "USHER_OIDC_KEY_ROTATION", default_value = "30d")]
    pub oidc_key_rotation: usher_crds::Duration,
    /// How long a back-channel logout is retried while its app does not take it, such as 24h
    /// (at least 1m); then it is given up with a Warning Event on the OIDCClient.
    #[arg(long, env = "USHER_OIDC_LOGOUT_RETRY", default_value = "24h")]
    pub oidc_logout_retry: usher_crds::Duration,
    /// A PEM bundle of CA certificates to trust, beside the system's, for apps' back-channel
    /// logout endpoints (in-cluster apps serving with an internal CA).
    #[arg(long, env = "USHER_OIDC_LOGOUT_CA_FILE")]
    pub oidc_logout_ca_file: Option<std::path::PathBuf>,
    /// Where audit records go: `stdout` (one JSON line each), an absolute file path (appended),
    /// or a collector's https:// URL (http:// only on the loopback), or `off` (docs/audit.md).
    #[arg(long, env = "USHER_AUDIT_SINK", default_value = "stdout")]
    pub audit_sink: String,
    /// A directory where an HTTP sink keeps the records its collector has not taken yet, so a
    /// restart during an outage loses none (a volume of the pod's own).
    #[arg(long, env = "USHER_AUDIT_SPOOL")]
    pub audit_spool: Option<String>,
    /// How long a leader's Lease lasts without renewal; a standby takes over after it.
    #[arg(long, env = "USHER_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: usher_crds::Duration,
}

/// Runs the controller: probes at once, reconcilers once this replica leads.
pub async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    // A wrong sink is refused at start, not once this replica leads.
    crate::audit::sink::Sink::parse(&args.audit_sink, args.audit_spool.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    let client = kube::Client::try_default().await?;
    // Built inside the runtime: the SMTP pool starts a task.
    let options = SmtpOptions {
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
    let scrape = metrics.clone();
    // A standby is ready (it waits for the Lease, healthy); the leader once its caches synced.
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    tokio::spawn(serve_probes(listener, ready.clone(), move || {
        scrape.encode()
    }));
    let elector = Elector::new(
        client.clone(),
        &args.common.namespace,
        identity(),
        args.lease_duration.get().max(Duration::from_secs(3)),
    );
    // Standby until this replica leads; a shutdown signal meanwhile simply exits.
    tokio::select! {
        acquired = elector.acquire() => acquired?,
        () = shutdown_signal() => return Ok(()),
    }
    let logout_ca = args
        .oidc_logout_ca_file
        .as_ref()
        .map(std::fs::read)
        .transpose()?;
    if let Some(pem) = &logout_ca {
        reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| anyhow::anyhow!("USHER_OIDC_LOGOUT_CA_FILE is not a PEM bundle: {e}"))?;
    }
    let accounts_namespace = args.common.accounts_namespace();
    let settings = controller::Settings {
        moved_from: (accounts_namespace != args.common.namespace)
            .then(|| args.common.namespace.clone()),
        namespace: accounts_namespace,
        public_url: args.common.public_url,
        mail_from: args.mail_from,
        invitation_ttl: args.invitation_ttl.get().max(Duration::from_secs(60)),
        reset_ttl: args.reset_ttl.get().max(Duration::from_secs(60)),
        secrets_role: args.secrets_role.filter(|r| !r.is_empty()),
        operator_namespace: args.common.namespace.clone(),
        oidc_key_rotation: args.oidc_key_rotation.get().max(Duration::from_secs(10)),
        logout_retry: args.oidc_logout_retry.get().max(Duration::from_secs(60)),
        logout_ca,
        audit_sink: args.audit_sink,
        audit_spool: args.audit_spool,
    };
    let result = tokio::select! {
        r = controller::run(client, settings, mailer, metrics, ready) => r,
        () = elector.hold() => Err(anyhow::anyhow!("lost the leader Lease")),
    };
    elector.release().await;
    result
}
