//! Settings of `usher auth`.

use std::time::Duration;

/// Settings of `usher auth`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The operator namespace (account Secrets, the keys Secret).
    pub namespace: String,
    /// Base URL people reach the server at; https makes cookies `__Host-` and Secure.
    pub public_url: String,
    /// False hides TOTP enrolment and never asks for a code.
    pub mfa_enabled: bool,
    /// Issuer shown by authenticator apps.
    pub mfa_issuer: String,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub max_lifetime: Duration,
    /// How long a soft lock lasts after too many failed logins.
    pub soft_lock: Duration,
    /// Failed logins of one account before a soft lock.
    pub soft_lock_after: u32,
    /// Password hashes computed at once (each takes 19 MiB and one core for ~50 ms).
    pub hash_concurrency: usize,
}

impl Settings {
    /// Defaults for `namespace` and `public_url` (as the flags' defaults).
    pub fn new(namespace: &str, public_url: &str) -> Settings {
        Settings {
            namespace: namespace.into(),
            public_url: public_url.trim_end_matches('/').into(),
            mfa_enabled: true,
            mfa_issuer: crate::totp::DEFAULT_ISSUER.into(),
            idle_timeout: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(24 * 3600),
            soft_lock: Duration::from_secs(15 * 60),
            soft_lock_after: 10,
            hash_concurrency: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }

    /// True when the public URL is https.
    pub fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The public URL's origin (`scheme://host[:port]`), compared with `Origin` headers.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }
}
