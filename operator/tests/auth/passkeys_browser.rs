//! Passkeys in a real browser (issue 27): Chromium with a CDP virtual authenticator adds a
//! passkey on `/account`, signs in with it alone and after the password, and meets an
//! organisation's MFA requirement with it (`e2e/passkeys.mjs`).

use std::time::Duration;

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use usher_crds::Organisation;

use super::passkeys::localhost;
use crate::{
    common::{auth::*, *},
    *,
};

// Several threads: the browser runs in `spawn_blocking` while the test goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_adds_a_passkey_signs_in_with_it_and_meets_the_mfa_requirement() {
    let (h, client) = harness().await;
    let l = localhost(h).await;
    let (org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let orgs: Api<Organisation> = Api::all(client.clone());
    let name = org.name.clone();
    let require = move |on: bool| {
        let orgs = orgs.clone();
        let name = name.clone();
        async move {
            orgs.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"mfa": {"required": on}}})),
            )
            .await
            .unwrap();
        }
    };
    require(true).await;
    // Until the replicas' caches have it, the password alone would still open everything.
    eventually(
        "the requirement to reach the replicas",
        Duration::from_secs(10),
        || async {
            let a = l.c.login(&login, PASSWORD).await;
            (a.body["mfaEnrolmentRequired"] == true).then_some(())
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (ready, go) = (dir.path().join("ready"), dir.path().join("go"));
    let lift = tokio::spawn({
        let (ready, go, login) = (ready.clone(), go.clone(), login.clone());
        async move {
            eventually("the refused removal", Duration::from_secs(120), || {
                let ready = ready.clone();
                async move { ready.exists().then_some(()) }
            })
            .await;
            require(false).await;
            eventually(
                "the requirement lifted on the replicas",
                Duration::from_secs(10),
                || async {
                    let a = l.d.login(&login, PASSWORD).await;
                    (a.status == reqwest::StatusCode::UNAUTHORIZED
                        || a.body["mfaEnrolmentRequired"] == false)
                        .then_some(())
                },
            )
            .await;
            std::fs::write(&go, "go").unwrap();
        }
    });
    let vars = [
        ("BASE", l.origin.clone()),
        ("LOGIN", login.clone()),
        ("PASSWORD", PASSWORD.to_owned()),
        ("READY_FILE", ready.display().to_string()),
        ("GO_FILE", go.display().to_string()),
    ];
    let run = tokio::task::spawn_blocking(move || browser_script("passkeys.mjs", vars))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success() && stdout.contains("PASSKEYS_OK"),
        "the browser failed:\n{stdout}\n{}\nauth server log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        l.c.process.log_tail(30)
    );
    lift.await.unwrap();
}
