//! The OpenID Connect signing keys: one RSA (2048 bits) and one P-256 key in force, kept in the
//! Secret `usher-oidc-keys` of the operator namespace. The controller creates them and rotates
//! them ([`rotate`], pure); every auth replica signs with the newest key of an algorithm and
//! publishes every key in the set in its JWKS, so a key retired by a rotation still verifies the
//! tokens it signed until they expired ([`RETIRED_KEPT`]).

use std::collections::BTreeMap;

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header,
    jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use serde::{Deserialize, Serialize};
use usher_crds::{SigningAlg, oidc_client::MAX_ACCESS_TOKEN_LIFETIME};

/// Name of the Secret holding the keys.
pub const SECRET_NAME: &str = "usher-oidc-keys";
const DATA_KEY: &str = "keys.json";

/// How long a retired key stays published: past the longest token lifetime, with room for
/// clocks that disagree.
pub const RETIRED_KEPT: std::time::Duration =
    std::time::Duration::from_secs(MAX_ACCESS_TOKEN_LIFETIME.as_secs() + 600);

/// The algorithms a key set always has a key for.
pub const ALGORITHMS: [SigningAlg; 2] = [SigningAlg::RS256, SigningAlg::ES256];

/// One signing key, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    /// The key id in JWS headers and the JWKS.
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: SigningAlg,
    /// The private key, PKCS#8 PEM.
    pub pem: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When a newer key took over signing; it is published until [`RETIRED_KEPT`] after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Timestamp>,
}

/// Never shows the private key.
impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// The stored key set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// Newest last.
    pub keys: Vec<StoredKey>,
}

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Key generation failed.
    #[error("cannot generate a {0} signing key")]
    Generate(&'static str),
    /// A stored key does not parse.
    #[error(
        "Secret {SECRET_NAME} is damaged (key {0}); delete it and the controller makes new keys (tokens signed so far stop verifying)"
    )]
    Damaged(String),
}

impl KeySet {
    /// The set stored in `secret` (empty when it holds none).
    pub fn from_secret(secret: &Secret) -> Result<KeySet, SigningError> {
        match secret.data.as_ref().and_then(|d| d.get(DATA_KEY)) {
            Some(v) => {
                serde_json::from_slice(&v.0).map_err(|_| SigningError::Damaged(DATA_KEY.to_owned()))
            }
            None => Ok(KeySet::default()),
        }
    }

    /// The Secret's data for this set.
    pub fn to_data(&self) -> BTreeMap<String, ByteString> {
        BTreeMap::from([(
            DATA_KEY.to_owned(),
            ByteString(serde_json::to_vec(self).unwrap_or_default()),
        )])
    }

    /// The newest key of `alg` still signing.
    pub fn current(&self, alg: SigningAlg) -> Option<&StoredKey> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && k.retired_at.is_none())
            .max_by_key(|k| k.created_at)
    }
}

/// The key set after a rotation check at `now`: for each algorithm, a key made when there is
/// none or the current one is `every` old (the old one retired); retired keys dropped once
/// [`RETIRED_KEPT`] has passed. `None` when nothing changes. `generate` makes a key.
pub fn rotate(
    set: &KeySet,
    now: Timestamp,
    every: std::time::Duration,
    mut generate: impl FnMut(SigningAlg) -> Result<StoredKey, SigningError>,
) -> Result<Option<KeySet>, SigningError> {
    let mut next = set.clone();
    let kept = k8s_openapi::jiff::SignedDuration::try_from(RETIRED_KEPT).unwrap_or_default();
    next.keys
        .retain(|k| k.retired_at.is_none_or(|at| at + kept > now));
    let every = k8s_openapi::jiff::SignedDuration::try_from(every)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
    for alg in ALGORITHMS {
        let due = next
            .current(alg)
            .is_none_or(|k| k.created_at.checked_add(every).is_ok_and(|at| at <= now));
        if due {
            for k in next.keys.iter_mut().filter(|k| k.alg == alg) {
                k.retired_at.get_or_insert(now);
            }
            next.keys.push(generate(alg)?);
        }
    }
    Ok((next != *set).then_some(next))
}

/// A new key of `alg`, made at `now`.
pub fn generate(alg: SigningAlg, now: Timestamp) -> Result<StoredKey, SigningError> {
    use aws_lc_rs::encoding::AsDer;
    let der = match alg {
        SigningAlg::RS256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| SigningError::Generate("RSA"))?,
        SigningAlg::ES256 => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| SigningError::Generate("P-256"))?
        }
    };
    let kid = crate::crypto::hex(&crate::crypto::sha256(&der))[..16].to_owned();
    Ok(StoredKey {
        kid,
        alg,
        pem: pem("PRIVATE KEY", &der),
        created_at: now,
        retired_at: None,
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::ES256 => Algorithm::ES256,
    }
}

/// A key ready to sign and verify.
struct Loaded {
    kid: String,
    alg: SigningAlg,
    signing: bool,
    /// The private key, parsed once (jsonwebtoken would parse and check an RSA key on every
    /// signature, which costs more than the signature itself).
    private: Private,
    decoding: DecodingKey,
}

/// A parsed private key.
enum Private {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
}

/// The DER inside a PEM block.
fn der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body.trim()).ok()
}

/// The keys an auth replica signs and verifies with, and the JWKS it publishes.
#[derive(Default)]
pub struct Signer {
    keys: Vec<Loaded>,
    jwks: serde_json::Value,
}

impl Signer {
    /// Loads every key of `set`.
    pub fn new(set: &KeySet) -> Result<Signer, SigningError> {
        let mut keys = Vec::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        for k in &set.keys {
            let damaged = || SigningError::Damaged(k.kid.clone());
            let encoding = match k.alg {
                SigningAlg::RS256 => EncodingKey::from_rsa_pem(k.pem.as_bytes()),
                SigningAlg::ES256 => EncodingKey::from_ec_pem(k.pem.as_bytes()),
            }
            .map_err(|_| damaged())?;
            let mut jwk =
                Jwk::from_encoding_key(&encoding, algorithm(k.alg)).map_err(|_| damaged())?;
            jwk.common.key_id = Some(k.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(match k.alg {
                SigningAlg::RS256 => KeyAlgorithm::RS256,
                SigningAlg::ES256 => KeyAlgorithm::ES256,
            });
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| damaged())?;
            let pkcs8 = der(&k.pem).ok_or_else(damaged)?;
            let private = match k.alg {
                SigningAlg::RS256 => aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).map(Private::Rsa),
                SigningAlg::ES256 => aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                )
                .map(Private::Ec),
            }
            .map_err(|_| damaged())?;
            jwks.keys.push(jwk);
            keys.push(Loaded {
                kid: k.kid.clone(),
                alg: k.alg,
                signing: set.current(k.alg).is_some_and(|c| c.kid == k.kid),
                private,
                decoding,
            });
        }
        Ok(Signer {
            keys,
            jwks: serde_json::to_value(&jwks).unwrap_or_default(),
        })
    }

    /// The JWKS document.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// True when there is a key to sign with for each algorithm.
    pub fn is_ready(&self) -> bool {
        ALGORITHMS
            .iter()
            .all(|a| self.keys.iter().any(|k| k.alg == *a && k.signing))
    }

    /// `claims` signed with the current key of `alg`, as a compact JWS with `typ`.
    pub fn sign<T: Serialize>(&self, alg: SigningAlg, typ: &str, claims: &T) -> Option<String> {
        let key = self.keys.iter().find(|k| k.alg == alg && k.signing)?;
        let mut header = Header::new(algorithm(alg));
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_owned());
        // The compact serialization (RFC 7515 §7.1), signed with the parsed key.
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?)
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match &key.private {
            Private::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .ok()?;
                sig
            }
            Private::Ec(k) => k.sign(&rng, input.as_bytes()).ok()?.as_ref().to_vec(),
        };
        Some(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The claims of `token` when one of these keys signed it with that key's own algorithm
    /// (the header's `alg` must match the key its `kid` names: no `none`, no HMAC, no
    /// confusion), its `typ` is `typ`, and its `iss` is `issuer`. Expiry is the caller's to
    /// check against its clock.
    pub fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        issuer: &str,
    ) -> Option<T> {
        if token.len() > 8192 {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid.as_deref()?;
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        if header.alg != algorithm(key.alg)
            || !header
                .typ
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(typ))
        {
            return None;
        }
        let mut v = jsonwebtoken::Validation::new(algorithm(key.alg));
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v.set_issuer(&[issuer]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn fake(alg: SigningAlg, n: &mut u32, now: Timestamp) -> StoredKey {
        *n += 1;
        StoredKey {
            kid: format!("k{n}"),
            alg,
            pem: String::new(),
            created_at: now,
            retired_at: None,
        }
    }

    #[test]
    fn rotation_makes_missing_keys_retires_old_ones_and_drops_them_after_their_tokens() {
        let day = std::time::Duration::from_secs(86_400);
        let mut n = 0;
        let first = rotate(&KeySet::default(), at(0), day, |a| {
            Ok(fake(a, &mut n, at(0)))
        })
        .unwrap()
        .unwrap();
        assert_eq!(first.keys.len(), 2);
        assert_eq!(first.current(SigningAlg::RS256).unwrap().kid, "k1");
        // Nothing due: no change (no write).
        assert!(
            rotate(&first, at(3600), day, |a| Ok(fake(a, &mut n, at(3600))))
                .unwrap()
                .is_none()
        );
        // A day later both rotate; the old ones stay published, retired.
        let second = rotate(&first, at(86_400), day, |a| Ok(fake(a, &mut n, at(86_400))))
            .unwrap()
            .unwrap();
        assert_eq!(second.keys.len(), 4);
        assert_eq!(second.current(SigningAlg::RS256).unwrap().kid, "k3");
        assert_eq!(second.keys[0].retired_at, Some(at(86_400)));
        // Until every token they signed has expired.
        let kept = RETIRED_KEPT.as_secs() as i64;
        assert!(
            rotate(&second, at(86_400 + kept - 1), day, |_| unreachable!())
                .unwrap()
                .is_none()
        );
        let third = rotate(&second, at(86_400 + kept), day, |_| unreachable!())
            .unwrap()
            .unwrap();
        assert_eq!(
            third
                .keys
                .iter()
                .map(|k| k.kid.as_str())
                .collect::<Vec<_>>(),
            ["k3", "k4"]
        );
    }

    #[test]
    fn a_token_signed_before_a_rotation_verifies_after_it_and_new_ones_use_the_new_key() {
        let day = std::time::Duration::from_secs(86_400);
        let first = rotate(&KeySet::default(), at(0), day, |a| generate(a, at(0)))
            .unwrap()
            .unwrap();
        let before = Signer::new(&first).unwrap();
        let claims = serde_json::json!({"iss": "https://id.example.com"});
        let old = before.sign(SigningAlg::ES256, "JWT", &claims).unwrap();
        let second = rotate(&first, at(86_400), day, |a| generate(a, at(86_400)))
            .unwrap()
            .unwrap();
        let after = Signer::new(&second).unwrap();
        assert!(
            after
                .verify::<serde_json::Value>(&old, "JWT", "https://id.example.com")
                .is_some()
        );
        let new = after.sign(SigningAlg::ES256, "JWT", &claims).unwrap();
        let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
        assert_ne!(kid(&old), kid(&new));
        assert_eq!(kid(&new), second.current(SigningAlg::ES256).unwrap().kid);
    }

    #[test]
    fn tokens_verify_with_their_own_key_and_algorithm_only() {
        let set = KeySet {
            keys: vec![
                generate(SigningAlg::RS256, at(0)).unwrap(),
                generate(SigningAlg::ES256, at(0)).unwrap(),
            ],
        };
        let signer = Signer::new(&set).unwrap();
        assert!(signer.is_ready());
        assert_eq!(signer.jwks()["keys"].as_array().unwrap().len(), 2);
        let claims = serde_json::json!({"iss": "https://id.example.com", "sub": "a"});
        for alg in ALGORITHMS {
            let t = signer.sign(alg, "at+jwt", &claims).unwrap();
            let back: serde_json::Value = signer
                .verify(&t, "at+jwt", "https://id.example.com")
                .unwrap();
            assert_eq!(back["sub"], "a");
            assert!(
                signer
                    .verify::<serde_json::Value>(&t, "JWT", "https://id.example.com")
                    .is_none()
            );
            assert!(
                signer
                    .verify::<serde_json::Value>(&t, "at+jwt", "https://other.example")
                    .is_none()
            );
        }
        // alg none, and HS256 keyed with the public key: refused.
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).unwrap());
        let kid = &set.keys[0].kid;
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#));
        assert!(
            signer
                .verify::<serde_json::Value>(
                    &format!("{none}.{body}."),
                    "at+jwt",
                    "https://id.example.com"
                )
                .is_none()
        );
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        h.typ = Some("at+jwt".into());
        let n = signer.jwks()["keys"][0]["n"].as_str().unwrap();
        let hs = jsonwebtoken::encode(
            &h,
            &claims,
            &EncodingKey::from_secret(n.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(
            signer
                .verify::<serde_json::Value>(&hs, "at+jwt", "https://id.example.com")
                .is_none()
        );
    }
}
