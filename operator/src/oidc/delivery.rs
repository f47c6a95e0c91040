//! The Secret that delivers an OIDCClient's credentials to its app (pure): `client-id`,
//! `client-secret` (confidential clients) and `issuer`, labelled `usher.dev/oidc-client` with the
//! client's name and owned by it. Nothing reads a secret from it: the token endpoint checks the
//! record's hash (`client_record`), so a secret written here authenticates nothing, and the
//! controller writes the Secret again.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Resource, ResourceExt};
use usher_crds::{LABEL_OIDC_CLIENT, OIDCClient};

use crate::crypto::{hex, sha256};

/// The data keys.
pub const CLIENT_ID: &str = "client-id";
/// See [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "client-secret";
/// See [`CLIENT_ID`].
pub const ISSUER: &str = "issuer";

/// The Secret delivering `client`'s credentials.
pub fn secret(client: &OIDCClient, client_id: &str, issuer: &str, secret: Option<&str>) -> Secret {
    let mut data = BTreeMap::from([
        (
            CLIENT_ID.to_owned(),
            ByteString(client_id.as_bytes().to_vec()),
        ),
        (ISSUER.to_owned(), ByteString(issuer.as_bytes().to_vec())),
    ]);
    if let Some(s) = secret {
        data.insert(CLIENT_SECRET.to_owned(), ByteString(s.as_bytes().to_vec()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(client.secret_name()),
            namespace: client.namespace(),
            labels: Some(BTreeMap::from([(
                LABEL_OIDC_CLIENT.to_owned(),
                client.name_any(),
            )])),
            owner_references: client.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// What the controller keeps of a Secret labelled `usher.dev/oidc-client`: its labels and owners
/// and, of its data, each value's SHA-256 only (no secret lives in the controller's memory).
pub fn digest(mut secret: Secret) -> Secret {
    secret.data = secret.data.map(|data| {
        data.into_iter()
            .map(|(k, v)| (k, ByteString(hex(&sha256(&v.0)).into_bytes())))
            .collect()
    });
    secret.string_data = None;
    let m = &mut secret.metadata;
    m.managed_fields = None;
    m.annotations = None;
    m.labels = m.labels.take().map(|l| {
        l.into_iter()
            .filter(|(k, _)| k == LABEL_OIDC_CLIENT)
            .collect()
    });
    secret
}

/// True when `secret` is owned by `client` (its controller owner reference).
pub fn is_ours(secret: &Secret, client: &OIDCClient) -> bool {
    let uid = client.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

/// True when `existing` (a [`digest`]) is exactly what [`secret`] writes for these values: the
/// same keys and values, the label, the owner. Anything else and the controller writes it again.
pub fn delivers(existing: &Secret, wanted: &Secret, client: &OIDCClient) -> bool {
    let want = digest(wanted.clone());
    is_ours(existing, client)
        && existing.data == want.data
        && existing.labels().get(LABEL_OIDC_CLIENT) == Some(&client.name_any())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use usher_crds::OIDCClientSpec;

    fn client() -> OIDCClient {
        let mut c = OIDCClient::new("grafana", OIDCClientSpec::default());
        c.metadata.namespace = Some("acme".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    #[test]
    fn only_the_exact_delivery_counts_as_delivered() {
        let c = client();
        let wanted = secret(&c, "acme.grafana", "https://id.example.com", Some("s3cret"));
        assert_eq!(wanted.metadata.name.as_deref(), Some("grafana-oidc"));
        let seen = digest(wanted.clone());
        assert!(
            !String::from_utf8_lossy(&seen.data.as_ref().unwrap()[CLIENT_SECRET].0)
                .contains("s3cret")
        );
        assert!(delivers(&seen, &wanted, &c));
        // A forged secret, an extra key, a dropped owner: written again.
        let mut forged = wanted.clone();
        forged
            .data
            .as_mut()
            .unwrap()
            .insert(CLIENT_SECRET.into(), ByteString(b"forged".to_vec()));
        assert!(!delivers(&digest(forged), &wanted, &c));
        let mut extra = wanted.clone();
        extra
            .data
            .as_mut()
            .unwrap()
            .insert("x".into(), ByteString(vec![]));
        assert!(!delivers(&digest(extra), &wanted, &c));
        let mut orphan = wanted.clone();
        orphan.metadata.owner_references = None;
        assert!(!delivers(&digest(orphan), &wanted, &c));
    }
}
