//! What every reconcile shares: the client, settings, the account store (over a watch cache of
//! the accounts), the mailer, the Event recorder, metrics, the watch caches, the Users this
//! process wrote (until the cache catches up), per-account locks, coalesced recounts and the
//! retry backoff.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Client, Resource, ResourceExt,
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};
use usher_crds::{OIDCClient, Organisation, Profile, User};

use super::{
    backoff::Backoff, grant::Grant, key_secrets::KeySecrets, locks::AccountLocks, metrics::Metrics,
    outbox::Logouts,
};
use k8s_openapi::jiff::Timestamp;

use crate::{
    account::AccountStore,
    audit::{Action, Actor, Outcome, Record, Target, Via},
    keys::Keys,
    mail::Mailer,
    reason::Reason,
    runtime::cache::{Cache, key_of, version_of},
};

/// How often coalesced recounts of Organisations and Profiles go out: a burst of new Users
/// costs each of them one count write per interval, not one per User.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(2);

/// The field manager and Event reporter of the controller.
pub const MANAGER: &str = "usher-controller";

/// Settings of `usher controller`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The accounts namespace (account Secrets and `usher-keys`).
    pub namespace: String,
    /// The namespace to move accounts from at start (where earlier versions kept them), when
    /// it is not `namespace`.
    pub moved_from: Option<String>,
    /// Base URL of the auth server, for invitation links.
    pub public_url: String,
    /// Sender of invitation emails.
    pub mail_from: String,
    /// Lifetime of an invitation link.
    pub invitation_ttl: Duration,
    /// Lifetime of a password reset link.
    pub reset_ttl: Duration,
    /// The ClusterRole the controller binds to itself in each organisation namespace it holds
    /// (see `grant`); `None`: it binds nothing (it runs with rights of its own, as in `usher
    /// dev`).
    pub secrets_role: Option<String>,
    /// The operator namespace: OIDCClients there serve the organisations they list.
    pub operator_namespace: String,
    /// How often the OpenID Connect signing keys are replaced.
    pub oidc_key_rotation: Duration,
    /// How long a back-channel logout is retried while its app does not take it.
    pub logout_retry: Duration,
    /// CA certificates (PEM) to trust for back-channel logout endpoints, beside the system's.
    pub logout_ca: Option<Vec<u8>>,
    /// Where audit records go: `stdout`, a file path or a collector's URL (`USHER_AUDIT_SINK`).
    pub audit_sink: String,
    /// Where an HTTP sink keeps what its collector has not taken yet (`USHER_AUDIT_SPOOL`).
    pub audit_spool: Option<String>,
}

/// The caches the reconcilers read, and the channels that ask for recounts.
pub struct Caches {
    /// Users, Organisations and Profiles: the store of each kind's controller (one watch per
    /// kind), so a reconcile reads at least what woke it.
    pub users: Store<User>,
    /// See `users`.
    pub organisations: Store<Organisation>,
    /// See `users`.
    pub profiles: Store<Profile>,
    /// True once the three above hold a complete first List.
    pub synced: tokio::sync::watch::Receiver<bool>,
    /// Organisations whose member count to check.
    pub recount_orgs: UnboundedSender<ObjectRef<Organisation>>,
    /// Profiles whose user count to check.
    pub recount_profiles: UnboundedSender<ObjectRef<Profile>>,
    /// The account Secrets of the operator namespace.
    pub accounts: Cache<Secret>,
    /// The API-key Secrets this controller delivered, per organisation namespace.
    pub key_secrets: Arc<KeySecrets>,
    /// See [`Context::grant`].
    pub grant: Option<Grant>,
    /// The delivered OIDC client Secrets, per organisation namespace and the operator's.
    pub client_secrets: Arc<KeySecrets>,
    /// The OIDCClients: the store of their controller.
    pub oidc_clients: Store<OIDCClient>,
    /// The audit trail.
    pub auditor: crate::audit::Auditor,
}

/// What waits for a recount: the namespaces whose Organisation counts members (resolved when
/// the recounts go out, so an Organisation the caches did not hold yet is found then), and the
/// Profiles.
#[derive(Default)]
struct Dirty {
    namespaces: HashSet<String>,
    profiles: HashSet<ObjectRef<Profile>>,
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
    /// The delivered API-key Secrets, per organisation namespace.
    pub key_secrets: Arc<KeySecrets>,
    /// What the controller binds to itself in each organisation namespace, if anything.
    pub grant: Option<Grant>,
    /// The delivered OIDC client Secrets, per organisation namespace and the operator's.
    pub client_secrets: Arc<KeySecrets>,
    /// The account Secrets (the store's cache).
    pub account_cache: Cache<Secret>,
    recorder: Recorder,
    synced: tokio::sync::watch::Receiver<bool>,
    recount_orgs: UnboundedSender<ObjectRef<Organisation>>,
    recount_profiles: UnboundedSender<ObjectRef<Profile>>,
    dirty: Mutex<Dirty>,
    /// Per-account locks (`super::locks`).
    pub locks: AccountLocks,
    /// Users as this process last wrote them, by `namespace/name`, while the cache still holds
    /// an older version: a reconcile right after a write sees the write.
    written: Mutex<HashMap<String, Arc<User>>>,
    /// Invitations emailed whose record in the account failed, by account id: the retry
    /// records the same link instead of emailing another.
    unrecorded: Mutex<HashMap<String, crate::account::PendingInvitation>>,
    /// The back-channel logouts due, and what asks for a sweep (see `logouts`).
    pub logouts: Logouts,
    /// The OIDCClients (their back-channel endpoints).
    pub oidc_clients: Store<OIDCClient>,
    /// The audit trail (`USHER_AUDIT_SINK`).
    pub auditor: crate::audit::Auditor,
    /// UIDs of the Users whose removal was recorded (bounded).
    removed: Mutex<HashSet<String>>,
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
        let logouts = Logouts::new(client.clone(), &settings.namespace, metrics.clone());
        Context {
            accounts: AccountStore::new(client.clone(), &settings.namespace)
                .with_cache(caches.accounts.clone()),
            account_cache: caches.accounts,
            key_secrets: caches.key_secrets,
            grant: caches.grant,
            client_secrets: caches.client_secrets,
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
            recount_orgs: caches.recount_orgs,
            recount_profiles: caches.recount_profiles,
            dirty: Mutex::default(),
            locks: AccountLocks::default(),
            written: Mutex::default(),
            unrecorded: Mutex::default(),
            logouts,
            oidc_clients: caches.oidc_clients,
            auditor: caches.auditor,
            removed: Mutex::default(),
        }
    }

    /// The invitation emailed for account `id` whose record failed, if any.
    pub fn unrecorded(&self, id: &str) -> Option<crate::account::PendingInvitation> {
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Remembers (`Some`) or forgets (`None`) the emailed, unrecorded invitation of account
    /// `id`.
    pub fn set_unrecorded(&self, id: &str, invitation: Option<crate::account::PendingInvitation>) {
        let mut map = self.unrecorded.lock().unwrap_or_else(|p| p.into_inner());
        match invitation {
            Some(i) => map.insert(id.to_owned(), i),
            None => map.remove(id),
        };
    }

    /// True once the account cache holds its first list (a key Secret that its namespace's
    /// cache does not hold yet is read from the API server).
    pub fn secrets_ready(&self) -> bool {
        self.account_cache.is_ready()
    }

    /// `user`, or the version of it this process wrote last when that is newer (the cache has
    /// not caught up yet). Entries go once the cache holds their version.
    pub fn fresher(&self, user: Arc<User>) -> Arc<User> {
        let key = key_of(&*user);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        match written.get(&key) {
            Some(w) if version(w) > version(&user) => w.clone(),
            Some(_) => {
                written.remove(&key);
                user
            }
            None => user,
        }
    }

    /// Remembers `user` as this process just wrote it.
    pub fn wrote(&self, user: User) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.insert(key_of(&user), Arc::new(user));
    }

    /// Waits until the three caches hold a complete first List, so no reconcile judges a User
    /// against a half-loaded set of Organisations or Profiles.
    ///
    /// Each watch marks its store synced itself (`runtime::watch::trimmed_events`): kube's
    /// `Store::wait_until_ready` wakes only the last of several concurrent waiters, and each
    /// controller's applier is waiting on its store already.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|ready| *ready).await;
        while !self.secrets_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Users to count members and profile users from, once that store is complete. Before
    /// then counts are left as they are, so a restart rewrites nothing.
    pub fn counted_users(&self) -> Option<&Store<User>> {
        (*self.synced.borrow()).then_some(&self.users)
    }

    /// Asks for the member count of `user`'s organisation and the user counts of every profile
    /// (a handful) to be checked, at the next [`RECOUNT_EVERY`] tick (see
    /// [`Context::flush_recounts`]). Asked after the User is in the cache, so the counts see
    /// it; a watch of Users of their own would race with this cache.
    pub fn recount(&self, user: &User) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        dirty
            .namespaces
            .insert(user.namespace().unwrap_or_default());
        // The User's own profile by name, even when it is not cached yet; the others because
        // the User may have left one of them.
        dirty
            .profiles
            .insert(ObjectRef::<Profile>::new(&user.spec.profile));
        for profile in self.profiles.state() {
            dirty.profiles.insert(ObjectRef::from_obj(profile.as_ref()));
        }
    }

    /// Forgets written Users the cache holds by now (or that are gone).
    pub fn prune_written(&self) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.retain(|key, w| {
            let (ns, name) = key.split_once('/').unwrap_or_default();
            self.users
                .get(&ObjectRef::<User>::new(name).within(ns))
                .is_some_and(|c| version(&c) < version(w))
        });
    }

    /// Sends the recounts asked for since the last call, each once.
    pub fn flush_recounts(&self) {
        let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        if !dirty.namespaces.is_empty() {
            let orgs = self
                .organisations
                .state_filter(|o| dirty.namespaces.contains(&o.namespace_name()));
            for org in orgs {
                let _ = self
                    .recount_orgs
                    .unbounded_send(ObjectRef::from_obj(org.as_ref()));
            }
        }
        for profile in dirty.profiles {
            let _ = self.recount_profiles.unbounded_send(profile);
        }
    }

    /// Records `action` on `user`, done by the controller acting on a change made with kubectl
    /// or GitOps (`via: kubernetes`).
    pub fn audit_user(&self, action: Action, user: &User, outcome: Outcome) {
        self.audit(
            by_controller(action, outcome)
                .on(Target {
                    kind: Some("User"),
                    namespace: user.namespace(),
                    name: Some(user.name_any()),
                    account_id: user.status.as_ref().and_then(|s| s.account_id.clone()),
                    login: Some(user.spec.login.clone()),
                })
                .in_organisation(self.organisation_of(user)),
        );
    }

    /// As [`Context::audit_user`], unless the admin API recorded this very change already:
    /// `marker` is `<annotation>=<value>` of a one-shot action (`usher.dev/audited`) or
    /// `generation=<n>` of a spec change (`usher.dev/audited-generation`).
    pub fn audit_user_unless(&self, action: Action, user: &User, marker: Option<String>) {
        let a = user.annotations();
        let audited = match marker
            .as_deref()
            .and_then(|m| m.strip_prefix("generation="))
        {
            Some(g) => {
                a.get(usher_crds::ANNOTATION_AUDITED_GENERATION)
                    .map(String::as_str)
                    == Some(g)
            }
            None => marker.is_some() && a.get(usher_crds::ANNOTATION_AUDITED) == marker.as_ref(),
        };
        if audited {
            return;
        }
        self.audit_user(action, user, Outcome::Success);
    }

    /// Records `action` on OIDCClient `client`, by the controller (`via: kubernetes`).
    pub fn audit_client(
        &self,
        action: Action,
        client: &OIDCClient,
        outcome: Outcome,
        reason: Option<&str>,
    ) {
        let organisation = self.organisation_in(&client.namespace().unwrap_or_default());
        let mut r = by_controller(action, outcome)
            .on(client_target(client))
            .in_organisation(organisation);
        if let Some(why) = reason {
            r = r.because(why);
        }
        self.audit(r);
    }

    /// Records a back-channel logout of `d` to `client`: delivered, or not (`reason`).
    pub fn audit_logout(
        &self,
        client: &OIDCClient,
        d: &crate::oidc::logout::Due,
        outcome: Outcome,
        reason: Option<&str>,
    ) {
        let action = if outcome == Outcome::Success {
            Action::OidcLogoutSent
        } else {
            Action::OidcLogoutFailed
        };
        let mut r = by_controller(action, outcome).on(Target {
            account_id: Some(d.sub.clone()),
            ..client_target(client)
        });
        if let Some(why) = reason {
            r = r.because(why);
        }
        self.audit(r);
    }

    /// True the first time `user` (by UID) is seen removed by this process.
    pub fn first_removal(&self, user: &User) -> bool {
        let uid = user.uid().unwrap_or_default();
        let Ok(mut seen) = self.removed.lock() else {
            return true;
        };
        if seen.len() > 10_000 {
            seen.clear();
        }
        seen.insert(uid)
    }

    /// Sends `record` to the trail (never waits).
    pub fn audit(&self, record: Record) {
        self.auditor.record(record);
    }

    /// The name of the Organisation holding `user`'s namespace (empty when none does).
    pub fn organisation_of(&self, user: &User) -> String {
        self.organisation_in(&user.namespace().unwrap_or_default())
    }

    /// The name of the Organisation whose namespace is `ns` (empty when none is).
    pub fn organisation_in(&self, ns: &str) -> String {
        self.organisations
            .state()
            .iter()
            .find(|o| o.namespace_name() == ns)
            .map(|o| o.name_any())
            .unwrap_or_default()
    }

    /// Publishes a Normal Event about `obj`. Failures are logged, never fatal. Notes never carry
    /// a secret.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: Reason,
        note: String,
    ) {
        self.publish(obj, EventType::Normal, reason, note).await;
    }

    /// Publishes a Warning Event about `obj`: something failed, and the note says what to fix
    /// (or that it is retried).
    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: Reason,
        note: String,
    ) {
        self.publish(obj, EventType::Warning, reason, note).await;
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: Reason,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.as_str().to_owned(),
            note: Some(note),
            action: reason.as_str().to_owned(),
            secondary: None,
        };
        let reference = obj.object_ref(&());
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, %reason, "could not publish an Event");
        }
    }
}

/// A User's resourceVersion as a number; 0 when unknown.
fn version(user: &User) -> u64 {
    version_of(user).unwrap_or(0)
}

/// A record of `action` by the controller, acting on a change made with kubectl or GitOps
/// (`via: kubernetes`).
fn by_controller(action: Action, outcome: Outcome) -> Record {
    Record::new(
        action,
        outcome,
        Timestamp::now(),
        crate::audit::sink::new_id(),
    )
    .by(Actor {
        via: Some(Via::Kubernetes),
        name: Some(MANAGER.into()),
        ..Actor::default()
    })
}

/// OIDCClient `client` as a record's target.
fn client_target(client: &OIDCClient) -> Target {
    Target {
        kind: Some("OIDCClient"),
        namespace: client.namespace(),
        name: Some(client.name_any()),
        ..Target::default()
    }
}
