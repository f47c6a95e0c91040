//! The tokens of emailed links (invitations, password resets): 256 bits from the OS CSPRNG,
//! sent once in the link (`${PUBLIC_URL}/invite#token=<token>`, `${PUBLIC_URL}/reset#token=…`)
//! and stored only as a SHA-256 hash.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::crypto::{RandomError, constant_time_eq, hex, random_bytes, sha256};

/// Length of an encoded token: 32 bytes in unpadded base64url.
const TOKEN_LEN: usize = 43;

/// A freshly issued link token. Its `Debug` never shows the value; it leaves this type only
/// through [`LinkToken::link`] (for the email) and [`LinkToken::hash`] (for storage).
pub struct LinkToken(String);

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(<redacted>)")
    }
}

impl LinkToken {
    /// A new random token.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)))
    }

    /// The value to store: hex SHA-256 of the token.
    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }

    /// The link to `page` (`invite`, `reset`) with the token in the fragment, so it never
    /// reaches server logs or `Referer` headers.
    pub fn link(&self, public_url: &str, page: &str) -> String {
        format!(
            "{}/{page}#token={}",
            public_url.trim_end_matches('/'),
            self.0
        )
    }
}

/// Hex SHA-256 of a presented token.
pub fn hash_token(token: &str) -> String {
    hex(&sha256(token.as_bytes()))
}

/// True when `presented` is the token whose hash is `stored`. Malformed input is refused before
/// hashing; the hashes are compared in constant time.
pub fn token_matches(presented: &str, stored: &str) -> bool {
    let well_formed = presented.len() == TOKEN_LEN
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed && constant_time_eq(hash_token(presented).as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_of(link: &str) -> &str {
        link.split_once("#token=").unwrap().1
    }

    #[test]
    fn a_token_carries_256_bits_and_is_stored_only_hashed() {
        let t = LinkToken::generate().unwrap();
        let link = t.link("https://usher.example.com/", "invite");
        assert!(
            link.starts_with("https://usher.example.com/invite#token="),
            "{link}"
        );
        let token = token_of(&link);
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(URL_SAFE_NO_PAD.decode(token).unwrap().len(), 32);
        let stored = t.hash();
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(token));
        assert!(token_matches(token, &stored));
    }

    #[test]
    fn other_tokens_and_malformed_input_do_not_match() {
        let a = LinkToken::generate().unwrap();
        let b = LinkToken::generate().unwrap();
        let link_b = b.link("http://localhost:8080", "invite");
        assert!(!token_matches(token_of(&link_b), &a.hash()));
        let link_a = a.link("http://x", "invite");
        let token = token_of(&link_a);
        for bad in [
            "",
            &token[1..],
            &format!("{token}="),
            &token.replace(|_: char| true, "+"),
        ] {
            assert!(!token_matches(bad, &a.hash()), "{bad}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let t = LinkToken::generate().unwrap();
        let link = t.link("http://x", "invite");
        let shown = format!("{t:?}");
        assert_eq!(shown, "LinkToken(<redacted>)");
        assert!(!shown.contains(token_of(&link)));
    }
}
