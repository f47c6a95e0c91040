//! Passwords after the invitation: changing one's own, the reset by email (asked for by the
//! person, an admin, the annotation or `usher account`), and re-authentication before sensitive
//! actions. The reset mail comes from the real controller through the real SMTP sink.

use std::time::Duration;

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use usher_crds::User;

use crate::{
    common::{auth::*, *},
    *,
};

const NEW_PASSWORD: &str = "Ganymede-7!rusty-kettle-42";

async fn ask_reset(server: &AuthServer, login: &str) -> crate::common::auth::Answer {
    server
        .post("/api/v1/password-reset", json!({"login": login}), None)
        .await
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_every_other_session() {
    let (h, client) = harness().await;
    let (_org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let here = h.a.session(&login, PASSWORD).await;
    let elsewhere = h.b.session(&login, PASSWORD).await;

    let change = |current: &str, new: &str, cookie: &str| {
        let body = json!({"currentPassword": current, "newPassword": new});
        let cookie = cookie.to_owned();
        async move { h.a.post("/api/v1/me/password", body, Some(&cookie)).await }
    };
    let wrong = change("not-the-password-at-all", NEW_PASSWORD, &here).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let weak = change(PASSWORD, "password123", &here).await;
    assert_eq!(
        (weak.status, weak.code()),
        (StatusCode::BAD_REQUEST, "weak_password")
    );
    let with_login = change(PASSWORD, &format!("{login}{login}"), &here).await;
    assert_eq!(with_login.code(), "weak_password", "{}", with_login.body);
    let no_session =
        h.a.post(
            "/api/v1/me/password",
            json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(no_session.status, StatusCode::UNAUTHORIZED);

    let done = change(PASSWORD, NEW_PASSWORD, &here).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    let renewed = done.cookie().expect("the changing session is issued again");
    assert_ne!(renewed, here);
    ended_everywhere(h, &elsewhere, "the other session to end").await;
    ended_everywhere(h, &here, "the old cookie of this session to end").await;
    for server in [&h.a, &h.b] {
        let me = server.get("/api/v1/me", Some(&renewed)).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    }
    assert_eq!(
        h.b.login(&login, PASSWORD).await.code(),
        "invalid_credentials",
        "the old password stops"
    );
    h.b.session(&login, NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_reset_link_goes_only_to_accounts_that_can_sign_in_and_says_nothing_about_others() {
    let (h, client) = harness().await;
    let (_org, _name, active) = active_member(h, &client, &["manageCase"]).await;
    let (_org2, _name2, invited) = member(&client, &["manageCase"]).await;
    invitation_token(&h.smtp, &invited, 1).await;
    let unknown = login("nobody");

    let answers = [
        ask_reset(&h.b, &active).await,
        ask_reset(&h.b, &invited).await,
        ask_reset(&h.b, &unknown).await,
        ask_reset(&h.b, "not an email").await,
    ];
    for a in &answers {
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
        assert_eq!(a.body, answers[0].body, "every login gets the same answer");
    }
    let token = reset_token(&h.smtp, &active, 1).await;
    let mail = &reset_emails(&h.smtp, &active)[0];
    assert!(
        mail.link_to("reset")
            .unwrap()
            .starts_with(&format!("{PUBLIC_URL}/reset#token=")),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("If this was not you"), "{}", mail.text);
    assert!(!mail.raw.contains(PASSWORD));
    // The server recorded a request for the active login only; the controller mailed it once.
    reset_recorded(&client, &active).await;
    let invited_account = account(&client, &invited).await.unwrap();
    assert_eq!(
        invited_account.reset.requested_at, None,
        "nothing asked for {invited}"
    );
    assert!(account(&client, &unknown).await.is_none());
    assert_eq!(
        reset_emails(&h.smtp, &active).len(),
        1,
        "one request, one email"
    );
    assert!(
        reset_emails(&h.smtp, &invited).is_empty(),
        "an invited login has its invitation"
    );
    assert_eq!(h.smtp.emails_to(&invited).unwrap().len(), 1);
    assert!(h.smtp.emails_to(&unknown).unwrap().is_empty());
    // The account keeps only the token's hash.
    let secret = account_secret(&client, &active).await.unwrap();
    let stored = secret_text(&secret, "reset.tokenHash").unwrap();
    assert_eq!(stored, usher_operator::hash_token(&token));
    assert!(!format!("{secret:?}").contains(&token));

    // A flood of requests for one login is throttled (and mails no more).
    let mut throttled = None;
    for _ in 0..4 {
        let a = ask_reset(&h.b, &unknown).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(a);
            break;
        }
    }
    let throttled = throttled.expect("the fourth request in a row is throttled");
    assert_eq!(throttled.code(), "too_many_attempts");
    assert!(throttled.header("retry-after").is_some());
}

#[tokio::test]
async fn a_reset_link_works_once_replaces_the_older_one_ends_sessions_and_keeps_mfa() {
    let (h, client) = harness().await;
    let (_org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let session = h.a.session(&login, PASSWORD).await;
    // Confirmed with the previous step's code, so the current one is still unused.
    let totp = h.a.enroll_totp(&session, -30).await;

    assert_eq!(ask_reset(&h.a, &login).await.status, StatusCode::ACCEPTED);
    let first = reset_token(&h.smtp, &login, 1).await;
    assert_eq!(ask_reset(&h.a, &login).await.status, StatusCode::ACCEPTED);
    let second = reset_token(&h.smtp, &login, 2).await;
    assert_ne!(first, second);

    let accept = |token: &str, password: &str| {
        let body = json!({"token": token, "password": password});
        async move { h.b.post("/api/v1/password-reset/accept", body, None).await }
    };
    let replaced = accept(&first, NEW_PASSWORD).await;
    assert_eq!(
        (replaced.status, replaced.code()),
        (StatusCode::BAD_REQUEST, "invalid_token"),
        "the newer link replaces the older"
    );
    let mut tampered = second.clone();
    tampered.replace_range(..1, if second.starts_with('A') { "B" } else { "A" });
    assert_eq!(
        accept(&tampered, NEW_PASSWORD).await.code(),
        "invalid_token"
    );
    assert_eq!(accept(&second, "password123").await.code(), "weak_password");
    // The link still works after a refused password; it works once.
    let done = eventually(
        "replica b to see the link",
        Duration::from_secs(10),
        || async {
            let a = accept(&second, NEW_PASSWORD).await;
            (a.status == StatusCode::NO_CONTENT).then_some(a)
        },
    )
    .await;
    assert!(done.cookie().is_none(), "a reset does not sign in");
    assert_eq!(
        accept(&second, "Another-fine-passphrase-99").await.code(),
        "invalid_token"
    );
    ended_everywhere(h, &session, "the sessions to end after the reset").await;
    assert_eq!(
        h.a.login(&login, PASSWORD).await.code(),
        "invalid_credentials"
    );
    // Two-factor authentication stays: the new password alone does not sign in.
    let asked = eventually(
        "replica a to see the new password",
        Duration::from_secs(10),
        || async {
            let a = h.a.login(&login, NEW_PASSWORD).await;
            (a.code() == "mfa_required").then_some(a)
        },
    )
    .await;
    assert_eq!(asked.status, StatusCode::UNAUTHORIZED);
    let signed_in =
        h.a.login_with_code(&login, NEW_PASSWORD, &oathtool(&totp, 0))
            .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
}

#[tokio::test]
async fn admins_the_annotation_and_the_platform_operator_each_send_one_reset_link() {
    let (h, client) = harness().await;
    let (org, target, login) = active_member(h, &client, &["manageCase"]).await;
    let admin_login = active_admin(h, &client, &org, "the-admin").await;
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    let admin = h.a.session(&admin_login, PASSWORD).await;

    // An admin of the organisation, through the API.
    let path = format!("/api/v1/users/{target}/reset-password");
    let asked = h.a.post(&path, json!({}), Some(&admin)).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    reset_token(&h.smtp, &login, 1).await;
    // A member without manageUser cannot.
    let as_member = h.a.session(&login, PASSWORD).await;
    let refused =
        h.a.post(
            "/api/v1/users/the-admin/reset-password",
            json!({}),
            Some(&as_member),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );

    // The annotation, as `kubectl usher reset-password` sets it.
    users
        .patch(
            &target,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"usher.dev/reset-password": "r1"}}})),
        )
        .await
        .unwrap();
    reset_token(&h.smtp, &login, 2).await;

    // The platform operator, on the account.
    let out = usher_account(h.env, &["reset-password", &login]);
    assert!(out.contains("reset link goes to"), "{out}");
    let last = reset_token(&h.smtp, &login, 3).await;

    // Each sent one link, and the Events say who asked and that it went out.
    reset_recorded(&client, &login).await;
    assert_eq!(reset_emails(&h.smtp, &login).len(), 3);
    let events = eventually("both reset Events", Duration::from_secs(10), || async {
        let events = h
            .env
            .kubectl_ok(&["get", "events", "-n", &org.ns, "-o", "json"])
            .unwrap();
        (events.contains("PasswordResetRequested") && events.contains("PasswordResetSent"))
            .then_some(events)
    })
    .await;
    assert!(!events.contains(&last));
    // An invited login cannot be sent one by the platform operator either: it has its
    // invitation.
    let (_o, _n, invited) = member(&client, &["manageCase"]).await;
    invitation_token(&h.smtp, &invited, 1).await;
    let (ok, out) = run_usher_account(h.env, &["reset-password", &invited]);
    assert!(
        !ok && out.contains("has not accepted its invitation"),
        "{out}"
    );
}

/// The window itself is crossed on a moved clock in `router.rs`; here, re-authenticating on a
/// real server.
#[tokio::test]
async fn reauthenticating_takes_the_password_and_not_an_api_key() {
    let (h, client) = harness().await;
    let (_org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let quick = &h.b;
    let cookie = quick.session(&login, PASSWORD).await;
    let wrong = quick
        .post(
            "/api/v1/me/reauthenticate",
            json!({"password": "not-the-password-at-all"}),
            Some(&cookie),
        )
        .await;
    assert_eq!(wrong.code(), "invalid_credentials");
    let again = quick
        .post(
            "/api/v1/me/reauthenticate",
            json!({"password": PASSWORD}),
            Some(&cookie),
        )
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "{}", again.body);
    let fresh = again.cookie().unwrap();
    // A new session id: a copy of the cookie from before (fixed, stolen) ends, on every replica.
    ended_everywhere(
        h,
        &cookie,
        "the cookie from before re-authentication to end",
    )
    .await;
    assert_eq!(
        quick.get("/api/v1/me", Some(&fresh)).await.status,
        StatusCode::OK
    );
    let start = quick
        .post("/api/v1/me/mfa/totp", json!({}), Some(&fresh))
        .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.body);
    // API keys cannot re-authenticate: a key is not a person.
    let by_key = quick
        .call(
            Method::POST,
            "/api/v1/me/reauthenticate",
            Some(json!({"password": PASSWORD})),
            None,
            Some("usher_not_a_real_key"),
        )
        .await;
    assert_eq!(
        (by_key.status, by_key.code()),
        (StatusCode::FORBIDDEN, "session_required")
    );
}

#[tokio::test]
async fn a_stolen_session_cannot_guess_its_way_to_turning_totp_off() {
    let (h, client) = harness().await;
    let (_org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let cookie = h.a.session(&login, PASSWORD).await;
    let secret = h.a.enroll_totp(&cookie, -30).await;
    // Replica a soft-locks after three failures (USHER_SOFT_LOCK_AFTER=3): code guesses on
    // the disable route count as failed sign-ins, so the guesser is stopped.
    let guess = |code: &'static str| {
        let cookie = cookie.clone();
        async move {
            h.a.call(
                Method::DELETE,
                "/api/v1/me/mfa/totp",
                Some(json!({"code": code})),
                Some(&cookie),
                None,
            )
            .await
        }
    };
    let mut answers = Vec::new();
    for code in ["000000", "111111", "222222", "333333", "444444", "555555"] {
        answers.push(guess(code).await);
    }
    assert!(
        answers
            .iter()
            .any(|a| a.status == StatusCode::TOO_MANY_REQUESTS && a.code() == "too_many_attempts"),
        "{:?}",
        answers
            .iter()
            .map(|a| a.code().to_owned())
            .collect::<Vec<_>>()
    );
    // Not even the right code gets through now; TOTP stays on and the account is soft-locked.
    let right =
        h.a.call(
            Method::DELETE,
            "/api/v1/me/mfa/totp",
            Some(json!({"code": oathtool(&secret, 0)})),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        right.body
    );
    let secret_now = account_secret(&client, &login).await.unwrap();
    assert!(secret_text(&secret_now, "totp.secret").is_some());
    eventually(
        "the soft lock on every replica",
        Duration::from_secs(10),
        || async {
            (h.b.login(&login, PASSWORD).await.status == StatusCode::TOO_MANY_REQUESTS)
                .then_some(())
        },
    )
    .await;
}
