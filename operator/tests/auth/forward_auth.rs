//! Forward-auth: `/api/v1/verify` answers ingress controllers.

use kube::{Api, api::PostParams};
use reqwest::{Method, StatusCode};
use usher_crds::User;

use crate::{
    common::{auth::*, *},
    *,
};

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
    // Every login has its own identity header: one with characters beyond visible ASCII is
    // percent-encoded (before, such logins all had an empty X-Usher-Login), and the account id
    // comes beside it.
    let profile = profile(&client, &["manageCase"]).await;
    let other = organisation(&client).await;
    let ns = wait_ns(&client, &other).await;
    let unicode = format!("jürgen-{}", crate::common::login("u"));
    // The test SMTP server takes no UTF-8 addresses, so the account is made active here, as an
    // accepted invitation leaves it, before its User exists.
    use argon2::password_hash::PasswordHasher;
    let mut account = usher_operator::Account::new(&unicode);
    account.password_hash = Some(
        argon2::Argon2::default()
            .hash_password(PASSWORD.as_bytes())
            .unwrap()
            .to_string(),
    );
    account.activated_at = Some(k8s_openapi::jiff::Timestamp::now());
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), OPERATOR_NS)
        .create(&PostParams::default(), &account.to_secret(OPERATOR_NS))
        .await
        .unwrap();
    Api::<User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &user("jurgen", &unicode, &profile))
        .await
        .unwrap();
    let jurgen = h.b.session(&unicode, PASSWORD).await;
    let ok = h.b.get("/api/v1/verify", Some(&jurgen)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let expected = unicode.replace('ü', "%C3%BC");
    assert_eq!(
        ok.header("x-usher-login").as_deref(),
        Some(expected.as_str())
    );
    assert_eq!(
        ok.header("x-usher-account").as_deref(),
        Some(usher_operator::account_id(&unicode).as_str())
    );

    // Metrics are served on their own listener, not on the public port.
    assert_eq!(
        h.b.get("/metrics", None).await.status,
        StatusCode::NOT_FOUND
    );
    let metrics = reqwest::get(format!("{}/metrics", h.b.metrics))
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
