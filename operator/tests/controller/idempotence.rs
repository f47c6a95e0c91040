//! A settled User reconciled again makes zero writes.

use std::time::Duration;

use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use usher_crds::{Organisation, Profile, User, UserPhase};

use crate::{common::*, *};

#[tokio::test]
async fn a_settled_user_reconciled_again_makes_zero_writes() {
    let (_, client) = harness().await;
    let p = profile(&client, &["manageCase"]).await;
    let a = organisation(&client).await;
    let login = login("frank");
    let users: Api<User> = Api::namespaced(client.clone(), &wait_ns(&client, &a).await);
    users
        .create(&PostParams::default(), &user("frank", &login, &p))
        .await
        .unwrap();
    wait_phase(&client, &a.ns, "frank", UserPhase::Invited).await;
    // Let the follow-up reconciles (finalizer, status, organisation and profile counts) finish:
    // the three objects keep their resourceVersions for two seconds (the machine may be busy).
    let versions = || async {
        let u = users.get("frank").await.unwrap().resource_version();
        let s = account_secret(&client, &login)
            .await
            .unwrap()
            .resource_version();
        let o = Api::<Organisation>::all(client.clone())
            .get(&a.name)
            .await
            .unwrap()
            .resource_version();
        (u, s, o)
    };
    let mut last = versions().await;
    let mut still = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while still < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the User never settled"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = versions().await;
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let (before_user, before_account, before_org) = last;

    // Changing the profile's description triggers a reconcile of its Users and nothing else.
    let patch = serde_json::json!({"spec": {"description": "touched"}});
    Api::<Profile>::all(client.clone())
        .patch(&p, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(
        users.get("frank").await.unwrap().resource_version(),
        before_user,
        "User written"
    );
    assert_eq!(
        account_secret(&client, &login)
            .await
            .unwrap()
            .resource_version(),
        before_account,
        "account written"
    );
    assert_eq!(
        Api::<Organisation>::all(client.clone())
            .get(&a.name)
            .await
            .unwrap()
            .resource_version(),
        before_org,
        "Organisation written"
    );
}

mod api_keys {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use usher_operator::ApiKey;

    fn key_of(secret: &Secret) -> ApiKey {
        let raw = secret_text(secret, "api-key").unwrap();
        ApiKey::parse(&raw).expect("a well-formed key with a valid checksum")
    }

    async fn app_user(client: &Client, api_key: serde_json::Value) -> (Api<User>, Api<Secret>) {
        let p = profile(client, &[]).await;
        let org = organisation(client).await;
        let ns = wait_ns(client, &org).await;
        let mut u = user("app", &login("app"), &p);
        u.spec.api_key = serde_json::from_value(api_key).unwrap();
        let users: Api<User> = Api::namespaced(client.clone(), &ns);
        users.create(&PostParams::default(), &u).await.unwrap();
        (users, Api::namespaced(client.clone(), &ns))
    }

    async fn secret(secrets: &Api<Secret>, pred: impl Fn(&Secret) -> bool) -> Secret {
        eventually("the API-key Secret", Duration::from_secs(20), || async {
            secrets
                .get_opt("app-api-key")
                .await
                .ok()
                .flatten()
                .filter(|s| pred(s))
        })
        .await
    }

    async fn annotate(users: &Api<User>, key: &str, value: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        users
            .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_enabled_key_is_written_to_an_owned_labelled_secret_and_reported_by_fingerprint() {
        let (_, client) = harness().await;
        let (users, secrets) = app_user(&client, serde_json::json!({"enabled": true})).await;
        let s = secret(&secrets, |_| true).await;
        let key = key_of(&s);
        assert_eq!(
            s.labels().get("usher.dev/user").map(String::as_str),
            Some("app")
        );
        assert!(s.labels().contains_key("usher.dev/organisation"));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("User", "app"));
        let status = eventually("status.apiKey", Duration::from_secs(20), || async {
            users.get("app").await.ok()?.status?.api_key
        })
        .await;
        assert_eq!(status.secret_name.as_deref(), Some("app-api-key"));
        assert_eq!(status.fingerprint, Some(key.fingerprint()));
        let raw = serde_json::to_string(&users.get("app").await.unwrap()).unwrap();
        assert!(
            !raw.contains(key.expose()),
            "the key never appears in the User"
        );

        // A deleted Secret is put back, with the key the account records.
        secrets
            .delete("app-api-key", &DeleteParams::default())
            .await
            .unwrap();
        let again = secret(&secrets, |s| secret_text(s, "api-key").is_some()).await;
        assert_eq!(key_of(&again), key);

        // Disabling deletes the Secret and clears the status.
        let patch = serde_json::json!({"spec": {"apiKey": {"enabled": false}}});
        users
            .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        eventually("the Secret to go", Duration::from_secs(20), || async {
            secrets
                .get_opt("app-api-key")
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
        eventually("status.apiKey to go", Duration::from_secs(20), || async {
            users
                .get("app")
                .await
                .ok()?
                .status?
                .api_key
                .is_none()
                .then_some(())
        })
        .await;
    }

    #[tokio::test]
    async fn renewal_replaces_the_key_at_once_and_a_grace_period_keeps_only_the_old_hash() {
        let (_, client) = harness().await;
        let (users, secrets) = app_user(&client, serde_json::json!({"enabled": true})).await;
        let first = key_of(&secret(&secrets, |_| true).await);
        annotate(&users, "usher.dev/renew-api-key", "r1").await;
        let s = secret(&secrets, |s| key_of(s) != first).await;
        let recorded = |record: serde_json::Value| record["apiKey"].clone();
        let login = users.get("app").await.unwrap().spec.login;
        let ns = users.get("app").await.unwrap().metadata.namespace.unwrap();
        let membership = || async {
            let secret = account_secret(&client, &login).await.unwrap();
            let all: serde_json::Value =
                serde_json::from_str(&secret_text(&secret, "memberships").unwrap()).unwrap();
            all[format!("{ns}/app")].clone()
        };
        assert_eq!(
            recorded(membership().await)["previousHash"],
            serde_json::Value::Null,
            "gracePeriod 0s: the old key stops at once"
        );
        assert_eq!(
            s.data.as_ref().unwrap().len(),
            1,
            "the Secret holds the key only"
        );
        let second = key_of(&s);

        let patch =
            serde_json::json!({"spec": {"apiKey": {"enabled": true, "gracePeriod": "10m"}}});
        users
            .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        annotate(&users, "usher.dev/renew-api-key", "r2").await;
        let s = secret(&secrets, |s| key_of(s) != second).await;
        // The previous key's hash and deadline live in the account, not in the Secret.
        let record = recorded(membership().await);
        assert_eq!(record["previousHash"], serde_json::json!(second.hash()));
        assert!(record["previousUntil"].is_string());
        assert_eq!(record["hash"], serde_json::json!(key_of(&s).hash()));
        assert!(!serde_json::to_string(&s).unwrap().contains(second.expose()));
        assert_eq!(s.data.as_ref().unwrap().len(), 1);
        eventually("renewal recorded", Duration::from_secs(20), || async {
            let u = users.get("app").await.ok()?;
            (u.status?.observed_actions?.renew_api_key.as_deref() == Some("r2")).then_some(())
        })
        .await;
    }

    #[tokio::test]
    async fn rapid_renewals_leave_one_key_which_status_names() {
        let (_, client) = harness().await;
        let (users, secrets) = app_user(&client, serde_json::json!({"enabled": true})).await;
        secret(&secrets, |_| true).await;
        for i in 0..12 {
            annotate(&users, "usher.dev/renew-api-key", &format!("burst-{i}")).await;
        }
        eventually(
            "the last renewal to be recorded",
            Duration::from_secs(30),
            || async {
                let u = users.get("app").await.ok()?;
                (u.status?.observed_actions?.renew_api_key.as_deref() == Some("burst-11"))
                    .then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let key = key_of(&secrets.get("app-api-key").await.unwrap());
        let status = users
            .get("app")
            .await
            .unwrap()
            .status
            .unwrap()
            .api_key
            .unwrap();
        assert_eq!(
            status.fingerprint,
            Some(key.fingerprint()),
            "status names the key in the Secret"
        );
    }

    /// Moves the issue time of the key of `users`' User "app" back by `age`, as the clock would
    /// have it after that long (the account watch wakes the User, as any account change does).
    async fn age_key(client: &Client, users: &Api<User>, age: Duration) {
        let user = users.get("app").await.unwrap();
        let store = usher_operator::AccountStore::new(client.clone(), OPERATOR_NS);
        let account = store.get(&user.spec.login).await.unwrap().unwrap();
        let at = k8s_openapi::jiff::Timestamp::now() - age;
        store
            .modify(account, |a| {
                let record = a
                    .memberships
                    .get_mut(&usher_operator::membership_key(&user))
                    .and_then(|m| m.api_key.as_mut());
                Ok::<_, usher_operator::StoreError>(record.map(|k| k.issued_at = at).is_some())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn rotate_every_renews_a_key_once_it_is_older_than_the_period() {
        let (_, client) = harness().await;
        let (users, secrets) = app_user(
            &client,
            serde_json::json!({"enabled": true, "rotateEvery": "1h"}),
        )
        .await;
        let first = key_of(&secret(&secrets, |_| true).await);
        // An hour and a minute old: due, renewed at once (not an hour from now).
        age_key(&client, &users, Duration::from_secs(61 * 60)).await;
        let second = key_of(&secret(&secrets, |s| key_of(s) != first).await);
        assert_ne!(second, first);
    }
}
