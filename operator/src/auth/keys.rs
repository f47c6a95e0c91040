//! The auth server's own keys, in the Secret `usher-keys` of the operator namespace (created by
//! whichever replica starts first, so every replica shares them): the HMAC key that signs session
//! cookies and the AES-256-GCM key that seals TOTP secrets in account Secrets.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::crypto::{RandomError, random_bytes};

/// Name of the Secret holding the keys.
pub const SECRET_NAME: &str = "usher-keys";
const SESSION_KEY: &str = "session-hmac-key";
const MFA_KEY: &str = "mfa-seal-key";

/// The keys every replica shares.
pub struct Keys {
    /// Signs session cookies.
    pub session: ring::hmac::Key,
    /// Seals TOTP secrets.
    pub mfa: Sealer,
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
        Keys {
            session: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &session),
            mfa: Sealer::new(mfa),
        }
    }
}

/// Seals and opens TOTP secrets with AES-256-GCM; the account id is bound as associated data,
/// so a sealed secret copied into another account does not open.
pub struct Sealer(LessSafeKey);

impl Sealer {
    fn new(key: [u8; 32]) -> Sealer {
        // 32 bytes is always a valid AES-256 key.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, &key).expect("AES-256 takes a 32-byte key");
        Sealer(LessSafeKey::new(unbound))
    }

    /// base64(nonce ‖ ciphertext ‖ tag) of `secret`, bound to `account_id`.
    pub fn seal(&self, account_id: &str, secret: &[u8; 20]) -> Result<String, RandomError> {
        let nonce = random_bytes::<12>()?;
        let mut buf = secret.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(account_id.as_bytes()),
                &mut buf,
            )
            .map_err(|_| RandomError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    /// The secret sealed by [`Sealer::seal`] for `account_id`, or `None` when it does not open.
    pub fn open(&self, account_id: &str, sealed: &str) -> Option<[u8; 20]> {
        let raw = STANDARD.decode(sealed).ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (nonce, rest) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(account_id.as_bytes()), &mut buf)
            .ok()?;
        <[u8; 20]>::try_from(&plain[..]).ok()
    }
}

/// A sealed TOTP secret of account `from`, sealed again for account `to` (an account rename).
pub fn reseal(
    keys: &Option<Keys>,
    from: &str,
    to: &str,
    sealed: &str,
) -> Result<String, ResealError> {
    let keys = keys.as_ref().ok_or(ResealError)?;
    let secret = keys.mfa.open(from, sealed).ok_or(ResealError)?;
    keys.mfa.seal(to, &secret).map_err(|_| ResealError)
}

/// A TOTP secret that cannot be moved to a renamed account.
#[derive(Debug, thiserror::Error)]
#[error(
    "the account's TOTP secret does not open with the key in Secret usher-keys; reset MFA first (usher account reset-mfa)"
)]
pub struct ResealError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_account_and_key() {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let sealed = keys.mfa.seal("acct1", &[9; 20]).unwrap();
        assert_eq!(keys.mfa.open("acct1", &sealed), Some([9; 20]));
        assert_eq!(keys.mfa.open("acct2", &sealed), None);
        let other = Keys::from_bytes([1; 32], [3; 32]);
        assert_eq!(other.mfa.open("acct1", &sealed), None);
        assert_eq!(keys.mfa.open("acct1", "garbage"), None);
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(sealed, keys.mfa.seal("acct1", &[9; 20]).unwrap());
    }
}
