//! Sign-in: the same answer for every failure, a safe cookie, throttling and the soft lock.

use std::time::{Duration, Instant};

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
async fn login_answers_alike_for_every_failure_and_sets_a_safe_cookie() {
    let (h, client) = harness().await;
    let (org, name, login) = active_member(h, &client, &["manageCase", "manageAlert"]).await;
    let (_, _, invited) = member(&client, &["manageCase"]).await;
    let (locked_org, locked_name, locked) = active_member(h, &client, &["manageCase"]).await;
    Api::<User>::namespaced(client.clone(), &locked_org.ns)
        .patch(
            &locked_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"locked": true}})),
        )
        .await
        .unwrap();
    wait_phase(&client, &locked_org.ns, &locked_name, UserPhase::Locked).await;

    let ok = h.b.login(&login, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let set_cookie = ok.header("set-cookie").unwrap();
    for attr in [
        "usher_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=86400",
    ] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "http public URL: {set_cookie}"
    );
    assert_eq!(ok.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(ok.body["login"], login);
    assert_eq!(ok.body["organisation"], org.name);
    assert_eq!(ok.body["fullName"], format!("Person {name}"));
    assert_eq!(ok.body["permissions"], json!(["manageCase", "manageAlert"]));
    assert_eq!(ok.body["organisations"][0]["displayName"], org.display);
    assert_eq!(ok.body["mfaEnrolled"], false);
    // Two logins never share a session identifier.
    assert_ne!(ok.cookie(), h.b.login(&login, PASSWORD).await.cookie());

    let unknown = h.b.login("nobody-here@example.com", PASSWORD).await;
    let wrong = h.b.login(&login, "Wrong-password-42!").await;
    let not_yet = h.b.login(&invited, PASSWORD).await;
    let locked_out = h.b.login(&locked, PASSWORD).await;
    for a in [&unknown, &wrong, &not_yet, &locked_out] {
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.body, unknown.body, "the same body for every failure");
        assert!(a.cookie().is_none());
    }
    assert_eq!(unknown.code(), "invalid_credentials");

    // About the same time for an unknown login as for a wrong password (the dummy hash).
    let mut timings = Vec::new();
    for who in ["nobody-timing@example.com", login.as_str()] {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let a = h.b.login(who, "Wrong-password-43!").await;
            assert_eq!(a.code(), "invalid_credentials");
            samples.push(started.elapsed());
        }
        samples.sort();
        timings.push(samples[1]);
    }
    let ratio = timings[0].as_secs_f64() / timings[1].as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown {:?} vs wrong {:?}",
        timings[0],
        timings[1]
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_then_soft_locked_until_unlocked() {
    let (h, client) = harness().await;
    let (_, _, login) = active_member(h, &client, &["manageCase"]).await;
    // USHER_SOFT_LOCK_AFTER=3 on these replicas: three failures lock the account everywhere.
    for _ in 0..3 {
        let a = h.a.login(&login, "Wrong-password-44!").await;
        assert_eq!(a.code(), "invalid_credentials");
    }
    for server in [&h.a, &h.b] {
        let a = eventually(
            "the soft lock on both replicas",
            Duration::from_secs(10),
            || async {
                let a = server.login(&login, PASSWORD).await;
                (a.status == StatusCode::TOO_MANY_REQUESTS).then_some(a)
            },
        )
        .await;
        assert_eq!(a.code(), "too_many_attempts");
        let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
    }
    let out = usher_account(h.env, &["unlock", &login]);
    assert!(out.contains("unlocked"), "{out}");
    let session = h.b.session(&login, PASSWORD).await;
    assert_eq!(
        h.b.get("/api/v1/me", Some(&session)).await.status,
        StatusCode::OK
    );

    // An unknown login is throttled by the same per-login backoff (after 5 free failures), so
    // throttling says nothing about whether a login exists.
    let ghost = "ghost-throttle@example.com";
    for _ in 0..5 {
        assert_eq!(
            h.b.login(ghost, "Wrong-password-45!").await.code(),
            "invalid_credentials"
        );
    }
    let throttled = h.b.login(ghost, "Wrong-password-45!").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.header("retry-after").is_some());
}

#[tokio::test]
async fn one_address_failing_with_many_logins_is_throttled() {
    let (h, _) = harness().await;
    // Its own server: the harness replicas serve the other tests from the same address.
    let server = start_auth(h.env, "auth-address", &[]).await;
    for i in 0..50 {
        let a = server
            .login(&format!("spray-{i}@example.com"), "Wrong-password-47!")
            .await;
        assert_eq!(a.code(), "invalid_credentials", "attempt {i}");
    }
    let throttled = server
        .login("spray-next@example.com", "Wrong-password-47!")
        .await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    assert!(throttled.header("retry-after").is_some());
    let metrics = reqwest::get(format!("{}/metrics", server.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("usher_auth_throttled_requests_total{scope=\"address\"} 1"),
        "{metrics}"
    );
}
