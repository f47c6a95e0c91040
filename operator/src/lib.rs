//! Usher's operator crate: the `usher` binary's commands (controller, auth server, operator CLI,
//! `usher dev`). Modules are private; what other crates and the tests use is re-exported below.
//! `ARCHITECTURE.md` at the repository root is the map.

mod account;
mod apikey;
mod audit;
mod auth;
mod cli;
mod controller;
mod crypto;
mod keys;
mod link_token;
mod mail;
mod oidc;
mod password;
mod reason;
mod runtime;
mod totp;

pub use account::{Account, AccountStore, StoreError, account_id, secret_name};
pub use account::{KeyRecord, MembershipRecord, membership_key};
pub use apikey::{ApiKey, delivery as apikey_delivery, renew as apikey_renew};
pub use auth::passkey;
pub use auth::{
    AuthState, SessionActing, SessionClaims, Settings as AuthSettings, api as auth_routes,
    layers as auth_layers, router as auth_router, seal_session,
};
pub use cli::{Cli, Command, run};
pub use keys::Keys;
pub use link_token::hash_token;
pub use mail::{Invitation, Mailer, SmtpOptions, invitation_email};
pub use runtime::clock::Clock;
pub use totp::{CodeError, Enrolment, enrol as enrol_totp, verify as verify_totp};
