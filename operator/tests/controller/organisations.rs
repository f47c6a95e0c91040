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
    // A Warning Event about the (cluster-scoped) Organisation names the holder; the API
    // server keeps Events about cluster-scoped objects in `default`.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let warning = eventually(
        "a NamespaceTaken Warning Event",
        Duration::from_secs(20),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("NamespaceTaken")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(thief.as_str())
            })
        },
    )
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let regarding = warning.regarding.unwrap_or_default();
    assert_eq!(regarding.kind.as_deref(), Some("Organisation"));
    assert!(
        warning.note.unwrap_or_default().contains(&a.name),
        "the Event names the organisation holding the namespace"
    );
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
