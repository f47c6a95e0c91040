//! Usher's operator crate: the `usher` binary's commands. Each concern lives in a file named for
//! it; `main.rs` only parses flags and wires.

pub mod account;
pub mod account_cli;
pub mod api;
pub mod apikey;
pub mod apikey_secret;
pub mod auth;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod crypto;
pub mod dev;
mod error;
pub mod invitation;
pub mod lease;
pub mod mailer;
pub mod metrics;
pub mod organisation_reconciler;
pub mod password;
pub mod plugin;
pub mod profile_reconciler;
pub mod totp;
pub mod user_reconciler;

pub use error::Error;
