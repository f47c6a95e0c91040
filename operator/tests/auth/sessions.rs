//! Sessions: Kill Session, logout and switching on every replica, idle and absolute timeouts,
//! the https cookie.

use std::time::Duration;

use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use reqwest::StatusCode;
use serde_json::json;
use usher_crds::{User, UserPhase};

use crate::{
    common::{auth::*, *},
    *,
};

#[tokio::test]
async fn kill_session_logout_and_switching_take_effect_on_every_replica() {
    let (h, client) = harness().await;
    let (org1, name1, login) = active_member(h, &client, &["manageCase"]).await;
    // The same login in a second organisation with another profile: linked, no new email.
    let admin = profile(&client, &["manageUser", "manageCase"]).await;
    let org2 = organisation(&client).await;
    let ns2 = wait_ns(&client, &org2).await;
    Api::<User>::namespaced(client.clone(), &ns2)
        .create(&PostParams::default(), &user("second", &login, &admin))
        .await
        .unwrap();
    wait_phase(&client, &ns2, "second", UserPhase::Active).await;

    let on_a = h.a.session(&login, PASSWORD).await;
    let on_b = h.b.session(&login, PASSWORD).await;
    for (server, cookie) in [(&h.a, &on_b), (&h.b, &on_a)] {
        let me = server.get("/api/v1/me", Some(cookie)).await;
        assert_eq!(
            me.status,
            StatusCode::OK,
            "a session works on every replica"
        );
        assert_eq!(me.body["organisations"].as_array().unwrap().len(), 2);
    }
    let orgs = [org1.name.clone(), org2.name.clone()];
    let first = h.a.get("/api/v1/me", Some(&on_a)).await.body["organisation"].clone();
    let other = orgs.iter().find(|o| **o != first).unwrap().clone();

    // Switching re-issues the session: a new cookie, the old one ends, permissions change.
    let switched =
        h.a.post(
            "/api/v1/me/organisation",
            json!({"organisation": other}),
            Some(&on_a),
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.body);
    assert_eq!(switched.body["organisation"], other);
    let new_cookie = switched.cookie().unwrap();
    assert_ne!(new_cookie, on_a);
    let expected = if other == org2.name {
        json!(["manageUser", "manageCase"])
    } else {
        json!(["manageCase"])
    };
    assert_eq!(switched.body["permissions"], expected);
    assert_eq!(
        h.a.get("/api/v1/me", Some(&on_a)).await.code(),
        "session_ended"
    );
    let not_member =
        h.a.post(
            "/api/v1/me/organisation",
            json!({"organisation": "no-such-org"}),
            Some(&new_cookie),
        )
        .await;
    assert_eq!(
        (not_member.status, not_member.code()),
        (StatusCode::FORBIDDEN, "not_a_member")
    );

    // Logout ends that session on both replicas; the other session lives on.
    let out =
        h.b.post("/api/v1/logout", json!({}), Some(&new_cookie))
            .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    ended_everywhere(h, &new_cookie, "the logout on every replica").await;
    assert_eq!(
        h.a.get("/api/v1/me", Some(&on_b)).await.status,
        StatusCode::OK
    );

    // "Sign out everywhere" is the person's own Kill Session.
    let first = h.a.session(&login, PASSWORD).await;
    let second = h.b.session(&login, PASSWORD).await;
    let everywhere =
        h.a.post("/api/v1/logout?everywhere=true", json!({}), Some(&first))
            .await;
    assert_eq!(everywhere.status, StatusCode::NO_CONTENT);
    ended_everywhere(h, &second, "sign-out everywhere on every replica").await;
    let on_b = h.b.session_in(&login, PASSWORD, &org1.name).await;

    // Kill Session (the annotation) ends the sessions acting in its organisation at the next
    // request.
    kill_sessions(&client, &org1.ns, &name1, "k1").await;
    eventually(
        "the kill to be recorded",
        Duration::from_secs(20),
        || async {
            let u = Api::<User>::namespaced(client.clone(), &org1.ns)
                .get(&name1)
                .await
                .ok()?;
            // Recorded once the account's sessionsRevokedAt was written.
            let observed = u.status?.observed_actions?.kill_sessions;
            (observed.as_deref() == Some("k1")).then_some(())
        },
    )
    .await;
    for server in [&h.a, &h.b] {
        let a = server.get("/api/v1/me", Some(&on_b)).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNAUTHORIZED, "session_ended")
        );
    }
    // Signing in again works.
    let again = h.b.session(&login, PASSWORD).await;

    // Edits take effect on the next request; deleting the membership ends its sessions.
    let current = h.b.get("/api/v1/me", Some(&again)).await.body;
    let current_org = current["organisation"].as_str().unwrap().to_owned();
    let (ns, user_name) = if current_org == org1.name {
        (org1.ns.clone(), name1.clone())
    } else {
        (ns2.clone(), "second".to_owned())
    };
    let users = Api::<User>::namespaced(client.clone(), &ns);
    users
        .patch(
            &user_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"fullName": "Renamed Person"}})),
        )
        .await
        .unwrap();
    eventually("the new name", Duration::from_secs(5), || async {
        (h.a.get("/api/v1/me", Some(&again)).await.body["fullName"] == "Renamed Person")
            .then_some(())
    })
    .await;
    users
        .delete(&user_name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the membership's sessions to end",
        Duration::from_secs(20),
        || async {
            (h.a.get("/api/v1/me", Some(&again)).await.code() == "session_ended").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn on_https_the_cookie_is_host_prefixed_and_secure() {
    let (h, client) = harness().await;
    let secure = start_auth(
        h.env,
        "auth-https",
        &[("USHER_PUBLIC_URL", "https://usher.test")],
    )
    .await;
    let (_, _, login) = active_member(h, &client, &["manageCase"]).await;
    let ok = eventually(
        "login over the https public URL",
        Duration::from_secs(10),
        || async {
            let a = secure.login(&login, PASSWORD).await;
            (a.status == StatusCode::OK).then_some(a)
        },
    )
    .await;
    let set_cookie = ok.header("set-cookie").unwrap();
    assert!(
        set_cookie.starts_with("__Host-usher_session="),
        "{set_cookie}"
    );
    assert!(
        set_cookie.contains("; Secure") && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    // Browsers are told to come back over https only.
    assert_eq!(
        ok.header("strict-transport-security").as_deref(),
        Some("max-age=31536000")
    );
    assert!(
        h.a.get("/healthz", None)
            .await
            .header("strict-transport-security")
            .is_none(),
        "not on a plain-http deployment"
    );
    let token = ok.cookie().unwrap();
    let http = reqwest::Client::new();
    let me = |cookie: String| {
        let http = http.clone();
        let url = format!("{}/api/v1/me", secure.base);
        async move {
            http.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        me(format!("__Host-usher_session={token}")).await,
        StatusCode::OK
    );
    // The unprefixed name is not read when the server is on https.
    assert_eq!(
        me(format!("usher_session={token}")).await,
        StatusCode::UNAUTHORIZED
    );
    // The allowed Origin is the public URL's.
    let from_public = http
        .post(format!("{}/api/v1/logout", secure.base))
        .header("cookie", format!("__Host-usher_session={token}"))
        .header("origin", "https://usher.test")
        .send()
        .await
        .unwrap();
    assert_eq!(from_public.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn people_see_their_sessions_and_end_one_by_id() {
    let (h, client) = harness().await;
    let (org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let mine = h.a.session(&login, PASSWORD).await;
    let other = h.b.session(&login, PASSWORD).await;
    let list = eventually(
        "both sessions in the list",
        Duration::from_secs(10),
        || async {
            let l = h.a.get("/api/v1/me/sessions", Some(&mine)).await;
            (l.body.as_array().map(Vec::len) == Some(2)).then_some(l)
        },
    )
    .await;
    let sessions = list.body.as_array().unwrap();
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{}", list.body);
    for s in sessions {
        assert_eq!(s["organisation"], org.name.as_str());
        assert_eq!(s["address"], "127.0.0.1");
        assert!(s["startedAt"].is_string() && s["id"].is_string(), "{s}");
    }
    let other_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ended =
        h.a.delete(&format!("/api/v1/me/sessions/{other_id}"), Some(&mine))
            .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    ended_everywhere(h, &other, "the ended session refused on every replica").await;
    assert_eq!(
        h.a.get("/api/v1/me", Some(&mine)).await.status,
        StatusCode::OK
    );
    let again =
        h.a.delete(&format!("/api/v1/me/sessions/{other_id}"), Some(&mine))
            .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::NOT_FOUND, "session_not_found")
    );
    let list = h.a.get("/api/v1/me/sessions", Some(&mine)).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{}", list.body);
}

#[tokio::test]
async fn the_twenty_first_session_ends_the_oldest() {
    let (h, client) = harness().await;
    let (_org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let first = h.a.session(&login, PASSWORD).await;
    let mut last = String::new();
    for _ in 0..20 {
        last = h.a.session(&login, PASSWORD).await;
    }
    ended_everywhere(h, &first, "the oldest session to end").await;
    let list = h.a.get("/api/v1/me/sessions", Some(&last)).await;
    assert_eq!(list.body.as_array().unwrap().len(), 20, "{}", list.body);
}

#[tokio::test]
async fn admins_see_and_end_the_sessions_of_their_organisation_only() {
    let (h, client) = harness().await;
    let (org, _name, member_login) = active_member(h, &client, &["manageCase"]).await;
    // A stronger admin profile holds manageUser; the member's profile is weaker.
    let admin_login = active_admin(h, &client, &org, "sessions-admin").await;
    // Someone signed in to another organisation only.
    let (_elsewhere, _n, stranger) = active_member(h, &client, &["manageCase"]).await;
    let stranger_session = h.b.session(&stranger, PASSWORD).await;

    let member = h.b.session(&member_login, PASSWORD).await;
    let admin = h.a.session(&admin_login, PASSWORD).await;
    let list = eventually(
        "the member's session in the organisation's list",
        Duration::from_secs(10),
        || async {
            let l = h.a.get("/api/v1/sessions", Some(&admin)).await;
            l.body
                .as_array()?
                .iter()
                .any(|s| s["login"] == member_login.as_str())
                .then_some(l)
        },
    )
    .await;
    let all = list.body.as_array().unwrap();
    assert!(
        all.iter().all(|s| s["login"] != stranger.as_str()),
        "another organisation's sessions are not listed: {}",
        list.body
    );
    assert!(
        all.iter()
            .any(|s| s["login"] == admin_login.as_str() && s["current"] == true)
    );
    let id = all
        .iter()
        .find(|s| s["login"] == member_login.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The member may not list or end sessions.
    let refused = h.b.get("/api/v1/sessions", Some(&member)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    // Nor may the admin end a session not in the organisation (the stranger's id is unknown
    // here).
    let stranger_id =
        h.b.get("/api/v1/me/sessions", Some(&stranger_session))
            .await
            .body[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let not_here =
        h.a.delete(&format!("/api/v1/sessions/{stranger_id}"), Some(&admin))
            .await;
    assert_eq!(not_here.code(), "session_not_found");

    let ended =
        h.a.delete(&format!("/api/v1/sessions/{id}"), Some(&admin))
            .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.body);
    ended_everywhere(h, &member, "the member's session to end").await;
    assert_eq!(
        h.b.get("/api/v1/me", Some(&stranger_session)).await.status,
        StatusCode::OK
    );
    let events = h
        .env
        .kubectl_ok(&["get", "events", "-n", &org.ns, "-o", "json"])
        .unwrap();
    assert!(events.contains("SessionEnded"), "{events}");
}

/// Kill Session and removal end a membership's sessions for good: a User deleted and made again
/// under the same name (a GitOps re-sync, an admin re-adding the person) brings none back.
#[tokio::test]
async fn sessions_ended_by_kill_or_removal_stay_ended_when_the_user_is_made_again() {
    let (h, client) = harness().await;
    let (org1, name1, login) = active_member(h, &client, &["manageCase"]).await;
    let users1 = Api::<User>::namespaced(client.clone(), &org1.ns);
    // A second membership keeps the account (and its sessions) alive through the deletion.
    let org2 = organisation(&client).await;
    let ns2 = wait_ns(&client, &org2).await;
    let p2 = profile(&client, &["manageCase"]).await;
    Api::<User>::namespaced(client.clone(), &ns2)
        .create(&PostParams::default(), &user("second", &login, &p2))
        .await
        .unwrap();
    wait_phase(&client, &ns2, "second", UserPhase::Active).await;

    let killed = h.a.session_in(&login, PASSWORD, &org1.name).await;
    kill_sessions(&client, &org1.ns, &name1, "k1").await;
    ended_everywhere(h, &killed, "the Kill Session").await;
    let removed = h.a.session_in(&login, PASSWORD, &org1.name).await;

    // The admin removes the person; the same User is declared again.
    let original = users1.get(&name1).await.unwrap();
    users1
        .delete(&name1, &DeleteParams::default())
        .await
        .unwrap();
    wait_user_gone(&client, &org1.ns, &name1, Duration::from_secs(20)).await;
    ended_everywhere(h, &removed, "the removal").await;
    let again = user(&name1, &login, &original.spec.profile);
    users1.create(&PostParams::default(), &again).await.unwrap();
    wait_phase(&client, &org1.ns, &name1, UserPhase::Active).await;
    // Once both replicas see the new User, a new sign-in there works...
    for server in [&h.a, &h.b] {
        server.session_in(&login, PASSWORD, &org1.name).await;
    }
    // ...and the sessions ended before stay ended.
    for (cookie, what) in [(&killed, "killed"), (&removed, "removed")] {
        for server in [&h.a, &h.b] {
            let me = server.get("/api/v1/me", Some(cookie)).await;
            assert_eq!(
                (me.status, me.code()),
                (StatusCode::UNAUTHORIZED, "session_ended"),
                "the {what} session came back with the User: {}",
                me.body
            );
        }
    }
}
