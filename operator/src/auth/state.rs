//! Everything a request handler reads ([`AuthState`]): settings, the watch caches behind the
//! [`Directory`], the account store, the shared keys, the password hasher, the throttles and
//! metrics. It keeps no session state: sessions are signed cookies checked against the account
//! Secret, which every replica watches, so replicas share nothing but the Kubernetes API.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, runtime::watcher};
use usher_crds::{LABEL_ACCOUNT, Organisation, Profile, User};

use super::{
    directory::Directory,
    metrics::AuthMetrics,
    oidc::provider::Provider,
    settings::Settings,
    throttle::{Policy, Throttle},
};
use crate::{account::AccountStore, keys::Keys, password::Hasher, runtime::clock::Clock};

/// Everything a request handler reads; cheap to clone.
#[derive(Clone)]
pub struct AuthState(pub Arc<Inner>);

impl std::ops::Deref for AuthState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The shared parts of [`AuthState`].
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
    /// Failed sign-ins per login, of clients without a device cookie for it.
    pub by_login: Throttle,
    /// Failed sign-ins per client address, of clients without a device cookie.
    pub by_address: Throttle,
    /// Failed sign-ins per device cookie (a login on one device that completed a sign-in).
    pub by_device: Throttle,
    /// Password reset requests per login (each counts): no flood of mail.
    pub resets_by_login: Throttle,
    /// Password reset requests per client address.
    pub resets_by_address: Throttle,
    /// Metrics.
    pub metrics: AuthMetrics,
    /// Forward-auth answers to API keys (the hot path of `/api/v1/verify`).
    pub key_answers: crate::auth::answers::KeyAnswers,
    /// Where every handler reads the time (a test moves a manual one across timeouts).
    pub clock: Clock,
    /// The OpenID Connect clients and signing keys.
    pub oidc: Arc<Provider>,
    /// The WebAuthn relying party of passkeys.
    pub passkeys: crate::auth::passkey::RelyingParty,
    /// The audit trail (`USHER_AUDIT_SINK`).
    pub auditor: crate::audit::Auditor,
}

impl AuthState {
    /// The state, over caches that [`AuthState::start_caches`] fills, reading `clock`.
    pub fn new(
        client: Client,
        settings: Settings,
        keys: Keys,
        clock: Clock,
    ) -> anyhow::Result<AuthState> {
        let hasher = Hasher::new(settings.hash_concurrency, settings.hash_queue)
            .map_err(|e| anyhow::anyhow!("cannot prepare password hashing: {e}"))?;
        let forget = Duration::from_secs(15 * 60);
        let per_login = Policy {
            free: 5,
            max_delay: Duration::from_secs(60),
            // The soft lock of a login is the account's (every replica honours it, and
            // `usher account unlock` ends it); see `sign_in_failed`.
            lock_after: None,
            lock_for: settings.soft_lock,
            in_flight: 2,
            forget_after: forget,
        };
        Ok(AuthState(Arc::new(Inner {
            origin: settings.origin(),
            directory: Directory::new(&settings.namespace),
            accounts: AccountStore::new(client.clone(), &settings.namespace),
            client,
            keys,
            hasher,
            by_login: Throttle::new(per_login),
            // Generous: many people may share one address (an office behind NAT); but only
            // so many of its sign-ins are checked at a time, the rest refused at once.
            by_address: Throttle::new(Policy {
                free: 50,
                in_flight: 16,
                ..per_login
            }),
            // Small too, and locked after as many failures as a login: a stolen device cookie
            // must not become an unthrottled oracle.
            by_device: Throttle::new(Policy {
                lock_after: Some(settings.soft_lock_after),
                ..per_login
            }),
            resets_by_login: Throttle::new(Policy {
                free: 3,
                ..per_login
            }),
            resets_by_address: Throttle::new(Policy {
                free: 20,
                in_flight: u32::MAX,
                ..per_login
            }),
            metrics: AuthMetrics::default(),
            key_answers: Default::default(),
            oidc: Arc::new(Provider::new(
                &settings.namespace,
                &settings.operator_namespace,
            )),
            auditor: crate::audit::Auditor::start(
                crate::audit::sink::Sink::parse(
                    &settings.audit_sink,
                    settings.audit_spool.as_deref(),
                )
                .map_err(|e| anyhow::anyhow!(e))?,
            ),
            passkeys: crate::auth::passkey::RelyingParty::new(
                &settings.public_url,
                settings.cookie_domain.as_deref(),
            ),
            clock,
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
        self.oidc.start(c);
    }
}
