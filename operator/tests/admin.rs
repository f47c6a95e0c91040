//! The Organisation > Users admin API end to end: a real kube-apiserver, SMTP server,
//! controller and auth server; an org admin manages the users of their organisation only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

mod common;

use std::time::Duration;

use common::{auth::*, *};
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use usher_crds::{User, UserPhase};
use usher_testkit::{Envtest, SmtpSink};

#[tokio::test]
async fn an_org_admin_manages_the_users_of_their_organisation_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = Envtest::shared(usher_crds::crds).await.unwrap();
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let _controller = start_controller(env, &smtp.url(), "admin-controller");
    let auth = start_auth(env, "admin-auth", &[]).await;

    let admin_profile = profile(&client, &["manageUser", "manageCase"]).await;
    let analyst = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let other = organisation(&client).await;
    let other_ns = wait_ns(&client, &other).await;
    let users = Api::<User>::namespaced(client.clone(), &ns);

    let admin_login = login("admin");
    let carol_login = login("carol");
    let dave_login = login("dave");
    users
        .create(
            &PostParams::default(),
            &user("admin", &admin_login, &admin_profile),
        )
        .await
        .unwrap();
    users
        .create(
            &PostParams::default(),
            &user("carol", &carol_login, &analyst),
        )
        .await
        .unwrap();
    Api::<User>::namespaced(client.clone(), &other_ns)
        .create(&PostParams::default(), &user("dave", &dave_login, &analyst))
        .await
        .unwrap();
    onboard(&auth, &smtp, &admin_login).await;
    onboard(&auth, &smtp, &carol_login).await;
    wait_phase(&client, &ns, "carol", UserPhase::Active).await;
    let admin = auth.session(&admin_login, PASSWORD).await;
    let carol = auth.session(&carol_login, PASSWORD).await;

    // The table lists this organisation's users only.
    let list = auth.get("/api/v1/users", Some(&admin)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let logins: Vec<&str> = list.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(logins.contains(&carol_login.as_str()) && !logins.contains(&dave_login.as_str()));

    // A non-admin gets no admin API.
    let denied = auth.get("/api/v1/users", Some(&carol)).await;
    assert_eq!(
        (denied.status, denied.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );

    // Add User: an existing login (dave, of the other organisation) is linked, not re-invited.
    invitation_token(&smtp, &dave_login, 1).await;
    let added = auth
        .post(
            "/api/v1/users",
            json!({"login": dave_login.to_uppercase(), "fullName": "Dave Here", "profile": analyst}),
            Some(&admin),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["login"], dave_login, "stored in canonical form");
    let dave_name = added.body["name"].as_str().unwrap().to_owned();
    let dave = wait_phase(&client, &ns, &dave_name, UserPhase::Invited).await;
    let managers: Vec<String> = dave
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"usher-ui".to_owned()), "{managers:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        smtp.emails_to(&dave_login).unwrap().len(),
        1,
        "linked: no second invitation"
    );

    for (body, what) in [
        (
            json!({"login": "not an email", "fullName": "X", "profile": analyst}),
            "login",
        ),
        (
            json!({"login": "x@example.com", "fullName": "X", "profile": "no-such-profile"}),
            "profile",
        ),
    ] {
        let a = auth.post("/api/v1/users", body, Some(&admin)).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_user")
        );
        assert!(
            a.body["message"].as_str().unwrap().contains(what),
            "{}",
            a.body
        );
    }

    // Edit: the change shows on carol's next request.
    let edited = auth
        .call(
            Method::PATCH,
            "/api/v1/users/carol",
            Some(json!({"fullName": "Carol Renamed", "profile": admin_profile})),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let me = auth.get("/api/v1/me", Some(&carol)).await;
    assert_eq!(me.body["fullName"], "Carol Renamed");
    assert_eq!(me.body["permissions"], json!(["manageUser", "manageCase"]));

    // No escalation: an admin grants only profiles within their own permissions.
    let platform = profile(&client, &["manageUser", "manageOrganisation"]).await;
    let escalate = auth
        .call(
            Method::PATCH,
            "/api/v1/users/carol",
            Some(json!({"profile": platform})),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (escalate.status, escalate.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    assert!(
        escalate.body["message"]
            .as_str()
            .unwrap()
            .contains("manageOrganisation"),
        "{}",
        escalate.body
    );

    // Lock: carol cannot sign in; unlock: she can. Nobody locks themselves.
    let locked = auth
        .post("/api/v1/users/carol/lock", json!({}), Some(&admin))
        .await;
    assert_eq!(locked.body["locked"], true);
    assert_eq!(
        auth.login(&carol_login, PASSWORD).await.code(),
        "invalid_credentials"
    );
    let me_lock = auth
        .post("/api/v1/users/admin/lock", json!({}), Some(&admin))
        .await;
    assert_eq!(
        (me_lock.status, me_lock.code()),
        (StatusCode::CONFLICT, "cannot_lock_self")
    );
    auth.post("/api/v1/users/carol/unlock", json!({}), Some(&admin))
        .await;
    let carol2 = auth.session(&carol_login, PASSWORD).await;

    // Kill Session ends carol's sessions.
    let kill = auth
        .post("/api/v1/users/carol/kill-session", json!({}), Some(&admin))
        .await;
    assert_eq!(kill.status, StatusCode::ACCEPTED);
    eventually(
        "carol's sessions to end",
        Duration::from_secs(20),
        || async {
            (auth.get("/api/v1/me", Some(&carol2)).await.code() == "session_ended").then_some(())
        },
    )
    .await;

    // Create API Key, then Renew: the Secret appears, then holds another key.
    let created = auth
        .post("/api/v1/users/carol/api-key", json!({}), Some(&admin))
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    assert_eq!(created.body["secretName"], "carol-api-key");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let first = eventually("carol's key", Duration::from_secs(20), || async {
        secret_text(&secrets.get_opt("carol-api-key").await.ok()??, "api-key")
    })
    .await;
    let renew = auth
        .post("/api/v1/users/carol/api-key/renew", json!({}), Some(&admin))
        .await;
    assert_eq!(renew.status, StatusCode::ACCEPTED);
    let second = eventually("carol's renewed key", Duration::from_secs(20), || async {
        let k = secret_text(&secrets.get_opt("carol-api-key").await.ok()??, "api-key")?;
        (k != first).then_some(k)
    })
    .await;
    assert_ne!(first, second);

    // The admin's own API key works on the admin API too.
    users
        .patch(
            "admin",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"apiKey": {"enabled": true}}})),
        )
        .await
        .unwrap();
    let admin_key = eventually("the admin's key", Duration::from_secs(20), || async {
        secret_text(&secrets.get_opt("admin-api-key").await.ok()??, "api-key")
    })
    .await;
    let with_key = eventually("the key in the cache", Duration::from_secs(5), || async {
        let a = auth
            .call(Method::GET, "/api/v1/users", None, None, Some(&admin_key))
            .await;
        (a.status == StatusCode::OK).then_some(a)
    })
    .await;
    assert_eq!(with_key.body["users"].as_array().unwrap().len(), 3);

    // Users of another organisation are out of reach.
    let foreign = auth
        .call(
            Method::PATCH,
            "/api/v1/users/dave",
            Some(json!({"fullName": "Hijacked"})),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (foreign.status, foreign.code()),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
    let untouched = Api::<User>::namespaced(client.clone(), &other_ns)
        .get("dave")
        .await
        .unwrap();
    assert_ne!(untouched.spec.full_name, "Hijacked");

    // Each action is an Event on the User naming the admin.
    let events = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let about_carol: Vec<(String, String)> = events
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("carol"))
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect();
    for reason in [
        "UserEdited",
        "UserLocked",
        "UserUnlocked",
        "KillSessionRequested",
        "ApiKeyRequested",
        "ApiKeyRenewed",
    ] {
        let found = about_carol.iter().find(|(r, _)| r == reason);
        let (_, message) = found.unwrap_or_else(|| panic!("no {reason} Event: {about_carol:?}"));
        assert!(message.contains(&admin_login), "{message}");
    }
}
