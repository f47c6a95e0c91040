//! The one API-key renewal, used by the controller (issue, `renew-api-key`, `rotateEvery`) and
//! the auth server (account settings): a new key replaces the old in one write of the key
//! Secret, preconditioned on the resourceVersion read, so readers never see half a renewal and
//! two renewals never both win.

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{PostParams, Resource},
};
use usher_crds::User;

use super::{
    format::ApiKey,
    secret::{self, Issued},
};
use crate::crypto::RandomError;

/// Tries before a renewal gives up with [`RenewError::Contention`].
const TRIES: usize = 8;

/// Why a key could not be renewed.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The Kubernetes API refused or could not be reached.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// No randomness for the new key.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The Secret exists and was not made by Usher for this User: it is never overwritten.
    #[error("the Secret exists and is not this User's")]
    NotOurs,
    /// The Secret was deleted while the renewal was under way.
    #[error("the API-key Secret was deleted meanwhile")]
    Gone,
    /// Others kept writing the Secret.
    #[error("the API-key Secret kept changing")]
    Contention,
}

/// A renewal's outcome.
#[derive(Debug)]
pub struct Renewed {
    /// The key now in the Secret: this renewal's, or the one a concurrent renewal wrote.
    pub key: ApiKey,
    /// The Secret as written (or as found, when a concurrent renewal won).
    pub secret: Secret,
}

/// Writes a new key for `user` of `organisation` into its Secret: created when `current` (the
/// Secret as read) is `None`, else replaced. With a positive `spec.apiKey.gracePeriod` the
/// previous key's hash stays valid that long. On a conflict the Secret is read again; when
/// another writer replaced the key meanwhile, that key is the answer.
pub async fn renew(
    api: &Api<Secret>,
    user: &User,
    organisation: &str,
    mut current: Option<Secret>,
    now: Timestamp,
) -> Result<Renewed, RenewError> {
    let name = user.api_key_secret_name();
    // The key this renewal set out to replace (`Some(None)`: there was none).
    let mut replacing: Option<Option<ApiKey>> = None;
    for _ in 0..TRIES {
        let issued = current.as_ref().map(|s| Issued::read(s, user));
        if issued.as_ref().is_some_and(|i| !i.ours) {
            return Err(RenewError::NotOurs);
        }
        let present = issued.as_ref().and_then(|i| i.key.clone());
        match &replacing {
            // Another renewal (or a rotation) replaced it while this one was under way: that key
            // is the one in the Secret, so it is this request's answer too.
            Some(old) if *old != present => {
                if let (Some(key), Some(secret)) = (present, current) {
                    return Ok(Renewed { key, secret });
                }
                return Err(RenewError::Gone);
            }
            Some(_) => {}
            None => replacing = Some(present.clone()),
        }
        let key = ApiKey::generate()?;
        let previous = present
            .as_ref()
            .zip(secret::previous_valid_until(user, now));
        let rv = issued.as_ref().and_then(|i| i.resource_version.clone());
        let desired = secret::secret(user, organisation, &key, now, previous, rv);
        let written = if issued.is_some() {
            api.replace(&name, &PostParams::default(), &desired).await
        } else {
            api.create(&PostParams::default(), &desired).await
        };
        match written {
            Ok(secret) => {
                return Ok(Renewed { key, secret });
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                current = Some(api.get_opt(&name).await?.ok_or(RenewError::Gone)?);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return Err(RenewError::Gone),
            Err(e) => return Err(e.into()),
        }
    }
    tracing::warn!(user = %user.name_any(), namespace = ?user.meta().namespace, "API-key Secret kept changing during a renewal");
    Err(RenewError::Contention)
}
