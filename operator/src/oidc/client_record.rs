//! An OIDCClient's record in the operator namespace (pure): the Secret `oidc-client-<digest>`
//! that holds the hash of its client secret (what the token endpoint checks) and the secret
//! sealed (what the controller delivers again when the delivered Secret is altered). The Secret
//! beside the OIDCClient only ever receives a copy: nothing reads a secret from it.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use usher_crds::LABEL_OIDC_CLIENT;

use crate::crypto::{RandomError, constant_time_eq, hex, random_bytes, sha256};

const CLIENT_ID: &str = "clientID";
const CLIENT_UID: &str = "clientUID";
const SECRET_HASH: &str = "secretHash";
const SEALED_SECRET: &str = "sealedSecret";
const RENEWAL: &str = "renewal";

/// The digest naming a client's record: 20 hex digits of the SHA-256 of its client id.
pub fn digest(client_id: &str) -> String {
    hex(&sha256(client_id.as_bytes()))[..20].to_owned()
}

/// The record Secret's name.
pub fn record_name(client_id: &str) -> String {
    format!("oidc-client-{}", digest(client_id))
}

/// A new client secret: 256 random bits, base64url.
pub fn new_secret() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// Hex SHA-256 of a client secret (it has 256 bits of entropy: a fast hash suffices).
pub fn hash_secret(secret: &str) -> String {
    hex(&sha256(secret.as_bytes()))
}

/// What the operator namespace records of a client.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client id.
    pub client_id: String,
    /// The UID of the OIDCClient it was made for: one deleted and made again gets a new secret.
    pub client_uid: String,
    /// The secret's hash; `None` for a public client.
    pub secret_hash: Option<String>,
    /// The secret, sealed for this client id.
    pub sealed_secret: Option<String>,
    /// The last `usher.dev/renew-client-secret` value acted on.
    pub renewal: Option<String>,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("client_uid", &self.client_uid)
            .field("renewal", &self.renewal)
            .finish_non_exhaustive()
    }
}

impl ClientRecord {
    /// True when `secret` is this client's secret (constant time over the hashes).
    pub fn secret_matches(&self, secret: &str) -> bool {
        self.secret_hash
            .as_deref()
            .is_some_and(|h| constant_time_eq(h.as_bytes(), hash_secret(secret).as_bytes()))
    }

    /// The record in `secret`, if it is one.
    pub fn from_secret(secret: &Secret) -> Option<ClientRecord> {
        let data = secret.data.as_ref()?;
        let get = |k: &str| {
            data.get(k)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        };
        Some(ClientRecord {
            client_id: get(CLIENT_ID)?,
            client_uid: get(CLIENT_UID).unwrap_or_default(),
            secret_hash: get(SECRET_HASH),
            sealed_secret: get(SEALED_SECRET),
            renewal: get(RENEWAL),
        })
    }

    /// The Secret holding this record in `namespace`.
    pub fn to_secret(&self, namespace: &str) -> Secret {
        let mut data = BTreeMap::from([
            (
                CLIENT_ID.to_owned(),
                ByteString(self.client_id.clone().into_bytes()),
            ),
            (
                CLIENT_UID.to_owned(),
                ByteString(self.client_uid.clone().into_bytes()),
            ),
        ]);
        for (k, v) in [
            (SECRET_HASH, &self.secret_hash),
            (SEALED_SECRET, &self.sealed_secret),
            (RENEWAL, &self.renewal),
        ] {
            if let Some(v) = v {
                data.insert(k.to_owned(), ByteString(v.clone().into_bytes()));
            }
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(record_name(&self.client_id)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    LABEL_OIDC_CLIENT.to_owned(),
                    digest(&self.client_id),
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_record_round_trips_and_checks_its_secret_only() {
        let secret = new_secret().unwrap();
        assert!(secret.len() >= 43, "256 bits");
        let r = ClientRecord {
            client_id: "acme.grafana".into(),
            client_uid: "uid-1".into(),
            secret_hash: Some(hash_secret(&secret)),
            sealed_secret: Some("sealed".into()),
            renewal: None,
        };
        let s = r.to_secret("usher-system-accounts");
        assert_eq!(
            s.metadata.name.as_deref(),
            Some(record_name("acme.grafana").as_str())
        );
        let back = ClientRecord::from_secret(&s).unwrap();
        assert_eq!(back, r);
        assert!(back.secret_matches(&secret));
        assert!(!back.secret_matches(&new_secret().unwrap()));
        assert!(!back.secret_matches(""));
        let public = ClientRecord {
            secret_hash: None,
            ..r
        };
        assert!(
            !public.secret_matches(""),
            "a public client has no secret to match"
        );
        assert!(!format!("{back:?}").contains("sealed"));
    }
}
