//! The `usher` binary's command line, one file per subcommand: `controller`, `auth`, `account`
//! (platform-operator commands), `plugin` (the one-shot actions, also as a kubectl plugin) and
//! `dev` (everything locally; only with the `dev` feature, which the image leaves off).

mod account;
mod auth;
mod command;
mod common;
mod controller;
#[cfg(feature = "dev")]
mod dev;
mod plugin;

pub use command::{Cli, Command, run};
