//! The watch every controller store is filled from: one kind, managedFields trimmed.

use futures::{Stream, StreamExt};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{WatchStreamExt, reflector, watcher},
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
