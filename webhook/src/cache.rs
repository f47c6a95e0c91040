//! Watch caches (reflectors) of Organisations, Profiles and Users. Until all three have synced,
//! and wherever a lagging cache could be wrong, the server decides on [`Caches::list`], a fresh
//! List from the API server (see `server::decide`).

use std::time::Instant;

use crate::budget::Budget;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use futures::StreamExt;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use usher_crds::{Organisation, Profile, User};

use crate::rules::{Lookup, Snapshot};

/// Reflector stores of the three Usher kinds.
#[derive(Clone)]
pub struct Caches {
    client: Client,
    organisations: Store<Organisation>,
    profiles: Store<Profile>,
    users: Store<User>,
    synced: Arc<AtomicBool>,
    /// Fresh Lists the webhook may still ask for: 10 at once, 2 a second.
    lists: Arc<Budget>,
}

impl Caches {
    /// Starts the three reflectors on the current Tokio runtime.
    pub fn start(client: Client) -> Caches {
        let organisations = spawn_reflector::<Organisation>(Api::all(client.clone()));
        let profiles = spawn_reflector::<Profile>(Api::all(client.clone()));
        let users = spawn_reflector::<User>(Api::all(client.clone()));
        let synced = Arc::new(AtomicBool::new(false));
        let caches = Caches {
            client,
            organisations,
            profiles,
            users,
            synced: synced.clone(),
            lists: Arc::new(Budget::new(10, 2, Instant::now())),
        };
        let (o, p, u) = (
            caches.organisations.clone(),
            caches.profiles.clone(),
            caches.users.clone(),
        );
        tokio::spawn(async move {
            let all = futures::future::try_join3(
                o.wait_until_ready(),
                p.wait_until_ready(),
                u.wait_until_ready(),
            );
            if all.await.is_ok() {
                synced.store(true, Ordering::Release);
                tracing::info!("watch caches synced");
            }
        });
        caches
    }

    /// True once every cache has completed its first List.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// True when a fresh List may be asked for now (see [`Budget`]); once the caches are
    /// synced, a request beyond the budget is decided from them.
    pub fn may_list(&self) -> bool {
        self.lists.take(Instant::now())
    }

    /// The fresh Lists the budget holds now.
    pub fn lists_available(&self) -> f64 {
        self.lists.available(Instant::now())
    }

    /// A fresh List of the three kinds from the API server; Users of one namespace only when
    /// `users_in` is given (all a User's rules look at).
    pub async fn list(&self, users_in: Option<&str>) -> kube::Result<Snapshot> {
        let lp = ListParams::default();
        let (orgs, profs, usrs) = (
            Api::<Organisation>::all(self.client.clone()),
            Api::<Profile>::all(self.client.clone()),
            match users_in {
                Some(ns) => Api::<User>::namespaced(self.client.clone(), ns),
                None => Api::<User>::all(self.client.clone()),
            },
        );
        let (organisations, profiles, users) =
            futures::try_join!(orgs.list(&lp), profs.list(&lp), usrs.list(&lp))?;
        Ok(Snapshot {
            organisations: organisations.items.into_iter().map(Arc::new).collect(),
            profiles: profiles.items.into_iter().map(Arc::new).collect(),
            users: users.items.into_iter().map(Arc::new).collect(),
        })
    }
}

impl Lookup for Caches {
    fn organisations(&self) -> Vec<Arc<Organisation>> {
        self.organisations.state()
    }
    fn profiles(&self) -> Vec<Arc<Profile>> {
        self.profiles.state()
    }
    fn find_user(&self, predicate: &dyn Fn(&User) -> bool) -> Option<Arc<User>> {
        self.users.find(|u| predicate(u))
    }
    fn users_where(&self, predicate: &dyn Fn(&User) -> bool) -> Vec<Arc<User>> {
        self.users.state_filter(|u| predicate(u))
    }
}

/// A cache of every `K` the API serves to `api`, without managedFields (large, never read),
/// kept filled by a task on the current Tokio runtime; watch errors are logged and retried with
/// backoff.
fn spawn_reflector<K>(api: Api<K>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|obj| obj.managed_fields_mut().clear())
        .reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying with backoff");
            }
        }
    });
    reader
}
