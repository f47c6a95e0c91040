//! The controller watches the Secrets labelled `usher.dev/user` (the key Secrets it delivers),
//! and anyone who may create Secrets somewhere can label theirs so. It keeps of them what it
//! needs (metadata and the key's hash), not their data: a tenant filling its namespace with
//! big labelled Secrets does not fill the controller's memory.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use usher_testkit::{SmtpSink, create_namespace};

use crate::common::*;

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

#[tokio::test]
async fn labelled_secrets_of_a_tenant_do_not_fill_the_controllers_memory() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let probe = usher_testkit::free_port().unwrap();
    let controller = start_controller_on(env, &smtp.url(), "usher-controller-secrets", probe);
    eventually(
        "the controller to be ready",
        Duration::from_secs(30),
        || async {
            let r = reqwest::get(format!("http://127.0.0.1:{probe}/readyz"))
                .await
                .ok()?;
            (r.status() == reqwest::StatusCode::OK).then_some(())
        },
    )
    .await;
    // A User with a key: its Secret comes through the same watch as everyone's.
    let p = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let mut app = user("app", &login("app"), &p);
    app.spec.user_type = usher_crds::UserType::Service;
    app.spec.api_key = Some(usher_crds::ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    Api::<usher_crds::User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    let keys: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let delivered = eventually("the key Secret", Duration::from_secs(30), || async {
        keys.get_opt("app-api-key").await.ok()?
    })
    .await;
    let before = rss_mib(controller.id());

    // 40 Secrets of 1 MiB each, labelled as Usher labels key Secrets, in a namespace of no
    // organisation.
    create_namespace(&client, "tenant-junk").await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "tenant-junk");
    let junk = vec![b'x'; 1024 * 1024];
    for i in 0..40 {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some(format!("junk-{i}")),
                labels: Some(BTreeMap::from([(
                    usher_crds::LABEL_USER.to_owned(),
                    format!("u{i}"),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "api-key".to_owned(),
                ByteString(junk.clone()),
            )])),
            ..Default::default()
        };
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    // Then the key Secret goes: the controller puts it back once its watch delivered that
    // deletion, which came after every junk Secret (one watch, in order).
    keys.delete("app-api-key", &Default::default())
        .await
        .unwrap();
    eventually(
        "the key Secret put back",
        Duration::from_secs(30),
        || async {
            let s = keys.get_opt("app-api-key").await.ok()??;
            (s.metadata.uid != delivered.metadata.uid).then_some(())
        },
    )
    .await;
    let after = rss_mib(controller.id());
    assert!(
        after - before < 20.0,
        "the controller grew by {:.0} MiB holding 40 MiB of other people's Secrets ({before:.0} → {after:.0} MiB)",
        after - before
    );
}
