//! Everything a request handler reads ([`State`]): settings, the watch caches behind the
//! [`Directory`], the account store, the shared keys, the password hasher, the throttles and
//! metrics. It keeps no session state: sessions are signed cookies checked against the account
//! Secret, which every replica watches, so replicas share nothing but the Kubernetes API.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, runtime::watcher};
use usher_crds::{LABEL_ACCOUNT, Organisation, Profile, User};

use super::{directory::Directory, metrics::AuthMetrics, settings::Settings, throttle::Throttle};
use crate::{account::AccountStore, keys::Keys, password::Hasher};

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
    pub directory: Directory,
    /// Writes account Secrets.
    pub accounts: AccountStore,
    /// Writes API-key Secrets and Users.
    pub client: Client,
    /// Signing and sealing keys.
    pub keys: Keys,
    /// argon2id on a bounded pool.
    pub hasher: Hasher,
    /// Failed logins per login.
    pub by_login: Throttle,
    /// Failed logins per client address.
    pub by_address: Throttle,
    /// Metrics.
    pub metrics: AuthMetrics,
}

impl State {
    /// State over caches that [`State::start_caches`] fills.
    pub fn new(client: Client, settings: Settings, keys: Keys) -> anyhow::Result<State> {
        let hasher = Hasher::new(settings.hash_concurrency)
            .map_err(|e| anyhow::anyhow!("cannot prepare password hashing: {e}"))?;
        Ok(State(Arc::new(Inner {
            origin: settings.origin(),
            directory: Directory::new(&settings.namespace),
            accounts: AccountStore::new(client.clone(), &settings.namespace),
            client,
            keys,
            hasher,
            by_login: Throttle::new(5, Duration::from_secs(60), Duration::from_secs(15 * 60)),
            // Generous: many people may share one address (an office behind NAT).
            by_address: Throttle::new(50, Duration::from_secs(60), Duration::from_secs(15 * 60)),
            metrics: AuthMetrics::default(),
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
    }
}
