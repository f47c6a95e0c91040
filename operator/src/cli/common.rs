//! Flags several commands share.

use clap::Args;

/// Flags the controller and the auth server share.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The operator namespace: the leader Lease, and the accounts unless
    /// `--accounts-namespace` names another.
    #[arg(long, env = "USHER_NAMESPACE", default_value = "usher-system")]
    pub namespace: String,
    /// The namespace of the account Secrets and `usher-keys`, where nothing else lives (the
    /// chart makes `<release namespace>-accounts`). Default: `--namespace`. The controller
    /// moves accounts it finds in `--namespace` there.
    #[arg(long, env = "USHER_ACCOUNTS_NAMESPACE")]
    pub accounts_namespace: Option<String>,
    /// Base URL people reach the auth server at: invitation links point there, and https makes
    /// the session cookie `__Host-` prefixed and Secure.
    #[arg(
        long,
        env = "USHER_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

impl CommonArgs {
    /// Where the accounts live.
    pub fn accounts_namespace(&self) -> String {
        accounts_namespace(&self.namespace, self.accounts_namespace.as_deref())
    }
}

/// Where the accounts live: `accounts` when given and not empty, else the operator namespace
/// `namespace` (the layout before the accounts namespace).
pub fn accounts_namespace(namespace: &str, accounts: Option<&str>) -> String {
    accounts
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace)
        .to_owned()
}

/// Installs rustls's ring provider (the one crypto backend the binary ships).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
