//! The Organisation > Users admin API: an org admin manages the users of their organisation
//! only. Each test sets up a scene of its own (a fresh organisation with an active admin and an
//! active analyst, carol; another organisation with dave), so one failure hides no other.

use std::time::Duration;

use crate::{
    Harness,
    common::{auth::*, *},
};
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use usher_crds::{User, UserPhase};

struct Scene {
    h: &'static Harness,
    client: Client,
    ns: String,
    /// The organisation's display name.
    display: String,
    other_ns: String,
    admin_profile: String,
    analyst: String,
    admin_login: String,
    carol_login: String,
    dave_login: String,
    /// Session cookies of the admin and of carol.
    admin: String,
    carol: String,
}

impl Scene {
    fn auth(&self) -> &AuthServer {
        &self.h.b
    }

    fn users(&self) -> Api<User> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn act(&self, path: &str) -> Answer {
        self.auth().post(path, json!({}), Some(&self.admin)).await
    }

    async fn patch_carol(&self, body: serde_json::Value) -> Answer {
        let auth = self.auth();
        auth.call(
            Method::PATCH,
            "/api/v1/users/carol",
            Some(body),
            Some(&self.admin),
            None,
        )
        .await
    }

    /// Waits for the Event `reason` on carol, and asserts it names the admin who acted.
    async fn event_names_admin(&self, reason: &str) {
        let events = Api::<Event>::namespaced(self.client.clone(), &self.ns);
        let message = eventually(
            &format!("a {reason} Event"),
            Duration::from_secs(10),
            || {
                let events = events.clone();
                async move {
                    let list = events.list(&ListParams::default()).await.ok()?;
                    list.items.into_iter().find_map(|e| {
                        (e.involved_object.name.as_deref() == Some("carol")
                            && e.reason.as_deref() == Some(reason))
                        .then(|| e.message.unwrap_or_default())
                    })
                }
            },
        )
        .await;
        assert!(message.contains(&self.admin_login), "{message}");
    }
}

async fn scene() -> Scene {
    let (h, client) = crate::harness().await;
    let admin_profile = profile(&client, &["manageUser", "manageCase"]).await;
    let analyst = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let other = organisation(&client).await;
    let other_ns = wait_ns(&client, &other).await;
    let users = Api::<User>::namespaced(client.clone(), &ns);
    let (admin_login, carol_login, dave_login) = (login("admin"), login("carol"), login("dave"));
    for (name, login, profile) in [
        ("admin", &admin_login, &admin_profile),
        ("carol", &carol_login, &analyst),
    ] {
        users
            .create(&PostParams::default(), &user(name, login, profile))
            .await
            .unwrap();
    }
    Api::<User>::namespaced(client.clone(), &other_ns)
        .create(&PostParams::default(), &user("dave", &dave_login, &analyst))
        .await
        .unwrap();
    let auth = &h.b;
    onboard(auth, &h.smtp, &admin_login).await;
    onboard(auth, &h.smtp, &carol_login).await;
    wait_phase(&client, &ns, "admin", UserPhase::Active).await;
    wait_phase(&client, &ns, "carol", UserPhase::Active).await;
    let admin = auth.session(&admin_login, PASSWORD).await;
    let carol = auth.session(&carol_login, PASSWORD).await;
    Scene {
        h,
        client,
        ns,
        display: org.display.clone(),
        other_ns,
        admin_profile,
        analyst,
        admin_login,
        carol_login,
        dave_login,
        admin,
        carol,
    }
}

#[tokio::test]
async fn the_table_lists_this_organisations_users_to_its_admins_only() {
    let s = scene().await;
    let list = s.auth().get("/api/v1/users", Some(&s.admin)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let logins: Vec<&str> = list.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(logins.contains(&s.carol_login.as_str()) && !logins.contains(&s.dave_login.as_str()));

    let denied = s.auth().get("/api/v1/users", Some(&s.carol)).await;
    assert_eq!(
        (denied.status, denied.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
}

#[tokio::test]
async fn add_user_links_an_existing_login_and_refuses_bad_input_saying_what() {
    let s = scene().await;
    // dave, of the other organisation, is linked, not re-invited.
    invitation_token(&s.h.smtp, &s.dave_login, 1).await;
    let added = s
        .auth()
        .post(
            "/api/v1/users",
            json!({"login": s.dave_login.to_uppercase(), "fullName": "Dave Here", "profile": s.analyst}),
            Some(&s.admin),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(
        added.body["login"], s.dave_login,
        "stored in canonical form"
    );
    let dave_name = added.body["name"].as_str().unwrap().to_owned();
    // Invited once reconciled: an invitation would have been emailed before this status.
    let dave = wait_phase(&s.client, &s.ns, &dave_name, UserPhase::Invited).await;
    let managers: Vec<String> = dave
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"usher-ui".to_owned()), "{managers:?}");
    assert_eq!(
        s.h.smtp.emails_to(&s.dave_login).unwrap().len(),
        1,
        "linked: no second invitation"
    );

    for (body, what) in [
        (
            json!({"login": "not an email", "fullName": "X", "profile": s.analyst}),
            "login",
        ),
        (
            json!({"login": "x@example.com", "fullName": "X", "profile": "no-such-profile"}),
            "profile",
        ),
    ] {
        let a = s.auth().post("/api/v1/users", body, Some(&s.admin)).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_user")
        );
        let message = a.body["message"].as_str().unwrap();
        assert!(message.contains(what), "{}", a.body);
    }
}

#[tokio::test]
async fn a_person_who_already_signs_in_is_told_by_email_who_added_them_where() {
    let s = scene().await;
    // dave accepted the invitation of his own organisation: his account is active.
    onboard(s.auth(), &s.h.smtp, &s.dave_login).await;
    let added = s
        .auth()
        .post(
            "/api/v1/users",
            json!({"login": s.dave_login, "fullName": "Dave Here", "profile": s.analyst}),
            Some(&s.admin),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let name = added.body["name"].as_str().unwrap().to_owned();
    wait_phase(&s.client, &s.ns, &name, UserPhase::Active).await;
    let mails = s.h.smtp.emails_to(&s.dave_login).unwrap();
    assert_eq!(mails.len(), 2, "the invitation, then the notice");
    let notice = &mails[1];
    assert_eq!(notice.subject, format!("You were added to {}", s.display));
    assert!(notice.text.contains(&s.admin_login), "{}", notice.text);
    assert!(notice.link_to("invite").is_none() && notice.invitation_token().is_none());
    let events = Api::<Event>::namespaced(s.client.clone(), &s.ns);
    eventually("the AddedNoticeSent Event", Duration::from_secs(10), || {
        let events = events.clone();
        let name = name.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.involved_object.name.as_deref() == Some(name.as_str())
                    && e.reason.as_deref() == Some("AddedNoticeSent")
            })
        }
    })
    .await;
}

#[tokio::test]
async fn an_edit_shows_on_the_users_next_request() {
    let s = scene().await;
    let edited = s
        .patch_carol(json!({"fullName": "Carol Renamed", "profile": s.admin_profile}))
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let me = s.auth().get("/api/v1/me", Some(&s.carol)).await;
    assert_eq!(me.body["fullName"], "Carol Renamed");
    assert_eq!(me.body["permissions"], json!(["manageUser", "manageCase"]));
    s.event_names_admin("UserEdited").await;
}

#[tokio::test]
async fn an_admin_grants_only_profiles_within_their_own_permissions() {
    let s = scene().await;
    let platform = profile(&s.client, &["manageUser", "manageOrganisation"]).await;
    let escalate = s.patch_carol(json!({"profile": platform})).await;
    assert_eq!(
        (escalate.status, escalate.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    let message = escalate.body["message"].as_str().unwrap();
    assert!(message.contains("manageOrganisation"), "{}", escalate.body);
    let carol = s.users().get("carol").await.unwrap();
    assert_eq!(carol.spec.profile, s.analyst, "the profile is unchanged");
}

#[tokio::test]
async fn lock_keeps_a_user_out_unlock_lets_them_in_and_nobody_locks_themselves() {
    let s = scene().await;
    let locked = s.act("/api/v1/users/carol/lock").await;
    assert_eq!(locked.body["locked"], true);
    assert_eq!(
        s.auth().login(&s.carol_login, PASSWORD).await.code(),
        "invalid_credentials"
    );
    let me_lock = s.act("/api/v1/users/admin/lock").await;
    assert_eq!(
        (me_lock.status, me_lock.code()),
        (StatusCode::CONFLICT, "cannot_lock_self")
    );
    let unlocked = s.act("/api/v1/users/carol/unlock").await;
    assert_eq!(unlocked.body["locked"], false, "{}", unlocked.body);
    let again = s.auth().login(&s.carol_login, PASSWORD).await;
    assert!(again.cookie().is_some(), "{}", again.body);
    s.event_names_admin("UserLocked").await;
    s.event_names_admin("UserUnlocked").await;
}

#[tokio::test]
async fn kill_session_ends_the_users_sessions() {
    let s = scene().await;
    let kill = s.act("/api/v1/users/carol/kill-session").await;
    assert_eq!(kill.status, StatusCode::ACCEPTED);
    let auth = s.auth();
    eventually(
        "carol's sessions to end",
        Duration::from_secs(20),
        || async {
            (auth.get("/api/v1/me", Some(&s.carol)).await.code() == "session_ended").then_some(())
        },
    )
    .await;
    s.event_names_admin("KillSessionRequested").await;
}

#[tokio::test]
async fn create_and_renew_api_key_put_a_new_key_in_the_secret() {
    let s = scene().await;
    let created = s.act("/api/v1/users/carol/api-key").await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    assert_eq!(created.body["secretName"], "carol-api-key");
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns);
    let first = eventually("carol's key", Duration::from_secs(20), || async {
        secret_text(&secrets.get_opt("carol-api-key").await.ok()??, "api-key")
    })
    .await;
    let renew = s.act("/api/v1/users/carol/api-key/renew").await;
    assert_eq!(renew.status, StatusCode::ACCEPTED);
    eventually("carol's renewed key", Duration::from_secs(20), || async {
        let k = secret_text(&secrets.get_opt("carol-api-key").await.ok()??, "api-key")?;
        (k != first).then_some(k)
    })
    .await;
    s.event_names_admin("ApiKeyRequested").await;
    s.event_names_admin("ApiKeyRenewed").await;
}

#[tokio::test]
async fn an_admins_own_api_key_works_on_the_admin_api() {
    let s = scene().await;
    s.users()
        .patch(
            "admin",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"apiKey": {"enabled": true}}})),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns);
    let admin_key = eventually("the admin's key", Duration::from_secs(20), || async {
        secret_text(&secrets.get_opt("admin-api-key").await.ok()??, "api-key")
    })
    .await;
    let auth = s.auth();
    let with_key = eventually("the key in the cache", Duration::from_secs(5), || async {
        let a = auth
            .call(Method::GET, "/api/v1/users", None, None, Some(&admin_key))
            .await;
        (a.status == StatusCode::OK).then_some(a)
    })
    .await;
    assert_eq!(with_key.body["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn users_of_another_organisation_are_out_of_reach() {
    let s = scene().await;
    let foreign = s
        .auth()
        .call(
            Method::PATCH,
            "/api/v1/users/dave",
            Some(json!({"fullName": "Hijacked"})),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        (foreign.status, foreign.code()),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
    let untouched = Api::<User>::namespaced(s.client.clone(), &s.other_ns)
        .get("dave")
        .await
        .unwrap();
    assert_ne!(untouched.spec.full_name, "Hijacked");
}
