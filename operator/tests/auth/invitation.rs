//! Invitation acceptance: one use, the password policy and its explanation.

use std::time::Duration;

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use reqwest::StatusCode;
use serde_json::json;
use usher_crds::{User, UserPhase};

use crate::{
    common::{auth::*, *},
    *,
};

#[tokio::test]
async fn an_invitation_sets_the_password_once_and_explains_a_weak_one() {
    let (h, client) = harness().await;
    let (org, name, login) = member(&client, &["manageCase"]).await;
    let first = invitation_token(&h.smtp, &login, 1).await;

    // Before acceptance the account cannot log in, with the same answer as a wrong password.
    let invited = h.a.login(&login, PASSWORD).await;
    assert_eq!(
        (invited.status, invited.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    // Weak passwords are refused with the reason; the link stays usable.
    for (weak, why) in [
        ("short", "at least 12 characters"),
        ("password1234", "easy to guess"),
        (login.as_str(), "easy to guess"),
    ] {
        let a = eventually(
            "the invitation in the cache",
            Duration::from_secs(10),
            || async {
                let a = h.a.accept(&first, weak).await;
                (a.code() != "invalid_token").then_some(a)
            },
        )
        .await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "weak_password"),
            "{weak}"
        );
        assert!(
            a.body["message"].as_str().unwrap().contains(why),
            "{}",
            a.body
        );
        assert!(
            !a.body["message"].as_str().unwrap().contains(weak),
            "never echoed"
        );
    }

    // A resend replaces the link: the first one stops working.
    Api::<User>::namespaced(client.clone(), &org.ns)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"usher.dev/resend-invitation": "1"}}}),
            ),
        )
        .await
        .unwrap();
    let second = invitation_token(&h.smtp, &login, 2).await;
    assert_ne!(first, second);
    let old = eventually("the old link to stop", Duration::from_secs(10), || async {
        let a = h.b.accept(&first, PASSWORD).await;
        (a.code() == "invalid_token").then_some(a)
    })
    .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST);

    let ok = eventually("the new link", Duration::from_secs(10), || async {
        let a = h.b.accept(&second, PASSWORD).await;
        (a.status == StatusCode::NO_CONTENT).then_some(a)
    })
    .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    // Single use, on either replica.
    for server in [&h.a, &h.b] {
        let again = server.accept(&second, "another Long passphrase 42").await;
        assert_eq!(
            (again.status, again.code()),
            (StatusCode::BAD_REQUEST, "invalid_token")
        );
    }
    wait_phase(&client, &org.ns, &name, UserPhase::Active).await;
    let session = h.a.session(&login, PASSWORD).await;
    let me = h.a.get("/api/v1/me", Some(&session)).await;
    assert_eq!(me.body["login"], login);

    // An expired link says so.
    let (_, _, late) = member(&client, &["manageCase"]).await;
    let token = invitation_token(&h.smtp, &late, 1).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), OPERATOR_NS);
    // The email goes before the account records it: patch the recorded one.
    let account = invitation_recorded(&client, &late).await;
    secrets
        .patch(
            account.metadata.name.as_deref().unwrap(),
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"invitation.expiresAt": "2020-01-01T00:00:00Z"}})),
        )
        .await
        .unwrap();
    let expired = eventually("the expiry to be seen", Duration::from_secs(10), || async {
        let a = h.a.accept(&token, PASSWORD).await;
        a.body["message"].as_str()?.contains("expired").then_some(a)
    })
    .await;
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::BAD_REQUEST, "invalid_token")
    );
}
