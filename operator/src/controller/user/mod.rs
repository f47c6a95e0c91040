//! The User reconcile: `reconcile` drives it, `observe` reads, `plan` decides what to write
//! (pure), `apply` writes, `status` says what the status is then (pure).

mod apply;
mod key;
mod observe;
mod plan;
mod reconcile;
mod status;

pub use reconcile::reconcile;
