//! Forward-auth: `/api/v1/verify` answers ingress controllers.

use reqwest::{Method, StatusCode};

use crate::{common::auth::*, *};

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
    // Metrics are served on their own listener, not on the public port.
    assert_eq!(h.b.get("/metrics", None).await.status, StatusCode::NOT_FOUND);
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
