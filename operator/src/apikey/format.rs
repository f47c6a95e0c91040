//! The API key format: `usk_` + 30 base62 characters from the OS CSPRNG (178 bits) + a 6-character
//! base62 checksum of the random part. The checksum is verified before any lookup, so typos and
//! strings that merely look like keys fail fast, and secret scanners can recognise real keys.
//! Only the SHA-256 of a key is indexed; the plaintext lives only in the Secret.

use std::fmt;

use crate::crypto::{RandomError, hex, random_bytes, sha256};

/// Every key starts with this.
pub const PREFIX: &str = "usk_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
/// Total length of a key.
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An API key. `Debug` shows only the fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why a string is not an API key. Says nothing about any stored key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `usk_`, wrong length, or characters outside base62.
    #[error("not an Usher API key (expected usk_ followed by 36 letters and digits)")]
    Malformed,
    /// Well-formed but the checksum does not match: a typo or a made-up key.
    #[error("the API key's checksum does not match; copy the key again")]
    Checksum,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.fingerprint())
    }
}

impl ApiKey {
    /// A new random key.
    pub fn generate() -> Result<Self, RandomError> {
        let mut random = String::with_capacity(RANDOM_LEN);
        while random.len() < RANDOM_LEN {
            for b in random_bytes::<64>()? {
                // Rejection sampling keeps every character uniform: 248 = 4 × 62.
                if b < 248 && random.len() < RANDOM_LEN {
                    random.push(char::from(BASE62[usize::from(b % 62)]));
                }
            }
        }
        let checksum = checksum(&random);
        Ok(Self(format!("{PREFIX}{random}{checksum}")))
    }

    /// Checks the format and the checksum of `s`, without any lookup.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let body = s.strip_prefix(PREFIX).ok_or(KeyError::Malformed)?;
        if s.len() != KEY_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyError::Malformed);
        }
        let (random, sum) = body.split_at(RANDOM_LEN);
        if checksum(random) != sum {
            return Err(KeyError::Checksum);
        }
        Ok(Self(s.to_owned()))
    }

    /// The key itself, for the Secret's `api-key` data only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the key: what the auth server indexes.
    pub fn hash(&self) -> String {
        hex(&sha256(self.0.as_bytes()))
    }

    /// A short, non-invertible identifier for status and logs: `usk_…` + 8 hex of the hash.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.hash())
    }
}

/// The fingerprint of the key whose hex SHA-256 is `hash` (what an account records).
pub fn fingerprint(hash: &str) -> String {
    format!("{PREFIX}…{}", hash.get(..8).unwrap_or_default())
}

/// Six base62 digits of the first four bytes of SHA-256 of the random part.
fn checksum(random: &str) -> String {
    let digest = sha256(random.as_bytes());
    let mut n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), KEY_LEN);
        assert!(a.expose().starts_with("usk_"));
        assert_eq!(ApiKey::parse(a.expose()), Ok(a.clone()));
        // 30 base62 characters carry more than 128 bits.
        assert!(RANDOM_LEN as f64 * 62f64.log2() >= 128.0);
    }

    #[test]
    fn one_changed_character_fails_the_checksum() {
        let key = ApiKey::generate().unwrap().expose().to_owned();
        let mut failures = 0;
        for i in PREFIX.len()..KEY_LEN {
            let mut bytes = key.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            if ApiKey::parse(&typo) == Err(KeyError::Checksum) {
                failures += 1;
            }
        }
        // A 6-digit base62 checksum over 32 bits misses a typo about once in 4 billion.
        assert_eq!(failures, KEY_LEN - PREFIX.len());
    }

    #[test]
    fn malformed_strings_are_refused_before_any_lookup() {
        let key = ApiKey::generate().unwrap().expose().to_owned();
        for bad in [
            "",
            "usk_",
            &key[..KEY_LEN - 1],
            &format!("{key}x"),
            &key.replacen("usk_", " usk", 1),
            &key.replacen("usk_", "USK_", 1),
            &format!("{}-{}", &key[..10], &key[11..]),
            &format!("{}é", &key[..KEY_LEN - 2]),
            "Bearer usk_abc",
        ] {
            assert_eq!(ApiKey::parse(bad), Err(KeyError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn debug_and_fingerprint_never_show_the_key() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()[PREFIX.len()..]), "{shown}");
        assert_eq!(key.fingerprint().chars().count(), PREFIX.len() + 1 + 8);
        assert!(
            key.hash()
                .starts_with(&key.fingerprint()[PREFIX.len() + "…".len()..])
        );
        // What an account records (the hash) gives the same fingerprint as the key.
        assert_eq!(fingerprint(&key.hash()), key.fingerprint());
        assert_eq!(
            fingerprint(&"a".repeat(64)),
            format!("usk_…{}", "a".repeat(8))
        );
    }
}
