//! Usher's operator crate: the `usher` binary's commands. Each concern lives in a file named for
//! it; `main.rs` only parses flags and wires.

pub mod apikey;
pub mod cli;
pub mod crypto;
pub mod invitation;
pub mod mailer;
