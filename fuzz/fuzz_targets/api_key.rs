//! The API-key parser: any input is refused or is a key that prints back to itself; it never
//! panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use usher_fuzz::apikey::ApiKey;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = ApiKey::parse(s) {
        assert_eq!(key.expose(), s);
        assert!(s.starts_with("usk_"));
    }
});
