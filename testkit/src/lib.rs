//! Dev-only support for Usher's tests: real components, started as plain processes on loopback.
//!
//! - [`Envtest`]: etcd + kube-apiserver (controller-runtime's "envtest" convention: binaries in the
//!   folder named by `KUBEBUILDER_ASSETS`), one per test binary via [`Envtest::shared`].
//!
//! Nothing here is skipped when a component is missing: the test fails and names the command that
//! provisions it.

pub mod admission;
mod envtest;
mod mail;
mod process;
mod smtp;
mod tls;
mod wait;
mod webhook;

pub use envtest::{
    ENVTEST_VERSION, Envtest, PROVISION_COMMAND, assets_dir, create_namespace, unique_name,
};
pub use mail::Email;
pub use process::Process;
pub use smtp::{SmtpSink, SmtpTls};
pub use tls::{ServingCert, TestCa, free_port};
pub use wait::{poll, poll_blocking};
pub use webhook::register_webhook;
