//! SMTP down: the User waits with a condition saying so, the controller retries, and when the
//! server returns exactly one invitation arrives, carrying the one valid link.

use std::time::Duration;

use crate::common::*;
use kube::{Api, api::PostParams};
use usher_crds::{User, UserPhase};
use usher_operator::hash_token;
use usher_testkit::SmtpSink;

#[tokio::test]
async fn users_wait_for_the_mail_server_and_lose_nothing() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let mut smtp = SmtpSink::start().await.unwrap();
    smtp.stop();
    let _controller = start_controller(env, &smtp.url(), "usher-controller-outage");

    let p = profile(&client, &[]).await;
    let org = organisation(&client).await;
    let login = login("grace");
    wait_ns(&client, &org).await;
    let users: Api<User> = Api::namespaced(client.clone(), &org.ns);
    users
        .create(&PostParams::default(), &user("grace", &login, &p))
        .await
        .unwrap();

    let waiting = eventually(
        "the mail outage to show in status",
        Duration::from_secs(30),
        || async {
            let u = users.get("grace").await.ok()?;
            let s = u.status?;
            let c = s
                .conditions
                .iter()
                .find(|c| c.type_ == "InvitationSent")?
                .clone();
            (c.status == "False" && c.reason == "MailUnavailable").then_some((s.phase, c))
        },
    )
    .await;
    assert_eq!(waiting.0, Some(UserPhase::Pending));
    // kstatus: not Ready, Reconciling (it is retried by itself), and a Warning Event says why.
    let u = users.get("grace").await.unwrap();
    assert_eq!(argo_health(&u).0, "Progressing");
    let conditions = u.status.unwrap().conditions;
    assert_eq!(condition(&conditions, "Ready").unwrap().status, "False");
    let reconciling = condition(&conditions, "Reconciling").unwrap();
    assert_eq!(
        (reconciling.status.as_str(), reconciling.reason.as_str()),
        ("True", "MailUnavailable")
    );
    let warned = eventually(
        "a Warning Event about the mail server",
        Duration::from_secs(20),
        || async {
            let w = warnings(env, &org.ns, "grace");
            w.iter().any(|(r, _)| r == "MailUnavailable").then_some(w)
        },
    )
    .await;
    assert!(
        warned.iter().all(|(_, note)| !note.contains("password")),
        "{warned:?}"
    );
    assert!(
        !waiting.1.message.contains("password"),
        "{}",
        waiting.1.message
    );
    assert!(smtp.messages().unwrap().is_empty());

    smtp.restart().unwrap();
    wait_phase_within(
        &client,
        &org.ns,
        "grace",
        UserPhase::Invited,
        Duration::from_secs(60),
    )
    .await;
    let mails = smtp.emails_to(&login).unwrap();
    assert_eq!(mails.len(), 1, "one invitation once the server is back");
    let u = users.get("grace").await.unwrap();
    let conditions = u.status.unwrap().conditions;
    assert_eq!(condition(&conditions, "Ready").unwrap().status, "True");
    assert!(condition(&conditions, "Reconciling").is_none());
    let secret = account_secret(&client, &login).await.unwrap();
    assert_eq!(
        secret_text(&secret, "invitation.tokenHash"),
        Some(hash_token(&mails[0].invitation_token().unwrap())),
        "the emailed link is the valid one"
    );
}
