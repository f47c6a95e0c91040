//! TOTP: enrolment, codes accepted once across replicas, the operator's reset, organisations
//! requiring MFA, MFA off for the platform, renamed accounts keeping theirs.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use usher_crds::Organisation;

use crate::{
    common::{auth::*, *},
    *,
};

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
