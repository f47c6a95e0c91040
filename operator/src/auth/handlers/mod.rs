//! The handlers of the HTTP API, one file per concern.

pub mod admin;
pub mod api_key;
pub mod invitation;
pub mod login;
pub mod me;
pub mod mfa;
pub mod passkeys;
pub mod password;
pub mod probes;
pub mod reauth;
pub mod sessions;
pub mod verify;
