//! Whether a login exists shows nowhere, also with two replicas: a login is soft-locked in its
//! account (every replica honours it), an unknown one only in the memory of the replica that
//! counted its failures. Were the account's lock answered with a 429, another replica would
//! tell the two apart.

use reqwest::StatusCode;

use crate::{common::auth::*, common::*, *};

#[tokio::test]
async fn another_replica_answers_a_locked_login_and_an_unknown_one_alike() {
    let (h, client) = harness().await;
    let (_org, _name, known) = active_member(h, &client, &["manageCase"]).await;
    let unknown = login("nobody");
    // Replica a soft-locks after 3 failures.
    for login in [&known, &unknown] {
        for _ in 0..3 {
            h.a.login(login, "Wrong-password-47!").await;
        }
    }
    eventually(
        "the soft lock in the account",
        std::time::Duration::from_secs(10),
        || async { account(&client, &known).await?.locked_until.map(|_| ()) },
    )
    .await;
    // The other replica has counted nothing for either.
    let k = h.b.login(&known, "Wrong-password-47!").await;
    let u = h.b.login(&unknown, "Wrong-password-47!").await;
    assert_eq!(
        (k.status, k.code()),
        (u.status, u.code()),
        "{} / {}",
        k.body,
        u.body
    );
    assert_eq!(k.body, u.body);
    assert_eq!(k.status, StatusCode::UNAUTHORIZED);
    // While locked, even the right password gets the same answer.
    let right = h.b.login(&known, PASSWORD).await;
    assert_eq!(right.code(), "invalid_credentials", "{}", right.body);
}
