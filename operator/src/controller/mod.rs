//! `usher controller`: the Organisation, Profile and User reconcilers.
//!
//! - [`run`](run::run) wires the three controllers and what they watch; every reconcile goes
//!   through its cache sync, timing and backoff.
//! - `context`: what reconciles share; `status`: conditions and the one status write;
//!   `locks` (per-account locks, taken in one order); `grant` (the RoleBinding that lets the
//!   controller reach an organisation namespace's Secrets); `key_secrets` (the delivered keys, watched
//!   per organisation namespace); `backoff`; `error`; `metrics`.
//! - `relocate`: moves accounts of an earlier layout into the accounts namespace at start.
//! - `organisation`, `profile`, `oidc_client`: one reconciler each; `user/`: observe → plan
//!   (pure) → apply. `signing_keys`: makes and rotates the OpenID Connect signing keys.

mod backoff;
mod context;
mod error;
mod grant;
mod key_secrets;
mod locks;
mod logouts;
mod metrics;
mod oidc_client;
mod organisation;
mod outbox;
mod profile;
mod relocate;
mod run;
mod signing_keys;
mod status;
mod user;

pub use context::Settings;
pub use metrics::Metrics;
pub use run::run;
