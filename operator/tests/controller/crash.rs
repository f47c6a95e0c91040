//! Crash safety: the controller is killed (SIGKILL) at arbitrary moments while 200 Users are
//! onboarded. Afterwards every User is Invited, every account has exactly one valid link, which
//! is the one in the newest email to that login, and no login got more than one extra email per
//! crash. (Delivery is at least once: a crash between the mail server accepting a message and
//! the account recording it re-issues that User's link, so a burst of in-flight invitations
//! means several Users may get one duplicate each; the total is printed.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use futures::StreamExt;
use kube::{Api, api::PostParams};
use usher_crds::{User, UserPhase};
use usher_operator::hash_token;
use usher_testkit::SmtpSink;

const USERS: usize = 200;
const CRASHES: usize = 4;

/// A pause between 200 ms and 1.5 s, varying run to run.
fn arbitrary_pause() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Duration::from_millis(200 + u64::from(nanos % 1300))
}

#[tokio::test]
async fn killing_the_controller_loses_no_account_and_leaves_one_valid_link() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let p = profile(&client, &[]).await;
    let org = organisation(&client).await;
    let mut controller = start_controller(env, &smtp.url(), "usher-controller-crash");
    wait_ns(&client, &org).await;

    let users: Api<User> = Api::namespaced(client.clone(), &org.ns);
    let logins: Vec<String> = (0..USERS)
        .map(|i| format!("crash{i}-{}@example.com", std::process::id()))
        .collect();
    let creating = futures::stream::iter(logins.iter().enumerate())
        .map(|(i, login)| {
            let users = users.clone();
            let p = p.clone();
            async move {
                users
                    .create(&PostParams::default(), &user(&format!("u{i}"), login, &p))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let crashing = async {
        for _ in 0..CRASHES {
            tokio::time::sleep(arbitrary_pause()).await;
            drop(controller); // SIGKILL
            controller = start_controller(env, &smtp.url(), "usher-controller-crash");
        }
        controller
    };
    let (_, _controller) = tokio::join!(creating, crashing);

    let deadline = Duration::from_secs(180);
    for i in 0..USERS {
        wait_phase_within(
            &client,
            &org.ns,
            &format!("u{i}"),
            UserPhase::Invited,
            deadline,
        )
        .await;
    }
    let mut duplicates = 0;
    for login in &logins {
        let mails = smtp.emails_to(login).unwrap();
        assert!(!mails.is_empty(), "{login} got no invitation");
        assert!(
            mails.len() <= 1 + CRASHES,
            "{login} got {} emails",
            mails.len()
        );
        duplicates += mails.len() - 1;
        let newest = mails.last().unwrap().invitation_token().unwrap();
        let secret = account_secret(&client, login)
            .await
            .expect("account exists");
        assert_eq!(
            secret_text(&secret, "invitation.tokenHash"),
            Some(hash_token(&newest)),
            "{login}: the newest emailed link must be the one valid link"
        );
    }
    println!("{USERS} users, {CRASHES} crashes, {duplicates} duplicate invitation emails");
}
