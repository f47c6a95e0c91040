//! Memberships of an account: activation, lock and Kill Session in every membership, deletion
//! with the last one, and a changed login moving the membership.

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use usher_crds::{User, UserPhase};

use crate::{common::*, *};

#[tokio::test]
async fn activation_lock_and_kill_sessions_are_reflected_in_every_membership() {
    let (_, client) = harness().await;
    let p = profile(&client, &[]).await;
    let (a, b) = (organisation(&client).await, organisation(&client).await);
    let login = login("bob");
    for org in [&a, &b] {
        Api::<User>::namespaced(client.clone(), &wait_ns(&client, org).await)
            .create(&PostParams::default(), &user("bob", &login, &p))
            .await
            .unwrap();
    }
    wait_phase(&client, &a.ns, "bob", UserPhase::Invited).await;
    wait_phase(&client, &b.ns, "bob", UserPhase::Invited).await;

    activate(&client, &login).await;
    for org in [&a, &b] {
        let u = wait_phase(&client, &org.ns, "bob", UserPhase::Active).await;
        let s = u.status.unwrap();
        assert!(s.activated_at.is_some() && s.invitation.is_none(), "{s:?}");
        assert_eq!(s.mfa_enrolled, Some(true), "{s:?}");
    }

    // Locking one membership leaves the other active.
    let users_a: Api<User> = Api::namespaced(client.clone(), &a.ns);
    let lock = |locked: bool| serde_json::json!({"spec": {"locked": locked}});
    users_a
        .patch("bob", &PatchParams::default(), &Patch::Merge(&lock(true)))
        .await
        .unwrap();
    wait_phase(&client, &a.ns, "bob", UserPhase::Locked).await;
    wait_phase(&client, &b.ns, "bob", UserPhase::Active).await;
    users_a
        .patch("bob", &PatchParams::default(), &Patch::Merge(&lock(false)))
        .await
        .unwrap();
    wait_phase(&client, &a.ns, "bob", UserPhase::Active).await;

    // Kill Session: processed once per value, recorded, and revokes the account's sessions.
    let annotate =
        serde_json::json!({"metadata": {"annotations": {"usher.dev/kill-sessions": "1700000000"}}});
    users_a
        .patch("bob", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    let u = eventually(
        "kill-sessions observed",
        Duration::from_secs(20),
        || async {
            let u = users_a.get("bob").await.ok()?;
            let observed = u
                .status
                .as_ref()?
                .observed_actions
                .as_ref()?
                .kill_sessions
                .clone();
            (observed.as_deref() == Some("1700000000")).then_some(u)
        },
    )
    .await;
    let revoked = u.status.unwrap().sessions_revoked_at.unwrap();
    // Kill Session is per organisation: the account records it for this membership only.
    let secret = account_secret(&client, &login).await.unwrap();
    let memberships: serde_json::Value =
        serde_json::from_str(&secret_text(&secret, "memberships").unwrap()).unwrap();
    let killed_at: k8s_openapi::jiff::Timestamp =
        memberships[format!("{}/bob", a.ns)]["sessionsRevokedAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    assert_eq!(killed_at.as_second(), revoked.0.as_second());
    assert!(secret_text(&secret, "sessionsRevokedAt").is_none());
    // The other membership's sessions go on: its status shows no revocation.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let other = Api::<User>::namespaced(client.clone(), &b.ns)
        .get("bob")
        .await
        .unwrap();
    assert_eq!(other.status.unwrap().sessions_revoked_at, None);
}

#[tokio::test]
async fn deleting_memberships_removes_the_account_with_the_last_one() {
    let (_, client) = harness().await;
    let p = profile(&client, &[]).await;
    let (a, b) = (organisation(&client).await, organisation(&client).await);
    let login = login("erin");
    for org in [&a, &b] {
        Api::<User>::namespaced(client.clone(), &wait_ns(&client, org).await)
            .create(&PostParams::default(), &user("erin", &login, &p))
            .await
            .unwrap();
        wait_phase(&client, &org.ns, "erin", UserPhase::Invited).await;
    }
    let u = Api::<User>::namespaced(client.clone(), &a.ns)
        .get("erin")
        .await
        .unwrap();
    assert!(u.finalizers().contains(&"usher.dev/membership".to_string()));

    Api::<User>::namespaced(client.clone(), &a.ns)
        .delete("erin", &DeleteParams::default())
        .await
        .unwrap();
    wait_user_gone(&client, &a.ns, "erin", Duration::from_secs(20)).await;
    assert!(
        account_secret(&client, &login).await.is_some(),
        "b still uses the account"
    );

    Api::<User>::namespaced(client.clone(), &b.ns)
        .delete("erin", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "account deleted with the last membership",
        Duration::from_secs(20),
        || async {
            account_secret(&client, &login)
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn changing_the_login_moves_the_membership_and_the_old_account_goes() {
    let (h, client) = harness().await;
    let p = profile(&client, &[]).await;
    let a = organisation(&client).await;
    let (old, new) = (login("old"), login("new"));
    let users: Api<User> = Api::namespaced(client.clone(), &wait_ns(&client, &a).await);
    users
        .create(&PostParams::default(), &user("mover", &old, &p))
        .await
        .unwrap();
    wait_phase(&client, &a.ns, "mover", UserPhase::Invited).await;
    assert!(account_secret(&client, &old).await.is_some());

    let patch = serde_json::json!({"spec": {"login": new}});
    users
        .patch("mover", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let new_id = usher_operator::account_id(&new);
    eventually(
        "the membership on the new account",
        Duration::from_secs(20),
        || async {
            let u = users.get("mover").await.ok()?;
            let s = u.status?;
            (s.account_id.as_deref() == Some(new_id.as_str())
                && s.phase == Some(UserPhase::Invited))
            .then_some(())
        },
    )
    .await;
    assert_eq!(
        emails_to(h, &new, 1).await.len(),
        1,
        "the new login is invited"
    );
    eventually("the old account to go", Duration::from_secs(20), || async {
        account_secret(&client, &old).await.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn users_swapping_logins_at_the_same_moment_both_converge() {
    // Two organisations; pair i is Ui in the first (login Li) and Vi in the second (login Mi).
    // Each round swaps every pair's logins in two concurrent patches, so the reconciles of Ui
    // and Vi each need both accounts at once: taken crosswise, they would wait on each other
    // forever (nothing of those accounts would reconcile again until a restart).
    const PAIRS: usize = 8;
    let (_, client) = harness().await;
    let p = profile(&client, &[]).await;
    let (a, b) = (organisation(&client).await, organisation(&client).await);
    let left: Api<User> = Api::namespaced(client.clone(), &wait_ns(&client, &a).await);
    let right: Api<User> = Api::namespaced(client.clone(), &wait_ns(&client, &b).await);
    let mut logins: Vec<(String, String)> = (0..PAIRS)
        .map(|_| (login("swap-l"), login("swap-r")))
        .collect();
    for (i, (l, r)) in logins.iter().enumerate() {
        left.create(&PostParams::default(), &user(&format!("u{i}"), l, &p))
            .await
            .unwrap();
        right
            .create(&PostParams::default(), &user(&format!("v{i}"), r, &p))
            .await
            .unwrap();
    }
    for round in 0..3 {
        // Settled: each User on its login's account.
        for (i, (l, r)) in logins.iter().enumerate() {
            for (api, name, login) in [(&left, format!("u{i}"), l), (&right, format!("v{i}"), r)] {
                let id = usher_operator::account_id(login);
                eventually(
                    &format!("round {round}: {name} on the account of {login}"),
                    Duration::from_secs(45),
                    || async {
                        let s = api.get(&name).await.ok()?.status?;
                        (s.account_id.as_deref() == Some(id.as_str())
                            && s.phase == Some(UserPhase::Invited))
                        .then_some(())
                    },
                )
                .await;
            }
        }
        if round == 2 {
            break;
        }
        let patches = logins.iter().enumerate().flat_map(|(i, (l, r))| {
            let to_r = serde_json::json!({"spec": {"login": r}});
            let to_l = serde_json::json!({"spec": {"login": l}});
            let (left, right) = (left.clone(), right.clone());
            [
                Box::pin(async move {
                    left.patch(
                        &format!("u{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(&to_r),
                    )
                    .await
                    .unwrap();
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
                Box::pin(async move {
                    right
                        .patch(
                            &format!("v{i}"),
                            &PatchParams::default(),
                            &Patch::Merge(&to_l),
                        )
                        .await
                        .unwrap();
                }),
            ]
        });
        futures::future::join_all(patches).await;
        for pair in &mut logins {
            std::mem::swap(&mut pair.0, &mut pair.1);
        }
    }
}

/// The membership a deleted User leaves is taken from the account its status recorded, not from
/// `spec.login`, which a namespace admin may still edit while the User waits on its finalizer:
/// pointing it at another person's login left the own account behind (with its password) and
/// sent the cleanup to the other person's account.
#[tokio::test]
async fn a_login_changed_during_deletion_does_not_redirect_the_cleanup() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = usher_testkit::SmtpSink::start().await.unwrap();
    let controller = start_controller(env, &smtp.url(), "usher-controller-cleanup");
    let p = profile(&client, &[]).await;
    let (a, b) = (organisation(&client).await, organisation(&client).await);
    let (alice, bob) = (login("alice"), login("bob"));
    let users_a = Api::<User>::namespaced(client.clone(), &wait_ns(&client, &a).await);
    let users_b = Api::<User>::namespaced(client.clone(), &wait_ns(&client, &b).await);
    users_a
        .create(&PostParams::default(), &user("alice", &alice, &p))
        .await
        .unwrap();
    users_b
        .create(&PostParams::default(), &user("bob", &bob, &p))
        .await
        .unwrap();
    wait_phase(&client, &a.ns, "alice", UserPhase::Invited).await;
    wait_phase(&client, &b.ns, "bob", UserPhase::Invited).await;
    let bob_before = account_secret(&client, &bob).await.unwrap();

    // With no controller to finish it, the deletion waits on the finalizer; meanwhile the login
    // is pointed at bob.
    drop(controller);
    users_a
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    users_a
        .patch(
            "alice",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"login": bob}})),
        )
        .await
        .unwrap();
    let _controller = start_controller(env, &smtp.url(), "usher-controller-cleanup-2");
    wait_user_gone(&client, &a.ns, "alice", Duration::from_secs(30)).await;
    assert!(
        account_secret(&client, &alice).await.is_none(),
        "alice's account goes with her last membership"
    );
    let bob_after = account_secret(&client, &bob).await.unwrap();
    assert_eq!(
        bob_after.resource_version(),
        bob_before.resource_version(),
        "bob's account is not touched"
    );
    wait_phase(&client, &b.ns, "bob", UserPhase::Invited).await;
}
