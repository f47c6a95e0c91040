//! The audit trail (issue 28): each action makes exactly one record naming who, on whom, in
//! which organisation, how it went and from where; nothing secret is in any record; the HTTP
//! sink delivers what was made while its collector was down, once, and with a spool also what
//! was made before a restart during the outage.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use usher_crds::{OIDCClient, User, UserPhase};
use usher_testkit::free_port;

use crate::{
    common::{auth::*, oidc::*, *},
    *,
};

const NEW_PASSWORD: &str = "Io-volcanic!plains-2031";

/// The records of `action` whose `field` (a JSON pointer) is `value`.
fn records_of(action: &str, pointer: &str, value: &str) -> Vec<Value> {
    audit_records()
        .into_iter()
        .filter(|r| {
            r["action"] == action && r.pointer(pointer).and_then(Value::as_str) == Some(value)
        })
        .collect()
}

/// Waits for exactly one record of `action` about `pointer` = `value` (and no second one
/// right behind it), and returns it.
async fn one(action: &str, pointer: &str, value: &str) -> Value {
    let found = eventually(
        &format!("a {action} record with {pointer} = {value}"),
        Duration::from_secs(20),
        || async {
            let r = records_of(action, pointer, value);
            (!r.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(found.len(), 1, "exactly one {action} record: {found:#?}");
    let r = found.into_iter().next().unwrap();
    assert_eq!(r["audit"], "v1");
    assert!(r["id"].as_str().is_some_and(|i| !i.is_empty()));
    assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
    r
}

async fn set_spec(client: &Client, ns: &str, name: &str, spec: Value) {
    Api::<User>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_action_makes_one_record_naming_who_whom_where_and_nothing_secret() {
    let (h, client) = harness().await;
    let (org, name, login) = active_member(h, &client, &["manageCase"]).await;
    let invited = one("invitation.sent", "/target/login", &login).await;
    assert_eq!(invited["actor"]["via"], "kubernetes");
    assert_eq!(invited["target"]["name"], name.as_str());
    assert_eq!(invited["organisation"], org.name.as_str());
    one("invitation.accepted", "/target/login", &login).await;
    let created = one("user.created", "/target/name", &name).await;
    assert_eq!(
        created["actor"]["via"], "kubernetes",
        "made with the API, as kubectl does"
    );

    // Sign-ins: succeeded, failed, throttled.
    let session = h.a.session(&login, PASSWORD).await;
    let ok = one("login.succeeded", "/target/login", &login).await;
    assert_eq!(ok["actor"]["login"], login.as_str());
    assert_eq!(ok["organisation"], org.name.as_str());
    assert_eq!(ok["client"]["address"], "127.0.0.1");
    assert!(ok["requestId"].as_str().is_some());
    let stranger = usher_testkit::unique_name("nobody") + "@example.com";
    assert_eq!(
        h.b.login(&stranger, "Wrong-password-1!").await.code(),
        "invalid_credentials"
    );
    let failed = one("login.failed", "/target/login", &stranger).await;
    assert_eq!(
        (failed["outcome"].clone(), failed["reason"].clone()),
        (json!("denied"), json!("invalid_credentials"))
    );
    let throttled = eventually("a throttled sign-in", Duration::from_secs(30), || async {
        let a = h.b.login(&stranger, "Wrong-password-1!").await;
        (a.code() == "too_many_attempts").then_some(())
    });
    throttled.await;
    let t = records_of("login.throttled", "/target/login", &stranger);
    assert!(!t.is_empty() && t.iter().all(|r| r["reason"] == "too_many_attempts"));

    // MFA, the password, the API key, switching, sessions.
    let secret = h.a.enroll_totp(&session, -30).await;
    one("mfa.enrolled", "/target/login", &login).await;
    let code = oathtool(&secret, 0);
    let off =
        h.a.call(
            reqwest::Method::DELETE,
            "/api/v1/me/mfa/totp",
            Some(json!({"code": code})),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.body);
    one("mfa.removed", "/target/login", &login).await;
    let changed =
        h.a.post(
            "/api/v1/me/password",
            json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
            Some(&session),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    assert!(
        changed.cookie().is_some(),
        "a fresh session after the change"
    );
    one("password.changed", "/target/login", &login).await;
    assert_eq!(
        h.a.post("/api/v1/password-reset", json!({"login": login}), None)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    one("password.reset.requested", "/target/login", &login).await;
    let reset_link = reset_token(&h.smtp, &login, 1).await;
    let reset =
        h.b.post(
            "/api/v1/password-reset/accept",
            json!({"token": reset_link, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    one("password.reset.completed", "/target/login", &login).await;
    let session = h.a.session(&login, PASSWORD).await;
    // A second organisation, and a switch into it.
    let other = organisation(&client).await;
    let other_ns = wait_ns(&client, &other).await;
    let p2 = profile(&client, &[]).await;
    Api::<User>::namespaced(client.clone(), &other_ns)
        .create(&PostParams::default(), &user("second", &login, &p2))
        .await
        .unwrap();
    wait_phase(&client, &other_ns, "second", UserPhase::Active).await;
    let session = eventually("the switch", Duration::from_secs(10), || async {
        let a =
            h.a.post(
                "/api/v1/me/organisation",
                json!({"organisation": other.name}),
                Some(&session),
            )
            .await;
        (a.status == StatusCode::OK).then(|| a.cookie().unwrap())
    })
    .await;
    let r = one("organisation.switched", "/target/login", &login).await;
    assert_eq!(r["organisation"], other.name.as_str());
    assert_eq!(
        h.a.post("/api/v1/logout", json!({}), Some(&session))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let ended = one("session.ended", "/target/login", &login).await;
    assert_eq!(ended["actor"]["via"], "session");

    // An admin: adds, edits, locks, unlocks, kills sessions; a member who is not is refused.
    let admin_name = usher_testkit::unique_name("admin");
    let admin = active_admin(h, &client, &org, &admin_name).await;
    let admin_session = h.a.session(&admin, PASSWORD).await;
    let added_login = crate::common::login("added");
    let added = h
        .a
        .post("/api/v1/users", json!({"login": added_login, "fullName": "Added One", "profile": created_profile(&client, &org, &name).await}), Some(&admin_session))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let added_name = added.body["name"].as_str().unwrap().to_owned();
    let by_admin = one("user.created", "/target/name", &added_name).await;
    assert_eq!(by_admin["actor"]["login"], admin.as_str());
    assert_eq!(by_admin["actor"]["via"], "session");
    let edited =
        h.a.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{added_name}"),
            Some(json!({"fullName": "Added Two"})),
            Some(&admin_session),
            None,
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    one("user.updated", "/target/name", &added_name).await;
    for (path, action) in [
        ("lock", "user.locked"),
        ("unlock", "user.unlocked"),
        ("kill-session", "session.killed"),
    ] {
        let a =
            h.a.post(
                &format!("/api/v1/users/{added_name}/{path}"),
                json!({}),
                Some(&admin_session),
            )
            .await;
        assert!(a.status.is_success(), "{path}: {}", a.body);
        let r = one(action, "/target/name", &added_name).await;
        assert_eq!(r["actor"]["login"], admin.as_str(), "{r}");
    }
    // The controller acted on each of those; none is recorded twice (the admin API's marker).
    eventually(
        "the controller to act on the last change",
        Duration::from_secs(20),
        || async {
            let u = Api::<User>::namespaced(client.clone(), &org.ns)
                .get(&added_name)
                .await
                .ok()?;
            (u.status?.observed_generation == u.metadata.generation).then_some(())
        },
    )
    .await;
    for action in [
        "user.created",
        "user.updated",
        "user.locked",
        "user.unlocked",
        "session.killed",
    ] {
        assert_eq!(
            records_of(action, "/target/name", &added_name).len(),
            1,
            "{action} once"
        );
    }
    let refused =
        h.a.post(
            &format!("/api/v1/users/{added_name}/lock"),
            json!({}),
            Some(&session_of(h, &login).await),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let denied = one("user.locked", "/actor/login", &login).await;
    assert_eq!(
        (denied["outcome"].clone(), denied["reason"].clone()),
        (json!("denied"), json!("permission_denied"))
    );

    // kubectl: edit, lock, unlock, Kill Session, remove (via: kubernetes).
    set_spec(&client, &org.ns, &name, json!({"fullName": "Renamed"})).await;
    assert_eq!(
        one("user.updated", "/target/name", &name).await["actor"]["via"],
        "kubernetes"
    );
    set_spec(&client, &org.ns, &name, json!({"locked": true})).await;
    one("user.locked", "/target/name", &name).await;
    set_spec(&client, &org.ns, &name, json!({"locked": false})).await;
    one("user.unlocked", "/target/name", &name).await;
    kill_sessions(&client, &org.ns, &name, "audit-1").await;
    assert_eq!(
        one("session.killed", "/target/name", &name).await["actor"]["via"],
        "kubernetes"
    );

    // The API key (renewed by its owner), apps, the operator.
    set_spec(
        &client,
        &org.ns,
        &name,
        json!({"apiKey": {"enabled": true}}),
    )
    .await;
    let issued = one("apikey.created", "/target/name", &name).await;
    assert_eq!(issued["actor"]["via"], "kubernetes");
    let session = h.a.session_in(&login, PASSWORD, &org.name).await;
    let renewed =
        h.a.post("/api/v1/me/api-key/renew", json!({}), Some(&session))
            .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let api_key = renewed.body["key"].as_str().unwrap().to_owned();
    one("apikey.renewed", "/target/name", &name).await;
    let rx = Receiver::start().await;
    let (app, app_secret) = declare_client(
        &client,
        &org.ns,
        "audited",
        json!({"redirectURIs": [REDIRECT], "backchannelLogoutURI": rx.uri()}),
    )
    .await;
    let signed_in = sign_in_app(&h.a.base, &session, &app, &app_secret).await;
    let issued = one("oidc.token.issued", "/target/login", &login).await;
    assert_eq!(
        (
            issued["actor"]["via"].clone(),
            issued["actor"]["name"].clone()
        ),
        (json!("oidc"), json!(app))
    );
    let again = |rt: String| {
        let (app, app_secret) = (app.clone(), app_secret.clone());
        async move {
            token(
                &h.a.base,
                &app,
                &app_secret,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await
        }
    };
    assert_eq!(
        again(signed_in.refresh_token.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        again(signed_in.refresh_token.clone()).await.0,
        StatusCode::BAD_REQUEST
    );
    one("oidc.refresh.reused", "/target/login", &login).await;
    let sent = one("oidc.logout.sent", "/target/name", "audited").await;
    assert_eq!(
        sent["target"]["accountId"],
        usher_operator::account_id(&login).as_str()
    );
    Api::<OIDCClient>::namespaced(client.clone(), &org.ns)
        .patch(
            "audited",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"usher.dev/renew-client-secret": "1"}}}),
            ),
        )
        .await
        .unwrap();
    one("oidc.secret.renewed", "/target/name", "audited").await;
    usher_account(h.env, &["reset-mfa", &login]);
    let reset = one("mfa.reset", "/target/login", &login).await;
    assert_eq!(
        (
            reset["actor"]["via"].clone(),
            reset["actor"]["name"].clone()
        ),
        (json!("operator"), json!("platform-operator"))
    );
    Api::<User>::namespaced(client.clone(), &org.ns)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    one("user.removed", "/target/name", &name).await;

    // Nothing secret in any record of this run: passwords, codes, keys, tokens, cookies, links.
    let all = serde_json::to_string(&audit_records()).unwrap();
    for (what, secret) in [
        ("a password", PASSWORD.to_owned()),
        ("a new password", NEW_PASSWORD.to_owned()),
        ("a TOTP secret", secret.clone()),
        ("a TOTP code", code.clone()),
        ("a reset token", reset_link.clone()),
        ("an API key", api_key.clone()),
        ("a session cookie", session.clone()),
        ("an access token", signed_in.access_token.clone()),
        ("a refresh token", signed_in.refresh_token.clone()),
        ("an ID token", signed_in.raw_id_token.clone()),
        ("a client secret", app_secret.clone()),
        (
            "a session id",
            signed_in.id["sid"].as_str().unwrap().to_owned(),
        ),
    ] {
        assert!(!all.contains(&secret), "{what} in the audit trail");
    }
}

/// The profile of User `name` (what the admin may grant).
async fn created_profile(client: &Client, org: &Org, name: &str) -> String {
    Api::<User>::namespaced(client.clone(), &org.ns)
        .get(name)
        .await
        .unwrap()
        .spec
        .profile
}

async fn session_of(h: &Harness, login: &str) -> String {
    h.a.session(login, PASSWORD).await
}

#[tokio::test]
async fn the_http_sink_delivers_what_was_made_while_the_collector_was_down_once() {
    let (h, _client) = harness().await;
    let port = free_port().unwrap();
    let sink = format!("http://127.0.0.1:{port}/audit");
    let auth = start_auth(
        h.env,
        "audit-http-auth",
        &[("USHER_AUDIT_SINK", sink.as_str())],
    )
    .await;
    // Ten failed sign-ins while nothing listens on the collector's port.
    let who: Vec<String> = (0..10)
        .map(|i| format!("down-{i}-{}@example.com", std::process::id()))
        .collect();
    for w in &who {
        assert_eq!(
            auth.login(w, "Wrong-password-9!").await.code(),
            "invalid_credentials"
        );
    }
    // The collector comes back.
    let (got, server) = collector(port).await;
    delivered_once_in_order(&got, &who, "every record made while it was down").await;
    // And what comes next goes straight through.
    auth.login("after@example.com", "Wrong-password-9!").await;
    eventually(
        "a record made while it is up",
        Duration::from_secs(10),
        || async {
            got.lock()
                .unwrap()
                .iter()
                .any(|r| r["target"]["login"] == "after@example.com")
                .then_some(())
        },
    )
    .await;
    server.abort();
}

/// A collector on `port` keeping every record it is sent.
async fn collector(port: u16) -> (Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/audit",
        axum::routing::post(move |axum::Json(batch): axum::Json<Vec<Value>>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().extend(batch);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (got, server)
}

/// Waits until `got` holds the failed sign-ins of `who`, then checks they came each once, in
/// the order they were made.
async fn delivered_once_in_order(got: &Arc<Mutex<Vec<Value>>>, who: &[String], what: &str) {
    let failed = eventually(what, Duration::from_secs(60), || async {
        let failed: Vec<Value> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                r["action"] == "login.failed"
                    && r["target"]["login"]
                        .as_str()
                        .is_some_and(|l| who.iter().any(|w| w == l))
            })
            .cloned()
            .collect();
        (failed.len() >= who.len()).then_some(failed)
    })
    .await;
    let logins: Vec<&str> = failed
        .iter()
        .map(|r| r["target"]["login"].as_str().unwrap())
        .collect();
    assert_eq!(
        logins,
        who.iter().map(String::as_str).collect::<Vec<_>>(),
        "all of them, in order"
    );
    let ids: HashSet<&str> = failed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), failed.len(), "none twice");
}

/// The auth server is killed while its collector is down and started again: with a spool,
/// what it recorded before is delivered once it is back, each record once, in order.
#[tokio::test]
async fn with_a_spool_what_was_recorded_before_a_restart_during_an_outage_is_delivered() {
    let (h, _client) = harness().await;
    let port = free_port().unwrap();
    let sink = format!("http://127.0.0.1:{port}/audit");
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().display().to_string();
    let env = [
        ("USHER_AUDIT_SINK", sink.as_str()),
        ("USHER_AUDIT_SPOOL", spool_dir.as_str()),
    ];
    let auth = start_auth(h.env, "audit-spool-auth-1", &env).await;
    let who: Vec<String> = (0..10)
        .map(|i| format!("spooled-{i}-{}@example.com", std::process::id()))
        .collect();
    for w in &who {
        assert_eq!(
            auth.login(w, "Wrong-password-9!").await.code(),
            "invalid_credentials"
        );
    }
    // Kept on disk (what a restart would otherwise lose)...
    let pending = spool.path().join("pending.jsonl");
    eventually(
        "the spool to hold them",
        Duration::from_secs(10),
        || async {
            let text = std::fs::read_to_string(&pending).unwrap_or_default();
            who.iter().all(|w| text.contains(w.as_str())).then_some(())
        },
    )
    .await;
    // ...when the process is killed (SIGKILL: nothing is flushed on the way out).
    drop(auth);
    let (got, server) = collector(port).await;
    let _auth = start_auth(h.env, "audit-spool-auth-2", &env).await;
    delivered_once_in_order(&got, &who, "every record made before the restart").await;
    // Delivered, the spool is emptied.
    eventually(
        "the spool to be emptied",
        Duration::from_secs(10),
        || async { (std::fs::metadata(&pending).map(|m| m.len()).unwrap_or(0) == 0).then_some(()) },
    )
    .await;
    server.abort();
}

#[tokio::test]
async fn a_kubectl_created_user_is_created_once_and_removed_once() {
    let (h, client) = harness().await;
    let (org, _, _) = active_member(h, &client, &[]).await;
    let p = profile(&client, &[]).await;
    let name = unique_user_name();
    Api::<User>::namespaced(client.clone(), &org.ns)
        .create(&PostParams::default(), &user(&name, &login("kube"), &p))
        .await
        .unwrap();
    wait_phase(&client, &org.ns, &name, UserPhase::Invited).await;
    one("user.created", "/target/name", &name).await;
    Api::<User>::namespaced(client.clone(), &org.ns)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let removed = one("user.removed", "/target/name", &name).await;
    assert_eq!(removed["organisation"], org.name.as_str());
}
