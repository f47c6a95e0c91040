//! Watch caches with secondary indexes: every object of one kind that a watch serves, kept by
//! `namespace/name` and by keys computed from the object (a login, a token hash), so each
//! request is answered by a few map lookups. Edits take effect on the next event; a replica's own
//! writes are applied at once ([`Cache::apply_own_write`]) so it reads what it just wrote.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use super::watch::Watched;
use futures::StreamExt;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};

/// Computes the index keys of a stored entry.
pub type IndexFn<V> = fn(&V) -> Vec<String>;

/// The index of a cache read by name alone: no keys.
pub fn no_index<V>(_: &V) -> Vec<String> {
    Vec::new()
}

/// What a cache stores of each object: the object itself (trimmed, perhaps), or a compact entry
/// made from it holding only what requests read.
pub trait Entry: Send + Sync + 'static {
    /// `namespace/name` of the object it came from.
    fn key(&self) -> String;
    /// Its resourceVersion, when numeric (etcd's are); others compare as unknown.
    fn version(&self) -> Option<u64>;
}

/// `namespace/name` of an object.
pub fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// An object's resourceVersion as a number.
pub fn version_of<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

impl<K: Resource + Send + Sync + 'static> Entry for K {
    fn key(&self) -> String {
        key_of(self)
    }
    fn version(&self) -> Option<u64> {
        version_of(self)
    }
}

struct Inner<V> {
    objects: HashMap<String, Arc<V>>,
    // Most index keys name one object: a Vec is the smallest set.
    index: HashMap<String, Vec<String>>,
}

impl<V> Default for Inner<V> {
    fn default() -> Self {
        Inner {
            objects: HashMap::new(),
            index: HashMap::new(),
        }
    }
}

impl<V: Entry> Inner<V> {
    fn insert(&mut self, index_fn: IndexFn<V>, entry: V) {
        let key = entry.key();
        self.remove(index_fn, &key);
        for ix in index_fn(&entry) {
            let keys = self.index.entry(ix).or_default();
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
        }
        self.objects.insert(key, Arc::new(entry));
    }

    fn remove(&mut self, index_fn: IndexFn<V>, key: &str) {
        if let Some(old) = self.objects.remove(key) {
            for ix in index_fn(&old) {
                if let Some(keys) = self.index.get_mut(&ix) {
                    keys.retain(|k| k != key);
                    if keys.is_empty() {
                        self.index.remove(&ix);
                    }
                }
            }
        }
    }
}

/// The entries of `new` that are not in `old` at the same version, and those of `old` that
/// `new` lacks.
fn differences<V: Entry>(old: &Inner<V>, new: &Inner<V>) -> Vec<Arc<V>> {
    let changed = new.objects.iter().filter(|(k, v)| {
        old.objects
            .get(*k)
            .is_none_or(|o| o.version().is_none() || o.version() != v.version())
    });
    let gone = old
        .objects
        .iter()
        .filter(|(k, _)| !new.objects.contains_key(*k));
    changed.chain(gone).map(|(_, v)| v.clone()).collect()
}

/// A cache of one kind `K`, storing `V` made from each object; cheap to clone.
pub struct Cache<K, V = K> {
    inner: Arc<RwLock<Inner<V>>>,
    index_fn: IndexFn<V>,
    convert: fn(K) -> V,
    /// Set once the first list arrived.
    ready: Arc<AtomicBool>,
    /// Counts the changes made to the contents: what was computed from the cache at one
    /// generation is out of date at another.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            index_fn: self.index_fn,
            convert: self.convert,
            ready: self.ready.clone(),
            generation: self.generation.clone(),
        }
    }
}

fn same<K>(obj: K) -> K {
    obj
}

impl<K: Watched> Cache<K, K> {
    /// An empty cache storing objects as they are, indexed by `index_fn`.
    pub fn new(index_fn: IndexFn<K>) -> Cache<K, K> {
        Cache::mapped(same::<K>, index_fn)
    }
}

impl<K: Watched, V: Entry> Cache<K, V> {
    /// An empty cache storing `convert(object)`, indexed by `index_fn`.
    pub fn mapped(convert: fn(K) -> V, index_fn: IndexFn<V>) -> Cache<K, V> {
        Cache {
            inner: Arc::default(),
            index_fn,
            convert,
            ready: Arc::default(),
            generation: Arc::default(),
        }
    }

    fn entry(&self, mut obj: K) -> V {
        obj.managed_fields_mut().clear();
        (self.convert)(obj)
    }

    /// Keeps the cache filled from a watch of `api` (spawn the future). Watch errors are logged
    /// and retried with backoff; a relist replaces the contents in one step.
    pub fn run(
        &self,
        api: Api<K>,
        config: watcher::Config,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.drive(api, config, None)
    }

    /// Like [`Cache::run`], and sends each entry that changed to `changed` once the cache holds
    /// the change, so whatever it wakes reads what woke it: every applied or deleted object,
    /// and after a relist those that differ from before. The first list sends nothing (whoever
    /// listens looks at everything when it starts).
    pub fn run_notifying(
        &self,
        api: Api<K>,
        config: watcher::Config,
        changed: futures::channel::mpsc::UnboundedSender<Arc<V>>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.drive(api, config, Some(changed))
    }

    fn drive(
        &self,
        api: Api<K>,
        config: watcher::Config,
        changed: Option<futures::channel::mpsc::UnboundedSender<Arc<V>>>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let cache = self.clone();
        let notify = move |entry: Arc<V>| {
            if let Some(tx) = &changed {
                let _ = tx.unbounded_send(entry);
            }
        };
        async move {
            let stream = watcher(api, config).default_backoff();
            futures::pin_mut!(stream);
            let mut feed = cache.feed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => feed.apply(event, &notify),
                    Err(e) => {
                        tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying with backoff");
                    }
                }
            }
        }
    }

    /// What fills the cache from the events of a watch driven elsewhere (one already feeding a
    /// controller), one event at a time.
    pub fn feed(&self) -> Feed<K, V> {
        Feed {
            cache: self.clone(),
            relist: None,
        }
    }

    /// The contents, to change. The generation moves when the change is done (the guard is
    /// dropped), still under the lock: an answer stamped with a generation read before the data
    /// can then never hold data older than its stamp (were it moved first, a reader could stamp
    /// the new generation on the old data, and serve a revoked key once more).
    fn write(&self) -> WriteGuard<'_, V> {
        WriteGuard {
            inner: self.inner.write().unwrap_or_else(|e| e.into_inner()),
            generation: &self.generation,
        }
    }

    /// The number of changes so far (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<V>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the first list arrived.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The entry of object `name` in `namespace` ("" for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<V>> {
        self.read()
            .objects
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// The entries whose index keys include `ix`.
    pub fn find(&self, ix: &str) -> Vec<Arc<V>> {
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

    /// Every entry.
    pub fn all(&self) -> Vec<Arc<V>> {
        self.read().objects.values().cloned().collect()
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the object `name` in `namespace`, which this process just deleted.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = format!("{namespace}/{name}");
        self.write().remove(self.index_fn, &key);
    }

    /// Applies an object this replica just wrote (or a watch event), unless the cache already
    /// holds a newer version, so the next request here sees a write even before its watch
    /// event arrives, and a late event never takes the cache back in time.
    pub fn apply_own_write(&self, obj: K) {
        let entry = self.entry(obj);
        let mut inner = self.write();
        let newer_held = inner.objects.get(&entry.key()).is_some_and(|held| {
            match (held.version(), entry.version()) {
                (Some(h), Some(o)) => h >= o,
                _ => false,
            }
        });
        if !newer_held {
            inner.insert(self.index_fn, entry);
        }
    }
}

/// A write lock on a cache's contents that moves its generation on release.
struct WriteGuard<'a, V> {
    inner: std::sync::RwLockWriteGuard<'a, Inner<V>>,
    generation: &'a std::sync::atomic::AtomicU64,
}

impl<V> std::ops::Deref for WriteGuard<'_, V> {
    type Target = Inner<V>;
    fn deref(&self) -> &Inner<V> {
        &self.inner
    }
}

impl<V> std::ops::DerefMut for WriteGuard<'_, V> {
    fn deref_mut(&mut self) -> &mut Inner<V> {
        &mut self.inner
    }
}

impl<V> Drop for WriteGuard<'_, V> {
    fn drop(&mut self) {
        // Runs before the lock is released (fields drop after this).
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Applies a watch's events to a [`Cache`] (see [`Cache::feed`]).
pub struct Feed<K, V> {
    cache: Cache<K, V>,
    /// The list being received since the last `Init`, swapped in whole at `InitDone`.
    relist: Option<Inner<V>>,
}

impl<K: Watched, V: Entry> Feed<K, V> {
    /// Applies `event`; each entry that changed goes to `notify` once the cache holds it (after
    /// a relist: those that differ from before; the first list notifies nothing).
    pub fn apply(&mut self, event: watcher::Event<K>, notify: &impl Fn(Arc<V>)) {
        let cache = &self.cache;
        match event {
            watcher::Event::Init => self.relist = Some(Inner::default()),
            watcher::Event::InitApply(obj) => {
                let entry = cache.entry(obj);
                if let Some(r) = self.relist.as_mut() {
                    r.insert(cache.index_fn, entry);
                }
            }
            watcher::Event::InitDone => {
                if let Some(r) = self.relist.take() {
                    let old = std::mem::replace(&mut *cache.write(), r);
                    if cache.is_ready() {
                        for entry in differences(&old, &cache.read()) {
                            notify(entry);
                        }
                    }
                }
                cache.ready.store(true, Ordering::Release);
            }
            watcher::Event::Apply(obj) => {
                let key = key_of(&obj);
                cache.apply_own_write(obj);
                if let Some(entry) = cache.read().objects.get(&key) {
                    notify(entry.clone());
                }
            }
            watcher::Event::Delete(obj) => {
                let entry = Arc::new(cache.entry(obj));
                cache.write().remove(cache.index_fn, &entry.key());
                notify(entry);
            }
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
    fn the_generation_moves_once_a_change_is_done_not_before() {
        let cache = Cache::<ConfigMap>::new(by_tag);
        let before = cache.generation();
        let changing = cache.write();
        assert_eq!(
            cache.generation(),
            before,
            "a reader stamping this generation now would read the old data"
        );
        drop(changing);
        assert_eq!(cache.generation(), before + 1);
    }

    #[test]
    fn a_relist_tells_what_changed_and_what_went() {
        let mut old = Inner::default();
        let mut new = Inner::default();
        for (name, rv) in [("same", "1"), ("edited", "2"), ("gone", "3")] {
            old.insert(by_tag, cm(name, rv, "x"));
        }
        for (name, rv) in [("same", "1"), ("edited", "4"), ("added", "5")] {
            new.insert(by_tag, cm(name, rv, "x"));
        }
        let mut names: Vec<String> = differences(&old, &new)
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["added", "edited", "gone"]);
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
