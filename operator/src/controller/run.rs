//! The wiring of `usher controller`: the Organisation, Profile and User controllers, what each
//! watches, and what every reconcile goes through (cache sync, timing, backoff on failure).

use std::{future::Future, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use usher_crds::{LABEL_ACCOUNT, LABEL_USER, Organisation, Profile, User, login::canonical_login};

use super::{
    backoff,
    context::{Caches, Context, Settings},
    error::Error,
    metrics::Metrics,
    organisation, profile, user,
};
use crate::{keys::Keys, mail::Mailer};

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

    let caches = Caches {
        users: user_store.clone(),
        organisations: org_store.clone(),
        profiles: profile_store.clone(),
        synced,
        counted_users: users.store(),
        counts_ready,
        recount_orgs,
        recount_profiles,
    };
    let namespace = settings.namespace.clone();
    // API keys are sealed in accounts with the key every auth replica shares.
    let keys = Keys::load_or_create(client.clone(), &namespace).await?;
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        mailer,
        keys,
        metrics,
        caches,
    ));

    // Users are re-reconciled when their account changes (activation, MFA enrolment by the auth
    // server), and when the Organisation or Profile they depend on appears or changes.
    let by_login = user_store.clone();
    let by_namespace = user_store.clone();
    let by_profile = user_store.clone();
    let account_wc = watcher::Config::default().labels(LABEL_ACCOUNT);
    let users = users
        .watches(
            Api::<Secret>::namespaced(client.clone(), &namespace),
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
            watcher::Config::default().labels(LABEL_USER),
        )
        .watches(Api::<Profile>::all(client.clone()), wc.clone(), move |p| {
            let name = p.name_any();
            users_where(&by_profile, |u| u.spec.profile == name)
        })
        .shutdown_on_signal()
        .run(
            |u, ctx| instrumented(u, ctx, user::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("User", r) });

    // Organisations count members and Profiles count users, recounted when the User
    // reconciler has seen a change (see Context::recount).
    let orgs = orgs
        .reconcile_on(orgs_to_recount)
        .shutdown_on_signal()
        .run(
            |o, ctx| instrumented(o, ctx, organisation::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("Organisation", r) });
    let profiles = profiles
        .reconcile_on(profiles_to_recount)
        .shutdown_on_signal()
        .run(
            |p, ctx| instrumented(p, ctx, profile::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("Profile", r) });

    tracing::info!(namespace = %namespace, "usher controller running");
    futures::join!(users, orgs, profiles);
    tracing::info!("usher controller stopped");
    Ok(())
}

/// What every reconcile goes through: it waits for the caches, is timed, and a success resets
/// its object's backoff.
async fn instrumented<K, F, Fut>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let started = std::time::Instant::now();
    ctx.wait_synced().await;
    let key = backoff::key(obj.as_ref());
    let result = reconcile(obj, ctx.clone()).await;
    ctx.metrics
        .reconciled(&K::kind(&()), started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
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

/// Retries a failed reconcile with exponential backoff per object (5 s doubling to 5 min, reset
/// by a success); each failure is counted.
fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let kind = K::kind(&()).to_string();
    ctx.metrics.reconcile_failed(&kind, err.metric_label());
    let delay = ctx.backoff.failed(backoff::key(obj.as_ref()));
    tracing::warn!(
        kind,
        name = obj.meta().name.as_deref().unwrap_or(""),
        namespace = obj.meta().namespace.as_deref().unwrap_or(""),
        error = %err,
        retry_in = ?delay,
        "reconcile failed"
    );
    // A Warning Event on the object, so `kubectl describe` and GitOps tools show the failure.
    let (reason, note) = (
        err.event_reason(),
        format!("{err}; retrying in {}s", delay.as_secs()),
    );
    tokio::spawn(async move { ctx.warning(obj.as_ref(), reason, note).await });
    Action::requeue(delay)
}
