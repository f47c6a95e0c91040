//! `usher auth`: the auth server. It reads Users, Organisations, Profiles, account Secrets and
//! API-key Secrets from watch caches, so edits take effect on the next request, and keeps no
//! state of its own: sessions are signed cookies checked against the account Secret, which
//! every replica watches, so replicas share nothing but the Kubernetes API.
//!
//! - [`cache`]: the indexed watch caches.
//! - [`directory`]: who is a member of what, read from the caches.
//! - [`session`], [`keys`], [`throttle`], [`http`]: the pieces requests are made of.
//! - [`routes`]: the HTTP API of DESIGN.md; [`admin`]: its Organisation > Users part;
//!   [`pages`]: the web pages.

pub mod admin;
pub mod cache;
pub mod directory;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod pages;
pub mod routes;
pub mod session;
pub mod throttle;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, runtime::watcher};
use usher_crds::{LABEL_ACCOUNT, LABEL_USER, Organisation, Profile, User};

use crate::{account::AccountStore, password::Hasher};

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

/// Everything a request handler reads; cheap to clone.
#[derive(Clone)]
pub struct State(pub Arc<Inner>);

impl std::ops::Deref for State {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The shared parts of [`State`].
pub struct Inner {
    /// Settings.
    pub settings: Settings,
    /// The public origin, computed once.
    pub origin: String,
    /// Memberships and the organisations, profiles and accounts they refer to.
    pub directory: directory::Directory,
    /// Writes account Secrets.
    pub accounts: AccountStore,
    /// Writes API-key Secrets and Users.
    pub client: Client,
    /// Signing and sealing keys.
    pub keys: keys::Keys,
    /// argon2id on a bounded pool.
    pub hasher: Hasher,
    /// Failed logins per login.
    pub by_login: throttle::Throttle,
    /// Failed logins per client address.
    pub by_address: throttle::Throttle,
    /// Metrics.
    pub metrics: metrics::AuthMetrics,
}

impl State {
    /// State over caches that [`State::start_caches`] fills.
    pub fn new(client: Client, settings: Settings, keys: keys::Keys) -> anyhow::Result<State> {
        let hasher = Hasher::new(settings.hash_concurrency)
            .map_err(|e| anyhow::anyhow!("cannot prepare password hashing: {e}"))?;
        Ok(State(Arc::new(Inner {
            origin: settings.origin(),
            directory: directory::Directory::new(&settings.namespace),
            accounts: AccountStore::new(client.clone(), &settings.namespace),
            client,
            keys,
            hasher,
            by_login: throttle::Throttle::new(
                5,
                Duration::from_secs(60),
                Duration::from_secs(15 * 60),
            ),
            // Generous: many people may share one address (an office behind NAT).
            by_address: throttle::Throttle::new(
                50,
                Duration::from_secs(60),
                Duration::from_secs(15 * 60),
            ),
            metrics: metrics::AuthMetrics::default(),
            settings,
        })))
    }

    /// Spawns the watches that fill the caches.
    pub fn start_caches(&self) {
        let c = &self.client;
        let d = &self.directory;
        tokio::spawn(
            d.users
                .run(Api::<User>::all(c.clone()), watcher::Config::default()),
        );
        tokio::spawn(d.organisations.run(
            Api::<Organisation>::all(c.clone()),
            watcher::Config::default(),
        ));
        tokio::spawn(
            d.profiles
                .run(Api::<Profile>::all(c.clone()), watcher::Config::default()),
        );
        tokio::spawn(d.accounts.run(
            Api::<Secret>::namespaced(c.clone(), &self.settings.namespace),
            watcher::Config::default().labels(LABEL_ACCOUNT),
        ));
        tokio::spawn(d.api_keys.run(
            Api::<Secret>::all(c.clone()),
            watcher::Config::default().labels(LABEL_USER),
        ));
    }
}

/// Runs the auth server on `listener` until SIGTERM or Ctrl-C.
pub async fn run(
    client: Client,
    settings: Settings,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let keys = keys::Keys::load_or_create(client.clone(), &settings.namespace).await?;
    let state = State::new(client, settings, keys)?;
    state.start_caches();
    let app = routes::router(state);
    tracing::info!(address = %listener.local_addr()?, "auth server listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(crate::cli::shutdown_signal())
    .await?;
    Ok(())
}
