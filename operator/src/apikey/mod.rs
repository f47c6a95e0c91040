//! API keys: the format ([`ApiKey`]: `usk_`, 178 random bits, a checksum checked before any
//! lookup), the one renewal in the account ([`renew`]: the account is where a key
//! authenticates), and the Secret that delivers a key to apps ([`delivery`]).

pub mod delivery;
mod format;
pub mod renew;

pub use format::{ApiKey, fingerprint};
