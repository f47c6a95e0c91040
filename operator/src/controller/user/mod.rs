//! The User reconcile: `reconcile` drives it, `observe` reads, `plan` decides what to write
//! (pure), `apply` writes, `status` says what the status is then (pure). `accounts` indexes
//! the Users by account, for the trigger that wakes them when their account changes.

pub mod accounts;
mod apply;
mod key;
mod observe;
mod plan;
mod reconcile;
mod status;

pub use reconcile::reconcile;
