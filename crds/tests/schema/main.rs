//! The CRDs: the committed YAML equals what the types generate, and the schema with its CEL rules
//! works on a real kube-apiserver (envtest) with no webhook.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

mod api_server;
mod generated;
