//! The audit trail (DESIGN.md, "Audit trail"): `record` (the typed record and its actions,
//! pure), `sink` (where records go, without blocking whoever makes them) and `spool` (an HTTP
//! sink's undelivered records on disk). The auth server,
//! the controller and `usher account` each make the records of what they do.

pub mod record;
pub mod sink;
pub mod spool;

pub use record::{Action, Actor, ClientInfo, Outcome, Record, Target, Via};
pub use sink::Auditor;
