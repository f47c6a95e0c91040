//! The OpenID Connect signing keys: made by the controller on start, rotated on schedule, the
//! retired ones still published by the auth server until their tokens have expired.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;
use usher_testkit::SmtpSink;

use crate::common::{auth::start_auth, *};

async fn kids(base: &str) -> Option<Vec<String>> {
    let jwks: Value = reqwest::get(format!("{base}/oauth2/jwks"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        jwks["keys"]
            .as_array()?
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect(),
    )
}

#[tokio::test]
async fn keys_are_made_rotated_and_the_retired_ones_stay_published() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let _controller = start_controller_with(
        env,
        &smtp.url(),
        "signing-keys-controller",
        usher_testkit::free_port().unwrap(),
        &[("USHER_OIDC_KEY_ROTATION", "10s")],
    );
    let auth = start_auth(env, "signing-keys-auth", &[]).await;
    let first = eventually(
        "an RSA and a P-256 key",
        Duration::from_secs(30),
        || async { kids(&auth.base).await.filter(|k| k.len() == 2) },
    )
    .await;
    let rotated = eventually("a rotation", Duration::from_secs(40), || async {
        kids(&auth.base).await.filter(|k| k.len() == 4)
    })
    .await;
    assert!(
        first.iter().all(|k| rotated.contains(k)),
        "the retired keys stay published: {first:?} {rotated:?}"
    );
    let stored = Api::<Secret>::namespaced(client, OPERATOR_NS)
        .get("usher-oidc-keys")
        .await
        .unwrap();
    let set: Value = serde_json::from_slice(&stored.data.unwrap()["keys.json"].0).unwrap();
    for key in set["keys"].as_array().unwrap() {
        let retired = key.get("retiredAt").is_some();
        assert_eq!(
            retired,
            first.contains(&key["kid"].as_str().unwrap().to_owned()),
            "{key}"
        );
        assert!(key.get("pem").is_some());
    }
}
