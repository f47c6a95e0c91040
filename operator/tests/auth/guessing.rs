//! Guessing that never ends: the soft lock of a replica forgets after a quarter of an hour, so
//! an attacker who holds the password could go on guessing codes for ever, a few an hour.
//! Failures are counted in the account (across replicas and restarts); the hundredth wrong code
//! in a row stops code sign-in until the platform operator unlocks it (or the person resets the
//! password), and the person is told by email.

use std::time::Duration;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use reqwest::StatusCode;

use crate::{common::auth::*, common::*, *};

#[tokio::test]
async fn the_hundredth_wrong_code_in_a_row_stops_code_sign_in_until_unlocked() {
    let (h, client) = harness().await;
    let (_org, _name, login) = active_member(h, &client, &["manageCase"]).await;
    let server = &h.b;
    let cookie = server.session(&login, PASSWORD).await;
    let secret = server.enroll_totp(&cookie, -30).await;

    // A wrong code is counted in the account, where every replica reads it.
    let wrong = server.login_with_code(&login, PASSWORD, "000000").await;
    assert_eq!(wrong.code(), "invalid_code", "{}", wrong.body);
    assert_eq!(account(&client, &login).await.unwrap().guesses.code, 1);

    // 98 more, spread over days and replicas (written as the auth servers would have).
    let id = usher_operator::account_id(&login);
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NS)
        .patch(
            &usher_operator::secret_name(&id),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "data": {"guesses": ByteString(br#"{"code":99}"#.to_vec())}
            })),
        )
        .await
        .unwrap();
    // The hundredth (the server counts on the account as stored, not on its cache).
    let wrong = server.login_with_code(&login, PASSWORD, "000000").await;
    assert_eq!(wrong.code(), "invalid_code", "{}", wrong.body);
    assert_eq!(account(&client, &login).await.unwrap().guesses.code, 100);

    // Now even the right code is refused, on every replica, and the person is told.
    for s in [&h.a, &h.b] {
        eventually("code sign-in to stop", Duration::from_secs(10), || async {
            let a = s
                .login_with_code(&login, PASSWORD, &oathtool(&secret, 0))
                .await;
            (a.code() == "code_locked").then_some(())
        })
        .await;
    }
    let told = eventually("the email saying so", Duration::from_secs(30), || async {
        h.smtp
            .emails_to(&login)
            .unwrap()
            .into_iter()
            .find(|m| m.subject == "Sign-in to your account stopped")
    })
    .await;
    assert!(told.text.contains("100 wrong attempts"), "{}", told.text);
    assert!(told.text.contains("two-factor code"), "{}", told.text);

    // The platform operator unlocks it; the right code works again.
    let out = usher_account(h.env, &["unlock", &login]);
    assert!(out.contains("unlocked"), "{out}");
    let back = eventually("code sign-in again", Duration::from_secs(10), || async {
        let a = server
            .login_with_code(&login, PASSWORD, &oathtool(&secret, 30))
            .await;
        (a.status == StatusCode::OK).then_some(a)
    })
    .await;
    assert!(back.cookie().is_some());
    assert!(account(&client, &login).await.unwrap().guesses.is_empty());
}
