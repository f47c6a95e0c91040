//! A watch cache (reflector) of one kind, shared by the controller and the webhook.

use std::future::Future;

use futures::StreamExt;
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

/// A cache of every `K` the API serves to `api`, without managedFields (large, never read):
/// the store, and the future that keeps it filled (spawn it). Watch errors are logged and
/// retried with backoff.
pub fn reflector<K: Watched>(api: Api<K>) -> (Store<K>, impl Future<Output = ()> + Send + 'static) {
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|obj| obj.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
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
