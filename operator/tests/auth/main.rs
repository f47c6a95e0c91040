//! The auth server end to end: a real kube-apiserver, real SMTP, the real `usher controller`
//! and two real `usher auth` replicas, reached over sockets; TOTP codes from `oathtool`, the QR
//! code read by `zbarimg`. One harness for the whole binary; the tests live in one file per
//! concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod api_server_gone;
mod audit;
mod existence;
mod forward_auth;
mod gitops;
mod guessing;
mod hostile;
mod invitation;
mod keys;
mod login;
mod logout;
mod oidc;
mod oidc_clients;
mod pages;
mod passkeys;
mod passkeys_browser;
mod passwords;
mod router;
mod sessions;
mod tenancy;
mod totp;
mod totp_clients;

use common::{auth::*, *};
use kube::{Api, Client, api::PostParams};
use tokio::sync::OnceCell;
use usher_crds::{User, UserPhase};
use usher_testkit::{Envtest, Process, SmtpSink};

pub struct Harness {
    pub env: &'static Envtest,
    /// The CA of the relying parties' serving certificates, which the controller trusts for
    /// back-channel logout endpoints.
    pub ca: usher_testkit::TestCa,
    pub smtp: SmtpSink,
    pub a: AuthServer,
    pub b: AuthServer,
    _controller: Process,
}

static HARNESS: OnceCell<Harness> = OnceCell::const_new();

pub async fn harness() -> (&'static Harness, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = HARNESS
        .get_or_init(|| async {
            let env = Envtest::shared(usher_crds::crds).await.unwrap();
            setup(env).await;
            let smtp = SmtpSink::start().await.unwrap();
            let ca = usher_testkit::TestCa::new().unwrap();
            let ca_file =
                std::env::temp_dir().join(format!("usher-rp-ca-{}.pem", std::process::id()));
            std::fs::write(&ca_file, ca.cert_pem()).unwrap();
            let controller = start_controller_with(
                env,
                &smtp.url(),
                "auth-controller",
                usher_testkit::free_port().unwrap(),
                &[("USHER_OIDC_LOGOUT_CA_FILE", ca_file.to_str().unwrap())],
            );
            // Three failed logins soft-lock an account on replica a (10 on b, the default).
            let a = start_auth(env, "auth-a", &[("USHER_SOFT_LOCK_AFTER", "3")]).await;
            let b = start_auth(env, "auth-b", &[]).await;
            Harness {
                env,
                ca,
                smtp,
                a,
                b,
                _controller: controller,
            }
        })
        .await;
    (h, h.env.client().await.unwrap())
}

/// An organisation with a profile and one User for a fresh login; returns (org, user, login).
pub async fn member(client: &Client, permissions: &[&str]) -> (Org, String, String) {
    let profile = profile(client, permissions).await;
    let org = organisation(client).await;
    let ns = wait_ns(client, &org).await;
    let login = login("person");
    let name = unique_user_name();
    Api::<User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &user(&name, &login, &profile))
        .await
        .unwrap();
    (org, name, login)
}

pub fn unique_user_name() -> String {
    usher_testkit::unique_name("u")
}

/// A member who accepted their invitation; returns (org, user, login).
pub async fn active_member(
    h: &Harness,
    client: &Client,
    permissions: &[&str],
) -> (Org, String, String) {
    let (org, name, login) = member(client, permissions).await;
    onboard(&h.a, &h.smtp, &login).await;
    wait_phase(client, &org.ns, &name, UserPhase::Active).await;
    (org, name, login)
}

/// Kill Session on User `name` in `ns`, as a platform team runs it: the annotation with `value`.
pub async fn kill_sessions(client: &Client, ns: &str, name: &str, value: &str) {
    Api::<User>::namespaced(client.clone(), ns)
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!(
                {"metadata": {"annotations": {"usher.dev/kill-sessions": value}}}
            )),
        )
        .await
        .unwrap();
}

/// Waits until `cookie` is refused as ended (`session_ended`) on both replicas.
pub async fn ended_everywhere(h: &Harness, cookie: &str, what: &str) {
    for server in [&h.a, &h.b] {
        eventually(what, std::time::Duration::from_secs(10), || async {
            (server.get("/api/v1/me", Some(cookie)).await.code() == "session_ended").then_some(())
        })
        .await;
    }
}

/// An active admin of `org` (profile with `manageUser`), User `name`; returns the login.
pub async fn active_admin(h: &Harness, client: &Client, org: &Org, name: &str) -> String {
    let admin_profile = profile(client, &["manageUser", "manageCase"]).await;
    let login = usher_testkit::unique_name("admin") + "@example.com";
    Api::<User>::namespaced(client.clone(), &org.ns)
        .create(&PostParams::default(), &user(name, &login, &admin_profile))
        .await
        .unwrap();
    onboard(&h.a, &h.smtp, &login).await;
    wait_phase(client, &org.ns, name, UserPhase::Active).await;
    login
}
