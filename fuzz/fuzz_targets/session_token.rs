//! The session cookie decoder: any input is refused or opens to claims that seal back to a
//! token opening to the same claims; it never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use usher_fuzz::session::{open, seal};

fuzz_target!(|data: &[u8]| {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7u8; 32]);
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(claims) = open(&key, token) {
        assert_eq!(open(&key, &seal(&key, &claims)), Some(claims));
    }
    // A token this key made, with the fuzz input as its organisation, always opens.
    let claims = usher_fuzz::session::Claims {
        sid: "s".into(),
        acct: "a".into(),
        auid: "u".into(),
        org: token.to_owned(),
        muid: "m".into(),
        iat: 1,
        seen: 1,
        auth: 1,
        mfa: false,
        passkey: None,
    };
    let sealed = seal(&key, &claims);
    if sealed.len() <= usher_fuzz::session::MAX_TOKEN_LEN {
        assert_eq!(open(&key, &sealed), Some(claims));
    }
});
