//! Watch caches with secondary indexes: every object of one kind that a watch serves, kept by
//! `namespace/name` and by keys computed from the object (a login, a token hash), so each
//! request is answered by a few map lookups. Edits take effect on the next event; a replica's own
//! writes are applied at once ([`Cache::apply_own_write`]) so it reads what it just wrote.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, RwLock},
};

use futures::StreamExt;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// Computes the index keys of an object.
pub type IndexFn<K> = fn(&K) -> Vec<String>;

/// Trims an object before it is stored (drops what requests never read).
pub type ShrinkFn<K> = fn(&mut K);

fn keep_all<K>(_: &mut K) {}

struct Inner<K> {
    objects: HashMap<String, Arc<K>>,
    index: HashMap<String, BTreeSet<String>>,
}

impl<K> Default for Inner<K> {
    fn default() -> Self {
        Inner {
            objects: HashMap::new(),
            index: HashMap::new(),
        }
    }
}

/// A cache of one kind; cheap to clone.
pub struct Cache<K> {
    inner: Arc<RwLock<Inner<K>>>,
    index_fn: IndexFn<K>,
    shrink: ShrinkFn<K>,
    ready: watch::Receiver<bool>,
    ready_tx: Arc<watch::Sender<bool>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            index_fn: self.index_fn,
            shrink: self.shrink,
            ready: self.ready.clone(),
            ready_tx: self.ready_tx.clone(),
        }
    }
}

fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// A resourceVersion as a number, when it is one (etcd's are); others compare as unknown.
fn version(obj: &impl Resource) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

impl<K: Resource> Inner<K> {
    fn insert(&mut self, index_fn: IndexFn<K>, obj: K) {
        let key = key_of(&obj);
        self.remove(index_fn, &key);
        for ix in index_fn(&obj) {
            self.index.entry(ix).or_default().insert(key.clone());
        }
        self.objects.insert(key, Arc::new(obj));
    }

    fn remove(&mut self, index_fn: IndexFn<K>, key: &str) {
        if let Some(old) = self.objects.remove(key) {
            for ix in index_fn(&old) {
                if let Some(set) = self.index.get_mut(&ix) {
                    set.remove(key);
                    if set.is_empty() {
                        self.index.remove(&ix);
                    }
                }
            }
        }
    }
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    /// An empty cache indexing objects by `index_fn`.
    pub fn new(index_fn: IndexFn<K>) -> Cache<K> {
        let (tx, rx) = watch::channel(false);
        Cache {
            inner: Arc::default(),
            index_fn,
            shrink: keep_all::<K>,
            ready: rx,
            ready_tx: Arc::new(tx),
        }
    }

    /// Stores objects trimmed by `shrink`.
    pub fn with_shrink(mut self, shrink: ShrinkFn<K>) -> Cache<K> {
        self.shrink = shrink;
        self
    }

    /// Keeps the cache filled from a watch of `api` (spawn the future). Watch errors are logged
    /// and retried with backoff; a relist replaces the contents in one step.
    pub fn run(
        &self,
        api: Api<K>,
        config: watcher::Config,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let cache = self.clone();
        async move {
            let stream = watcher(api, config).default_backoff();
            futures::pin_mut!(stream);
            let mut relist: Option<Inner<K>> = None;
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying with backoff");
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => relist = Some(Inner::default()),
                    watcher::Event::InitApply(mut obj) => {
                        obj.managed_fields_mut().clear();
                        (cache.shrink)(&mut obj);
                        if let Some(r) = relist.as_mut() {
                            r.insert(cache.index_fn, obj);
                        }
                    }
                    watcher::Event::InitDone => {
                        if let Some(r) = relist.take() {
                            *cache.write() = r;
                        }
                        cache.ready_tx.send_replace(true);
                    }
                    watcher::Event::Apply(obj) => {
                        cache.apply_own_write(obj);
                    }
                    watcher::Event::Delete(obj) => {
                        cache.write().remove(cache.index_fn, &key_of(&obj));
                    }
                }
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the first list arrived.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first list arrived.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The object `name` in `namespace` ("" for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read()
            .objects
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// The objects whose index keys include `ix`.
    pub fn find(&self, ix: &str) -> Vec<Arc<K>> {
        let inner = self.read();
        inner
            .index
            .get(ix)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| inner.objects.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every object.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies an object this replica just wrote (or a watch event), unless the cache already
    /// holds a newer version, so the next request here sees a write even before its watch
    /// event arrives, and a late event never takes the cache back in time.
    pub fn apply_own_write(&self, mut obj: K) {
        obj.managed_fields_mut().clear();
        (self.shrink)(&mut obj);
        let mut inner = self.write();
        let newer_held = inner.objects.get(&key_of(&obj)).is_some_and(|held| {
            match (version(held.as_ref()), version(&obj)) {
                (Some(h), Some(o)) => h >= o,
                _ => false,
            }
        });
        if !newer_held {
            inner.insert(self.index_fn, obj);
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(name: &str, rv: &str, tag: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                labels: Some([("tag".to_string(), tag.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn by_tag(c: &ConfigMap) -> Vec<String> {
        c.labels().get("tag").cloned().into_iter().collect()
    }

    #[test]
    fn the_index_follows_updates_and_own_writes_never_go_back_in_time() {
        let cache = Cache::new(by_tag as IndexFn<ConfigMap>);
        cache.apply_own_write(cm("a", "5", "red"));
        assert_eq!(cache.find("red").len(), 1);
        cache.apply_own_write(cm("a", "7", "blue"));
        assert!(cache.find("red").is_empty());
        assert_eq!(cache.find("blue").len(), 1);
        // An older version (a late echo of our own earlier write) does not replace the newer.
        cache.apply_own_write(cm("a", "6", "green"));
        assert!(cache.find("green").is_empty());
        assert_eq!(
            cache
                .get("ns", "a")
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("7")
        );
        assert_eq!(cache.len(), 1);
    }
}
