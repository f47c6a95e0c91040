//! Two controller replicas: one Lease, one sender. The standby takes over when the leader stops,
//! at once on SIGTERM (the Lease is released) and after the lease duration on SIGKILL.

use std::{process::Command, time::Duration};

use crate::common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, api::PostParams};
use usher_crds::{User, UserPhase};
use usher_testkit::{Envtest, Process, SmtpSink, free_port};

fn replica(env: &Envtest, smtp: &SmtpSink, name: &str) -> Process {
    Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_usher"))
            .arg("controller")
            .env("KUBECONFIG", env.kubeconfig())
            .env("USHER_SMTP_URL", smtp.url())
            .env("USHER_PUBLIC_URL", PUBLIC_URL)
            .env("USHER_NAMESPACE", OPERATOR_NS)
            .env(
                "USHER_PROBE_LISTEN",
                format!("127.0.0.1:{}", free_port().unwrap()),
            )
            .env("USHER_LEASE_DURATION", "4s")
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,kube=warn"),
        &log_path(name),
        None,
    )
    .unwrap()
}

async fn holder(client: &Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), OPERATOR_NS)
        .get_opt("usher-controller")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn one_replica_leads_and_the_other_takes_over() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let mut a = Some(replica(env, &smtp, "replica-a"));
    let mut b = Some(replica(env, &smtp, "replica-b"));
    let first = eventually("a leader", Duration::from_secs(20), || holder(&client)).await;

    let p = profile(&client, &[]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let users: Api<User> = Api::namespaced(client.clone(), &org.ns);
    let logins: Vec<String> = (0..20).map(|i| login(&format!("lead{i}"))).collect();
    for (i, l) in logins.iter().enumerate() {
        users
            .create(&PostParams::default(), &user(&format!("u{i}"), l, &p))
            .await
            .unwrap();
    }
    for i in 0..logins.len() {
        wait_phase(&client, &org.ns, &format!("u{i}"), UserPhase::Invited).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for l in &logins {
        assert_eq!(
            smtp.emails_to(l).unwrap().len(),
            1,
            "{l}: exactly one sender"
        );
    }

    // SIGTERM the leader: it releases the Lease and the standby leads well before it expires.
    let (leader, standby) = if first == "replica-a" {
        (&mut a, "replica-b")
    } else {
        (&mut b, "replica-a")
    };
    let pid = leader.as_ref().unwrap().id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    eventually("the standby to lead", Duration::from_secs(10), || async {
        (holder(&client).await.as_deref() == Some(standby)).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    *leader = None;

    // The new leader works: a new User is invited.
    let late = login("late");
    users
        .create(&PostParams::default(), &user("late", &late, &p))
        .await
        .unwrap();
    wait_phase(&client, &org.ns, "late", UserPhase::Invited).await;
    assert_eq!(smtp.emails_to(&late).unwrap().len(), 1);

    // SIGKILL leaves the Lease held; a fresh replica takes it once it expires.
    let (survivor, _) = if standby == "replica-a" {
        (&mut a, ())
    } else {
        (&mut b, ())
    };
    *survivor = None; // SIGKILL
    let _c = replica(env, &smtp, "replica-c");
    eventually(
        "replica-c to lead after expiry",
        Duration::from_secs(20),
        || async { (holder(&client).await.as_deref() == Some("replica-c")).then_some(()) },
    )
    .await;
}
