//! Organisations: a namespace held by another is refused, and its Users fail elsewhere.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt, api::PostParams};
use usher_crds::{Organisation, User, UserPhase};

use crate::{common::*, *};

#[tokio::test]
async fn a_namespace_held_by_another_organisation_is_refused_and_its_users_fail_elsewhere() {
    let (_, client) = harness().await;
    let a = organisation(&client).await;
    wait_ns(&client, &a).await;
    let held = Api::<Organisation>::all(client.clone())
        .get(&a.name)
        .await
        .unwrap();
    assert_eq!(argo_health(&held).0, "Healthy");
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
    // Stalled, a Warning Event, and Degraded for Argo CD: someone must pick another namespace.
    let o = Api::<Organisation>::all(client.clone())
        .get(&thief)
        .await
        .unwrap();
    assert_eq!(argo_health(&o).0, "Degraded");
    assert_eq!(
        condition(&o.status.unwrap().conditions, "Stalled")
            .unwrap()
            .reason,
        "NamespaceTaken"
    );
    // (Its Warning Event is published too, but this 1.20 API server refuses Events about
    // cluster-scoped objects; 1.22 and later keep them.)
    // A Profile is Healthy once seen.
    let p = profile(&client, &["manageCase"]).await;
    let seen = eventually(
        "the Profile to be Ready",
        Duration::from_secs(10),
        || async {
            let live = Api::<usher_crds::Profile>::all(client.clone())
                .get(&p)
                .await
                .ok()?;
            (argo_health(&live).0 == "Healthy").then_some(live)
        },
    )
    .await;
    assert!(seen.status.is_some());
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
