//! The Secrets the controller delivered (API keys, labelled `usher.dev/user`; OIDC client
//! credentials, labelled `usher.dev/oidc-client`: one [`KeySecrets`] per label), watched per
//! organisation namespace: one watch of Secrets with the label in each namespace an Organisation holds, started when
//! the Organisation's reconcile has made the RoleBinding that lets the controller read there,
//! and stopped when no Organisation holds the namespace any more. A Secret labelled so anywhere
//! else is never seen (and the controller may not read it: it has no cluster-wide rule on
//! Secrets). Each cache keeps a digest of a Secret (`delivery::digest`), never its data.
//!
//! A Secret the caches do not hold is read from the API server, so a reconcile that runs before
//! its namespace's watch has listed is correct, only slower.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt, runtime::watcher};
use usher_crds::LABEL_USER;

use crate::{
    apikey::delivery,
    runtime::cache::{Cache, IndexFn, no_index},
};

struct Watch {
    cache: Cache<Secret>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watches, by namespace; cheap to share behind an `Arc`.
pub struct KeySecrets {
    client: Client,
    /// The label the watched Secrets carry.
    label: &'static str,
    /// What a cache keeps of a Secret (never its data).
    digest: fn(Secret) -> Secret,
    /// Where each watch sends the Secrets that changed (they wake the User that owns them).
    changed: UnboundedSender<Arc<Secret>>,
    watches: Mutex<HashMap<String, Watch>>,
}

impl KeySecrets {
    /// The API-key Secrets: no watch yet; changes go to `changed`.
    pub fn new(client: Client, changed: UnboundedSender<Arc<Secret>>) -> KeySecrets {
        KeySecrets::labelled(client, LABEL_USER, delivery::digest, changed)
    }

    /// Secrets labelled `label`, kept as `digest` makes them: no watch yet; changes go to
    /// `changed`.
    pub fn labelled(
        client: Client,
        label: &'static str,
        digest: fn(Secret) -> Secret,
        changed: UnboundedSender<Arc<Secret>>,
    ) -> KeySecrets {
        KeySecrets {
            client,
            label,
            digest,
            changed,
            watches: Mutex::default(),
        }
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watch>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches namespace `ns`, unless it is watched already. Call it once the controller may
    /// read there: until then the watch retries with backoff.
    pub fn watch(&self, ns: &str) {
        let mut watches = self.watches();
        if watches.contains_key(ns) {
            return;
        }
        let cache = Cache::<Secret>::mapped(self.digest, no_index::<Secret> as IndexFn<Secret>);
        let task = tokio::spawn(cache.run_notifying(
            Api::namespaced(self.client.clone(), ns),
            watcher::Config::default().labels(self.label),
            self.changed.clone(),
        ));
        tracing::debug!(
            namespace = ns,
            label = self.label,
            "watching delivered Secrets"
        );
        watches.insert(ns.to_owned(), Watch { cache, task });
    }

    /// Stops the watches of namespaces not in `held` (no Organisation holds them any more).
    pub fn keep_only(&self, held: &HashSet<String>) {
        self.watches().retain(|ns, _| held.contains(ns));
    }

    fn cache(&self, ns: &str) -> Option<Cache<Secret>> {
        self.watches().get(ns).map(|w| w.cache.clone())
    }

    /// The digest of Secret `name` in `ns`, when its namespace's watch holds it.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<Secret>> {
        self.cache(ns)?.get(ns, name)
    }

    /// Forgets Secret `name` in `ns`, which this process just deleted.
    pub fn forget(&self, ns: &str, name: &str) {
        if let Some(c) = self.cache(ns) {
            c.forget(ns, name);
        }
    }

    /// Applies a Secret this process just wrote to its namespace's cache.
    pub fn apply_own_write(&self, secret: Secret) {
        if let Some(c) = self.cache(&secret.namespace().unwrap_or_default()) {
            c.apply_own_write(secret);
        }
    }
}
