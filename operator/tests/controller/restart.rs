//! Idempotency across a restart: a new controller over settled objects writes nothing (the
//! resourceVersions of Users, accounts, the Organisation and the Profile do not move).

use std::time::Duration;

use crate::common::*;
use kube::{Api, ResourceExt, api::PostParams};
use usher_crds::{Organisation, Profile, User, UserPhase};
use usher_testkit::SmtpSink;

async fn versions(
    client: &kube::Client,
    org: &Org,
    profile: &str,
    logins: &[String],
) -> Vec<Option<String>> {
    let mut v = Vec::new();
    let users: Api<User> = Api::namespaced(client.clone(), &org.ns);
    for i in 0..logins.len() {
        v.push(
            users
                .get(&format!("u{i}"))
                .await
                .unwrap()
                .resource_version(),
        );
    }
    for l in logins {
        v.push(account_secret(client, l).await.unwrap().resource_version());
    }
    v.push(
        Api::<Organisation>::all(client.clone())
            .get(&org.name)
            .await
            .unwrap()
            .resource_version(),
    );
    v.push(
        Api::<Profile>::all(client.clone())
            .get(profile)
            .await
            .unwrap()
            .resource_version(),
    );
    v
}

#[tokio::test]
async fn a_restarted_controller_rewrites_nothing() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let controller = start_controller(env, &smtp.url(), "usher-controller-restart");
    let p = profile(&client, &[]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let users: Api<User> = Api::namespaced(client.clone(), &org.ns);
    let logins: Vec<String> = (0..5).map(|i| login(&format!("restart{i}"))).collect();
    for (i, l) in logins.iter().enumerate() {
        let mut u = user(&format!("u{i}"), l, &p);
        if i == 0 {
            u.spec.api_key = Some(usher_crds::ApiKeySpec {
                enabled: true,
                ..Default::default()
            });
        }
        users.create(&PostParams::default(), &u).await.unwrap();
    }
    for i in 0..logins.len() {
        wait_phase(&client, &org.ns, &format!("u{i}"), UserPhase::Invited).await;
    }
    eventually("counts to settle", Duration::from_secs(20), || async {
        let o = Api::<Organisation>::all(client.clone())
            .get(&org.name)
            .await
            .ok()?;
        (o.status?.members == Some(5)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = versions(&client, &org, &p, &logins).await;
    let key_before = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &org.ns)
        .get("u0-api-key")
        .await
        .unwrap()
        .resource_version();

    drop(controller);
    let probe = usher_testkit::free_port().unwrap();
    let _again = start_controller_on(env, &smtp.url(), "usher-controller-restart", probe);
    // The new controller leads (after the killed one's 3 s Lease expires) and reconciles every
    // object once (counted when each reconcile has finished, its writes made); that must have
    // happened for the test to mean anything.
    eventually(
        "the new controller to reconcile every object",
        Duration::from_secs(30),
        || async {
            let text = reqwest::get(format!("http://127.0.0.1:{probe}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let count = |kind: &str| {
                let series = format!("usher_controller_reconciles_total{{kind=\"{kind}\"}}");
                let line = text.lines().find(|l| l.starts_with(&series))?;
                line.rsplit_once(' ')?.1.parse::<f64>().ok()
            };
            (count("User")? >= 5.0 && count("Organisation")? >= 1.0 && count("Profile")? >= 1.0)
                .then_some(())
        },
    )
    .await;

    assert_eq!(versions(&client, &org, &p, &logins).await, before);
    let key_after = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &org.ns)
        .get("u0-api-key")
        .await
        .unwrap()
        .resource_version();
    assert_eq!(key_after, key_before, "the API key was not renewed");
    assert_eq!(
        smtp.messages().unwrap().len(),
        5,
        "no invitation sent again"
    );
}
