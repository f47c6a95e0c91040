//! What a sibling host sees (USHER_COOKIE_DOMAIN is set here): every cookie a sign-in scopes to
//! the domain reaches every host under it, a tenant's own Ingress included. Such a cookie opens
//! forward-auth and nothing else: replayed against the API (under its own name or the session
//! cookie's) it is refused, and it ends with the session. A cookie a sibling plants beside the
//! real one does not win.

use reqwest::StatusCode;

use crate::{common::auth::*, *};

/// `(name, value)` of each cookie the answer sets, and whether it carries `Domain=`.
fn set_cookies(a: &Answer) -> Vec<(String, String, bool)> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let (pair, attributes) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let domain = attributes
                .split(';')
                .any(|a| a.trim().to_ascii_lowercase().starts_with("domain="));
            (name.to_owned(), value.to_owned(), domain)
        })
        .collect()
}

/// `GET path` on `server` with exactly this Cookie header.
async fn with_cookies(server: &AuthServer, path: &str, cookie: &str) -> Answer {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    answer(res).await
}

#[tokio::test]
async fn the_cookie_sibling_hosts_see_opens_forward_auth_only_and_ends_with_the_session() {
    let (h, client) = ingress().await;
    let login = person(h, &client, "sibling").await;
    let signed_in = h.a.login(&login, PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    let cookies = set_cookies(&signed_in);
    let shared: Vec<_> = cookies.iter().filter(|(_, _, d)| *d).collect();
    assert_eq!(shared.len(), 1, "one cookie for the domain: {cookies:?}");
    let (shared_name, shared_value, _) = shared[0].clone();

    // What a sibling host sees opens forward-auth...
    let verified = with_cookies(
        &h.a,
        "/api/v1/verify",
        &format!("{shared_name}={shared_value}"),
    )
    .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(
        verified.header("x-usher-login").as_deref(),
        Some(login.as_str())
    );
    // ...and no API, under its own name or the session cookie's.
    for name in [shared_name.as_str(), "usher_session"] {
        for server in [&h.a, &h.b] {
            let me = with_cookies(server, "/api/v1/me", &format!("{name}={shared_value}")).await;
            assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{name}: {}", me.body);
            let users =
                with_cookies(server, "/api/v1/users", &format!("{name}={shared_value}")).await;
            assert_eq!(
                users.status,
                StatusCode::UNAUTHORIZED,
                "{name}: {}",
                users.body
            );
        }
    }
    let (session_name, session, _) = cookies
        .iter()
        .find(|(n, v, d)| !d && !v.is_empty() && n.ends_with("usher_session"))
        .expect("a host-only session cookie")
        .clone();
    // The host-only session cookie opens the API.
    let me = with_cookies(&h.a, "/api/v1/me", &format!("{session_name}={session}")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);

    // A cookie planted beside the real one (cookie tossing) does not win over it.
    let planted = format!("{session_name}=planted.value; {session_name}={session}");
    assert_eq!(
        with_cookies(&h.a, "/api/v1/me", &planted).await.status,
        StatusCode::OK
    );
    let planted = format!("{shared_name}=planted.value; {shared_name}={shared_value}");
    assert_eq!(
        with_cookies(&h.a, "/api/v1/verify", &planted).await.status,
        StatusCode::OK
    );

    // Signing out ends the cookie the siblings saw, on every replica.
    let out =
        h.a.post("/api/v1/logout", serde_json::json!({}), Some(&session))
            .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    let cleared = set_cookies(&out);
    assert!(
        cleared
            .iter()
            .any(|(n, v, d)| *n == shared_name && v.is_empty() && *d),
        "logout clears the domain cookie too: {cleared:?}"
    );
    for server in [&h.a, &h.b] {
        eventually(
            "the shared cookie to end",
            Duration::from_secs(10),
            || async {
                let v = with_cookies(
                    server,
                    "/api/v1/verify",
                    &format!("{shared_name}={shared_value}"),
                )
                .await;
                (v.status == StatusCode::UNAUTHORIZED).then_some(())
            },
        )
        .await;
    }
}
