//! Multi-tenant attacks, each performed for real against the controller and both auth replicas:
//! someone who can write Secrets in an organisation's namespace, an admin holding a weaker
//! profile, an admin of another organisation, and a login deleted and made again. Each would
//! have passed before credentials moved into the account and admin authority was checked.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use usher_crds::{LABEL_ORGANISATION, LABEL_USER, User, UserPhase};
use usher_operator::ApiKey;

use crate::{
    common::{auth::*, *},
    *,
};

/// A person who accepted their invitation, a member of `org` with `profile`; returns the login.
async fn person(h: &Harness, client: &Client, org: &Org, name: &str, profile: &str) -> String {
    let login = login(name);
    Api::<User>::namespaced(client.clone(), &org.ns)
        .create(&PostParams::default(), &user(name, &login, profile))
        .await
        .unwrap();
    onboard(&h.a, &h.smtp, &login).await;
    wait_phase(client, &org.ns, name, UserPhase::Active).await;
    login
}

async fn set_key(client: &Client, ns: &str, name: &str, api_key: serde_json::Value) {
    Api::<User>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"apiKey": api_key}})),
        )
        .await
        .unwrap();
}

/// The key in Secret `secret` of `ns` once it is there (and differs from `not`).
async fn delivered(client: &Client, ns: &str, secret: &str, not: Option<&str>) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("the key in Secret {secret}"),
        Duration::from_secs(20),
        || async {
            let s = secrets.get_opt(secret).await.ok()??;
            let key = secret_text(&s, "api-key")?;
            (Some(key.as_str()) != not).then_some(key)
        },
    )
    .await
}

async fn verify(server: &AuthServer, key: &str) -> StatusCode {
    server
        .call(Method::GET, "/api/v1/verify", None, None, Some(key))
        .await
        .status
}

/// Who `key` authenticates as on `server` (its login and organisation, from the identity
/// headers forward-auth hands the app); it must be accepted.
async fn authenticates_as(server: &AuthServer, key: &str) -> (String, String) {
    let a = server
        .call(Method::GET, "/api/v1/verify", None, None, Some(key))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let header = |name: &str| {
        a.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (header("x-usher-login"), header("x-usher-organisation"))
}

/// Waits until `key` gets `status` from both replicas.
async fn both_answer(h: &Harness, key: &str, status: StatusCode, what: &str) {
    for server in [&h.a, &h.b] {
        eventually(what, Duration::from_secs(20), || async {
            (verify(server, key).await == status).then_some(())
        })
        .await;
    }
}

/// A Secret shaped like the controller's delivery for `user` (label, organisation label and an
/// ownerReference to its UID), holding `key`: what anyone who may create Secrets in the
/// namespace can make.
fn forged_secret(user: &User, org: &str, name: &str, key: &ApiKey) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: user.namespace(),
            labels: Some(BTreeMap::from([
                (LABEL_USER.to_owned(), user.name_any()),
                (LABEL_ORGANISATION.to_owned(), org.to_owned()),
            ])),
            owner_references: kube::Resource::controller_owner_ref(user, &()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "api-key".to_owned(),
            ByteString(key.expose().as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_key_secret_forged_in_the_namespace_authenticates_nobody() {
    let (h, client) = harness().await;
    let admin = profile(&client, &["manageUser", "manageCase"]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let boss_login = person(h, &client, &org, "boss", &admin).await;
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &org.ns);
    let boss = users.get("boss").await.unwrap();

    // Without a key enabled: a Secret with the label and the ownerReference, named as the
    // controller would name it, holding a well-formed key.
    let minted = ApiKey::generate().unwrap();
    secrets
        .create(
            &PostParams::default(),
            &forged_secret(&boss, &org.name, "boss-api-key", &minted),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for server in [&h.a, &h.b] {
        assert_eq!(
            verify(server, minted.expose()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    secrets
        .delete("boss-api-key", &DeleteParams::default())
        .await
        .unwrap();

    // With a key enabled: the real one works, a forged Secret beside it does not.
    set_key(&client, &org.ns, "boss", json!({"enabled": true})).await;
    let real = delivered(&client, &org.ns, "boss-api-key", None).await;
    both_answer(h, &real, StatusCode::OK, "the real key to work").await;
    let boss = users.get("boss").await.unwrap();
    let other = ApiKey::generate().unwrap();
    secrets
        .create(
            &PostParams::default(),
            &forged_secret(&boss, &org.name, "boss-second-key", &other),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for server in [&h.a, &h.b] {
        assert_eq!(
            verify(server, other.expose()).await,
            StatusCode::UNAUTHORIZED
        );
        // The real key is the boss's, in this organisation, and nobody else's.
        assert_eq!(
            authenticates_as(server, &real).await,
            (boss_login.clone(), org.name.clone())
        );
    }
}

#[tokio::test]
async fn an_overwritten_key_secret_is_refused_then_put_right() {
    let (h, client) = harness().await;
    let analyst = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let app_login = person(h, &client, &org, "app", &analyst).await;
    set_key(&client, &org.ns, "app", json!({"enabled": true})).await;
    let real = delivered(&client, &org.ns, "app-api-key", None).await;
    both_answer(h, &real, StatusCode::OK, "the key to work").await;

    // Someone overwrites the key in the Secret with one they chose.
    let chosen = ApiKey::generate().unwrap();
    Api::<Secret>::namespaced(client.clone(), &org.ns)
        .patch(
            "app-api-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"api-key": chosen.expose()}})),
        )
        .await
        .unwrap();
    for server in [&h.a, &h.b] {
        assert_eq!(
            verify(server, chosen.expose()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    // The controller puts the real key back; it worked throughout.
    let repaired = eventually(
        "the Secret to be repaired",
        Duration::from_secs(20),
        || async {
            let s = Api::<Secret>::namespaced(client.clone(), &org.ns)
                .get("app-api-key")
                .await
                .ok()?;
            let key = secret_text(&s, "api-key")?;
            (key == real).then_some(key)
        },
    )
    .await;
    assert_eq!(
        authenticates_as(&h.b, &repaired).await,
        (app_login, org.name.clone())
    );
    assert_eq!(
        verify(&h.a, chosen.expose()).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_moved_key_leaves_no_working_secret_behind_and_a_disabled_key_stops() {
    let (h, client) = harness().await;
    let analyst = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    person(h, &client, &org, "svc", &analyst).await;
    set_key(&client, &org.ns, "svc", json!({"enabled": true})).await;
    let key = delivered(&client, &org.ns, "svc-api-key", None).await;
    both_answer(h, &key, StatusCode::OK, "the key to work").await;

    // secretName changes: the key moves to the new Secret, the old Secret goes.
    set_key(
        &client,
        &org.ns,
        "svc",
        json!({"enabled": true, "secretName": "svc-moved"}),
    )
    .await;
    assert_eq!(delivered(&client, &org.ns, "svc-moved", None).await, key);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &org.ns);
    eventually("the old Secret to go", Duration::from_secs(20), || async {
        secrets
            .get_opt("svc-api-key")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    // Someone who kept a copy of the old Secret and puts it back under the old name holds the
    // key in force, but a second key of their own under that name gets them nothing.
    let user = Api::<User>::namespaced(client.clone(), &org.ns)
        .get("svc")
        .await
        .unwrap();
    let planted = ApiKey::generate().unwrap();
    secrets
        .create(
            &PostParams::default(),
            &forged_secret(&user, &org.name, "svc-api-key", &planted),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        verify(&h.a, planted.expose()).await,
        StatusCode::UNAUTHORIZED
    );

    // Disabled: the key stops on both replicas and its Secret goes.
    set_key(&client, &org.ns, "svc", json!({"enabled": false})).await;
    both_answer(
        h,
        &key,
        StatusCode::UNAUTHORIZED,
        "the disabled key to stop",
    )
    .await;
    eventually(
        "the disabled key's Secret to go",
        Duration::from_secs(20),
        || async {
            secrets
                .get_opt("svc-moved")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_admin_acts_only_on_members_whose_profile_they_hold() {
    let (h, client) = harness().await;
    let strong = profile(&client, &["manageUser", "manageCase", "manageConfig"]).await;
    let weak_admin = profile(&client, &["manageUser", "manageCase"]).await;
    let analyst = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let mallory = person(h, &client, &org, "mallory", &weak_admin).await;
    let victim = person(h, &client, &org, "victim", &strong).await;
    person(h, &client, &org, "helper", &analyst).await;
    let cookie = h.a.session(&mallory, PASSWORD).await;
    let users = Api::<User>::namespaced(client.clone(), &org.ns);

    // The takeover: point the stronger membership at the attacker's own address.
    let takeover =
        h.a.call(
            Method::PATCH,
            "/api/v1/users/victim",
            Some(json!({"login": login("mallory-alt")})),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(
        (takeover.status, takeover.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    assert_eq!(users.get("victim").await.unwrap().spec.login, victim);
    // Lock, Kill Session, Create API Key and Renew on the stronger member: refused, nothing
    // written.
    for action in ["lock", "kill-session", "api-key", "api-key/renew"] {
        let a =
            h.a.post(
                &format!("/api/v1/users/victim/{action}"),
                json!({}),
                Some(&cookie),
            )
            .await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::FORBIDDEN, "permission_denied"),
            "{action}: {}",
            a.body
        );
    }
    let untouched = users.get("victim").await.unwrap();
    assert!(!untouched.spec.locked);
    assert!(untouched.spec.api_key.is_none());
    assert!(
        untouched
            .annotations()
            .get("usher.dev/kill-sessions")
            .is_none()
    );

    // The same actions on a weaker member still work.
    let edit =
        h.a.call(
            Method::PATCH,
            "/api/v1/users/helper",
            Some(json!({"fullName": "Helper Renamed"})),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
    for (action, status) in [
        ("lock", StatusCode::OK),
        ("unlock", StatusCode::OK),
        ("kill-session", StatusCode::ACCEPTED),
        ("api-key", StatusCode::ACCEPTED),
    ] {
        let a =
            h.a.post(
                &format!("/api/v1/users/helper/{action}"),
                json!({}),
                Some(&cookie),
            )
            .await;
        assert_eq!(a.status, status, "{action}: {}", a.body);
    }
}

#[tokio::test]
async fn a_locked_admin_cannot_unlock_themselves_and_keeps_only_their_session() {
    let (h, client) = harness().await;
    let admin = profile(&client, &["manageUser", "manageCase"]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let login = person(h, &client, &org, "locked-admin", &admin).await;
    let cookie = h.b.session(&login, PASSWORD).await;
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    users
        .patch(
            "locked-admin",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"locked": true}})),
        )
        .await
        .unwrap();
    let refused = eventually(
        "the lock to reach the admin API",
        Duration::from_secs(10),
        || async {
            let a =
                h.b.post(
                    "/api/v1/users/locked-admin/unlock",
                    json!({}),
                    Some(&cookie),
                )
                .await;
            (a.code() == "membership_locked").then_some(a)
        },
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(users.get("locked-admin").await.unwrap().spec.locked);
    assert_eq!(
        h.b.get("/api/v1/users", Some(&cookie)).await.code(),
        "membership_locked"
    );
    // The session itself stays valid, as the product says of a lock.
    assert_eq!(
        h.b.get("/api/v1/me", Some(&cookie)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn kill_session_in_one_organisation_leaves_the_person_signed_in_elsewhere() {
    let (h, client) = harness().await;
    let analyst = profile(&client, &["manageCase"]).await;
    let (x, y) = (organisation(&client).await, organisation(&client).await);
    wait_ns(&client, &x).await;
    wait_ns(&client, &y).await;
    let login = person(h, &client, &x, "both", &analyst).await;
    Api::<User>::namespaced(client.clone(), &y.ns)
        .create(&PostParams::default(), &user("both", &login, &analyst))
        .await
        .unwrap();
    wait_phase(&client, &y.ns, "both", UserPhase::Active).await;
    let in_x = h.a.session_in(&login, PASSWORD, &x.name).await;
    let in_y = h.b.session_in(&login, PASSWORD, &y.name).await;

    // An admin of X kills the person's sessions there.
    kill_sessions(&client, &x.ns, "both", "x1").await;
    ended_everywhere(h, &in_x, "the session in X to end").await;
    // The session in Y goes on, on both replicas, and cannot switch back into X.
    for server in [&h.a, &h.b] {
        let me = server.get("/api/v1/me", Some(&in_y)).await;
        assert_eq!(
            (me.status, me.body["organisation"].clone()),
            (StatusCode::OK, json!(y.name))
        );
    }
    let back =
        h.a.post(
            "/api/v1/me/organisation",
            json!({"organisation": x.name}),
            Some(&in_y),
        )
        .await;
    assert_eq!(
        (back.status, back.code()),
        (StatusCode::FORBIDDEN, "session_ended")
    );
    // Signing in again to X works: the kill ended sessions, not the membership.
    let again = h.a.session_in(&login, PASSWORD, &x.name).await;
    assert_eq!(
        h.b.get("/api/v1/me", Some(&again)).await.status,
        StatusCode::OK
    );

    // The platform operator's kill-sessions ends every session, in every organisation.
    let out = usher_account(h.env, &["kill-sessions", &login]);
    assert!(out.contains("every session"), "{out}");
    for cookie in [&in_y, &again] {
        eventually("every session to end", Duration::from_secs(10), || async {
            (h.b.get("/api/v1/me", Some(cookie)).await.code() == "session_ended").then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_login_deleted_and_made_again_never_honours_an_old_cookie() {
    let (h, client) = harness().await;
    let analyst = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let login = person(h, &client, &org, "again", &analyst).await;
    let old = h.a.session(&login, PASSWORD).await;
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    users
        .delete("again", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the account to go", Duration::from_secs(20), || async {
        account_secret(&client, &login)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    // Made again at once, within the idle timeout: a new, only invited account.
    users
        .create(&PostParams::default(), &user("again", &login, &analyst))
        .await
        .unwrap();
    wait_phase(&client, &org.ns, "again", UserPhase::Invited).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for server in [&h.a, &h.b] {
        let a = server.get("/api/v1/me", Some(&old)).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNAUTHORIZED, "session_ended"),
            "{}",
            a.body
        );
    }
}
