//! The OpenID Connect provider's shared parts, used by the controller and the auth server:
//! the signing keys (`signing`), a client's record in the operator namespace (`client_record`),
//! the Secret that delivers its credentials (`delivery`), the back-channel logouts due and
//! their outbox (`logout`).
//! The protocol itself is the auth server's (`auth::oidc`).

pub mod client_record;
pub mod delivery;
pub mod logout;
pub mod signing;
