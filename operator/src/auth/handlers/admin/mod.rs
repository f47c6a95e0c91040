//! The Organisation > Users admin API, for holders of `manageUser` in their current
//! organisation (session or Bearer key): list, add, edit, lock and unlock, Kill Session, create
//! and renew API keys. Every action is a write to a User resource in the current organisation's
//! namespace only, with the field manager `usher-ui`, and a Kubernetes Event on the User naming
//! who did it. Nothing here can enroll or reset anyone's MFA. Who may act on whom is
//! `auth::authority` (pure).

mod actions;
mod actor;
mod routes;
mod users;

pub use actor::Admin;
pub use routes::routes;
