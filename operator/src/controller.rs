//! `usher controller`: the Organisation, Profile and User reconcilers, wired together.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use usher_crds::{LABEL_ACCOUNT, Organisation, Profile, User, login::canonical_login};

use crate::{Error, account::AccountStore, mailer::Mailer, metrics::Metrics};

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
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Metrics,
    /// Caches of the three kinds, read by the reconcilers.
    pub users: Store<User>,
    /// See `users`.
    pub organisations: Store<Organisation>,
    /// See `users`.
    pub profiles: Store<Profile>,
    synced: tokio::sync::watch::Receiver<bool>,
    /// The User controller's own store: recounts are triggered from it, so counts read it.
    counted_users: Store<User>,
    /// True once `counted_users` is known complete (see [`Context::counts_ready`]).
    counts_ready: Arc<std::sync::atomic::AtomicBool>,
    recount_orgs: futures::channel::mpsc::UnboundedSender<ObjectRef<Organisation>>,
    recount_profiles: futures::channel::mpsc::UnboundedSender<ObjectRef<Profile>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// Serialises work on one account across its memberships' reconciles.
    pub async fn lock_account(&self, account_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(account_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The retry delay after the `n`th consecutive failure of `key`: 5 s doubling to 5 min.
    fn next_backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }

    /// Waits until the three caches hold a complete first List, so no reconcile judges a User
    /// against a half-loaded set of Organisations or Profiles.
    ///
    /// One task awaits the stores (see [`run`]) and publishes on a watch channel: kube's
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
            .load(std::sync::atomic::Ordering::Acquire)
            .then_some(&self.counted_users)
    }

    /// Marks the counted store complete (called by the User reconciler).
    pub fn mark_counts_ready(&self) {
        self.counts_ready
            .store(true, std::sync::atomic::Ordering::Release);
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

    /// Publishes an Event about `obj`. Failures are logged, never fatal. Notes never carry a
    /// secret.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        let ev = Event {
            type_: EventType::Normal,
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

/// Runs the three controllers until a shutdown signal.
pub async fn run(
    client: Client,
    settings: Settings,
    mailer: Mailer,
    metrics: Metrics,
) -> anyhow::Result<()> {
    let wc = watcher::Config::default();
    let users = Controller::new(Api::<User>::all(client.clone()), wc.clone());
    let orgs = Controller::new(Api::<Organisation>::all(client.clone()), wc.clone());
    let profiles = Controller::new(Api::<Profile>::all(client.clone()), wc.clone());
    // The reconcilers read caches of their own. A Controller's store is awaited by its applier,
    // and kube's Store::wait_until_ready wakes only one waiter: a second waiter on it stalls
    // either the controller or the waiter. These stores have exactly one waiter, below.
    let (user_store, org_store, profile_store) = (
        usher_crds::watch::spawn_reflector::<User>(Api::all(client.clone())),
        usher_crds::watch::spawn_reflector::<Organisation>(Api::all(client.clone())),
        usher_crds::watch::spawn_reflector::<Profile>(Api::all(client.clone())),
    );
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    let counts_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let (u, o, p) = (user_store.clone(), org_store.clone(), profile_store.clone());
        let counts_ready = counts_ready.clone();
        async move {
            let ready = futures::future::try_join3(
                u.wait_until_ready(),
                o.wait_until_ready(),
                p.wait_until_ready(),
            );
            if ready.await.is_ok() {
                if u.is_empty() {
                    // No Users: no User reconcile will ever mark the counts ready.
                    counts_ready.store(true, std::sync::atomic::Ordering::Release);
                }
                let _ = synced_tx.send(true);
                tracing::info!("caches synced");
            }
        }
    });
    let (recount_orgs, orgs_to_recount) = futures::channel::mpsc::unbounded();
    let (recount_profiles, profiles_to_recount) = futures::channel::mpsc::unbounded();

    let ctx = Arc::new(Context {
        accounts: AccountStore::new(client.clone(), &settings.namespace),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        client: client.clone(),
        settings: settings.clone(),
        mailer,
        metrics,
        users: user_store.clone(),
        organisations: org_store.clone(),
        profiles: profile_store.clone(),
        synced,
        counted_users: users.store(),
        counts_ready,
        recount_orgs,
        recount_profiles,
        locks: Mutex::default(),
        failures: Mutex::default(),
    });

    // Users are re-reconciled when their account changes (activation, MFA enrolment by the auth
    // server), and when the Organisation or Profile they depend on appears or changes.
    let by_login = user_store.clone();
    let by_namespace = user_store.clone();
    let by_profile = user_store.clone();
    let account_wc = watcher::Config::default().labels(LABEL_ACCOUNT);
    let users = users
        .watches(
            Api::<Secret>::namespaced(client.clone(), &settings.namespace),
            account_wc,
            move |secret: Secret| {
                let login = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get("login"))
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
                    .unwrap_or_default();
                users_where(&by_login, |u| {
                    canonical_login(&u.spec.login).ok().as_deref() == Some(&login)
                })
            },
        )
        .watches(
            Api::<Organisation>::all(client.clone()),
            wc.clone(),
            move |org| {
                let ns = org.namespace_name();
                users_where(&by_namespace, |u| u.namespace().as_deref() == Some(&ns))
            },
        )
        // API-key Secrets it made: a deleted or edited one is put right.
        .owns(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default().labels(usher_crds::LABEL_USER),
        )
        .watches(Api::<Profile>::all(client.clone()), wc.clone(), move |p| {
            let name = p.name_any();
            users_where(&by_profile, |u| u.spec.profile == name)
        })
        .shutdown_on_signal()
        .run(crate::user_reconciler::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move { log_result("User", r) });

    // Organisations count members and Profiles count users, recounted when the User
    // reconciler has seen a change (see Context::recount).
    let orgs = orgs
        .reconcile_on(orgs_to_recount)
        .shutdown_on_signal()
        .run(
            crate::organisation_reconciler::reconcile,
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("Organisation", r) });
    let profiles = profiles
        .reconcile_on(profiles_to_recount)
        .shutdown_on_signal()
        .run(
            crate::profile_reconciler::reconcile,
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("Profile", r) });

    tracing::info!(namespace = %settings.namespace, "usher controller running");
    futures::join!(users, orgs, profiles);
    tracing::info!("usher controller stopped");
    Ok(())
}

fn users_where(store: &Store<User>, pred: impl Fn(&User) -> bool) -> Vec<ObjectRef<User>> {
    store
        .state_filter(|u| pred(u))
        .iter()
        .map(|u| ObjectRef::from_obj(u.as_ref()))
        .collect()
}

fn log_result<K: std::fmt::Debug, E: std::fmt::Display>(kind: &str, r: Result<K, E>) {
    if let Err(e) = r {
        tracing::debug!(kind, error = %e, "reconcile stream");
    }
}

/// Writes `status` of `obj` through the status subresource of `api` by server-side apply
/// (field manager [`MANAGER`]), only when it differs from `current`: an unchanged object costs
/// no write.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    S: serde::Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &kube::api::PatchParams::apply(MANAGER).force(),
        &kube::api::Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The retry delay after `n` (≥ 1) consecutive failures: 5 s doubling, at most 5 min.
pub fn backoff_delay(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(6);
    Duration::from_secs((5u64 << doublings).min(300))
}

/// The key of an object in the backoff table.
pub fn backoff_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Retries a failed reconcile with exponential backoff per object (5 s doubling to 5 min, reset
/// by a success); each failure is counted.
pub fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&()).to_string();
    ctx.metrics.reconcile_failed(&kind, err.metric_label());
    let delay = ctx.next_backoff(backoff_key(obj.as_ref()));
    tracing::warn!(
        kind,
        name = obj.meta().name.as_deref().unwrap_or(""),
        namespace = obj.meta().namespace.as_deref().unwrap_or(""),
        error = %err,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_from_five_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1u32..=9)
            .map(|n| super::backoff_delay(n).as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(super::backoff_delay(u32::MAX).as_secs(), 300);
    }
}
