//! The controller under API errors, each on an API server of its own: while the API server
//! refuses the controller's writes, every failed reconcile is retried with backoff, counted and
//! reported in a Warning Event, and every User converges once the server accepts writes again,
//! without a restart; `/readyz` answers 200 only once the caches are synced.

use std::time::Duration;

use crate::common::*;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use usher_crds::{User, UserPhase};
use usher_testkit::{Envtest, SmtpSink, TestCa, free_port};

/// Makes the API server refuse the writes of account Secrets and of User statuses: an admission
/// webhook at a local port where nothing listens, which the API server fails to call
/// (failurePolicy Fail). The controller still adds its finalizers and sends mail.
async fn refuse_writes(env: &Envtest) {
    let ca = TestCa::new().unwrap();
    let dead = format!("https://127.0.0.1:{}/refuse", free_port().unwrap());
    let config = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "outage"},
        "webhooks": [{
            "name": "outage.usher.test",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 1,
            "rules": [
                {"apiGroups": ["usher.dev"], "apiVersions": ["*"], "operations": ["UPDATE"],
                 "resources": ["users/status"], "scope": "*"},
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["secrets"], "scope": "Namespaced"}
            ],
            "clientConfig": {"url": dead, "caBundle": base64_of(&ca.cert_pem())}
        }]
    });
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), config.to_string()).unwrap();
    env.kubectl_ok(&["apply", "-f", f.path().to_str().unwrap()])
        .unwrap();
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn users_converge_after_the_api_server_refused_writes_for_a_while() {
    let env = own_cluster().await;
    let client = setup(&env).await;
    let smtp = SmtpSink::start().await.unwrap();
    let probes = free_port().unwrap();
    let controller = start_controller_on(&env, &smtp.url(), "usher-controller-errors", probes);
    let p = profile(&client, &["manageCase"]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;

    refuse_writes(&env).await;
    let users: Api<User> = Api::namespaced(client.clone(), &ns);
    let n = 30;
    for i in 0..n {
        users
            .create(
                &PostParams::default(),
                &user(&format!("u{i}"), &format!("u{i}-{ns}@example.com"), &p),
            )
            .await
            .unwrap();
    }
    // The failures are counted and reported, and nothing is invited meanwhile.
    let http = reqwest::Client::new();
    let scrape = format!("http://127.0.0.1:{probes}/metrics");
    eventually(
        "failed reconciles counted",
        Duration::from_secs(30),
        || async {
            let text = http.get(&scrape).send().await.ok()?.text().await.ok()?;
            (metric(&text, "usher_controller_reconcile_failures_total") >= f64::from(n))
                .then_some(())
        },
    )
    .await;
    let warned = eventually(
        "a Warning Event on a User",
        Duration::from_secs(20),
        || async {
            let w = warnings(&env, &ns, "u0");
            (!w.is_empty()).then_some(w)
        },
    )
    .await;
    assert!(
        warned.iter().any(|(_, note)| note.contains("retrying in")),
        "{warned:?}"
    );
    // The controller's log says which object a failing request was for: every reconcile runs
    // in a span naming it (and the log, not a terminal, has no colour codes).
    let log = controller.log();
    let span = format!("reconcile{{kind=User object={ns}/u");
    assert!(
        log.lines()
            .any(|l| l.contains(&span) && l.contains("generation=1") && l.contains("500")),
        "no line of a failed reconcile names its User:\n{}",
        controller.log_tail(20)
    );
    assert!(!log.contains('\u{1b}'), "colour codes in the log");
    // Each User failed again on its backoff, which grew meanwhile.
    eventually(
        "each User's reconcile retried",
        Duration::from_secs(30),
        || async {
            let text = http.get(&scrape).send().await.ok()?.text().await.ok()?;
            (metric(&text, "usher_controller_reconcile_failures_total") >= f64::from(3 * n))
                .then_some(())
        },
    )
    .await;

    // The API server accepts writes again: every User converges, no restart needed.
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete("outage", &DeleteParams::default())
        .await
        .unwrap();
    for i in 0..n {
        wait_phase_within(
            &client,
            &ns,
            &format!("u{i}"),
            UserPhase::Invited,
            Duration::from_secs(120),
        )
        .await;
    }
    // Each was emailed once, although recording the link failed again and again: the retries
    // recorded the link already sent, which is the one that works.
    for i in 0..n {
        let login = format!("u{i}-{ns}@example.com");
        let mails = smtp.emails_to(&login).unwrap();
        assert_eq!(mails.len(), 1, "{login}: one email through the outage");
        let secret = account_secret(&client, &login).await.unwrap();
        assert_eq!(
            secret_text(&secret, "invitation.tokenHash"),
            Some(usher_operator::hash_token(
                &mails.last().unwrap().invitation_token().unwrap()
            )),
            "{login}: the newest email holds the valid link"
        );
    }
}

#[tokio::test]
async fn the_leader_is_ready_only_once_its_caches_are_synced() {
    // No CRDs yet: the leader cannot list Users, so its caches cannot sync.
    let env = Envtest::start().await.unwrap();
    setup(&env).await;
    let probes = free_port().unwrap();
    let _controller =
        start_controller_on(&env, "smtp://127.0.0.1:9", "usher-controller-ready", probes);
    let http = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{probes}/readyz");
    // It leads (the Lease is taken), and says it is not ready.
    eventually("the Lease", Duration::from_secs(20), || async {
        env.kubectl_ok(&["get", "lease", "usher-controller", "-n", OPERATOR_NS])
            .ok()
    })
    .await;
    let r = http.get(&readyz).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("not synced"));
    // With the CRDs, the caches fill and it becomes ready.
    env.install_crds(usher_crds::crds()).await.unwrap();
    eventually("ready", Duration::from_secs(60), || async {
        let r = http.get(&readyz).send().await.ok()?;
        (r.status() == reqwest::StatusCode::OK).then_some(())
    })
    .await;
}
