//! Scale benchmark (DESIGN.md, "Second milestone", "Scale"): 10,000 Users in 100 organisations,
//! a tenth of them with an API key, onboarded by the real controller on the envtest API server
//! with mail to a real SMTP server. Then, each beside its target:
//!
//! - the controller's resident memory after onboarding, and again after a restart and resync;
//! - the controller's time to serve after a restart (SIGTERM, as Kubernetes restarts it): `/readyz`
//!   200, leading, caches synced, the first User reconciled;
//! - the writes a restart's resync of every User makes (none), and those of the settled set over
//!   a minute (none), counted by the API server's own `apiserver_request_total`;
//! - the auth server's time to ready from start and its resident memory;
//! - `/api/v1/verify` on this set with one of the delivered keys against a bare axum handler
//!   (the verify ratio of the auth benchmark, here with 10,000 accounts loaded).
//!
//! `cargo bench -p usher-operator --bench scale` (or `make bench`; needs `wrk`). `USHER_BENCH_USERS` sets the
//! number of Users (default 10000); `USHER_BENCH_SETTLE` the seconds watched once settled
//! (default 60).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code may panic

use std::{
    process::Command,
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use usher_crds::{ApiKeySpec, LABEL_USER, User, UserSpec};
use usher_testkit::{Process, free_port};

mod common;
use common::{
    OPERATOR_NS, api_requests, block_on, deltas, env_number, invited, lab, rss_kib,
    spawn_controller, verdict, wait_for, wait_for_namespaces, writes, writes_except, wrk::compare,
};

const ORGS: usize = 100;
const CONCURRENCY: usize = 32;
const MIB: u64 = 1024;

/// Waits until `url` answers 200; the time it took from `since`.
async fn ready(url: &str, since: Instant, what: &str, process: &Process) -> Duration {
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return since.elapsed();
        }
        if since.elapsed() > Duration::from_secs(600) {
            panic!(
                "{what} not ready after 10 minutes:\n{}",
                process.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops `process` as Kubernetes does: SIGTERM, then waits for it to exit.
async fn stop(process: &mut Process) {
    Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status()
        .unwrap();
    let since = Instant::now();
    while process.try_wait().unwrap().is_none() {
        if since.elapsed() > Duration::from_secs(30) {
            panic!(
                "still running 30 s after SIGTERM:\n{}",
                process.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The controller's count of User reconciles, from its `/metrics`.
async fn user_reconciles(metrics: &str) -> f64 {
    let text = reqwest::get(metrics).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("usher_controller_reconciles_total{") && l.contains("kind=\"User\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn main() {
    let n = env_number("USHER_BENCH_USERS", 10_000) as usize;
    let settle = env_number("USHER_BENCH_SETTLE", 60);
    block_on(async move {
        let orgs: Vec<String> = (0..ORGS).map(|o| format!("org{o}")).collect();
        let (env, client, smtp) = lab(&orgs).await;
        let log = std::env::temp_dir().join("usher-bench-scale-controller.log");
        let probes = format!("127.0.0.1:{}", free_port().unwrap());
        let readyz = format!("http://{probes}/readyz");
        let metrics = format!("http://{probes}/metrics");
        let mut ctl = spawn_controller(&env, &smtp, &probes, &log);
        ready(&readyz, Instant::now(), "the controller", &ctl).await;
        wait_for_namespaces(&client, &orgs).await;

        // Onboarding: every User Invited, every key delivered.
        let keys = n.div_ceil(10);
        let started = Instant::now();
        futures::stream::iter(0..n)
            .map(|i| {
                let users: Api<User> = Api::namespaced(client.clone(), &format!("org{}", i % ORGS));
                async move {
                    let spec = UserSpec {
                        login: format!("u{i}@example.com"),
                        full_name: format!("User {i}"),
                        profile: "analyst".into(),
                        api_key: (i % 10 == 0).then(|| ApiKeySpec {
                            enabled: true,
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    users
                        .create(&PostParams::default(), &User::new(&format!("u{i}"), spec))
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let invited_count = invited(Api::<User>::all(client.clone()));
        let key_secrets: Api<Secret> = Api::all(client.clone());
        let onboarded = wait_for(
            started,
            Duration::from_secs(1800),
            Duration::from_secs(2),
            &log,
            || async {
                let invited = invited_count.load(std::sync::atomic::Ordering::Acquire);
                let delivered = key_secrets
                    .list_metadata(&ListParams::default().labels(LABEL_USER).match_any())
                    .await
                    .unwrap()
                    .items
                    .len();
                let done = invited == n && delivered >= keys;
                if done {
                    Ok(())
                } else {
                    Err(format!("{invited}/{n} Invited, {delivered}/{keys} keys"))
                }
            },
        )
        .await;
        let onboard_rss = (rss_kib(ctl.id(), "VmRSS:"), rss_kib(ctl.id(), "VmHWM:"));
        // Trailing count writes land.
        tokio::time::sleep(Duration::from_secs(5)).await;

        // A restart as Kubernetes makes one (SIGTERM: the Lease is released), then the resync
        // of every User, then the settled set.
        stop(&mut ctl).await;
        let before_restart = api_requests(&client).await;
        let restarted = Instant::now();
        ctl = spawn_controller(&env, &smtp, &probes, &log);
        ready(&readyz, restarted, "the restarted controller", &ctl).await;
        // Serving: leading, caches synced, reconciling; then every User reconciled again.
        let reconciled = |at_least: f64| {
            let metrics = metrics.clone();
            move || {
                let metrics = metrics.clone();
                async move {
                    let done = user_reconciles(&metrics).await;
                    if done >= at_least {
                        Ok(())
                    } else {
                        Err(format!(
                            "{done} of {at_least} User reconciles after the restart"
                        ))
                    }
                }
            }
        };
        let limit = Duration::from_secs(600);
        let ctl_ready = wait_for(
            restarted,
            limit,
            Duration::from_millis(20),
            &log,
            reconciled(1.0),
        )
        .await;
        let resynced = wait_for(
            restarted,
            limit,
            Duration::from_millis(200),
            &log,
            reconciled(n as f64),
        )
        .await;
        let after_resync = api_requests(&client).await;
        tokio::time::sleep(Duration::from_secs(settle)).await;
        let after_settle = api_requests(&client).await;
        let resync = deltas(&before_restart, &after_resync);
        let settled = deltas(&after_resync, &after_settle);
        let ctl_rss = (rss_kib(ctl.id(), "VmRSS:"), rss_kib(ctl.id(), "VmHWM:"));

        // The auth server, started on the full set.
        let port = free_port().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let auth_started = Instant::now();
        let auth = Process::spawn(
            Command::new(env!("CARGO_BIN_EXE_usher"))
                .arg("auth")
                .env("KUBECONFIG", env.kubeconfig())
                .env("USHER_NAMESPACE", OPERATOR_NS)
                .env("USHER_LISTEN", format!("127.0.0.1:{port}"))
                .env(
                    "USHER_METRICS_LISTEN",
                    format!("127.0.0.1:{}", free_port().unwrap()),
                )
                .env("USHER_PUBLIC_URL", &base)
                .env("RUST_LOG", "warn"),
            &std::env::temp_dir().join("usher-bench-scale-auth.log"),
            None,
        )
        .unwrap();
        let auth_ready = ready(
            &format!("{base}/readyz"),
            auth_started,
            "the auth server",
            &auth,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let auth_rss = (rss_kib(auth.id(), "VmRSS:"), rss_kib(auth.id(), "VmHWM:"));
        // Forward-auth on this set: one of the delivered keys against a bare axum handler (no
        // middleware, empty 200) on a listener of the benchmark's own, interleaved under wrk.
        let key_secret = key_secrets
            .list(&ListParams::default().labels(LABEL_USER).limit(1))
            .await
            .unwrap()
            .items
            .into_iter()
            .next()
            .expect("a delivered key Secret");
        let key = String::from_utf8(key_secret.data.unwrap()["api-key"].0.clone()).unwrap();
        let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare = format!("http://{}/", bare_listener.local_addr().unwrap());
        tokio::spawn(async move {
            let app = axum::Router::new().route("/", axum::routing::get(|| async {}));
            axum::serve(bare_listener, app).await.unwrap();
        });
        let verify = compare(
            &bare,
            &format!("{base}/api/v1/verify"),
            &format!("Authorization: Bearer {key}"),
        )
        .await;

        let ok_mib = |kib: u64| verdict(kib < 300 * MIB);
        let ok_secs = |d: Duration| verdict(d <= Duration::from_secs(60));
        println!(
            "scale benchmark: {n} Users in {ORGS} organisations ({keys} with API keys), envtest kube-apiserver {}",
            usher_testkit::ENVTEST_VERSION
        );
        println!(
            "  onboarded (all Invited, keys delivered)        {:>7.1} s",
            onboarded.as_secs_f64()
        );
        println!(
            "  controller RSS after onboarding now / peak      {:>5} / {} MiB",
            onboard_rss.0 / MIB,
            onboard_rss.1 / MIB
        );
        println!(
            "  controller serving after a restart             {:>7.1} s  (target <= 60 s) {}",
            ctl_ready.as_secs_f64(),
            ok_secs(ctl_ready)
        );
        println!(
            "  controller resync of every User done after      {:>7.1} s",
            resynced.as_secs_f64()
        );
        println!(
            "  controller RSS after the resync now / peak      {:>5} / {} MiB  (target < 300 MiB) {}",
            ctl_rss.0 / MIB,
            ctl_rss.1 / MIB,
            ok_mib(ctl_rss.1)
        );
        // The leader election's renewals and the API server's own endpoints are not Usher's.
        let not_ours = ["leases", "endpoints"];
        let (resync_writes, settled_writes) = (
            writes_except(&resync, &not_ours),
            writes_except(&settled, &not_ours),
        );
        let renewals = writes(&settled) - settled_writes;
        println!(
            "  writes by the resync after the restart          {resync_writes:>7.0}  (target 0) {}",
            verdict(resync_writes == 0.0)
        );
        println!(
            "  writes over {settle} s with nothing changed          {settled_writes:>7.0}  (target 0) {}",
            verdict(settled_writes == 0.0)
        );
        println!(
            "    (beside {renewals:.0} writes of the leader Lease and the API server's endpoints)"
        );
        println!("  requests by the restart and resync, by verb and resource:");
        for (k, d) in &resync {
            println!("    {k:<40} {d:>8.0}");
        }
        println!(
            "  auth server ready after start                   {:>7.1} s  (target <= 60 s) {}",
            auth_ready.as_secs_f64(),
            ok_secs(auth_ready)
        );
        println!(
            "  auth server RSS now / peak                      {:>5} / {} MiB  (target < 300 MiB) {}",
            auth_rss.0 / MIB,
            auth_rss.1 / MIB,
            ok_mib(auth_rss.1)
        );
        println!(
            "  verify with a Bearer key vs a bare axum handler {:>7.2}  (target >= 0.7) {}; {:.0} vs {:.0} req/s, p99 {:.2} ms",
            verify.ratio,
            verdict(verify.ratio >= 0.7),
            verify.target.rps,
            verify.base.rps,
            verify.target.p99_ms
        );
    });
}
