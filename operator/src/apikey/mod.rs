//! API keys: the format ([`ApiKey`]: `usk_`, 178 random bits, a checksum checked before any
//! lookup), the Secret that carries one to apps ([`secret`]), and the one renewal that the
//! controller and the auth server both use ([`renew`]).

mod format;
mod renew;
pub mod secret;

pub use format::ApiKey;
pub use renew::{RenewError, renew};
