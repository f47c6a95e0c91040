//! Invitations: one per new login, none when a second organisation links it, a resent link
//! replacing the old, none while the profile is missing, none for a duplicate login.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use usher_crds::{Organisation, Profile, User, UserPhase};
use usher_operator::hash_token;

use crate::{common::*, *};

#[tokio::test]
async fn a_new_login_is_invited_once_and_a_second_organisation_links_without_email() {
    let (h, client) = harness().await;
    let analyst = profile(&client, &["manageCase"]).await;
    let reader = profile(&client, &[]).await;
    let (a, b) = (organisation(&client).await, organisation(&client).await);
    let login = login("alice");

    Api::<User>::namespaced(client.clone(), &wait_ns(&client, &a).await)
        .create(&PostParams::default(), &user("alice", &login, &analyst))
        .await
        .unwrap();
    let invited = wait_phase(&client, &a.ns, "alice", UserPhase::Invited).await;
    let mails = emails_to(h, &login, 1).await;
    let mail = &mails[0];
    assert_eq!(mail.subject, format!("You are invited to {}", a.display));
    assert!(mail.text.contains(&a.display), "{}", mail.text);
    let link = mail.invitation_link().unwrap();
    assert!(
        link.starts_with(&format!("{PUBLIC_URL}/invite#token=")),
        "{link}"
    );
    let token = mail.invitation_token().unwrap();
    assert!(
        token.len() >= 22,
        "a token carries at least 128 bits: {token}"
    );

    // The account holds only the token's hash, and the status says when the link expires.
    let secret = account_secret(&client, &login).await.unwrap();
    assert_eq!(
        secret_text(&secret, "invitation.tokenHash"),
        Some(hash_token(&token))
    );
    let raw = serde_json::to_string(&secret).unwrap();
    assert!(!raw.contains(&token), "the token itself must not be stored");
    let status = invited.status.unwrap();
    let account_id = status.account_id.clone().unwrap();
    let inv = status.invitation.unwrap();
    let ttl = inv.expires_at.unwrap().0.as_second() - inv.sent_at.unwrap().0.as_second();
    assert_eq!(ttl, 24 * 3600);

    // The same login in a second organisation: linked to the same account, no new email.
    Api::<User>::namespaced(client.clone(), &wait_ns(&client, &b).await)
        .create(&PostParams::default(), &user("alice", &login, &reader))
        .await
        .unwrap();
    let linked = wait_phase(&client, &b.ns, "alice", UserPhase::Invited).await;
    assert_eq!(linked.status.unwrap().account_id, Some(account_id));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.smtp.emails_to(&login).unwrap().len(),
        1,
        "linking sends no email"
    );
    let secret = account_secret(&client, &login).await.unwrap();
    assert_eq!(
        secret_text(&secret, "invitation.tokenHash"),
        Some(hash_token(&token)),
        "the first link stays the one valid link"
    );

    // The organisations hold labelled namespaces and count members; profiles count users.
    let ns = Api::<Namespace>::all(client.clone())
        .get(&a.ns)
        .await
        .unwrap();
    assert_eq!(ns.labels().get("usher.dev/organisation"), Some(&a.name));
    let org = eventually("members of org a", Duration::from_secs(20), || async {
        let o = Api::<Organisation>::all(client.clone())
            .get(&a.name)
            .await
            .ok()?;
        (o.status.as_ref()?.members == Some(1)).then_some(o)
    })
    .await;
    let ready = org.status.unwrap().conditions;
    assert!(
        ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{ready:?}"
    );
    eventually(
        "analyst profile to count 1 user",
        Duration::from_secs(20),
        || async {
            let p = Api::<Profile>::all(client.clone())
                .get(&analyst)
                .await
                .ok()?;
            (p.status?.users == Some(1)).then_some(())
        },
    )
    .await;

    // An Invited Event on the User names the login and expiry, never the token.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &a.ns);
    let invited_event = eventually("an Invited Event", Duration::from_secs(10), || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("Invited")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("alice")
        })
    })
    .await;
    let note = invited_event.note.unwrap_or_default();
    assert!(note.contains(&login) && !note.contains(&token), "{note}");

    // Metrics count reconciles and invitations.
    let out = std::process::Command::new("curl")
        .args(["-sS", &format!("http://127.0.0.1:{}/metrics", h.probe_port)])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains("usher_controller_invitations_total{outcome=\"sent\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("usher_controller_reconciles_total{kind=\"User\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("usher_controller_reconcile_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn resend_invitation_replaces_the_link_and_the_old_one_stops() {
    let (h, client) = harness().await;
    let p = profile(&client, &[]).await;
    let a = organisation(&client).await;
    let login = login("carol");
    let users: Api<User> = Api::namespaced(client.clone(), &wait_ns(&client, &a).await);
    users
        .create(&PostParams::default(), &user("carol", &login, &p))
        .await
        .unwrap();
    let first = emails_to(h, &login, 1).await[0].invitation_token().unwrap();

    let annotate =
        serde_json::json!({"metadata": {"annotations": {"usher.dev/resend-invitation": "1"}}});
    users
        .patch("carol", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    let mails = emails_to(h, &login, 2).await;
    let second = mails[1].invitation_token().unwrap();
    assert_ne!(first, second);
    let secret = account_secret(&client, &login).await.unwrap();
    let stored = secret_text(&secret, "invitation.tokenHash").unwrap();
    assert_eq!(stored, hash_token(&second), "the new link is the valid one");
    assert_ne!(stored, hash_token(&first), "the old link stopped");
    eventually("resend observed", Duration::from_secs(20), || async {
        let u = users.get("carol").await.ok()?;
        (u.status?.observed_actions?.resend_invitation.as_deref() == Some("1")).then_some(())
    })
    .await;
    // The same value again is not a new request.
    let relabel = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
    users
        .patch("carol", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.smtp.emails_to(&login).unwrap().len(), 2);
}

#[tokio::test]
async fn an_unknown_profile_fails_with_the_fix_and_no_email_until_the_profile_exists() {
    let (h, client) = harness().await;
    let a = organisation(&client).await;
    let login = login("dave");
    let missing = usher_testkit::unique_name("later");
    let users: Api<User> = Api::namespaced(client.clone(), &wait_ns(&client, &a).await);
    users
        .create(&PostParams::default(), &user("dave", &login, &missing))
        .await
        .unwrap();
    let failed = wait_phase(&client, &a.ns, "dave", UserPhase::Failed).await;
    let ready = failed
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "UnknownProfile")
    );
    assert!(ready.message.contains(&missing), "{}", ready.message);
    // kstatus: Stalled until someone fixes it, and a Warning Event saying what.
    let u = users.get("dave").await.unwrap();
    let (health, why) = argo_health(&u);
    assert_eq!(health, "Degraded");
    assert!(why.contains(&missing), "{why}");
    let stalled = condition(&u.status.unwrap().conditions, "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "UnknownProfile")
    );
    let warned = eventually("the Warning Event", Duration::from_secs(10), || async {
        let w = warnings(h.env, &a.ns, "dave");
        w.into_iter().find(|(r, _)| r == "UnknownProfile")
    })
    .await;
    assert!(warned.1.contains(&missing), "{warned:?}");
    assert!(
        account_secret(&client, &login).await.is_none(),
        "no account for a failed User"
    );
    assert!(h.smtp.emails_to(&login).unwrap().is_empty());

    // Creating the profile is enough: the User is reconciled again and invited.
    Api::<Profile>::all(client.clone())
        .create(
            &PostParams::default(),
            &Profile::new(&missing, usher_crds::ProfileSpec::default()),
        )
        .await
        .unwrap();
    wait_phase(&client, &a.ns, "dave", UserPhase::Invited).await;
    assert_eq!(emails_to(h, &login, 1).await.len(), 1);
    let u = users.get("dave").await.unwrap();
    assert!(condition(&u.status.unwrap().conditions, "Stalled").is_none());
}

#[tokio::test]
async fn kubectl_wait_for_ready_returns_for_invited_locked_and_service_users() {
    let (h, client) = harness().await;
    let p = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let users: Api<User> = Api::namespaced(client.clone(), &ns);
    let mut locked = user("locked", &login("locked"), &p);
    locked.spec.locked = true;
    let mut service = user("service", &login("service"), &p);
    service.spec.user_type = usher_crds::UserType::Service;
    service.spec.api_key = Some(usher_crds::ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    for u in [
        user("invited", &login("invited"), &p),
        locked,
        service.clone(),
    ] {
        users.create(&PostParams::default(), &u).await.unwrap();
    }
    // What a GitOps pipeline runs after applying: kubectl 1.33 waits on the Ready condition.
    let wait = std::process::Command::new(tool("kubectl"))
        .args(["--kubeconfig", h.env.kubeconfig().to_str().unwrap()])
        .args([
            "wait",
            "--for=condition=Ready",
            "users",
            "--all",
            "-n",
            &ns,
            "--timeout=60s",
        ])
        .output()
        .unwrap();
    assert!(
        wait.status.success(),
        "{}{}",
        String::from_utf8_lossy(&wait.stdout),
        String::from_utf8_lossy(&wait.stderr)
    );
    for (name, phase, reason) in [
        ("invited", UserPhase::Invited, "Invited"),
        ("locked", UserPhase::Locked, "Locked"),
        ("service", UserPhase::Active, "ServiceUser"),
    ] {
        let live = users.get(name).await.unwrap();
        // Argo CD's health check (docs/gitops.md) reads it alike.
        assert_eq!(argo_health(&live).0, "Healthy", "{name}");
        let status = live.status.unwrap();
        assert_eq!(status.phase, Some(phase), "{name}");
        assert_eq!(
            condition(&status.conditions, "Ready").unwrap().reason,
            reason
        );
        // At most one condition per type (a map list keyed by type).
        let mut types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), status.conditions.len(), "{name}");
    }
    // The service user was not invited, and its key was delivered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.smtp.emails_to(&service.spec.login).unwrap().is_empty());
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let key = secrets.get("service-api-key").await.unwrap();
    assert!(key.data.unwrap().contains_key("api-key"));
}

#[tokio::test]
async fn a_second_user_with_the_same_login_in_one_organisation_is_not_ready_and_gets_no_mail() {
    // The controller's harness runs no webhook: this is a duplicate made while it was away.
    let (h, client) = harness().await;
    let profile = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let login = login("twice");
    let users: Api<User> = Api::namespaced(client.clone(), &ns);
    users
        .create(&PostParams::default(), &user("first", &login, &profile))
        .await
        .unwrap();
    wait_phase(&client, &ns, "first", UserPhase::Invited).await;
    users
        .create(&PostParams::default(), &user("second", &login, &profile))
        .await
        .unwrap();
    let dup = wait_phase(&client, &ns, "second", UserPhase::Failed).await;
    let ready = dup
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "DuplicateLogin")
    );
    assert!(ready.message.contains("\"first\""), "{}", ready.message);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.smtp.emails_to(&login).unwrap().len(),
        1,
        "one invitation only"
    );
    // The older one is untouched.
    let first = users.get("first").await.unwrap();
    assert_eq!(first.status.unwrap().phase, Some(UserPhase::Invited));
}
