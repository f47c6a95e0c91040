//! Keeps the OpenID Connect signing keys (`oidc::signing`) in the Secret `usher-oidc-keys` of the
//! accounts namespace: made at start when missing, rotated every `USHER_OIDC_KEY_ROTATION`, the
//! retired keys dropped once their tokens have expired. Only the leader writes it; every auth
//! replica watches it.

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp,
};
use kube::{Api, Client, ResourceExt, api::PostParams};

use crate::{
    oidc::signing::{self, KeySet, RETIRED_KEPT, SECRET_NAME},
    runtime::clock::now,
};

/// Checks the keys now and then, until the process ends.
pub async fn keep(client: Client, namespace: String, every: Duration) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    loop {
        let wait = match once(&api, &namespace, every, now()).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the OpenID Connect signing keys; retrying");
                Duration::from_secs(5)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// One check at `now`: writes the keys when they change; returns when to look again.
async fn once(
    api: &Api<Secret>,
    namespace: &str,
    every: Duration,
    now: Timestamp,
) -> anyhow::Result<Duration> {
    let stored = api.get_opt(SECRET_NAME).await?;
    let set = match &stored {
        Some(s) => KeySet::from_secret(s)?,
        None => KeySet::default(),
    };
    let next = signing::rotate(&set, now, every, |alg| signing::generate(alg, now))?;
    let set = match next {
        None => set,
        Some(next) => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(SECRET_NAME.into()),
                    namespace: Some(namespace.into()),
                    resource_version: stored.as_ref().and_then(|s| s.resource_version()),
                    ..Default::default()
                },
                type_: Some("Opaque".into()),
                data: Some(next.to_data()),
                ..Default::default()
            };
            match stored {
                Some(_) => {
                    api.replace(SECRET_NAME, &PostParams::default(), &secret)
                        .await?
                }
                None => api.create(&PostParams::default(), &secret).await?,
            };
            tracing::info!(
                keys = ?next.keys.iter().map(|k| (&k.kid, k.alg.as_str(), k.retired_at.is_some())).collect::<Vec<_>>(),
                "OpenID Connect signing keys written"
            );
            next
        }
    };
    Ok(next_check(&set, now, every))
}

/// How long until a key of `set` is due for rotation or removal, at most an hour.
fn next_check(set: &KeySet, now: Timestamp, every: Duration) -> Duration {
    let kept = k8s_openapi::jiff::SignedDuration::try_from(RETIRED_KEPT).unwrap_or_default();
    let every = k8s_openapi::jiff::SignedDuration::try_from(every).unwrap_or_default();
    set.keys
        .iter()
        .filter_map(|k| match k.retired_at {
            Some(at) => at.checked_add(kept).ok(),
            None => k.created_at.checked_add(every).ok(),
        })
        .map(|due| Duration::try_from(now.duration_until(due)).unwrap_or_default())
        .min()
        .unwrap_or_default()
        .clamp(Duration::from_secs(1), Duration::from_secs(3600))
}
