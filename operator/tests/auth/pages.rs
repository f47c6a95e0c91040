//! The web pages in a real browser: headless Debian chromium driven by playwright-core
//! (`e2e/pages.mjs`), against a real kube-apiserver, SMTP server, controller and auth server.
//! Screenshots of the main pages go to `test-output/pages/`.

use std::{path::Path, time::Duration};

use crate::common::{auth::*, *};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use reqwest::StatusCode;
use usher_crds::{User, UserPhase};
use usher_testkit::{Envtest, SmtpSink};

/// The auth binary's API server, mail sink and controller (two controllers on one API server
/// would take turns leading, each mailing its own sink).
async fn stack() -> (&'static Envtest, kube::Client, &'static SmtpSink) {
    let (h, client) = crate::harness().await;
    (h.env, client, &h.smtp)
}

#[tokio::test]
async fn a_newcomer_and_an_org_admin_use_the_pages_in_a_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");

    let (env, client, smtp) = stack().await;
    let auth = start_auth(env, "pages-auth", &[]).await;

    let admin_profile = profile(&client, &["manageUser", "manageCase"]).await;
    let analyst = profile(&client, &["manageCase"]).await;
    let reader = profile(&client, &["readCase"]).await;
    let org1 = organisation(&client).await;
    let ns1 = wait_ns(&client, &org1).await;
    let org2 = organisation(&client).await;
    let ns2 = wait_ns(&client, &org2).await;
    let admin_login = login("admin");
    let nina_login = login("nina");
    let new_login = login("added");
    let users1 = Api::<User>::namespaced(client.clone(), &ns1);
    users1
        .create(
            &PostParams::default(),
            &user("admin", &admin_login, &admin_profile),
        )
        .await
        .unwrap();
    let mut nina = user("nina", &nina_login, &analyst);
    nina.spec.api_key = Some(usher_crds::ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    users1.create(&PostParams::default(), &nina).await.unwrap();
    Api::<User>::namespaced(client.clone(), &ns2)
        .create(&PostParams::default(), &user("nina", &nina_login, &reader))
        .await
        .unwrap();
    onboard(&auth, smtp, &admin_login).await;
    wait_phase(&client, &ns1, "nina", UserPhase::Invited).await;
    // The controller's links name its public URL; the browser goes to this auth server.
    let token = invitation_token(smtp, &nina_login, 1).await;
    let link = format!("{}/invite#token={token}", auth.base);
    // The invitation must be in the server's cache before the browser uses it.
    eventually(
        "the invitation in the cache",
        Duration::from_secs(10),
        || async {
            let a = auth.accept(&token, "x").await;
            (a.code() == "weak_password").then_some(())
        },
    )
    .await;

    let out = root.join("test-output/pages");
    let run = tokio::task::spawn_blocking({
        let out = out.clone();
        let vars = [
            ("BASE", auth.base.clone()),
            ("OUT", out.display().to_string()),
            ("INVITE_LINK", link),
            ("NINA_LOGIN", nina_login.clone()),
            ("ADMIN_LOGIN", admin_login.clone()),
            ("PASSWORD", PASSWORD.to_owned()),
            ("ORG1", org1.name.clone()),
            ("ORG1_DISPLAY", org1.display.clone()),
            ("ORG2", org2.name.clone()),
            ("ORG2_DISPLAY", org2.display.clone()),
            ("NEW_LOGIN", new_login.clone()),
            ("PROFILE", analyst.clone()),
        ];
        move || browser_script("pages.mjs", vars)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "browser test failed:\n{stdout}\n{stderr}\nauth server log:\n{}",
        auth.process.log_tail(30)
    );
    assert!(stdout.contains("OK"), "{stdout}");

    // What the browser did is what the cluster holds.
    for shot in [
        "invite-weak-password.png",
        "login.png",
        "account.png",
        "account-totp-enrolment.png",
        "login-code.png",
        "account-api-key.png",
        "organisation-users.png",
    ] {
        let meta = std::fs::metadata(out.join(shot)).unwrap_or_else(|_| panic!("no {shot}"));
        assert!(meta.len() > 1000, "{shot} is empty");
    }
    let nina = wait_phase(&client, &ns1, "nina", UserPhase::Active).await;
    assert_eq!(nina.spec.full_name, "Nina Edited");
    assert!(!nina.spec.locked);
    assert_eq!(nina.status.unwrap().mfa_enrolled, Some(true));
    let added: Vec<User> = users1
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|u| u.spec.login == new_login)
        .collect();
    assert_eq!(added.len(), 1, "the added user");
    assert!(added[0].spec.api_key.as_ref().is_some_and(|k| k.enabled));
    // The key renewed on the page is the one that works.
    let key = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let verify = |k: String| {
        let auth = &auth;
        async move {
            auth.call(reqwest::Method::GET, "/api/v1/verify", None, None, Some(&k))
                .await
                .status
        }
    };
    assert_eq!(verify(key("RENEWED_KEY")).await, StatusCode::OK);
    assert_eq!(verify(key("FIRST_KEY")).await, StatusCode::UNAUTHORIZED);
}

/// Runs `e2e/passwords.mjs` in `phase` with `vars`; its stdout, or a panic with what failed.
fn passwords_script(phase: &str, vars: &[(&str, String)], auth: &AuthServer) -> String {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-output/pages");
    let fixed = [
        ("PHASE", phase.to_owned()),
        ("OUT", out.display().to_string()),
    ];
    let run = browser_script(
        "passwords.mjs",
        fixed.iter().chain(vars).map(|(k, v)| (*k, v.as_str())),
    );
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success() && stdout.contains("OK"),
        "browser test ({phase}) failed:\n{stdout}\n{}\nauth server log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        auth.process.log_tail(30)
    );
    stdout
}

// Several threads: the browser runs in `block_in_place` while the server's SMTP sink and
// caches go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_changed_and_an_admin_ends_the_session_in_a_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (env, client, smtp) = stack().await;
    let auth = start_auth(env, "passwords-auth", &[("USHER_REAUTH_WINDOW", "2s")]).await;

    let admin_profile = profile(&client, &["manageUser", "manageCase"]).await;
    let analyst = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let admin_login = login("admin");
    let member_login = login("forgetful");
    let users = Api::<User>::namespaced(client.clone(), &ns);
    for (name, login, profile) in [
        ("admin", &admin_login, &admin_profile),
        ("forgetful", &member_login, &analyst),
    ] {
        users
            .create(&PostParams::default(), &user(name, login, profile))
            .await
            .unwrap();
        onboard(&auth, smtp, login).await;
        wait_phase(&client, &ns, name, UserPhase::Active).await;
    }
    // The member is signed in elsewhere: the reset ends that session too.
    let elsewhere = auth.session(&member_login, PASSWORD).await;

    let base = [
        ("BASE", auth.base.clone()),
        ("MEMBER_LOGIN", member_login.clone()),
    ];
    tokio::task::block_in_place(|| passwords_script("request", &base, &auth));
    let token = reset_token(smtp, &member_login, 1).await;
    // The controller's links name its public URL; the browser goes to this auth server.
    let link = format!("{}/reset#token={token}", auth.base);
    let mut vars = base.to_vec();
    vars.extend([
        ("RESET_LINK", link),
        ("NEW_PASSWORD", "Callisto-9!quiet-harbour-17".to_owned()),
        ("NEWER_PASSWORD", "Io-volcano$paper-lantern-33".to_owned()),
        ("ADMIN_LOGIN", admin_login.clone()),
        ("ADMIN_PASSWORD", PASSWORD.to_owned()),
    ]);
    tokio::task::block_in_place(|| passwords_script("reset", &vars, &auth));

    // What the browser did is what the server holds: the old session and both earlier
    // passwords stop; the link was used up.
    assert_eq!(
        auth.get("/api/v1/me", Some(&elsewhere)).await.code(),
        "session_ended"
    );
    for old in [PASSWORD, "Callisto-9!quiet-harbour-17"] {
        assert_eq!(
            auth.login(&member_login, old).await.code(),
            "invalid_credentials"
        );
    }
    let reused = auth
        .post(
            "/api/v1/password-reset/accept",
            serde_json::json!({"token": token, "password": "Europa-ice!silver-comet-58"}),
            None,
        )
        .await;
    assert_eq!(reused.code(), "invalid_token");
    for shot in [
        "reset-requested.png",
        "reset-weak-password.png",
        "account-reauthenticate.png",
        "account-sessions.png",
        "organisation-sessions.png",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../test-output/pages")
            .join(shot);
        let meta = std::fs::metadata(&path).unwrap_or_else(|_| panic!("no {shot}"));
        assert!(meta.len() > 1000, "{shot} is empty");
    }
}
