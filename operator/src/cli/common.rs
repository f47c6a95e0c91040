//! Flags several commands share.

use clap::Args;

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

/// Installs rustls's ring provider (the one crypto backend the binary ships).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
