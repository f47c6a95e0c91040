//! Small helpers over kube's `Api` that several writers share.

use kube::{Api, Resource, api::DeleteParams};
use serde::de::DeserializeOwned;

/// Deletes `name`; already gone is fine (deletes are retried and race each other).
pub async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
