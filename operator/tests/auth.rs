//! The auth server end to end: a real kube-apiserver, real SMTP, the real `usher controller`
//! and two real `usher auth` replicas, reached over sockets; TOTP codes from `oathtool`, the QR
//! code read by `zbarimg`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

mod common;

use std::time::{Duration, Instant};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use common::{auth::*, *};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::OnceCell;
use usher_crds::{Organisation, User, UserPhase};
use usher_testkit::{Envtest, Process, SmtpSink};

struct Harness {
    env: &'static Envtest,
    smtp: SmtpSink,
    a: AuthServer,
    b: AuthServer,
    _controller: Process,
}

static HARNESS: OnceCell<Harness> = OnceCell::const_new();

async fn harness() -> (&'static Harness, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = HARNESS
        .get_or_init(|| async {
            let env = Envtest::shared(usher_crds::crds).await.unwrap();
            setup(env).await;
            let smtp = SmtpSink::start().await.unwrap();
            let controller = start_controller(env, &smtp.url(), "auth-controller");
            // Three failed logins soft-lock an account on replica a (10 on b, the default).
            let a = start_auth(env, "auth-a", &[("USHER_SOFT_LOCK_AFTER", "3")]).await;
            let b = start_auth(env, "auth-b", &[]).await;
            Harness {
                env,
                smtp,
                a,
                b,
                _controller: controller,
            }
        })
        .await;
    (h, h.env.client().await.unwrap())
}

/// An organisation with a profile and one User for a fresh login; returns (org, user, login).
async fn member(client: &Client, permissions: &[&str]) -> (Org, String, String) {
    let profile = profile(client, permissions).await;
    let org = organisation(client).await;
    let ns = wait_ns(client, &org).await;
    let login = login("person");
    let name = unique_user_name();
    Api::<User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &user(&name, &login, &profile))
        .await
        .unwrap();
    (org, name, login)
}

fn unique_user_name() -> String {
    usher_testkit::unique_name("u")
}

/// A member who accepted their invitation; returns (org, user, login).
async fn active_member(
    h: &Harness,
    client: &Client,
    permissions: &[&str],
) -> (Org, String, String) {
    let (org, name, login) = member(client, permissions).await;
    onboard(&h.a, &h.smtp, &login).await;
    wait_phase(client, &org.ns, &name, UserPhase::Active).await;
    (org, name, login)
}

#[tokio::test]
async fn an_invitation_sets_the_password_once_and_explains_a_weak_one() {
    let (h, client) = harness().await;
    let (org, name, login) = member(&client, &["manageCase"]).await;
    let first = invitation_token(&h.smtp, &login, 1).await;

    // Before acceptance the account cannot log in, with the same answer as a wrong password.
    let invited = h.a.login(&login, PASSWORD).await;
    assert_eq!(
        (invited.status, invited.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    // Weak passwords are refused with the reason; the link stays usable.
    for (weak, why) in [
        ("short", "at least 12 characters"),
        ("password1234", "easy to guess"),
        (login.as_str(), "easy to guess"),
    ] {
        let a = eventually(
            "the invitation in the cache",
            Duration::from_secs(10),
            || async {
                let a = h.a.accept(&first, weak).await;
                (a.code() != "invalid_token").then_some(a)
            },
        )
        .await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "weak_password"),
            "{weak}"
        );
        assert!(
            a.body["message"].as_str().unwrap().contains(why),
            "{}",
            a.body
        );
        assert!(
            !a.body["message"].as_str().unwrap().contains(weak),
            "never echoed"
        );
    }

    // A resend replaces the link: the first one stops working.
    Api::<User>::namespaced(client.clone(), &org.ns)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"usher.dev/resend-invitation": "1"}}}),
            ),
        )
        .await
        .unwrap();
    let second = invitation_token(&h.smtp, &login, 2).await;
    assert_ne!(first, second);
    let old = eventually("the old link to stop", Duration::from_secs(10), || async {
        let a = h.b.accept(&first, PASSWORD).await;
        (a.code() == "invalid_token").then_some(a)
    })
    .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST);

    let ok = eventually("the new link", Duration::from_secs(10), || async {
        let a = h.b.accept(&second, PASSWORD).await;
        (a.status == StatusCode::NO_CONTENT).then_some(a)
    })
    .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    // Single use, on either replica.
    for server in [&h.a, &h.b] {
        let again = server.accept(&second, "another Long passphrase 42").await;
        assert_eq!(
            (again.status, again.code()),
            (StatusCode::BAD_REQUEST, "invalid_token")
        );
    }
    wait_phase(&client, &org.ns, &name, UserPhase::Active).await;
    let session = h.a.session(&login, PASSWORD).await;
    let me = h.a.get("/api/v1/me", Some(&session)).await;
    assert_eq!(me.body["login"], login);

    // An expired link says so.
    let (_, _, late) = member(&client, &["manageCase"]).await;
    let token = invitation_token(&h.smtp, &late, 1).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), OPERATOR_NS);
    let account = account_secret(&client, &late).await.unwrap();
    secrets
        .patch(
            account.metadata.name.as_deref().unwrap(),
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"invitation.expiresAt": "2020-01-01T00:00:00Z"}})),
        )
        .await
        .unwrap();
    let expired = eventually("the expiry to be seen", Duration::from_secs(10), || async {
        let a = h.a.accept(&token, PASSWORD).await;
        a.body["message"].as_str()?.contains("expired").then_some(a)
    })
    .await;
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::BAD_REQUEST, "invalid_token")
    );
}

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
    for server in [&h.a, &h.b] {
        eventually(
            "the logout on every replica",
            Duration::from_secs(5),
            || async {
                (server.get("/api/v1/me", Some(&new_cookie)).await.code() == "session_ended")
                    .then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        h.a.get("/api/v1/me", Some(&on_b)).await.status,
        StatusCode::OK
    );

    // "Sign out everywhere" is the person's own Kill Session.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = h.a.session(&login, PASSWORD).await;
    let second = h.b.session(&login, PASSWORD).await;
    let everywhere =
        h.a.post("/api/v1/logout?everywhere=true", json!({}), Some(&first))
            .await;
    assert_eq!(everywhere.status, StatusCode::NO_CONTENT);
    for server in [&h.a, &h.b] {
        eventually(
            "sign-out everywhere on every replica",
            Duration::from_secs(5),
            || async {
                (server.get("/api/v1/me", Some(&second)).await.code() == "session_ended")
                    .then_some(())
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let on_b = h.b.session(&login, PASSWORD).await;

    // Kill Session (the annotation) ends every session of the account at the next request.
    Api::<User>::namespaced(client.clone(), &org1.ns)
        .patch(
            &name1,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"usher.dev/kill-sessions": "k1"}}})),
        )
        .await
        .unwrap();
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
    // Signing in again works (after the second of the kill).
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
async fn sessions_end_when_idle_and_at_their_maximum_lifetime() {
    let (h, client) = harness().await;
    let short = start_auth(
        h.env,
        "auth-short",
        &[
            ("USHER_SESSION_IDLE_TIMEOUT", "3s"),
            ("USHER_SESSION_MAX_LIFETIME", "7s"),
        ],
    )
    .await;
    let (_, _, login) = active_member(h, &client, &["manageCase"]).await;

    let idle = short.session(&login, PASSWORD).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let a = short.get("/api/v1/me", Some(&idle)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNAUTHORIZED, "session_expired")
    );

    // Kept busy, the session outlives the idle timeout but not the maximum lifetime.
    let started = Instant::now();
    let mut cookie = short.session(&login, PASSWORD).await;
    while started.elapsed() < Duration::from_secs(6) {
        let me = short.get("/api/v1/me", Some(&cookie)).await;
        assert_eq!(me.status, StatusCode::OK, "used within the idle timeout");
        if let Some(renewed) = me.cookie() {
            cookie = renewed;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = short.get("/api/v1/me", Some(&cookie)).await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::UNAUTHORIZED, "session_expired")
    );
}

#[tokio::test]
async fn totp_enrolment_codes_once_across_replicas_and_operator_reset() {
    let (h, client) = harness().await;
    let (_, _, login) = active_member(h, &client, &["manageCase"]).await;
    let session = h.a.session(&login, PASSWORD).await;

    let start =
        h.a.post("/api/v1/me/mfa/totp", json!({}), Some(&session))
            .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.body);
    let secret = start.body["secret"].as_str().unwrap().to_owned();
    let uri = start.body["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Usher:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let png = STANDARD
        .decode(start.body["qrPng"].as_str().unwrap())
        .unwrap();
    assert_eq!(zbarimg(&png), uri, "the QR code carries the URI");
    // Pending until confirmed: login still needs no code.
    assert_eq!(h.b.login(&login, PASSWORD).await.status, StatusCode::OK);

    let wrong =
        h.a.post(
            "/api/v1/me/mfa/totp/confirm",
            json!({"code": "000000"}),
            Some(&session),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::BAD_REQUEST, "invalid_code")
    );
    let confirm =
        h.a.post(
            "/api/v1/me/mfa/totp/confirm",
            json!({"code": oathtool(&secret, -30)}),
            Some(&session),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::NO_CONTENT, "{}", confirm.body);
    let again =
        h.a.post("/api/v1/me/mfa/totp", json!({}), Some(&session))
            .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "mfa_already_enrolled")
    );

    // The code is asked only after a correct password.
    let wrong_pw = h.b.login(&login, "Wrong-password-46!").await;
    assert_eq!(wrong_pw.code(), "invalid_credentials");
    let needs = eventually(
        "the enrolment on replica b",
        Duration::from_secs(5),
        || async {
            let a = h.b.login(&login, PASSWORD).await;
            (a.code() == "mfa_required").then_some(a)
        },
    )
    .await;
    assert_eq!(needs.status, StatusCode::UNAUTHORIZED);
    assert!(needs.cookie().is_none());

    // A code works once: replaying it on the other replica is refused.
    let code = oathtool(&secret, 0);
    let with_code = h.b.login_with_code(&login, PASSWORD, &code).await;
    assert_eq!(with_code.status, StatusCode::OK, "{}", with_code.body);
    assert_eq!(with_code.body["mfaEnrolled"], true);
    let replay = h.a.login_with_code(&login, PASSWORD, &code).await;
    assert_eq!(
        (replay.status, replay.code()),
        (StatusCode::UNAUTHORIZED, "invalid_code")
    );
    assert!(
        replay.body["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        replay.body
    );

    // Turning it off takes a fresh code.
    let off =
        h.a.call(
            Method::DELETE,
            "/api/v1/me/mfa/totp",
            Some(json!({"code": oathtool(&secret, 30)})),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.body);
    let no_code = eventually("MFA off on replica b", Duration::from_secs(5), || async {
        let a = h.b.login(&login, PASSWORD).await;
        (a.status == StatusCode::OK).then_some(a)
    })
    .await;
    assert_eq!(no_code.body["mfaEnrolled"], false);

    // The platform operator's reset: enrolment gone and every session ended.
    let s2 = no_code.cookie().unwrap();
    h.b.enroll_totp(&s2, 0).await;
    usher_account(h.env, &["reset-mfa", &login]);
    eventually(
        "the reset to end the session",
        Duration::from_secs(5),
        || async {
            (h.a.get("/api/v1/me", Some(&s2)).await.code() == "session_ended").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = h.a.login(&login, PASSWORD).await;
    assert_eq!(
        after.status,
        StatusCode::OK,
        "no code after a reset: {}",
        after.body
    );
}

#[tokio::test]
async fn an_organisation_requiring_mfa_sends_members_to_enrolment() {
    let (h, client) = harness().await;
    let (org, _, login) = active_member(h, &client, &["manageCase"]).await;
    let orgs = Api::<Organisation>::all(client.clone());
    // Within the grace period (counted from activation) an un-enrolled member works normally.
    orgs.patch(
        &org.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"mfa": {"required": true, "gracePeriod": "1h"}}})),
    )
    .await
    .unwrap();
    let in_grace = eventually("the policy with grace", Duration::from_secs(5), || async {
        let a = h.a.login(&login, PASSWORD).await;
        (a.status == StatusCode::OK && a.body["mfaEnrolmentRequired"] == false).then_some(a)
    })
    .await;
    let graced = in_grace.cookie().unwrap();
    assert_eq!(
        h.a.get("/api/v1/verify", Some(&graced)).await.status,
        StatusCode::OK
    );
    // Without a grace period, enrolment comes first.
    orgs.patch(
        &org.name,
        &PatchParams::default(),
        // null removes the grace period (a merge patch keeps absent fields).
        &Patch::Merge(json!({"spec": {"mfa": {"required": true, "gracePeriod": null}}})),
    )
    .await
    .unwrap();
    let body = eventually("the policy to be seen", Duration::from_secs(5), || async {
        let a = h.a.login(&login, PASSWORD).await;
        (a.body["mfaEnrolmentRequired"] == true).then_some(a)
    })
    .await;
    let session = body.cookie().unwrap();
    let verify = h.a.get("/api/v1/verify", Some(&session)).await;
    assert_eq!(
        (verify.status, verify.code()),
        (StatusCode::FORBIDDEN, "mfa_enrolment_required")
    );
    let secret = h.a.enroll_totp(&session, 0).await;
    assert_eq!(
        h.a.get("/api/v1/verify", Some(&session)).await.status,
        StatusCode::OK
    );
    let off =
        h.a.call(
            Method::DELETE,
            "/api/v1/me/mfa/totp",
            Some(json!({"code": oathtool(&secret, 30)})),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(
        (off.status, off.code()),
        (StatusCode::CONFLICT, "mfa_required_by_organisation")
    );
}

#[tokio::test]
async fn verify_answers_ingress_controllers() {
    let (h, client) = harness().await;
    let (org, _, login) = active_member(h, &client, &["manageCase", "viewAlert"]).await;
    let session = h.b.session(&login, PASSWORD).await;
    let ok = h.b.get("/api/v1/verify", Some(&session)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("x-usher-login").as_deref(), Some(login.as_str()));
    assert_eq!(
        ok.header("x-usher-organisation").as_deref(),
        Some(org.name.as_str())
    );
    assert_eq!(
        ok.header("x-usher-permissions").as_deref(),
        Some("manageCase,viewAlert")
    );
    assert!(ok.header("x-usher-profile").is_some());
    let denied =
        h.b.get("/api/v1/verify?permission=manageUser", Some(&session))
            .await;
    assert_eq!(
        (denied.status, denied.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );
    assert_eq!(
        h.b.get("/api/v1/verify?permission=viewAlert", Some(&session))
            .await
            .status,
        StatusCode::OK
    );

    let none = h.b.get("/api/v1/verify", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"usher\"")
    );
    let forged =
        h.b.get("/api/v1/verify", Some("eyJzaWQiOiJ4In0.AAAA"))
            .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let bad_key =
        h.b.call(
            Method::GET,
            "/api/v1/verify",
            None,
            None,
            Some("usk_notakey"),
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad_key.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"usher\", error=\"invalid_token\"")
    );
    let metrics = reqwest::get(format!("{}/metrics", h.b.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("usher_auth_verify_duration_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("usher_auth_logins_total{outcome=\"ok\"}"),
        "{metrics}"
    );
}

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

/// A member with `spec.apiKey` (and `grace` as its grace period); returns (org, user, login, key).
async fn key_holder(
    h: &Harness,
    client: &Client,
    grace: Option<&str>,
) -> (Org, String, String, String) {
    let (org, name, login) = active_member(h, client, &["manageCase"]).await;
    let mut api_key = json!({"enabled": true});
    if let Some(g) = grace {
        api_key["gracePeriod"] = json!(g);
    }
    Api::<User>::namespaced(client.clone(), &org.ns)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"apiKey": api_key}})),
        )
        .await
        .unwrap();
    let key = wait_key(client, &org.ns, &name, None).await;
    (org, name, login, key)
}

/// The key in the User's Secret once it differs from `not`.
async fn wait_key(client: &Client, ns: &str, user: &str, not: Option<&str>) -> String {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    eventually("the API-key Secret", Duration::from_secs(20), || async {
        let s = secrets.get_opt(&format!("{user}-api-key")).await.ok()??;
        let key = secret_text(&s, "api-key")?;
        (Some(key.as_str()) != not).then_some(key)
    })
    .await
}

/// Status of a Bearer request to `path` on `server`.
async fn with_key(server: &AuthServer, path: &str, key: &str) -> Answer {
    server.call(Method::GET, path, None, None, Some(key)).await
}

#[tokio::test]
async fn api_keys_authenticate_their_membership_and_stop_when_renewed_locked_or_disabled() {
    let (h, client) = harness().await;
    let (org, name, login, key) = key_holder(h, &client, None).await;
    for server in [&h.a, &h.b] {
        let me = eventually("the key in the cache", Duration::from_secs(5), || async {
            let a = with_key(server, "/api/v1/me", &key).await;
            (a.status == StatusCode::OK).then_some(a)
        })
        .await;
        assert_eq!(me.body["login"], login);
        assert_eq!(me.body["organisation"], org.name);
        let v = with_key(server, "/api/v1/verify", &key).await;
        assert_eq!(
            v.header("x-usher-organisation").as_deref(),
            Some(org.name.as_str())
        );
    }
    // Keys cannot log in or use the key's own settings routes.
    let view = with_key(&h.a, "/api/v1/me/api-key", &key).await;
    assert_eq!(
        (view.status, view.code()),
        (StatusCode::FORBIDDEN, "session_required")
    );
    let switch =
        h.a.call(
            Method::POST,
            "/api/v1/me/organisation",
            Some(json!({"organisation": org.name})),
            None,
            Some(&key),
        )
        .await;
    assert_eq!(switch.code(), "session_required");
    // A typo fails the checksum before any lookup.
    let mut typo = key.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let bad = with_key(&h.a, "/api/v1/me", &typo).await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert!(
        bad.body["message"].as_str().unwrap().contains("checksum"),
        "{}",
        bad.body
    );

    // The person sees the key in account settings.
    let session = h.a.session(&login, PASSWORD).await;
    let shown = h.a.get("/api/v1/me/api-key", Some(&session)).await;
    assert_eq!(shown.body["key"], key);

    // Renewal by annotation: the old key stops on the first request after the Secret changed,
    // on every replica.
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    users
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"usher.dev/renew-api-key": "r1"}}})),
        )
        .await
        .unwrap();
    let renewed = wait_key(&client, &org.ns, &name, Some(&key)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for server in [&h.a, &h.b] {
        assert_eq!(
            with_key(server, "/api/v1/verify", &key).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            with_key(server, "/api/v1/verify", &renewed).await.status,
            StatusCode::OK
        );
    }

    // Twelve concurrent renewals from account settings leave one valid key: the Secret's.
    let session_b = h.b.session(&login, PASSWORD).await;
    let renewals = (0..12).map(|i| {
        let (server, cookie) = if i % 2 == 0 {
            (&h.a, session.clone())
        } else {
            (&h.b, session_b.clone())
        };
        async move {
            server
                .post("/api/v1/me/api-key/renew", json!({}), Some(&cookie))
                .await
        }
    });
    let answers = futures::future::join_all(renewals).await;
    let returned: Vec<String> = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .map(|a| a.body["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(!returned.is_empty(), "{answers:?}");
    let stored = wait_key(&client, &org.ns, &name, Some(&renewed)).await;
    assert!(
        returned.contains(&stored),
        "the Secret holds a key some renewal returned"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut valid = Vec::new();
    for k in returned.iter().chain([&key, &renewed]) {
        if with_key(&h.a, "/api/v1/verify", k).await.status == StatusCode::OK {
            valid.push(k.clone());
        }
    }
    valid.dedup();
    assert_eq!(valid, vec![stored.clone()], "exactly one valid key");

    // Locking the membership stops its key; unlocking restores it.
    users
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"locked": true}})),
        )
        .await
        .unwrap();
    eventually(
        "the lock to stop the key",
        Duration::from_secs(5),
        || async {
            (with_key(&h.b, "/api/v1/verify", &stored).await.status == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;
    users
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"locked": false, "apiKey": {"enabled": false}}})),
        )
        .await
        .unwrap();
    // Disabling deletes the Secret: the key stops for good, and settings say there is none.
    eventually(
        "the disabled key to stop",
        Duration::from_secs(20),
        || async {
            let gone =
                Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &org.ns)
                    .get_opt(&format!("{name}-api-key"))
                    .await
                    .ok()?
                    .is_none();
            (gone
                && with_key(&h.b, "/api/v1/verify", &stored).await.status
                    == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;
    let none = h.a.get("/api/v1/me/api-key", Some(&session)).await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::NOT_FOUND, "no_api_key")
    );
}

#[tokio::test]
async fn a_grace_period_keeps_the_previous_key_valid_for_that_long() {
    let (h, client) = harness().await;
    let (_, _, login, key) = key_holder(h, &client, Some("1h")).await;
    let session = h.a.session(&login, PASSWORD).await;
    let renewed =
        h.a.post("/api/v1/me/api-key/renew", json!({}), Some(&session))
            .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let new_key = renewed.body["key"].as_str().unwrap();
    assert_ne!(new_key, key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for k in [key.as_str(), new_key] {
        assert_eq!(
            with_key(&h.b, "/api/v1/verify", k).await.status,
            StatusCode::OK
        );
    }
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
async fn a_renamed_account_keeps_its_password_and_totp() {
    let (h, client) = harness().await;
    let (_, _, login) = active_member(h, &client, &["manageCase"]).await;
    let session = h.b.session(&login, PASSWORD).await;
    let secret = h.b.enroll_totp(&session, -30).await;

    let renamed = login.replace("@example.com", "@renamed.example.com");
    let out = usher_account(h.env, &["rename", &login, &renamed]);
    assert!(out.contains("renamed"), "{out}");
    let needs_code = eventually("the renamed login", Duration::from_secs(10), || async {
        let a = h.b.login(&renamed, PASSWORD).await;
        (a.code() == "mfa_required").then_some(a)
    })
    .await;
    assert_eq!(needs_code.status, StatusCode::UNAUTHORIZED);
    let ok =
        h.b.login_with_code(&renamed, PASSWORD, &oathtool(&secret, 0))
            .await;
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "the same authenticator works: {}",
        ok.body
    );
    assert_eq!(ok.body["login"], renamed);
    assert_eq!(
        h.b.login(&login, PASSWORD).await.code(),
        "invalid_credentials"
    );
}

#[tokio::test]
async fn with_mfa_off_for_the_platform_no_code_is_asked_and_enrolment_is_hidden() {
    let (h, client) = harness().await;
    let off = start_auth(h.env, "auth-mfa-off", &[("USHER_MFA_ENABLED", "false")]).await;
    let (_, _, login) = active_member(h, &client, &["manageCase"]).await;
    // Enrolled through a replica with MFA on…
    let session = h.a.session(&login, PASSWORD).await;
    h.a.enroll_totp(&session, 0).await;
    // …a server with MFA off signs the person in with the password alone and offers no enrolment.
    let ok = eventually("login without a code", Duration::from_secs(10), || async {
        let a = off.login(&login, PASSWORD).await;
        (a.status == StatusCode::OK).then_some(a)
    })
    .await;
    let cookie = ok.cookie().unwrap();
    let hidden = off
        .post("/api/v1/me/mfa/totp", json!({}), Some(&cookie))
        .await;
    assert_eq!(
        (hidden.status, hidden.code()),
        (StatusCode::NOT_FOUND, "mfa_disabled")
    );
}

#[tokio::test]
async fn deleting_a_user_stops_its_key() {
    let (h, client) = harness().await;
    let (org, name, _, key) = key_holder(h, &client, None).await;
    eventually("the key to work", Duration::from_secs(10), || async {
        (with_key(&h.a, "/api/v1/verify", &key).await.status == StatusCode::OK).then_some(())
    })
    .await;
    Api::<User>::namespaced(client.clone(), &org.ns)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    for server in [&h.a, &h.b] {
        eventually(
            "the deleted membership's key to stop",
            Duration::from_secs(20),
            || async {
                (with_key(server, "/api/v1/verify", &key).await.status == StatusCode::UNAUTHORIZED)
                    .then_some(())
            },
        )
        .await;
    }
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
    let metrics = reqwest::get(format!("{}/metrics", server.base))
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
