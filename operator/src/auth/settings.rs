//! Settings of `usher auth`.

use std::time::Duration;

use super::client::TrustedProxies;

/// Memory one argon2id hash takes (m = 19 MiB) and a little over.
const HASH_MEMORY: u64 = 20 << 20;

/// Settings of `usher auth`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The operator namespace (account Secrets, the keys Secret).
    pub namespace: String,
    /// Where OIDCClients serve the organisations they list (the release namespace).
    pub operator_namespace: String,
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
    /// Hashes that may wait for a thread; more are refused with 503 `busy`.
    pub hash_queue: usize,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// A connection whose request head has not arrived this long after it opened (or after
    /// the previous request) is closed.
    pub header_timeout: Duration,
    /// The longest a request may take (body included); past it, 503 `timeout`.
    pub request_timeout: Duration,
    /// Viewing or renewing one's own API key and starting or disabling TOTP need a sign-in (or a
    /// re-authentication) this recent.
    pub reauth_window: Duration,
    /// The domain the session cookie is scoped to (`example.com`), so apps on sibling hosts
    /// authenticate through forward-auth; `None`: the public URL's host only.
    pub cookie_domain: Option<String>,
    /// Where audit records go (`USHER_AUDIT_SINK`: `stdout`, a file path, a collector's URL).
    pub audit_sink: String,
    /// Where an HTTP sink keeps what its collector has not taken yet (`USHER_AUDIT_SPOOL`).
    pub audit_spool: Option<String>,
}

impl Settings {
    /// Defaults for `namespace` and `public_url` (as the flags' defaults).
    pub fn new(namespace: &str, public_url: &str) -> Settings {
        Settings {
            namespace: namespace.into(),
            operator_namespace: namespace.into(),
            public_url: public_url.trim_end_matches('/').into(),
            mfa_enabled: true,
            mfa_issuer: crate::totp::DEFAULT_ISSUER.into(),
            idle_timeout: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(24 * 3600),
            soft_lock: Duration::from_secs(15 * 60),
            soft_lock_after: 10,
            hash_concurrency: default_hash_concurrency(memory_limit()),
            hash_queue: 0,
            trusted_proxies: TrustedProxies::default(),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            reauth_window: Duration::from_secs(600),
            cookie_domain: None,
            audit_sink: std::env::var("USHER_AUDIT_SINK").unwrap_or_else(|_| "stdout".into()),
            audit_spool: std::env::var("USHER_AUDIT_SPOOL").ok(),
        }
        .with_default_queue()
    }

    /// The hash queue's default: room for a second of logins at full speed.
    pub fn with_default_queue(mut self) -> Settings {
        self.hash_queue = (self.hash_concurrency * 16).max(8);
        self
    }

    /// The public URL's host (`usher.example.com`).
    pub fn public_host(&self) -> String {
        url::Url::parse(&self.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
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

/// The default number of hashes at once: every core the container may use (its CPU quota:
/// `available_parallelism` reads the cgroup's), at most what half its memory limit holds at
/// 20 MiB a hash, at least one. The hashing threads run at the lowest priority
/// ([`crate::password::Hasher`]), so requests that need no hash still come first.
pub fn default_hash_concurrency(memory_limit: Option<u64>) -> usize {
    let by_cores = std::thread::available_parallelism().map_or(1, usize::from);
    let by_memory = memory_limit
        .map(|m| usize::try_from(m / 2 / HASH_MEMORY).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    by_cores.min(by_memory).max(1)
}

/// The container's memory limit from its cgroup (v2, then v1), if it has one.
pub fn memory_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|f| std::fs::read_to_string(f).ok())
    .and_then(|v| v.trim().parse::<u64>().ok())
    // v1 reports "no limit" as a number near 2^63.
    .filter(|&m| m < (1 << 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_concurrency_uses_every_core_the_memory_limit_allows() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(default_hash_concurrency(Some(64 << 20)), 1);
        assert_eq!(default_hash_concurrency(Some(512 << 20)), cores.min(12));
        assert_eq!(default_hash_concurrency(None), cores);
    }
}
