//! The wiring of `usher controller`: the Organisation, Profile and User controllers, what each
//! watches, and what every reconcile goes through (cache sync, timing, backoff on failure).

use std::{collections::HashMap, future::Future, sync::Arc};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        predicates,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tracing::Instrument;
use usher_crds::{LABEL_ACCOUNT, LABEL_OIDC_CLIENT, OIDCClient, Organisation, Profile, User};

use super::{
    backoff,
    context::{Caches, Context, Settings},
    error::Error,
    grant,
    key_secrets::KeySecrets,
    logouts,
    metrics::Metrics,
    oidc_client, organisation, profile, relocate, signing_keys, user,
};
use crate::{
    account::AccountIndex,
    keys::Keys,
    mail::Mailer,
    oidc::delivery as client_delivery,
    runtime::{
        cache::{Cache, IndexFn, key_of, no_index},
        watch::{Watched, trimmed_events},
    },
};

/// User reconciles in flight at once.
const CONCURRENCY: u16 = 64;

/// Runs the three controllers until a shutdown signal.
pub async fn run(
    client: Client,
    settings: Settings,
    mailer: Mailer,
    metrics: Metrics,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    // Not ready until every cache holds its first list.
    ready.store(false, std::sync::atomic::Ordering::Release);
    // One watch per kind, trimmed (managedFields are most of a User's size and nothing reads
    // them). Each fills the one store of its kind: its controller is driven by it and the
    // reconcilers read it, so a reconcile sees at least what woke it.
    // The same watch keeps the index of Users by account.
    let (user_store, writer) = reflector::store();
    let (users_synced_tx, users_synced) = tokio::sync::watch::channel(false);
    let members = user::accounts::members();
    let mut index = members.feed();
    let logout_members = members.clone();
    let user_events = trimmed_events(Api::<User>::all(client.clone()), writer, users_synced_tx)
        .inspect(move |event| {
            if let Ok(event) = event {
                index.apply(event.clone(), &|_| ());
            }
        });
    let users = Controller::for_stream(user_events.applied_objects(), user_store.clone())
        // Reconciles in flight at once: enough to keep the API server busy, few enough that an
        // onboarding wave waiting on the mail server holds little memory.
        .with_config(controller::Config::default().concurrency(CONCURRENCY));
    let orgs = shared(Api::<Organisation>::all(client.clone()));
    let profiles = shared(Api::<Profile>::all(client.clone()));
    let (org_store, profile_store) = (orgs.store.clone(), profiles.store.clone());
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    tokio::spawn({
        let mut all = [users_synced, orgs.synced.clone(), profiles.synced.clone()];
        async move {
            for s in &mut all {
                if s.wait_for(|synced| *synced).await.is_err() {
                    return;
                }
            }
            let _ = synced_tx.send(true);
            tracing::info!("caches synced");
        }
    });
    let (recount_orgs, orgs_to_recount) = futures::channel::mpsc::unbounded();
    let (recount_profiles, profiles_to_recount) = futures::channel::mpsc::unbounded();
    let namespace = settings.namespace.clone();
    // Accounts of an earlier layout move first, before anything reads them (the keys too).
    if let Some(from) = &settings.moved_from {
        relocate::accounts(&client, from, &namespace).await?;
    }
    // Accounts and delivered keys come from watch caches: a reconcile reads no account from the
    // API server (a restart lists them once instead of reading one per User).
    // Their changes wake the Users they concern once the cache holds them, so the reconcile
    // reads what woke it (a second watch would race with the cache).
    let accounts = Cache::<Secret>::new(no_index::<Secret> as IndexFn<Secret>);
    let (account_changed, accounts_changed) = futures::channel::mpsc::unbounded();
    tokio::spawn(accounts.run_notifying(
        Api::namespaced(client.clone(), &namespace),
        watcher::Config::default().labels(LABEL_ACCOUNT),
        account_changed,
    ));
    // The delivered keys, watched in the organisation namespaces only (started by each
    // Organisation's reconcile); each cache keeps a digest of a Secret, never its data.
    let (key_secret_changed, key_secrets_changed) = futures::channel::mpsc::unbounded();
    let key_secrets = Arc::new(KeySecrets::new(client.clone(), key_secret_changed));
    // The delivered OIDC client credentials likewise, and in the operator namespace.
    let (client_secret_changed, client_secrets_changed) = futures::channel::mpsc::unbounded();
    let client_secrets = Arc::new(KeySecrets::labelled(
        client.clone(),
        LABEL_OIDC_CLIENT,
        client_delivery::digest,
        client_secret_changed,
    ));
    client_secrets.watch(&settings.operator_namespace);
    // Who to give access to them, in each organisation namespace.
    let grant = match &settings.secrets_role {
        Some(role) => Some(grant::for_self(&client, role).await?),
        None => None,
    };

    // OIDC clients: their own watch; the Secrets delivering their credentials wake them. The
    // back-channel logouts read their store.
    let (oidc_clients, clients_writer) = reflector::store();
    let (clients_synced_tx, clients_synced) = tokio::sync::watch::channel(false);
    let client_events = trimmed_events(
        Api::<OIDCClient>::all(client.clone()),
        clients_writer,
        clients_synced_tx,
    );
    let clients = Controller::for_stream(client_events.applied_objects(), oidc_clients.clone());
    let caches_accounts = accounts.clone();
    let caches = Caches {
        users: user_store.clone(),
        organisations: org_store.clone(),
        profiles: profile_store.clone(),
        synced,
        recount_orgs,
        recount_profiles,
        accounts,
        key_secrets,
        grant,
        client_secrets,
        oidc_clients: oidc_clients.clone(),
        auditor: crate::audit::Auditor::start(
            crate::audit::sink::Sink::parse(&settings.audit_sink, settings.audit_spool.as_deref())
                .map_err(|e| anyhow::anyhow!(e))?,
        ),
    };
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
    tokio::spawn({
        let ctx = ctx.clone();
        async move {
            ctx.wait_synced().await;
            ready.store(true, std::sync::atomic::Ordering::Release);
        }
    });
    // Recounts go out coalesced; written Users the cache caught up with are forgotten.
    tokio::spawn({
        let ctx = ctx.clone();
        async move {
            let mut tick = tokio::time::interval(super::context::RECOUNT_EVERY);
            loop {
                tick.tick().await;
                ctx.flush_recounts();
                ctx.prune_written();
            }
        }
    });

    // Users are re-reconciled when their account changes (activation, MFA enrolment by the auth
    // server), and when the Organisation or Profile they depend on appears or changes.
    let by_namespace = user_store.clone();
    let by_profile = user_store.clone();
    let users = users
        .watches_stream(
            concerning_users(
                accounts_changed.inspect({
                    let ctx = ctx.clone();
                    move |s: &Arc<Secret>| {
                        if let Some(id) = s.labels().get(LABEL_ACCOUNT) {
                            ctx.logouts.touch(id);
                        }
                    }
                }),
                caches_accounts,
            )
            .map(|s: Arc<Secret>| Ok(Secret::clone(&s))),
            move |secret: Secret| {
                let id = secret
                    .labels()
                    .get(LABEL_ACCOUNT)
                    .cloned()
                    .unwrap_or_default();
                let login = AccountIndex::login_of(&secret).unwrap_or_default();
                user::accounts::users_of(&members, &id, &login)
            },
        )
        .watches_stream(orgs.dependants, move |org| {
            let ns = org.namespace_name();
            users_where(&by_namespace, |u| u.namespace().as_deref() == Some(&ns))
        })
        // API-key Secrets it made: a deleted or edited one is put right.
        .owns_stream(key_secrets_changed.map(|s: Arc<Secret>| Ok(Secret::clone(&s))))
        .watches_stream(profiles.dependants, move |p| {
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
    let orgs = Controller::for_stream(orgs.reconciled, orgs.store)
        .reconcile_on(orgs_to_recount)
        .shutdown_on_signal()
        .run(
            |o, ctx| instrumented(o, ctx, organisation::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("Organisation", r) });
    let profiles = Controller::for_stream(profiles.reconciled, profiles.store)
        .reconcile_on(profiles_to_recount)
        .shutdown_on_signal()
        .run(
            |p, ctx| instrumented(p, ctx, profile::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("Profile", r) });

    let clients = clients
        .owns_stream(client_secrets_changed.map(|s: Arc<Secret>| Ok(Secret::clone(&s))))
        .shutdown_on_signal()
        .run(
            |c, ctx| instrumented(c, ctx, oidc_client::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| async move { log_result("OIDCClient", r) });
    // The signing keys: made now if missing, rotated on schedule.
    let keys_task = tokio::spawn(signing_keys::keep(
        client.clone(),
        namespace.clone(),
        ctx.settings.oidc_key_rotation,
    ));

    // Back-channel logouts: swept from the accounts, delivered from the outbox.
    let logouts_task = tokio::spawn(logouts::run(
        ctx.clone(),
        oidc_clients,
        clients_synced,
        logout_members,
    ));

    tracing::info!(namespace = %namespace, "usher controller running");
    futures::join!(users, orgs, profiles, clients);
    keys_task.abort();
    logouts_task.abort();
    tracing::info!("usher controller stopped");
    Ok(())
}

/// What every reconcile goes through: it runs in a span naming the object (kind, namespace/name,
/// generation) so every line it logs says which, waits for the caches, is timed, and a success
/// resets its object's backoff.
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
    let meta = obj.meta();
    let span = tracing::info_span!(
        "reconcile",
        kind = %K::kind(&()),
        object = %match &meta.namespace {
            Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
            None => meta.name.clone().unwrap_or_default(),
        },
        generation = meta.generation.unwrap_or_default(),
    );
    async move {
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
    .instrument(span)
    .await
}

/// One watch of a kind that Users depend on (Organisations, Profiles), and what it feeds.
struct Shared<K: Watched, R, D> {
    /// Every `K`, trimmed: their controller's store, read by the reconcilers too.
    store: Store<K>,
    /// True once `store` holds the first list.
    synced: tokio::sync::watch::Receiver<bool>,
    /// The `K`s to reconcile: created or given a new spec (generation). The status their
    /// reconcile writes wakes nothing; the counts in it come through recount requests.
    reconciled: R,
    /// The `K`s the Users depending on them must look at again (see [`spec_changes`]).
    dependants: D,
}

/// Watches the `K`s once and passes each stored event on to both of [`Shared`]'s streams.
fn shared<K: Watched>(
    api: Api<K>,
) -> Shared<
    K,
    impl Stream<Item = Result<K, watcher::Error>> + Send,
    impl Stream<Item = Result<K, watcher::Error>> + Send,
> {
    let (store, writer) = reflector::store();
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    let (to_own, own) = futures::channel::mpsc::unbounded();
    let (to_dependants, dependants) = futures::channel::mpsc::unbounded();
    let events = trimmed_events(api, writer, synced_tx);
    tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    let _ = to_own.unbounded_send(event.clone());
                    let _ = to_dependants.unbounded_send(event);
                }
                Err(e) => {
                    tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying with backoff");
                }
            }
        }
    });
    Shared {
        store,
        synced,
        reconciled: own
            .map(Ok)
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default()),
        dependants: spec_changes(dependants),
    }
}

/// The `K`s of a watch's events that the Users depending on them must look at again: created,
/// deleted, or with a new spec (generation). Their status changing (the counts this controller
/// writes) passes nothing on: otherwise every recount would reconcile every member again.
fn spec_changes<K: Watched>(
    events: impl Stream<Item = watcher::Event<K>> + Send,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send {
    let mut seen: HashMap<String, Option<i64>> = HashMap::new();
    events.filter_map(move |event| {
        let passed = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let generation = o.meta().generation;
                (seen.insert(key_of(&o), generation) != Some(generation)).then_some(Ok(o))
            }
            watcher::Event::Delete(o) => {
                seen.remove(&key_of(&o));
                Some(Ok(o))
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        std::future::ready(passed)
    })
}

/// The account changes a User's reconcile may care about: not those that only moved what the
/// auth server keeps for OpenID Connect apps (a refresh rotates a grant's token: one account
/// write per refresh, which would otherwise wake every membership of the account).
/// A deleted account (no longer in `cache`) always passes.
fn concerning_users(
    changes: impl Stream<Item = Arc<Secret>> + Send,
    cache: Cache<Secret>,
) -> impl Stream<Item = Arc<Secret>> + Send {
    let mut seen: HashMap<String, [u8; 32]> = HashMap::new();
    changes.filter_map(move |secret| {
        let name = secret.name_any();
        let ns = secret.namespace().unwrap_or_default();
        let passed = if cache.get(&ns, &name).is_none() {
            seen.remove(&name);
            Some(secret)
        } else {
            let digest = crate::account::digest_for_users(&secret);
            (seen.insert(name, digest) != Some(digest)).then_some(secret)
        };
        std::future::ready(passed)
    })
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
