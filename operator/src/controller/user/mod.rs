//! The User reconcile: `reconcile` drives it, `observe` reads, `plan` decides (pure: a value that
//! says what to write, and the status to have), `apply` writes.

mod apply;
mod observe;
mod plan;
mod reconcile;

pub use reconcile::reconcile;
