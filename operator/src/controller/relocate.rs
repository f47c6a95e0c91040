//! Moves the accounts and the `usher-keys` Secret from the operator namespace, where versions
//! before the accounts namespace kept them, into the accounts namespace: once, when the
//! controller starts, before it reads any account. The keys go first (they sealed the TOTP
//! secrets and API keys of the accounts; the auth server waits for them rather than making new
//! ones). Each Secret is copied, then the original deleted only if it is still the version
//! copied: one an auth server of the old version changed meanwhile is copied again, unless the
//! copy was written too (by an auth server of this version, which reads only the copy): then the
//! copy wins. A crash anywhere leaves every Secret in one namespace or both, and the next start
//! finishes the move, keeping a copy it finds (new servers may have written it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions},
};
use usher_crds::LABEL_ACCOUNT;

use crate::keys;

/// How often one Secret is copied again when its original keeps changing under the move.
const ATTEMPTS: usize = 5;

/// The copy of `original` to make in namespace `ns`: its name, labels, annotations, type and
/// data, nothing the API server assigned.
fn copy_of(original: &Secret, ns: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: original.metadata.name.clone(),
            namespace: Some(ns.to_owned()),
            labels: original.metadata.labels.clone(),
            annotations: original
                .metadata
                .annotations
                .clone()
                .filter(|a: &BTreeMap<String, String>| !a.is_empty()),
            ..Default::default()
        },
        type_: original.type_.clone(),
        data: original.data.clone(),
        ..Default::default()
    }
}

/// What to do with the copy of a Secret being moved (pure).
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// No copy yet: make one.
    Create,
    /// The copy this move made, behind the original (an auth server of the old version wrote
    /// it since): bring it up to the original.
    Update,
    /// The copy this move made, as the original: delete the original if still unchanged.
    InSync,
    /// A copy this move did not make (a move that stopped half-way, then an auth server of
    /// this version wrote it) or changed since: it wins, the original goes.
    KeepCopy,
}

/// Decides the step for `original`, its `copy` in the accounts namespace, and the
/// resourceVersion of the copy this move wrote last (`ours`).
fn step(original: &Secret, copy: Option<&Secret>, ours: Option<&str>) -> Step {
    match copy {
        None => Step::Create,
        Some(c) if ours.is_some() && c.metadata.resource_version.as_deref() == ours => {
            if c.data == original.data {
                Step::InSync
            } else {
                Step::Update
            }
        }
        Some(_) => Step::KeepCopy,
    }
}

/// Moves one Secret `name` from `from` to `to`. True when there was one to move.
async fn move_one(
    from: &Api<Secret>,
    to: &Api<Secret>,
    name: &str,
    ns: &str,
) -> anyhow::Result<bool> {
    let mut ours: Option<String> = None;
    for _ in 0..ATTEMPTS {
        let Some(original) = from.get_opt(name).await? else {
            return Ok(false);
        };
        let existing = to.get_opt(name).await?;
        let mut copy = copy_of(&original, ns);
        let precondition = match step(&original, existing.as_ref(), ours.as_deref()) {
            Step::Create => {
                ours = to
                    .create(&PostParams::default(), &copy)
                    .await?
                    .resource_version();
                true
            }
            Step::Update => {
                copy.metadata.resource_version = ours.clone();
                match to.replace(name, &PostParams::default(), &copy).await {
                    Ok(written) => {
                        ours = written.resource_version();
                        true
                    }
                    // Written meanwhile by an auth server of this version: it wins.
                    Err(kube::Error::Api(e)) if e.code == 409 => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Step::InSync => true,
            Step::KeepCopy => false,
        };
        if !precondition {
            tracing::warn!(
                secret = name,
                "both copies of a Secret being moved were written; the one in the accounts namespace is kept"
            );
        }
        let delete = DeleteParams {
            preconditions: precondition.then(|| Preconditions {
                resource_version: original.resource_version(),
                uid: original.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        match from.delete(name, &delete).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(true),
            // Changed since it was copied: copy it again.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("Secret {name} kept changing while it was moved; the next start tries again")
}

/// Moves the keys and every account from namespace `from` to `to`. The number of accounts
/// moved.
pub async fn accounts(client: &Client, from: &str, to: &str) -> anyhow::Result<usize> {
    let (old, new) = (
        Api::<Secret>::namespaced(client.clone(), from),
        Api::<Secret>::namespaced(client.clone(), to),
    );
    move_one(&old, &new, keys::SECRET_NAME, to).await?;
    let listed = old
        .list(&ListParams::default().labels(LABEL_ACCOUNT))
        .await?;
    let mut moved = 0;
    for s in listed.items {
        if move_one(&old, &new, &s.name_any(), to).await? {
            moved += 1;
        }
    }
    if moved > 0 {
        tracing::info!(
            from,
            to,
            moved,
            "moved the accounts into the accounts namespace"
        );
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: &str, login: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "login".into(),
                k8s_openapi::ByteString(login.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn the_copy_follows_the_original_until_someone_else_writes_it() {
        let original = at("10", "alice@example.com");
        assert_eq!(step(&original, None, None), Step::Create);
        let ours = at("20", "alice@example.com");
        assert_eq!(step(&original, Some(&ours), Some("20")), Step::InSync);
        let changed = at("11", "alice@new.example.com");
        assert_eq!(step(&changed, Some(&ours), Some("20")), Step::Update);
        // Written by an auth server of this version since this move wrote it, or found from a
        // move that stopped half-way: it wins.
        let theirs = at("21", "alice@example.com");
        assert_eq!(step(&original, Some(&theirs), Some("20")), Step::KeepCopy);
        assert_eq!(step(&original, Some(&ours), None), Step::KeepCopy);
    }

    #[test]
    fn a_copy_keeps_what_the_account_is_and_nothing_the_server_assigned() {
        let mut original = Secret {
            metadata: ObjectMeta {
                name: Some("account-abc".into()),
                namespace: Some("usher-system".into()),
                labels: Some(BTreeMap::from([(LABEL_ACCOUNT.into(), "abc".into())])),
                resource_version: Some("42".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        original.data = Some(BTreeMap::from([(
            "login".into(),
            k8s_openapi::ByteString(b"alice@example.com".to_vec()),
        )]));
        let copy = copy_of(&original, "usher-system-accounts");
        assert_eq!(
            copy.metadata.namespace.as_deref(),
            Some("usher-system-accounts")
        );
        assert_eq!(copy.metadata.name, original.metadata.name);
        assert_eq!(copy.metadata.labels, original.metadata.labels);
        assert_eq!(copy.data, original.data);
        assert_eq!(copy.type_, original.type_);
        assert!(copy.metadata.resource_version.is_none() && copy.metadata.uid.is_none());
    }
}
