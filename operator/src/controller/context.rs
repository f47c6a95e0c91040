//! What every reconcile shares: the client, settings, the account store, the mailer, the Event
//! recorder, metrics, the three watch caches, per-account locks and the retry backoff.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::channel::mpsc::UnboundedSender;
use kube::{
    Client, Resource, ResourceExt,
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};
use usher_crds::{Organisation, Profile, User};

use super::{backoff::Backoff, metrics::Metrics};
use crate::{account::AccountStore, keys::Keys, mail::Mailer};

/// The field manager and Event reporter of the controller.
pub const MANAGER: &str = "usher-controller";

/// Settings of `usher controller`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The operator namespace (account Secrets).
    pub namespace: String,
    /// Base URL of the auth server, for invitation links.
    pub public_url: String,
    /// Sender of invitation emails.
    pub mail_from: String,
    /// Lifetime of an invitation link.
    pub invitation_ttl: Duration,
    /// Lifetime of a password reset link.
    pub reset_ttl: Duration,
}

/// The caches the reconcilers read, and the channels that ask for recounts.
pub struct Caches {
    /// Users, Organisations and Profiles, each from a reflector of its own.
    pub users: Store<User>,
    /// See `users`.
    pub organisations: Store<Organisation>,
    /// See `users`.
    pub profiles: Store<Profile>,
    /// True once the three above hold a complete first List.
    pub synced: tokio::sync::watch::Receiver<bool>,
    /// The User controller's own store: recounts are triggered from it, so counts read it.
    pub counted_users: Store<User>,
    /// True once `counted_users` is known complete (see [`Context::counted_users`]).
    pub counts_ready: Arc<AtomicBool>,
    /// Organisations whose member count to check.
    pub recount_orgs: UnboundedSender<ObjectRef<Organisation>>,
    /// Profiles whose user count to check.
    pub recount_profiles: UnboundedSender<ObjectRef<Profile>>,
}

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// Account Secrets.
    pub accounts: AccountStore,
    /// Where invitations go.
    pub mailer: Mailer,
    /// Seals and opens API keys in accounts.
    pub keys: Keys,
    /// Metrics.
    pub metrics: Metrics,
    /// Retry delays of failed reconciles.
    pub backoff: Backoff,
    /// Caches of the three kinds, read by the reconcilers.
    pub users: Store<User>,
    /// See `users`.
    pub organisations: Store<Organisation>,
    /// See `users`.
    pub profiles: Store<Profile>,
    recorder: Recorder,
    synced: tokio::sync::watch::Receiver<bool>,
    counted_users: Store<User>,
    counts_ready: Arc<AtomicBool>,
    recount_orgs: UnboundedSender<ObjectRef<Organisation>>,
    recount_profiles: UnboundedSender<ObjectRef<Profile>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Context {
    /// A context over `caches`.
    pub fn new(
        client: Client,
        settings: Settings,
        mailer: Mailer,
        keys: Keys,
        metrics: Metrics,
        caches: Caches,
    ) -> Context {
        Context {
            accounts: AccountStore::new(client.clone(), &settings.namespace),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: MANAGER.into(),
                    instance: std::env::var("POD_NAME").ok(),
                },
            ),
            client,
            settings,
            mailer,
            keys,
            metrics,
            backoff: Backoff::default(),
            users: caches.users,
            organisations: caches.organisations,
            profiles: caches.profiles,
            synced: caches.synced,
            counted_users: caches.counted_users,
            counts_ready: caches.counts_ready,
            recount_orgs: caches.recount_orgs,
            recount_profiles: caches.recount_profiles,
            locks: Mutex::default(),
        }
    }

    /// Serialises work on one account across its memberships' reconciles.
    pub async fn lock_account(&self, account_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(account_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Waits until the three caches hold a complete first List, so no reconcile judges a User
    /// against a half-loaded set of Organisations or Profiles.
    ///
    /// One task awaits the stores (see `run`) and publishes on a watch channel: kube's
    /// `Store::wait_until_ready` wakes only the last of several concurrent waiters, and
    /// reconciles waiting on it directly were seen to hang forever.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|ready| *ready).await;
    }

    /// The Users to count members and profile users from, once that store is complete: a User
    /// reconcile has run (kube starts them only after the store's first List), or there are no
    /// Users at all. Before then counts are left as they are, so a restart rewrites nothing.
    pub fn counted_users(&self) -> Option<&Store<User>> {
        self.counts_ready
            .load(Ordering::Acquire)
            .then_some(&self.counted_users)
    }

    /// Marks the counted store complete (called by the User reconciler).
    pub fn mark_counts_ready(&self) {
        self.counts_ready.store(true, Ordering::Release);
    }

    /// Asks for the member count of `user`'s organisation and the user counts of every profile
    /// (a handful) to be checked. Sent after the User is in the cache, so the counts see it; a
    /// watch of Users of their own would race with this cache.
    pub fn recount(&self, user: &User) {
        let ns = user.namespace().unwrap_or_default();
        for org in self
            .organisations
            .state_filter(|o| o.namespace_name() == ns)
        {
            let _ = self
                .recount_orgs
                .unbounded_send(ObjectRef::from_obj(org.as_ref()));
        }
        // The User's own profile by name, even when it is not cached yet; the others because
        // the User may have left one of them.
        let own = ObjectRef::<Profile>::new(&user.spec.profile);
        let _ = self.recount_profiles.unbounded_send(own);
        for profile in self.profiles.state() {
            if profile.name_any() != user.spec.profile {
                let _ = self
                    .recount_profiles
                    .unbounded_send(ObjectRef::from_obj(profile.as_ref()));
            }
        }
    }

    /// Publishes a Normal Event about `obj`. Failures are logged, never fatal. Notes never carry
    /// a secret.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj, EventType::Normal, reason, note).await;
    }

    /// Publishes a Warning Event about `obj`: something failed, and the note says what to fix
    /// (or that it is retried).
    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        note: String,
    ) {
        self.publish(obj, EventType::Warning, reason, note).await;
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        let reference = obj.object_ref(&());
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            // API servers before 1.22 refuse Events about cluster-scoped objects.
            if reference.namespace.is_some() {
                tracing::warn!(error = %e, reason, "could not publish an Event");
            } else {
                tracing::debug!(error = %e, reason, "could not publish an Event");
            }
        }
    }
}
