//! The operator's parsers of untrusted input, compiled from their own source files.

#![allow(dead_code)]

#[path = "../../operator/src/crypto.rs"]
pub mod crypto;

#[path = "../../operator/src/auth/session.rs"]
pub mod session;

#[path = "../../operator/src/apikey/format.rs"]
pub mod apikey;
