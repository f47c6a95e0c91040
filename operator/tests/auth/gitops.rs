//! Organisations whose Users live in Git (`spec.userManagement: GitOps`): the admin API and
//! pages change nothing Git owns; and service users (`spec.type: Service`): a key, never a
//! sign-in.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use reqwest::StatusCode;
use serde_json::json;
use usher_crds::{ApiKeySpec, User, UserPhase, UserType};

use crate::{
    common::{auth::*, *},
    *,
};

/// The key delivered in Secret `name` of namespace `ns`, once the controller wrote it.
async fn delivered_key(client: &kube::Client, ns: &str, name: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = eventually("the key Secret", Duration::from_secs(20), || async {
        secrets.get_opt(name).await.unwrap()
    })
    .await;
    String::from_utf8(secret.data.unwrap()["api-key"].0.clone()).unwrap()
}

/// The answer of `/api/v1/verify` to `key` on `server`.
async fn verify(server: &AuthServer, key: &str) -> Answer {
    server
        .call(
            reqwest::Method::GET,
            "/api/v1/verify",
            None,
            None,
            Some(key),
        )
        .await
}

#[tokio::test]
async fn an_organisation_managed_in_git_refuses_admin_edits_but_keeps_one_shot_actions() {
    let (h, client) = harness().await;
    let (org, member, member_login) = active_member(h, &client, &["manageCase"]).await;
    let admin_login = active_admin(h, &client, &org, "git-admin").await;
    let admin = h.a.session(&admin_login, PASSWORD).await;
    let manage = |mode: &str| {
        let patch = json!({"spec": {"userManagement": mode}});
        let client = client.clone();
        let name = org.name.clone();
        async move {
            Api::<usher_crds::Organisation>::all(client)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    manage("GitOps").await;
    let edits = [
        (
            "/api/v1/users".to_owned(),
            json!({"login": login("new"), "fullName": "New", "profile": "analyst"}),
        ),
        (format!("/api/v1/users/{member}/lock"), json!({})),
        (format!("/api/v1/users/{member}/api-key"), json!({})),
    ];
    for (path, body) in &edits {
        let refused = eventually(
            "the auth server to see GitOps",
            Duration::from_secs(10),
            || async {
                let a = h.a.post(path, body.clone(), Some(&admin)).await;
                (a.code() == "managed_in_git").then_some(a)
            },
        )
        .await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert!(refused.body["message"].as_str().unwrap().contains("Git"));
    }
    let edit =
        h.a.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{member}"),
            Some(json!({"fullName": "Renamed"})),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(edit.code(), "managed_in_git");
    // Nothing changed in the cluster.
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    let u = users.get(&member).await.unwrap();
    assert!(!u.spec.locked && u.spec.api_key.is_none());
    assert_ne!(u.spec.full_name, "Renamed");
    // One-shot actions are not edits of what Git holds: Kill Session works.
    let member_session = h.b.session(&member_login, PASSWORD).await;
    let kill =
        h.a.post(
            &format!("/api/v1/users/{member}/kill-session"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(kill.status, StatusCode::ACCEPTED, "{}", kill.body);
    ended_everywhere(h, &member_session, "the killed session to end").await;

    // The page says so and offers no edits.
    let page = h.a.page("/organisation/users", &admin).await;
    assert!(page.contains("Managed in Git"), "{page}");
    assert!(
        !page.contains("Add User") && !page.contains("✎ Edit"),
        "{page}"
    );
    assert!(page.contains("Kill Session"));

    // Back to Any: the admin API edits again.
    manage("Any").await;
    eventually(
        "the auth server to see Any",
        Duration::from_secs(10),
        || async {
            let a = h.a.post(&edits[1].0, json!({}), Some(&admin)).await;
            (a.status == StatusCode::OK).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_service_user_gets_a_key_and_no_invitation_and_never_signs_in() {
    let (h, client) = harness().await;
    let p = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let login = login("robot");
    let mut robot = user("robot", &login, &p);
    robot.spec.user_type = UserType::Service;
    robot.spec.api_key = Some(ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    Api::<User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &robot)
        .await
        .unwrap();
    let active = wait_phase(&client, &ns, "robot", UserPhase::Active).await;
    assert!(active.status.unwrap().invitation.is_none());
    let key = delivered_key(&client, &ns, "robot-api-key").await;

    // Its key works (on every replica).
    for server in [&h.a, &h.b] {
        let verified = eventually("the key to work", Duration::from_secs(10), || async {
            let a = verify(server, &key).await;
            (a.status == StatusCode::OK).then_some(a)
        })
        .await;
        assert_eq!(
            verified.header("x-usher-login").as_deref(),
            Some(login.as_str())
        );
    }
    // No invitation, no reset link, no sign-in, whatever is tried.
    assert_eq!(
        h.a.post("/api/v1/password-reset", json!({"login": login}), None)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    // Nothing asked: the server records no reset for an account that cannot sign in, and
    // the User went Active without an invitation.
    let account = account(&client, &login).await.unwrap();
    assert_eq!(account.reset.requested_at, None);
    assert!(
        h.smtp.emails_to(&login).unwrap().is_empty(),
        "no mail at all"
    );
    let attempt = h.a.login(&login, PASSWORD).await;
    assert_eq!(attempt.code(), "invalid_credentials");
    let secret = account_secret(&client, &login).await.unwrap();
    assert!(secret_text(&secret, "passwordHash").is_none());
    assert!(secret_text(&secret, "invitation.tokenHash").is_none_or(|h| h.is_empty()));

    // An admin sees it as a service user, and cannot send it a reset link.
    let admin_login = active_admin(h, &client, &org, "robot-admin").await;
    let admin = h.a.session(&admin_login, PASSWORD).await;
    let list = h.a.get("/api/v1/users", Some(&admin)).await;
    let row = list.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "robot")
        .unwrap()
        .clone();
    assert_eq!(row["type"], "Service");
    let reset =
        h.a.post(
            "/api/v1/users/robot/reset-password",
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (reset.status, reset.code()),
        (StatusCode::CONFLICT, "service_user")
    );
}

#[tokio::test]
async fn a_person_cannot_be_made_a_service_user_and_keeps_signing_in() {
    // The type is fixed at creation (a CEL rule in the CRD): the API server refuses the change,
    // so a person's sessions and password never silently stop working.
    let (h, client) = harness().await;
    let (org, name, login) = active_member(h, &client, &["manageCase"]).await;
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    let session = h.a.session(&login, PASSWORD).await;
    let refused = users
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "Service"}})),
        )
        .await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(status.message.contains("spec.type"), "{}", status.message);
        }
        other => panic!("the type change was not refused: {other:?}"),
    }
    let me = h.a.get("/api/v1/me", Some(&session)).await;
    assert_eq!(me.status, StatusCode::OK, "the session still works");
    let again = h.a.login(&login, PASSWORD).await;
    assert_eq!(again.status, StatusCode::OK, "the password still signs in");
}
