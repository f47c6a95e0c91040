//! The OpenID Connect provider (DESIGN.md, "OpenID Connect provider"): `core` (the protocol's
//! decisions, pure: authorization requests, the organisation, the claims), `provider` (the
//! clients, their records and the signing keys, from watch caches), `handlers` (discovery,
//! JWKS, authorize, token, userinfo), `tokens` (revocation, introspection), `logout`
//! (RP-initiated logout), `verified` (access tokens whose signature was checked). Grants live in
//! the account (`account::grants`); access tokens are accepted as Bearer by `principal`; the
//! controller sends back-channel logouts (`controller::logouts`).

pub mod core;
pub mod handlers;
pub mod logout;
pub mod provider;
pub mod tokens;
pub mod verified;
