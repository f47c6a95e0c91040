//! Back-channel logout that survives restarts (issue 26): a logout due while the app is down is
//! kept in the cluster, each failure is a Warning Event on the OIDCClient and a metric, and the
//! app receives a valid logout token once it is back, though every Usher process was restarted
//! in between.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::PostParams};
use serde_json::json;
use usher_crds::{User, UserPhase};
use usher_testkit::{SmtpSink, free_port};

use crate::common::{auth::*, oidc::*, *};

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn scrape(probe: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{probe}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The logouts the outbox Secret keeps.
async fn outbox(client: &kube::Client) -> usize {
    let s = Api::<Secret>::namespaced(client.clone(), OPERATOR_NS)
        .get_opt("usher-oidc-logouts")
        .await
        .unwrap();
    s.and_then(|s| s.data?.get("due").cloned()).map_or(0, |b| {
        serde_json::from_slice::<Vec<serde_json::Value>>(&b.0)
            .unwrap()
            .len()
    })
}

#[tokio::test]
async fn a_logout_due_while_the_app_is_down_reaches_it_after_every_usher_process_restarted() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let probe = free_port().unwrap();
    let controller = start_controller_on(env, &smtp.url(), "logouts-controller", probe);
    let auth = start_auth(env, "logouts-auth", &[]).await;
    let p = profile(&client, &[]).await;
    let org = organisation(&client).await;
    wait_ns(&client, &org).await;
    let login = login("bcl");
    Api::<User>::namespaced(client.clone(), &org.ns)
        .create(&PostParams::default(), &user("alice", &login, &p))
        .await
        .unwrap();
    onboard(&auth, &smtp, &login).await;
    wait_phase(&client, &org.ns, "alice", UserPhase::Active).await;

    // The app's endpoint refuses connections: it is down.
    let port = free_port().unwrap();
    let (id, secret) = declare_client(
        &client,
        &org.ns,
        "wiki",
        json!({"redirectURIs": [REDIRECT], "backchannelLogoutURI": uri_on(port)}),
    )
    .await;
    let cookie = auth.session(&login, PASSWORD).await;
    let app = sign_in_app(&auth.base, &cookie, &id, &secret).await;
    let sid = app.id["sid"].as_str().unwrap().to_owned();
    assert!(
        auth.post("/api/v1/logout", json!({}), Some(&cookie))
            .await
            .status
            .is_success()
    );

    // Kept in the cluster, failed, said so: a Warning Event on the client and a metric.
    eventually(
        "the logout kept in the outbox",
        Duration::from_secs(30),
        || async { (outbox(&client).await == 1).then_some(()) },
    )
    .await;
    let warned = eventually(
        "a LogoutFailed Warning Event",
        Duration::from_secs(30),
        || async {
            warnings(env, &org.ns, "wiki")
                .into_iter()
                .find(|(reason, _)| reason == "LogoutFailed")
        },
    )
    .await;
    assert!(warned.1.contains("kept and retried"), "{warned:?}");
    assert!(
        !warned.1.contains("logout_token") && !warned.1.contains("eyJ"),
        "no token in Events: {warned:?}"
    );
    eventually("the failure counted", Duration::from_secs(10), || async {
        let text = scrape(probe).await?;
        (metric(
            &text,
            "usher_controller_oidc_logouts_total{outcome=\"failed\"}",
        ) >= 1.0
            && metric(&text, "usher_controller_oidc_logouts_due") == 1.0)
            .then_some(())
    })
    .await;

    // Every Usher process goes; the app comes back meanwhile; new processes start.
    drop(controller);
    drop(auth);
    let rx = Receiver::start_on(port).await;
    let probe = free_port().unwrap();
    let _controller = start_controller_on(env, &smtp.url(), "logouts-controller-2", probe);
    let auth = start_auth(env, "logouts-auth-2", &[]).await;

    let logout = rx
        .logout_from(
            &auth.base,
            app.id["iss"].as_str().unwrap(),
            &id,
            &sid,
            "the logout token after the restart",
        )
        .await;
    assert_eq!(logout["sub"], app.id["sub"]);
    eventually("the outbox emptied", Duration::from_secs(10), || async {
        (outbox(&client).await == 0).then_some(())
    })
    .await;
    eventually("the delivery counted", Duration::from_secs(10), || async {
        let text = scrape(probe).await?;
        (metric(
            &text,
            "usher_controller_oidc_logouts_total{outcome=\"sent\"}",
        ) == 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(rx.received().len(), 1, "delivered once");
    // The trail says so: the failures while the app was down, then one delivery.
    let records = eventually("the audit records", Duration::from_secs(10), || async {
        let r: Vec<serde_json::Value> = audit_records()
            .into_iter()
            .filter(|r| {
                r["target"]["name"] == "wiki"
                    && r["action"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("oidc.logout"))
            })
            .collect();
        r.iter()
            .any(|r| r["action"] == "oidc.logout.sent")
            .then_some(r)
    })
    .await;
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "oidc.logout.failed" && r["outcome"] == "failed"),
        "{records:?}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["action"] == "oidc.logout.sent")
            .count(),
        1
    );
    drop(auth);
}
