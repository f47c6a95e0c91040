//! The controller end to end: real kube-apiserver, real SMTP server (aiosmtpd), the real
//! `usher controller` binary. One controller serves every test of this binary; tests isolate
//! themselves with unique names and logins. One file per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod errors;
mod idempotence;
mod invitations;
mod leader;
mod logouts;
mod mail;
mod memberships;
mod organisations;
mod outage;
mod restart;
mod secrets;
mod signing_keys;

use std::time::Duration;

use common::*;
use kube::Client;
use tokio::sync::OnceCell;
use usher_testkit::{Envtest, Process, SmtpSink};

pub struct Harness {
    pub env: &'static Envtest,
    pub smtp: SmtpSink,
    pub probe_port: u16,
    _controller: Process,
}

static HARNESS: OnceCell<Harness> = OnceCell::const_new();

pub async fn harness() -> (&'static Harness, Client) {
    let h = HARNESS
        .get_or_init(|| async {
            let env = Envtest::shared(usher_crds::crds).await.unwrap();
            setup(env).await;
            let smtp = SmtpSink::start().await.unwrap();
            let probe_port = usher_testkit::free_port().unwrap();
            let controller = start_controller_on(env, &smtp.url(), "usher-controller", probe_port);
            Harness {
                env,
                smtp,
                probe_port,
                _controller: controller,
            }
        })
        .await;
    (h, h.env.client().await.unwrap())
}

pub async fn emails_to(h: &Harness, login: &str, n: usize) -> Vec<usher_testkit::Email> {
    eventually(
        &format!("{n} email(s) to {login}"),
        Duration::from_secs(30),
        || async {
            let got = h.smtp.emails_to(login).unwrap();
            (got.len() >= n).then_some(got)
        },
    )
    .await
}
