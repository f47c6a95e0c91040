//! Usher's own keys, in the Secret `usher-keys` of the operator namespace (created by whichever
//! process starts first, so the controller and every auth replica share them): the HMAC key that
//! signs session cookies, and the AES-256-GCM key that seals TOTP secrets and API keys in
//! account Secrets.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::{
    account::Account,
    apikey::ApiKey,
    crypto::{RandomError, random_bytes},
};

/// Name of the Secret holding the keys.
pub const SECRET_NAME: &str = "usher-keys";
const SESSION_KEY: &str = "session-hmac-key";
const MFA_KEY: &str = "mfa-seal-key";

/// The keys every process shares.
pub struct Keys {
    /// Signs session cookies (host-only: they open the API and the pages).
    pub session: ring::hmac::Key,
    /// Signs forward-auth cookies (sent to every host under the cookie domain: they open
    /// `/api/v1/verify` alone). Derived apart, so neither kind ever opens as the other.
    pub forward: ring::hmac::Key,
    /// Signs device cookies (derived from the session key, so the two never vouch for each
    /// other).
    pub device: ring::hmac::Key,
    /// Seals TOTP secrets and API keys.
    pub seal: Sealer,
}

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The API refused.
    #[error("cannot read or create Secret {SECRET_NAME}: {0}")]
    Kube(#[from] kube::Error),
    /// The Secret exists without 32-byte keys.
    #[error(
        "Secret {SECRET_NAME} is damaged: {0} must hold 32 bytes; delete the Secret to make new keys (this ends every session and every TOTP enrolment)"
    )]
    Damaged(&'static str),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl Keys {
    /// Reads the keys from `namespace`, creating them on first start.
    pub async fn load_or_create(client: kube::Client, namespace: &str) -> Result<Keys, KeysError> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let secret = match api.get_opt(SECRET_NAME).await? {
            Some(s) => s,
            None => {
                let fresh = Secret {
                    metadata: ObjectMeta {
                        name: Some(SECRET_NAME.into()),
                        namespace: Some(namespace.into()),
                        ..Default::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some(BTreeMap::from([
                        (
                            SESSION_KEY.into(),
                            ByteString(random_bytes::<32>()?.to_vec()),
                        ),
                        (MFA_KEY.into(), ByteString(random_bytes::<32>()?.to_vec())),
                    ])),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &fresh).await {
                    Ok(s) => s,
                    // Another replica created it first: use theirs.
                    Err(kube::Error::Api(e)) if e.code == 409 => api.get(SECRET_NAME).await?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Keys::from_secret(secret)
    }

    /// Reads the keys from `namespace`, waiting for the controller to create them (the auth
    /// server never makes its own: keys made while the controller moves the accounts from an
    /// earlier layout would not open what the old keys sealed).
    pub async fn wait_for(client: kube::Client, namespace: &str) -> Result<Keys, KeysError> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let mut told = false;
        loop {
            if let Some(secret) = api.get_opt(SECRET_NAME).await? {
                return Keys::from_secret(secret);
            }
            if !told {
                tracing::info!(
                    namespace,
                    "waiting for the controller to create {SECRET_NAME}"
                );
                told = true;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    fn from_secret(secret: Secret) -> Result<Keys, KeysError> {
        let data = secret.data.unwrap_or_default();
        let key = |name: &'static str| -> Result<[u8; 32], KeysError> {
            data.get(name)
                .and_then(|v| <[u8; 32]>::try_from(v.0.as_slice()).ok())
                .ok_or(KeysError::Damaged(name))
        };
        Ok(Keys::from_bytes(key(SESSION_KEY)?, key(MFA_KEY)?))
    }

    /// Keys from raw bytes (tests and benchmarks).
    pub fn from_bytes(session: [u8; 32], mfa: [u8; 32]) -> Keys {
        let base = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &session);
        let derive = |label: &[u8]| {
            let derived = ring::hmac::sign(&base, label);
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
        };
        Keys {
            // "v2": session cookies made before the forward-auth cookie existed were also sent
            // to every host under a cookie domain; none of them opens a session any more.
            session: derive(b"usher session cookie key v2"),
            forward: derive(b"usher forward-auth cookie key"),
            device: derive(b"usher device cookie key"),
            seal: Sealer::new(mfa),
        }
    }
}

/// Seals and opens secrets with AES-256-GCM; what they belong to (the account id, and the
/// membership for an API key) is bound as associated data, so a sealed secret copied elsewhere
/// does not open.
pub struct Sealer(LessSafeKey);

impl Sealer {
    fn new(key: [u8; 32]) -> Sealer {
        // 32 bytes is always a valid AES-256 key.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, &key).expect("AES-256 takes a 32-byte key");
        Sealer(LessSafeKey::new(unbound))
    }

    /// base64(nonce ‖ ciphertext ‖ tag) of `plain`, bound to `aad`.
    fn seal_bytes(&self, aad: &str, plain: &[u8]) -> Result<String, RandomError> {
        let nonce = random_bytes::<12>()?;
        let mut buf = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| RandomError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    /// What [`Sealer::seal_bytes`] sealed for `aad`, or `None` when it does not open.
    fn open_bytes(&self, aad: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = STANDARD.decode(sealed).ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (nonce, rest) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }

    /// A TOTP secret sealed for `account_id`.
    pub fn seal(&self, account_id: &str, secret: &[u8; 20]) -> Result<String, RandomError> {
        self.seal_bytes(account_id, secret)
    }

    /// The TOTP secret sealed by [`Sealer::seal`] for `account_id`, or `None`.
    pub fn open(&self, account_id: &str, sealed: &str) -> Option<[u8; 20]> {
        <[u8; 20]>::try_from(self.open_bytes(account_id, sealed)?.as_slice()).ok()
    }

    /// An API key sealed for `membership` (`namespace/name`) of `account_id`.
    pub fn seal_api_key(
        &self,
        account_id: &str,
        membership: &str,
        key: &ApiKey,
    ) -> Result<String, RandomError> {
        self.seal_bytes(
            &api_key_aad(account_id, membership),
            key.expose().as_bytes(),
        )
    }

    /// An OIDC client secret sealed for the client `client_id`.
    pub fn seal_client_secret(&self, client_id: &str, secret: &str) -> Result<String, RandomError> {
        self.seal_bytes(&format!("oidc-client:{client_id}"), secret.as_bytes())
    }

    /// The client secret sealed by [`Sealer::seal_client_secret`] for `client_id`, or `None`.
    pub fn open_client_secret(&self, client_id: &str, sealed: &str) -> Option<String> {
        String::from_utf8(self.open_bytes(&format!("oidc-client:{client_id}"), sealed)?).ok()
    }

    /// A passkey ceremony's state, sealed for the browser to hold until it finishes.
    pub fn seal_ceremony(&self, state: &[u8]) -> Result<String, RandomError> {
        self.seal_bytes("passkey-ceremony", state)
    }

    /// The state sealed by [`Sealer::seal_ceremony`], or `None`.
    pub fn open_ceremony(&self, sealed: &str) -> Option<Vec<u8>> {
        self.open_bytes("passkey-ceremony", sealed)
    }

    /// The API key sealed by [`Sealer::seal_api_key`], or `None` when it does not open (or is
    /// not a well-formed key).
    pub fn open_api_key(&self, account_id: &str, membership: &str, sealed: &str) -> Option<ApiKey> {
        let plain = self.open_bytes(&api_key_aad(account_id, membership), sealed)?;
        ApiKey::parse(std::str::from_utf8(&plain).ok()?).ok()
    }
}

fn api_key_aad(account_id: &str, membership: &str) -> String {
    format!("{account_id}/api-key/{membership}")
}

/// True when `account` holds sealed secrets (TOTP, API keys), which a rename must seal again.
pub fn has_sealed(account: &Account) -> bool {
    account.totp_secret.is_some()
        || account.totp_pending.is_some()
        || account.memberships.values().any(|m| m.api_key.is_some())
}

/// `account`'s sealed secrets (TOTP secrets, API keys) sealed again for the account id `to`
/// (an account rename). `keys` is needed when [`has_sealed`].
pub fn reseal_account(
    keys: Option<&Keys>,
    account: &Account,
    to: &str,
) -> Result<Account, ResealError> {
    let mut out = account.clone();
    if !has_sealed(account) {
        return Ok(out);
    }
    let keys = keys.ok_or(ResealError)?;
    let totp = |sealed: &Option<String>| -> Result<Option<String>, ResealError> {
        sealed
            .as_deref()
            .map(|s| {
                let secret = keys.seal.open(&account.id, s).ok_or(ResealError)?;
                keys.seal.seal(to, &secret).map_err(|_| ResealError)
            })
            .transpose()
    };
    out.totp_secret = totp(&account.totp_secret)?;
    out.totp_pending = totp(&account.totp_pending)?;
    for (membership, record) in out.memberships.iter_mut() {
        if let Some(k) = record.api_key.as_mut() {
            let key = keys
                .seal
                .open_api_key(&account.id, membership, &k.sealed)
                .ok_or(ResealError)?;
            k.sealed = keys
                .seal
                .seal_api_key(to, membership, &key)
                .map_err(|_| ResealError)?;
        }
    }
    Ok(out)
}

/// A sealed secret that cannot be moved to a renamed account.
#[derive(Debug, thiserror::Error)]
#[error(
    "the account's TOTP secret or an API key does not open with the key in Secret usher-keys; reset MFA (usher account reset-mfa) or disable the keys first"
)]
pub struct ResealError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_account_and_key() {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let sealed = keys.seal.seal("acct1", &[9; 20]).unwrap();
        assert_eq!(keys.seal.open("acct1", &sealed), Some([9; 20]));
        assert_eq!(keys.seal.open("acct2", &sealed), None);
        let other = Keys::from_bytes([1; 32], [3; 32]);
        assert_eq!(other.seal.open("acct1", &sealed), None);
        assert_eq!(keys.seal.open("acct1", "garbage"), None);
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(sealed, keys.seal.seal("acct1", &[9; 20]).unwrap());
    }

    #[test]
    fn a_sealed_api_key_opens_only_for_its_account_and_membership() {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let key = ApiKey::generate().unwrap();
        let sealed = keys.seal.seal_api_key("acct1", "acme/alice", &key).unwrap();
        assert!(!sealed.contains(key.expose()));
        assert_eq!(
            keys.seal.open_api_key("acct1", "acme/alice", &sealed),
            Some(key)
        );
        assert_eq!(keys.seal.open_api_key("acct1", "acme/bob", &sealed), None);
        assert_eq!(keys.seal.open_api_key("acct2", "acme/alice", &sealed), None);
    }
}
