//! Usher's validating admission webhook: refuses bad Organisations, Profiles and Users with a
//! message that names the fix.
//!
//! - [`rules`]: the rules, pure (request + cluster lookup → decision).
//! - [`cache`]: watch caches of Usher objects, with a fresh List while they sync.
//! - [`budget`]: how many fresh Lists the webhook may ask for (a token bucket).
//! - [`server`]: the axum router (`POST /validate`, `/healthz`, `/readyz`, `/metrics`).
//! - [`tls`]: serving over rustls with certificate files reloaded when they change.

pub mod budget;
pub mod cache;
pub mod metrics;
pub mod rules;
pub mod server;
pub mod tls;
