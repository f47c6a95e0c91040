//! Onboarding benchmark: N Users created at once on the envtest API server; the time until all
//! are Invited with their email delivered, as a ratio to the server's raw create time for N
//! ConfigMaps (same client, same concurrency, same run). Also: API requests per new User (from
//! the API server's own `apiserver_request_total`, less the benchmark's own requests) and the
//! controller's resident memory.
//!
//! `cargo bench -p usher-operator --bench onboarding` (or `make bench`); `USHER_BENCH_USERS`
//! sets N (default 1000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code may panic

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use usher_crds::{Organisation, OrganisationSpec, Profile, ProfileSpec, User, UserPhase, UserSpec};
use usher_testkit::{Envtest, Process, SmtpSink, create_namespace, free_port};

const CONCURRENCY: usize = 32;

/// `apiserver_request_total` by verb and resource.
async fn api_requests(client: &Client) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    let mut by = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        let key = format!("{} {}", label("verb"), label("resource"));
        *by.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    by
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

async fn create_all<T, F>(n: usize, make: F) -> Duration
where
    F: Fn(usize) -> futures::future::BoxFuture<'static, T>,
{
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(make)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

fn main() {
    let n: usize = std::env::var("USHER_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let env = Envtest::start().await.unwrap();
        env.install_crds(usher_crds::crds()).await.unwrap();
        let client = env.client().await.unwrap();
        for ns in ["usher-system", "bench-raw"] {
            create_namespace(&client, ns).await.unwrap();
        }
        let smtp = SmtpSink::start().await.unwrap();
        Api::<Profile>::all(client.clone())
            .create(&PostParams::default(), &Profile::new("analyst", ProfileSpec::default()))
            .await
            .unwrap();
        Api::<Organisation>::all(client.clone())
            .create(
                &PostParams::default(),
                &Organisation::new(
                    "bench",
                    OrganisationSpec {
                        display_name: "Bench".into(),
                        ..Default::default()
                    },
                ),
            )
            .await
            .unwrap();
        let log = std::env::temp_dir().join("usher-bench-controller.log");
        let controller = Process::spawn(
            Command::new(env!("CARGO_BIN_EXE_usher"))
                .arg("controller")
                .env("KUBECONFIG", env.kubeconfig())
                .env("USHER_SMTP_URL", smtp.url())
                .env("USHER_PROBE_LISTEN", format!("127.0.0.1:{}", free_port().unwrap()))
                .env("RUST_LOG", "warn"),
            &log,
            None,
        )
        .unwrap();
        // The controller creates the organisation's namespace.
        while Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .get_opt("bench")
            .await
            .unwrap()
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Baseline: N plain objects, same client and concurrency.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-raw");
        let raw = create_all(n, |i| {
            let cms = cms.clone();
            Box::pin(async move {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(format!("cm{i}")),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([("login".into(), format!("u{i}@example.com"))])),
                    ..Default::default()
                };
                cms.create(&PostParams::default(), &cm).await.unwrap();
            })
        })
        .await;

        let requests_before = api_requests(&client).await;
        let users: Api<User> = Api::namespaced(client.clone(), "bench");
        let started = Instant::now();
        let created = create_all(n, |i| {
            let users = users.clone();
            Box::pin(async move {
                let u = User::new(
                    &format!("u{i}"),
                    UserSpec {
                        login: format!("u{i}@example.com"),
                        full_name: format!("User {i}"),
                        profile: "analyst".into(),
                        ..Default::default()
                    },
                );
                users.create(&PostParams::default(), &u).await.unwrap();
            })
        })
        .await;
        let mut polls = 0u32;
        loop {
            polls += 1;
            let list = users.list(&ListParams::default()).await.unwrap();
            let invited = list
                .items
                .iter()
                .filter(|u| u.status.as_ref().and_then(|s| s.phase) == Some(UserPhase::Invited))
                .count();
            if invited == n && smtp.messages().unwrap().len() >= n {
                break;
            }
            if started.elapsed() > Duration::from_secs(900) {
                panic!("only {invited}/{n} Invited after 15 minutes; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let onboarded = started.elapsed();
        // Let trailing status/count writes land before counting requests.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let own = n as f64 + f64::from(polls) + 1.0;
        let after = api_requests(&client).await;
        let mut deltas: Vec<(String, f64)> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - requests_before.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d > 0.0)
            .collect();
        deltas.sort_by(|a, b| b.1.total_cmp(&a.1));
        let controller_requests = deltas.iter().map(|(_, d)| d).sum::<f64>() - own;
        let emails = smtp.messages().unwrap().len();

        println!("onboarding benchmark: {n} Users created at once ({CONCURRENCY} concurrent creates), envtest kube-apiserver 1.20");
        println!("  raw create of {n} ConfigMaps (baseline)  {:>8.2} s", raw.as_secs_f64());
        println!("  create of {n} Users                       {:>8.2} s", created.as_secs_f64());
        println!("  all Invited with mail delivered          {:>8.2} s", onboarded.as_secs_f64());
        println!("  ratio onboarding / raw create             {:>8.2}", onboarded.as_secs_f64() / raw.as_secs_f64());
        println!("  API requests by the controller per User   {:>8.1}", controller_requests / n as f64);
        println!("  emails delivered                          {emails:>8}");
        println!("  requests by verb and resource (benchmark's own {own} included):");
        for (k, d) in deltas.iter().take(10) {
            println!("    {k:<40} {:>8.0}  ({:.1} per User)", d, d / n as f64);
        }
        println!(
            "  controller RSS now / peak                 {:>5} / {} MiB",
            rss_kib(controller.id(), "VmRSS:") / 1024,
            rss_kib(controller.id(), "VmHWM:") / 1024
        );
    });
}
