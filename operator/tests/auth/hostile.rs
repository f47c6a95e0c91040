//! Hostile input: every malformed or oversized request gets a clear 4xx, never a 5xx.

use reqwest::StatusCode;
use serde_json::json;

use crate::{common::auth::*, *};

#[tokio::test]
async fn hostile_requests_get_clear_4xx_answers_never_5xx() {
    let (h, client) = harness().await;
    let (_, _, login) = active_member(h, &client, &["manageCase"]).await;
    let session = h.a.session(&login, PASSWORD).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", h.a.base);

    let send = |req: reqwest::RequestBuilder| async move {
        let res = req.send().await.unwrap();
        let status = res.status();
        let body: serde_json::Value =
            serde_json::from_slice(&res.bytes().await.unwrap()).unwrap_or_default();
        (status, body["error"].as_str().unwrap_or("").to_owned())
    };
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "oversized body",
            http.post(url("/api/v1/login"))
                .header("content-type", "application/json")
                .body(format!("{{\"login\":\"{big}\",\"password\":\"x\"}}")),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "1 MB password",
            http.post(url("/api/v1/login"))
                .json(&json!({"login": login, "password": "p".repeat(1 << 20)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "malformed JSON",
            http.post(url("/api/v1/login"))
                .header("content-type", "application/json")
                .body("{\"login\":"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong content type",
            http.post(url("/api/v1/login"))
                .header("content-type", "text/plain")
                .body("login=a&password=b"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "unknown field",
            http.post(url("/api/v1/login"))
                .json(&json!({"login": login, "password": PASSWORD, "admin": true})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong type",
            http.post(url("/api/v1/login"))
                .json(&json!({"login": ["a"], "password": 5})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "homoglyph login",
            http.post(url("/api/v1/login"))
                .json(&json!({"login": login.replacen('e', "е", 1), "password": PASSWORD})),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "CR/LF in login",
            http.post(url("/api/v1/login"))
                .json(&json!({"login": format!("{login}\r\nX-Injected: 1"), "password": PASSWORD})),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "60 KiB password",
            http.post(url("/api/v1/login"))
                .json(&json!({"login": login, "password": "q".repeat(60 * 1024)})),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "NUL in token",
            http.post(url("/api/v1/invitations/accept"))
                .json(&json!({"token": "a\u{0}b", "password": PASSWORD})),
            StatusCode::BAD_REQUEST,
            "invalid_token",
        ),
        (
            "bad code",
            http.post(url("/api/v1/me/mfa/totp/confirm"))
                .header("cookie", format!("usher_session={session}"))
                .json(&json!({"code": "１２３４５６"})),
            StatusCode::CONFLICT,
            "no_pending_enrolment",
        ),
        (
            "cross-site with cookie",
            http.post(url("/api/v1/logout"))
                .header("cookie", format!("usher_session={session}"))
                .header("sec-fetch-site", "cross-site")
                .json(&json!({})),
            StatusCode::FORBIDDEN,
            "cross_site_request",
        ),
        (
            "foreign origin with cookie",
            http.post(url("/api/v1/me/organisation"))
                .header("cookie", format!("usher_session={session}"))
                .header("origin", "https://evil.example")
                .json(&json!({"organisation": "x"})),
            StatusCode::FORBIDDEN,
            "cross_site_request",
        ),
        (
            "cross-site login",
            http.post(url("/api/v1/login"))
                .header("origin", "https://evil.example")
                .json(&json!({"login": login, "password": PASSWORD})),
            StatusCode::FORBIDDEN,
            "cross_site_request",
        ),
        (
            "garbage cookie",
            http.get(url("/api/v1/me"))
                .header("cookie", "usher_session=%%%;;;==="),
            StatusCode::UNAUTHORIZED,
            "session_ended",
        ),
        (
            "huge cookie",
            http.get(url("/api/v1/me"))
                .header("cookie", format!("usher_session={}", "a".repeat(8000))),
            StatusCode::UNAUTHORIZED,
            "session_ended",
        ),
        (
            "Basic auth",
            http.get(url("/api/v1/me"))
                .header("authorization", "Basic YTpi"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown route",
            http.get(url("/api/v1/nope")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "wrong method",
            http.put(url("/api/v1/login")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (what, req, status, code) in cases {
        let got = send(req).await;
        assert_eq!(got, (status, code.to_owned()), "{what}");
    }
    // A page without a session goes to /login (303); an API request gets 401 JSON. Pages carry
    // a strict Content-Security-Policy, and API keys cannot use them.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirect.get(url("/account")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");
    let login_page = no_redirect.get(url("/login")).send().await.unwrap();
    let csp = login_page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(login_page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(login_page.headers()["x-content-type-options"], "nosniff");
    let html = login_page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets: {html}"
    );
    let keyed = no_redirect
        .get(url("/account"))
        .header("authorization", "Bearer usk_x")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), StatusCode::FORBIDDEN);

    // The browser's own origin (the host it addressed) is not foreign.
    let same = http
        .post(url("/api/v1/me/organisation"))
        .header("cookie", format!("usher_session={session}"))
        .header("origin", h.a.base.replace("127.0.0.1", "localhost"))
        .header("host", h.a.base.replace("http://127.0.0.1", "localhost"))
        .json(&json!({"organisation": "no-such-org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = same.json().await.unwrap();
    assert_eq!(body["error"], "not_a_member", "passed the cross-site rule");

    // The session survived all of it, and the server did not log the password.
    assert_eq!(
        h.a.get("/api/v1/me", Some(&session)).await.status,
        StatusCode::OK
    );
    assert!(!h.a.process.log().contains(PASSWORD));
}
