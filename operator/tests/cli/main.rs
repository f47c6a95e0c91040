//! The `usher` binary as platform teams run it: `usher crds`, `usher account`, `usher dev`,
//! the kubectl plugin, the image build and the Helm chart, each against real tools and a real
//! kube-apiserver. One file per command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

#[path = "../common/mod.rs"]
mod common;

mod account;
mod chart;
mod crds;
// `usher dev` exists only with the `dev` feature (`make test` turns it on).
#[cfg(feature = "dev")]
mod dev;
mod image;
mod plugin;
mod rbac;
