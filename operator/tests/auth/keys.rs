//! API keys: Bearer authentication of one membership, renewal, locking, disabling, deletion,
//! and the grace period.

use std::time::Duration;

use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use usher_crds::User;

use crate::{
    common::{auth::*, *},
    *,
};

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
    for server in [&h.a, &h.b] {
        // Once a replica's cache holds the account that records the new key, the old one stops.
        eventually(
            "the renewed key to work",
            Duration::from_secs(10),
            || async {
                (with_key(server, "/api/v1/verify", &renewed).await.status == StatusCode::OK)
                    .then_some(())
            },
        )
        .await;
        assert_eq!(
            with_key(server, "/api/v1/verify", &key).await.status,
            StatusCode::UNAUTHORIZED
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
    // The controller delivers each renewal's key as it lands; once the last one is delivered,
    // the Secret holds the one key that works, and it is one a renewal returned.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &org.ns);
    let candidates: Vec<String> = returned.iter().chain([&key, &renewed]).cloned().collect();
    let stored = eventually(
        "exactly one valid key, the delivered one",
        Duration::from_secs(20),
        || async {
            let s = secrets.get_opt(&format!("{name}-api-key")).await.ok()??;
            let stored = secret_text(&s, "api-key")?;
            let mut valid = Vec::new();
            for k in &candidates {
                if with_key(&h.a, "/api/v1/verify", k).await.status == StatusCode::OK {
                    valid.push(k.clone());
                }
            }
            valid.dedup();
            (valid == vec![stored.clone()]).then_some(stored)
        },
    )
    .await;
    assert!(
        returned.contains(&stored),
        "the Secret holds a key some renewal returned"
    );

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
    eventually(
        "the new key on the other replica",
        Duration::from_secs(10),
        || async {
            (with_key(&h.b, "/api/v1/verify", new_key).await.status == StatusCode::OK).then_some(())
        },
    )
    .await;
    assert_eq!(
        with_key(&h.b, "/api/v1/verify", &key).await.status,
        StatusCode::OK,
        "the old key within its grace period"
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
