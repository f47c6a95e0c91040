//! What every long-running command shares: the clock, the shutdown signal, the probe server, the
//! controller's leader Lease, the trimmed watch, indexed watch caches and small helpers over kube's `Api`.

pub mod api;
pub mod cache;
pub mod clock;
pub mod lease;
pub mod probes;
pub mod shutdown;
pub mod watch;
