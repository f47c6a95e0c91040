//! The controller end to end: real kube-apiserver, real SMTP server (aiosmtpd), the real
//! `usher controller` binary. One controller serves every test of this binary; tests isolate
//! themselves with unique names and logins.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use tokio::sync::OnceCell;
use usher_crds::{Organisation, Profile, User, UserPhase};
use usher_operator::hash_token;
use usher_testkit::{Envtest, Process, SmtpSink};

struct Harness {
    env: &'static Envtest,
    smtp: SmtpSink,
    probe_port: u16,
    _controller: Process,
}

static HARNESS: OnceCell<Harness> = OnceCell::const_new();

async fn harness() -> (&'static Harness, Client) {
    let h = HARNESS
        .get_or_init(|| async {
            let env = Envtest::shared(usher_crds::crds).await.unwrap();
            setup(env).await;
            let smtp = SmtpSink::start().await.unwrap();
            let probe_port = usher_testkit::free_port().unwrap();
            let controller = start_controller_on(env, &smtp.url(), "usher-controller", probe_port);
            Harness {
                env,
                smtp,
                probe_port,
                _controller: controller,
            }
        })
        .await;
    (h, h.env.client().await.unwrap())
}

async fn emails_to(h: &Harness, login: &str, n: usize) -> Vec<usher_testkit::Email> {
    eventually(
        &format!("{n} email(s) to {login}"),
        Duration::from_secs(30),
        || async {
            let got = h.smtp.emails_to(login).unwrap();
            (got.len() >= n).then_some(got)
        },
    )
    .await
}

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
    let secret = account_secret(&client, &login).await.unwrap();
    assert_eq!(
        secret_text(&secret, "sessionsRevokedAt"),
        Some(revoked.0.to_string())
    );
    // The other membership shows it too (one account).
    eventually(
        "revocation on the other membership",
        Duration::from_secs(20),
        || async {
            let u = Api::<User>::namespaced(client.clone(), &b.ns)
                .get("bob")
                .await
                .ok()?;
            (u.status?.sessions_revoked_at.as_ref() == Some(&revoked)).then_some(())
        },
    )
    .await;
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
    eventually("membership a gone", Duration::from_secs(20), || async {
        Api::<User>::namespaced(client.clone(), &a.ns)
            .get_opt("erin")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
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
    // Let the follow-up reconciles (finalizer, status, organisation and profile counts) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_user = users.get("frank").await.unwrap().resource_version();
    let before_account = account_secret(&client, &login)
        .await
        .unwrap()
        .resource_version();
    let before_org = Api::<Organisation>::all(client.clone())
        .get(&a.name)
        .await
        .unwrap()
        .resource_version();

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

        // A deleted Secret is put back (with a new key: the old one is gone for good).
        secrets
            .delete("app-api-key", &DeleteParams::default())
            .await
            .unwrap();
        let again = secret(&secrets, |s| secret_text(s, "api-key").is_some()).await;
        assert_ne!(key_of(&again), key);

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
        assert!(
            !s.data
                .as_ref()
                .unwrap()
                .contains_key("previous-api-key-sha256"),
            "gracePeriod 0s: the old key stops at once"
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
        assert_eq!(
            secret_text(&s, "previous-api-key-sha256"),
            Some(second.hash())
        );
        assert!(!serde_json::to_string(&s).unwrap().contains(second.expose()));
        assert!(
            s.annotations()
                .contains_key("usher.dev/previous-valid-until")
        );
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

    #[tokio::test]
    async fn rotate_every_renews_on_schedule() {
        let (_, client) = harness().await;
        let (_, secrets) = app_user(
            &client,
            serde_json::json!({"enabled": true, "rotateEvery": "3s"}),
        )
        .await;
        let first = key_of(&secret(&secrets, |_| true).await);
        let started = std::time::Instant::now();
        secret(&secrets, |s| key_of(s) != first).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(15),
            "{took:?}"
        );
    }
}

#[tokio::test]
async fn a_namespace_held_by_another_organisation_is_refused_and_its_users_fail_elsewhere() {
    let (_, client) = harness().await;
    let a = organisation(&client).await;
    wait_ns(&client, &a).await;
    let thief = usher_testkit::unique_name("thief");
    Api::<Organisation>::all(client.clone())
        .create(
            &PostParams::default(),
            &Organisation::new(
                &thief,
                usher_crds::OrganisationSpec {
                    display_name: "Thief".into(),
                    namespace: Some(a.ns.clone()),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    let ready = eventually("NamespaceTaken", Duration::from_secs(20), || async {
        let o = Api::<Organisation>::all(client.clone())
            .get(&thief)
            .await
            .ok()?;
        o.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.reason == "NamespaceTaken")
    })
    .await;
    assert!(ready.message.contains(&a.name), "{}", ready.message);
    let ns = Api::<Namespace>::all(client.clone())
        .get(&a.ns)
        .await
        .unwrap();
    assert_eq!(
        ns.labels().get("usher.dev/organisation"),
        Some(&a.name),
        "label untouched"
    );

    // A User in a namespace of no organisation fails with the fix and gets no account.
    let loose = usher_testkit::unique_name("loose");
    usher_testkit::create_namespace(&client, &loose)
        .await
        .unwrap();
    let p = profile(&client, &[]).await;
    let l = login("loose");
    Api::<User>::namespaced(client.clone(), &loose)
        .create(&PostParams::default(), &user("x", &l, &p))
        .await
        .unwrap();
    let failed = wait_phase(&client, &loose, "x", UserPhase::Failed).await;
    let reason = failed
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(reason.reason, "NoOrganisation");
    assert!(account_secret(&client, &l).await.is_none());
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
