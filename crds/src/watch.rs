//! A watch cache (reflector) of one kind, shared by the controller and the webhook.

use std::future::Future;

use futures::{Stream, StreamExt};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;

/// A kind that can be watched and cached: what every Usher watch cache requires of it.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Every event a watch of `api` serves, managedFields cleared (large, never read), each stored
/// by `writer` before it is passed on; `synced` turns true once the first complete list is
/// stored, and stays true through relists. Watch errors are retried with backoff.
///
/// `synced` is what waits for the store: kube's `Store::wait_until_ready` wakes only one of
/// several waiters, and a Controller's applier is already waiting on the store it is given.
pub fn trimmed_events<K: Watched>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    synced: tokio::sync::watch::Sender<bool>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|obj| obj.managed_fields_mut().clear())
        .reflect(writer)
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                synced.send_replace(true);
            }
        })
}

/// Every `K` the API serves to `api` as it is applied, without managedFields, each stored by
/// `writer` first: what a reflector or a Controller is driven by. Watch errors are retried
/// with backoff.
pub fn trimmed<K: Watched>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    trimmed_events(api, writer, tokio::sync::watch::Sender::new(false)).applied_objects()
}

/// A cache of every `K` the API serves to `api`, without managedFields: the store, and the
/// future that keeps it filled (spawn it). Watch errors are logged and retried with backoff.
pub fn reflector<K: Watched>(api: Api<K>) -> (Store<K>, impl Future<Output = ()> + Send + 'static) {
    let (reader, writer) = reflector::store();
    let stream = trimmed(api, writer);
    let drive = async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying with backoff");
            }
        }
    };
    (reader, drive)
}

/// A [`reflector`] whose future runs on the current Tokio runtime; the store.
pub fn spawn_reflector<K: Watched>(api: Api<K>) -> Store<K> {
    let (store, drive) = reflector(api);
    tokio::spawn(drive);
    store
}
