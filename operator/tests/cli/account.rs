//! `usher account list | reset-mfa | rename`, run as the real binary against envtest with the
//! controller running.

use std::{collections::BTreeMap, time::Duration};

use crate::common::*;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use usher_crds::{User, UserPhase};
use usher_testkit::SmtpSink;

#[tokio::test]
async fn list_reset_mfa_and_rename_work_on_real_accounts() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let _controller = start_controller(env, &smtp.url(), "usher-controller-account");
    let p = profile(&client, &[]).await;
    let (a, b) = (organisation(&client).await, organisation(&client).await);
    let login = login("ops");
    for org in [&a, &b] {
        Api::<User>::namespaced(client.clone(), &wait_ns(&client, org).await)
            .create(&PostParams::default(), &user("ops", &login, &p))
            .await
            .unwrap();
        wait_phase(&client, &org.ns, "ops", UserPhase::Invited).await;
    }

    let (ok, out) = run_usher_account(env, &["list"]);
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&login))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("invited")
            && row.contains(&format!("{}/ops", a.ns))
            && row.contains(&format!("{}/ops", b.ns)),
        "{row}"
    );

    // An enrolled, active account: reset-mfa removes the enrolment and TOTP keys, ends sessions.
    activate(&client, &login).await;
    let name = account_secret(&client, &login).await.unwrap().name_any();
    let patch = serde_json::json!({"data": BTreeMap::from([
        ("totp.secret".to_string(), ByteString(b"sealed".to_vec())),
        ("totp.lastStep".to_string(), ByteString(b"123".to_vec())),
    ])});
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NS)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_phase(&client, &a.ns, "ops", UserPhase::Active).await;
    let (ok, out) = run_usher_account(env, &["reset-mfa", &login.to_uppercase()]);
    assert!(ok && out.contains("MFA reset for"), "{out}");
    let secret = account_secret(&client, &login).await.unwrap();
    assert!(secret_text(&secret, "mfaEnrolledAt").is_none());
    assert!(
        secret_text(&secret, "totp.secret").is_none()
            && secret_text(&secret, "totp.lastStep").is_none()
    );
    assert!(secret_text(&secret, "sessionsRevokedAt").is_some());
    assert!(
        secret_text(&secret, "passwordHash").is_some(),
        "the password stays"
    );
    eventually(
        "mfaEnrolled false on the membership",
        Duration::from_secs(20),
        || async {
            let u = Api::<User>::namespaced(client.clone(), &b.ns)
                .get("ops")
                .await
                .ok()?;
            (u.status?.mfa_enrolled == Some(false)).then_some(())
        },
    )
    .await;

    // Rename: both memberships move, the password comes along, no invitation is sent.
    let renamed = login.replace("ops", "renamed");
    let (ok, out) = run_usher_account(env, &["rename", &login, &renamed]);
    assert!(ok && out.contains("2 membership(s) updated"), "{out}");
    for org in [&a, &b] {
        let u = Api::<User>::namespaced(client.clone(), &org.ns)
            .get("ops")
            .await
            .unwrap();
        assert_eq!(u.spec.login, renamed);
        wait_phase(&client, &org.ns, "ops", UserPhase::Active).await;
    }
    let moved = account_secret(&client, &renamed).await.unwrap();
    assert!(secret_text(&moved, "passwordHash").is_some());
    assert!(account_secret(&client, &login).await.is_none());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        smtp.emails_to(&renamed).unwrap().is_empty(),
        "an active account is not invited again"
    );

    // Under GitOps: only the account moves; Git then changes spec.login, and the controller
    // links each User to the moved account (no invitation) and deletes the old one.
    let in_git = renamed.replace("renamed", "ingit");
    let (ok, out) = run_usher_account(env, &["rename", &renamed, &in_git, "--users-in-git"]);
    assert!(ok && out.contains("set spec.login"), "{out}");
    let password = secret_text(&moved, "passwordHash");
    for org in [&a, &b] {
        let users = Api::<User>::namespaced(client.clone(), &org.ns);
        assert_eq!(
            users.get("ops").await.unwrap().spec.login,
            renamed,
            "left to Git"
        );
        // What Argo CD or Flux applies from the repository.
        users
            .patch(
                "ops",
                &PatchParams::apply("argocd-controller").force(),
                &Patch::Apply(serde_json::json!({
                    "apiVersion": "usher.dev/v1alpha1",
                    "kind": "User",
                    "spec": {"login": in_git, "fullName": "Person ops", "profile": p},
                })),
            )
            .await
            .unwrap();
    }
    for org in [&a, &b] {
        eventually(
            "the User on the moved account",
            Duration::from_secs(20),
            || async {
                let u = Api::<User>::namespaced(client.clone(), &org.ns)
                    .get("ops")
                    .await
                    .ok()?;
                let s = u.status?;
                (s.phase == Some(UserPhase::Active)
                    && s.account_id.as_deref() == Some(&usher_operator::account_id(&in_git)))
                .then_some(())
            },
        )
        .await;
    }
    let kept = account_secret(&client, &in_git).await.unwrap();
    assert_eq!(
        secret_text(&kept, "passwordHash"),
        password,
        "the password came along"
    );
    eventually("the old account to go", Duration::from_secs(20), || async {
        account_secret(&client, &renamed)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(smtp.emails_to(&in_git).unwrap().is_empty(), "no invitation");

    // Clear errors, no stack traces.
    let (ok, out) = run_usher_account(env, &["reset-mfa", "nobody@example.com"]);
    assert!(
        !ok && out.contains("no account for nobody@example.com"),
        "{out}"
    );
    let (ok, out) = run_usher_account(env, &["rename", &renamed, "not a login"]);
    assert!(!ok && out.contains("is not a usable login"), "{out}");
}
