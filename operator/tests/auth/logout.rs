//! Signing out everywhere it matters (issue 26): each way a session ends reaches the app that
//! got tokens from it, as a back-channel logout token the app verifies; RP-initiated logout;
//! revocation (RFC 7009) and introspection (RFC 7662); the apps each session signed in to.

use std::time::Duration;

use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use usher_crds::{User, UserPhase};

use crate::{
    common::{auth::*, oidc::*, *},
    *,
};

const BYE: &str = "https://app.example.test/bye";
const NEW_PASSWORD: &str = "Callisto-9!quiet-lantern-17";

/// A confidential client of `org` whose back-channel endpoint is `rx`.
async fn app(client: &Client, org: &Org, rx: &Receiver) -> (String, String) {
    declare_client(
        client,
        &org.ns,
        &usher_testkit::unique_name("app"),
        json!({
            "displayName": "Wiki",
            "redirectURIs": [REDIRECT],
            "postLogoutRedirectURIs": [BYE],
            "backchannelLogoutURI": rx.uri(),
        }),
    )
    .await
}

/// Another active member of `org` with `profile`: (User name, login).
async fn colleague(h: &Harness, client: &Client, org: &Org, profile: &str) -> (String, String) {
    let name = unique_user_name();
    let login = login("colleague");
    Api::<User>::namespaced(client.clone(), &org.ns)
        .create(&PostParams::default(), &user(&name, &login, profile))
        .await
        .unwrap();
    onboard(&h.a, &h.smtp, &login).await;
    wait_phase(client, &org.ns, &name, UserPhase::Active).await;
    (name, login)
}

/// The ways a session ends (DESIGN.md, "Logout"; issue 26).
#[derive(Clone, Copy, Debug)]
enum End {
    SignOut,
    SignOutEverywhere,
    OneSessionFromTheList,
    RpInitiatedLogout,
    AppRevokedFromAccount,
    PasswordChange,
    PasswordReset,
    AdminKillSession,
    AdminEndsOneSession,
    KillSessionAnnotation,
    OperatorCli,
    Lock,
    MembershipRemoved,
    RefreshTokenReused,
}

#[tokio::test]
async fn every_way_a_session_ends_reaches_the_app_as_a_verifiable_logout_token() {
    let (h, client) = harness().await;
    let (org, _, _) = active_member(h, &client, &[]).await;
    // A profile the admin's (manageUser, manageCase) covers.
    let profile = crate::common::profile(&client, &["manageCase"]).await;
    let admin = active_admin(h, &client, &org, &usher_testkit::unique_name("admin")).await;
    let admin_cookie = h.a.session(&admin, PASSWORD).await;
    let rx = Receiver::start().await;
    let (id, secret) = app(&client, &org, &rx).await;
    let cases = [
        End::SignOut,
        End::SignOutEverywhere,
        End::OneSessionFromTheList,
        End::RpInitiatedLogout,
        End::AppRevokedFromAccount,
        End::PasswordChange,
        End::PasswordReset,
        End::AdminKillSession,
        End::AdminEndsOneSession,
        End::KillSessionAnnotation,
        End::OperatorCli,
        End::Lock,
        End::MembershipRemoved,
        End::RefreshTokenReused,
    ];
    let run = |end: End| {
        let (client, org, profile, rx, id, secret, admin_cookie) =
            (&client, &org, &profile, &rx, &id, &secret, &admin_cookie);
        async move {
            let (name, login) = colleague(h, client, org, profile).await;
            let cookie = h.a.session(&login, PASSWORD).await;
            let signed_in = sign_in_app(&h.a.base, &cookie, id, secret).await;
            let sid = signed_in.id["sid"].as_str().unwrap().to_owned();
            end_by(
                h,
                client,
                org,
                end,
                &name,
                &login,
                &cookie,
                &signed_in,
                id,
                secret,
                admin_cookie,
            )
            .await;
            let logout = rx
                .logout_for(
                    &h.a.base,
                    id,
                    &sid,
                    &format!("the logout token after {end:?}"),
                )
                .await;
            assert_eq!(logout["sub"], signed_in.id["sub"], "{end:?}");
            // The app's tokens stop with it.
            let refreshed = token(
                &h.b.base,
                id,
                secret,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &signed_in.refresh_token),
                ],
            )
            .await;
            assert_eq!(
                refreshed.0,
                StatusCode::BAD_REQUEST,
                "{end:?}: {}",
                refreshed.1
            );
            assert_eq!(
                bearer(&h.a.base, "/oauth2/userinfo", &signed_in.access_token).await,
                StatusCode::UNAUTHORIZED,
                "{end:?}"
            );
            end
        }
    };
    let done = futures::future::join_all(cases.map(run)).await;
    assert_eq!(done.len(), cases.len());
    // One logout per session and app: nothing sent twice.
    let mut sids: Vec<String> = rx
        .received()
        .iter()
        .map(|t| claims(t)["sid"].as_str().unwrap().to_owned())
        .collect();
    let all = sids.len();
    sids.sort();
    sids.dedup();
    assert_eq!(sids.len(), all, "each session's logout went once");
}

#[allow(clippy::too_many_arguments)]
async fn end_by(
    h: &Harness,
    client: &Client,
    org: &Org,
    end: End,
    name: &str,
    login: &str,
    cookie: &str,
    signed_in: &AppSession,
    id: &str,
    secret: &str,
    admin_cookie: &str,
) {
    let sid = signed_in.id["sid"].as_str().unwrap();
    let ok = |a: &Answer, what: &str| {
        assert!(
            a.status.is_success(),
            "{end:?} {what}: {} {}",
            a.status,
            a.body
        );
    };
    let users: Api<User> = Api::namespaced(client.clone(), &org.ns);
    match end {
        End::SignOut => ok(
            &h.a.post("/api/v1/logout", json!({}), Some(cookie)).await,
            "logout",
        ),
        End::SignOutEverywhere => ok(
            &h.a.post("/api/v1/logout?everywhere=true", json!({}), Some(cookie))
                .await,
            "logout everywhere",
        ),
        End::OneSessionFromTheList => {
            let other = h.b.session(login, PASSWORD).await;
            ok(
                &h.b.delete(&format!("/api/v1/me/sessions/{sid}"), Some(&other))
                    .await,
                "end one session",
            );
        }
        End::RpInitiatedLogout => {
            let mut url = url::Url::parse(&format!("{}/oauth2/logout", h.a.base)).unwrap();
            url.query_pairs_mut()
                .append_pair("id_token_hint", &signed_in.raw_id_token)
                .append_pair("post_logout_redirect_uri", BYE)
                .append_pair("state", "bye-1");
            let res = no_redirects()
                .get(url)
                .header("cookie", format!("usher_session={cookie}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FOUND);
            assert_eq!(
                res.headers()["location"].to_str().unwrap(),
                format!("{BYE}?state=bye-1")
            );
            assert_eq!(
                h.a.get("/api/v1/me", Some(cookie)).await.code(),
                "session_ended"
            );
        }
        End::AppRevokedFromAccount => {
            let listed = h.a.get("/api/v1/me/sessions", Some(cookie)).await;
            let apps = listed
                .body
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == sid)
                .unwrap()["apps"]
                .clone();
            assert_eq!(apps[0]["clientId"], id, "{listed:?}");
            assert_eq!(apps[0]["displayName"], "Wiki");
            assert_eq!(apps[0]["organisation"], org.name);
            assert!(apps[0]["lastRefreshAt"].is_string());
            // The page lists it in that session's row, with Revoke.
            let page = h.a.page("/account", cookie).await;
            let row = &page[page.find(&format!("data-session=\"{sid}\"")).unwrap()..];
            let row = &row[..row.find("</tr>").unwrap()];
            assert!(
                row.contains(&format!("data-app=\"{id}\""))
                    && row.contains("Wiki")
                    && row.contains("Revoke"),
                "{row}"
            );
            ok(
                &h.a.delete(
                    &format!("/api/v1/me/sessions/{sid}/apps/{id}"),
                    Some(cookie),
                )
                .await,
                "revoke the app",
            );
            // The Usher session goes on; the app is gone from it.
            let me = h.a.get("/api/v1/me/sessions", Some(cookie)).await;
            assert_eq!(me.status, StatusCode::OK);
            let s = me
                .body
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == sid)
                .cloned()
                .unwrap();
            assert_eq!(s["apps"], json!([]));
        }
        End::PasswordChange => ok(
            &h.a.post(
                "/api/v1/me/password",
                json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
                Some(cookie),
            )
            .await,
            "password change",
        ),
        End::PasswordReset => {
            ok(
                &h.a.post("/api/v1/password-reset", json!({"login": login}), None)
                    .await,
                "reset request",
            );
            let t = reset_token(&h.smtp, login, 1).await;
            ok(
                &h.b.post(
                    "/api/v1/password-reset/accept",
                    json!({"token": t, "password": NEW_PASSWORD}),
                    None,
                )
                .await,
                "reset",
            );
        }
        End::AdminKillSession => ok(
            &h.a.post(
                &format!("/api/v1/users/{name}/kill-session"),
                json!({}),
                Some(admin_cookie),
            )
            .await,
            "admin kill session",
        ),
        End::AdminEndsOneSession => ok(
            &h.a.delete(&format!("/api/v1/sessions/{sid}"), Some(admin_cookie))
                .await,
            "admin ends one session",
        ),
        End::KillSessionAnnotation => {
            kill_sessions(client, &org.ns, name, &unix_now().to_string()).await;
        }
        End::OperatorCli => {
            usher_account(h.env, &["kill-sessions", login]);
        }
        End::Lock => {
            users
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"locked": true}})),
                )
                .await
                .unwrap();
        }
        End::MembershipRemoved => {
            users.delete(name, &DeleteParams::default()).await.unwrap();
        }
        End::RefreshTokenReused => {
            let refresh = |rt: String| async move {
                token(
                    &h.a.base,
                    id,
                    secret,
                    &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                )
                .await
            };
            let (status, body) = refresh(signed_in.refresh_token.clone()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (status, body) = refresh(signed_in.refresh_token.clone()).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "the reuse is refused: {body}"
            );
            assert_eq!(
                h.a.get("/api/v1/me", Some(cookie)).await.code(),
                "session_ended",
                "a reused refresh token ends the session it was taken from"
            );
        }
    }
}

#[tokio::test]
async fn rp_initiated_logout_returns_only_to_registered_uris_and_asks_without_a_hint() {
    let (h, client) = harness().await;
    let (org, _, login) = active_member(h, &client, &[]).await;
    let rx = Receiver::start().await;
    let (id, secret) = app(&client, &org, &rx).await;
    let cookie = h.a.session(&login, PASSWORD).await;
    let signed_in = sign_in_app(&h.a.base, &cookie, &id, &secret).await;
    let logout = |query: Vec<(&'static str, String)>, cookie: Option<String>| {
        let base = h.a.base.clone();
        async move {
            let mut url = url::Url::parse(&format!("{base}/oauth2/logout")).unwrap();
            url.query_pairs_mut().extend_pairs(&query);
            let mut req = no_redirects().get(url);
            if let Some(c) = cookie {
                req = req.header("cookie", format!("usher_session={c}"));
            }
            let res = req.send().await.unwrap();
            let location = res
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            (res.status(), location, res.text().await.unwrap())
        }
    };
    // An unregistered post-logout URI: a page, never a redirect, and nobody is signed out.
    for uri in [
        "https://evil.example/bye",
        "https://app.example.test/bye/",
        "https://app.example.test/bye?x=1",
    ] {
        let (status, location, _) = logout(
            vec![
                ("id_token_hint", signed_in.raw_id_token.clone()),
                ("post_logout_redirect_uri", uri.into()),
            ],
            Some(cookie.clone()),
        )
        .await;
        assert_eq!((status, location), (StatusCode::BAD_REQUEST, None), "{uri}");
    }
    // A forged hint is refused the same way.
    let forged = format!("{}x", signed_in.raw_id_token);
    let (status, location, _) = logout(
        vec![
            ("id_token_hint", forged),
            ("post_logout_redirect_uri", BYE.into()),
        ],
        Some(cookie.clone()),
    )
    .await;
    assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    // A URI without a client to check it against.
    let (status, _, _) = logout(
        vec![("post_logout_redirect_uri", BYE.into())],
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.a.get("/api/v1/me", Some(&cookie)).await.status,
        StatusCode::OK
    );
    // No hint: a link on another site cannot sign anyone out; the person is asked.
    let (status, location, page) = logout(
        vec![
            ("client_id", id.clone()),
            ("post_logout_redirect_uri", BYE.into()),
        ],
        Some(cookie.clone()),
    )
    .await;
    assert_eq!((status, location), (StatusCode::OK, None));
    assert!(
        page.contains("Sign out of Usher?") && page.contains("Wiki"),
        "{page}"
    );
    assert_eq!(
        h.a.get("/api/v1/me", Some(&cookie)).await.status,
        StatusCode::OK
    );
    // Confirming (the page's own form, same origin) signs out and goes back.
    let res = no_redirects()
        .post(format!("{}/oauth2/logout", h.a.base))
        .header("cookie", format!("usher_session={cookie}"))
        .header("origin", &h.a.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "confirm=1&client_id={id}&post_logout_redirect_uri={}&state=s-2",
            url::form_urlencoded::byte_serialize(BYE.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()["location"],
        format!("{BYE}?state=s-2").as_str()
    );
    ended_everywhere(h, &cookie, "the confirmed logout").await;
    let sid = signed_in.id["sid"].as_str().unwrap();
    rx.logout_for(
        &h.a.base,
        &id,
        sid,
        "the logout token after the confirmed logout",
    )
    .await;
    // Without a session and without a hint: the signed-out page.
    let (status, _, page) = logout(vec![], None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Signed out"));
}

/// POSTs `form` to `path` as client `id` (client_secret_basic; `None`: a public client).
async fn client_post(
    base: &str,
    path: &str,
    id: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = no_redirects()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded");
    let mut form: Vec<(&str, &str)> = form.to_vec();
    match secret {
        Some(s) => req = req.basic_auth(id, Some(s)),
        None => form.push(("client_id", id)),
    }
    let res = req
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&form)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn introspection_says_what_is_active_and_revocation_ends_a_grant() {
    let (h, client) = harness().await;
    let (org, _, login) = active_member(h, &client, &[]).await;
    let (other_org, _, _) = active_member(h, &client, &[]).await;
    let rx = Receiver::start().await;
    let (id, secret) = app(&client, &org, &rx).await;
    let (stranger, stranger_secret) = app(&client, &other_org, &rx).await;
    let (public, _) = declare_client(
        &client,
        &org.ns,
        &usher_testkit::unique_name("spa"),
        json!({"public": true, "redirectURIs": ["http://127.0.0.1/cb"]}),
    )
    .await;
    let cookie = h.a.session(&login, PASSWORD).await;
    let s = sign_in_app(&h.a.base, &cookie, &id, &secret).await;
    // On the replica that issued the tokens: each replica of this harness has an issuer of
    // its own.
    let introspect = |who: &str, secret: Option<&str>, t: &str| {
        let (base, who, secret, t) = (
            h.a.base.clone(),
            who.to_owned(),
            secret.map(str::to_owned),
            t.to_owned(),
        );
        async move {
            client_post(
                &base,
                "/oauth2/introspect",
                &who,
                secret.as_deref(),
                &[("token", &t)],
            )
            .await
        }
    };
    let (status, at) = introspect(&id, Some(&secret), &s.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(at["active"], true, "{at}");
    assert_eq!(at["client_id"], id);
    assert_eq!(at["sub"], s.id["sub"]);
    assert_eq!(at["username"], login);
    assert_eq!(at["token_type"], "Bearer");
    assert!(at["exp"].as_i64().unwrap() > at["iat"].as_i64().unwrap());
    let (_, rt) = introspect(&id, Some(&secret), &s.refresh_token).await;
    assert_eq!(
        (rt["active"].clone(), rt["token_type"].clone()),
        (json!(true), json!("refresh_token")),
        "{rt}"
    );
    // Another tenant's client learns nothing; a public client may not ask; nor may a wrong secret.
    assert_eq!(
        introspect(&stranger, Some(&stranger_secret), &s.access_token)
            .await
            .1,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&stranger, Some(&stranger_secret), &s.refresh_token)
            .await
            .1,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&public, None, &s.access_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        introspect(&id, Some("wrong"), &s.access_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        introspect(&id, Some(&secret), "garbage").await.1,
        json!({"active": false})
    );

    // Revocation: unknown tokens are fine, another client's are refused, the owner's end the grant.
    let revoke = |who: &str, secret: &str, t: &str| {
        let (base, who, secret, t) = (
            h.a.base.clone(),
            who.to_owned(),
            secret.to_owned(),
            t.to_owned(),
        );
        async move {
            client_post(
                &base,
                "/oauth2/revoke",
                &who,
                Some(&secret),
                &[("token", &t), ("token_type_hint", "refresh_token")],
            )
            .await
        }
    };
    assert_eq!(revoke(&id, &secret, "urt_nothing").await.0, StatusCode::OK);
    let (status, body) = revoke(&stranger, &stranger_secret, &s.refresh_token).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("unauthorized_client"))
    );
    assert_eq!(
        introspect(&id, Some(&secret), &s.access_token).await.1["active"],
        true
    );
    assert_eq!(
        revoke(&id, &secret, &s.refresh_token).await.0,
        StatusCode::OK
    );
    let gone = |t: String| {
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            eventually(
                "the revoked grant's tokens to be inactive",
                Duration::from_secs(10),
                || {
                    let (id, secret, t) = (id.clone(), secret.clone(), t.clone());
                    async move {
                        (introspect(&id, Some(&secret), &t).await.1 == json!({"active": false}))
                            .then_some(())
                    }
                },
            )
            .await;
        }
    };
    gone(s.access_token.clone()).await;
    gone(s.refresh_token.clone()).await;
    assert_eq!(
        bearer(&h.a.base, "/oauth2/userinfo", &s.access_token).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = token(
        &h.b.base,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s.refresh_token),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The session goes on: the app revoked its own grant, it needs no logout token.
    assert_eq!(
        h.a.get("/api/v1/me", Some(&cookie)).await.status,
        StatusCode::OK
    );

    // Revoking an access token ends its grant too; and a session that ends makes all inactive.
    let s2 = sign_in_app(&h.a.base, &cookie, &id, &secret).await;
    assert_eq!(
        revoke(&id, &secret, &s2.access_token).await.0,
        StatusCode::OK
    );
    gone(s2.refresh_token.clone()).await;
    let s3 = sign_in_app(&h.a.base, &cookie, &id, &secret).await;
    h.a.post("/api/v1/logout", json!({}), Some(&cookie)).await;
    gone(s3.access_token.clone()).await;
    gone(s3.refresh_token.clone()).await;
    let sid = s.id["sid"].as_str().unwrap();
    rx.logout_for(&h.a.base, &id, sid, "the logout token of the ended session")
        .await;
    assert_eq!(
        rx.received().len(),
        1,
        "the revocations sent no logout token: the app asked for them"
    );
}
