//! `usher auth`: the auth server. It answers from watch caches of Users, Organisations,
//! Profiles, account Secrets and API-key Secrets, so edits take effect on the next request, and
//! keeps no state of its own: sessions are signed cookies checked against the account Secret,
//! which every replica watches, so replicas share nothing but the Kubernetes API.
//!
//! A request goes `router` → `middleware` (body cap, cross-site rule, headers) → a handler in
//! `handlers/` or a page in `pages/` → `principal` (who is asking: key or session) → the
//! `directory` (memberships from the watch caches of `runtime::cache`) → writes through `account` (the account store's
//! one modify, applied to the cache at once) or the Kubernetes API (admin actions on Users).

mod account;
mod answers;
mod authority;
mod client;
mod cookie;
mod device;
mod directory;
mod error;
mod handlers;
mod metrics;
mod middleware;
mod oidc;
mod pages;
pub mod passkey;
mod principal;
mod router;
mod server;
mod session;
mod settings;
mod state;
mod throttle;
mod trail;

pub use client::TrustedProxies;
pub use router::{api, layers, router};
pub use server::run;
pub use session::{Acting as SessionActing, Claims as SessionClaims, seal as seal_session};
pub use settings::Settings;
pub use state::AuthState;
