//! An auth server whose API server goes away waits for it with a backoff: it does not spin a
//! core retrying its watches (which also kept `usher dev` from stopping on Ctrl-C).

use std::time::Duration;

use super::common::{OPERATOR_NS, auth::start_auth, own_cluster};

/// CPU seconds (user and system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test]
async fn an_auth_server_whose_api_server_is_gone_waits_without_spinning() {
    let env = own_cluster().await;
    let client = env.client().await.unwrap();
    usher_testkit::create_namespace(&client, OPERATOR_NS)
        .await
        .unwrap();
    // The keys the controller would make (no controller runs here).
    usher_operator::Keys::load_or_create(client, OPERATOR_NS)
        .await
        .unwrap();
    let auth = start_auth(&env, "auth-api-server-gone", &[]).await;
    let pid = auth.process.id();
    // The control plane goes away (etcd and kube-apiserver killed): every watch fails at once.
    drop(env);
    // A window to measure in: what the process burns while the API server stays gone.
    let window = Duration::from_secs(6);
    let before = cpu_seconds(pid);
    tokio::time::sleep(window).await;
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.1 * window.as_secs_f64(),
        "the auth server used {used:.2} s of CPU in {} s while its API server was gone",
        window.as_secs()
    );
    // And it still answers: liveness does not depend on the API server.
    let live = reqwest::get(format!("{}/healthz", auth.base))
        .await
        .unwrap();
    assert!(live.status().is_success(), "{}", live.status());
}
