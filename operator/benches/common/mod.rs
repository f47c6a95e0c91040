//! What the benchmarks share: the API server's own request counts, the memory and CPU of the
//! processes they start, and wrk (`wrk`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::{BTreeMap, HashSet},
    future::Future,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use usher_crds::{Organisation, OrganisationSpec, Profile, ProfileSpec, User, UserPhase};
use usher_testkit::{Envtest, Process, SmtpSink, create_namespace};

pub mod wrk;

/// The namespace the benchmarks' controllers run in (account Secrets).
pub const OPERATOR_NS: &str = "usher-system";

/// The number in environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs a benchmark's body on a multi-threaded Tokio runtime.
pub fn block_on<F: Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(body)
}

/// The lab a benchmark runs in: an envtest API server with Usher's CRDs and the operator
/// namespace, a real SMTP server, the Profile `analyst`, and an Organisation of each name in
/// `orgs` (their namespaces are the controller's to create, see [`wait_for_namespaces`]).
pub async fn lab(orgs: &[String]) -> (Envtest, Client, SmtpSink) {
    let env = Envtest::start().await.unwrap();
    env.install_crds(usher_crds::crds()).await.unwrap();
    let client = env.client().await.unwrap();
    create_namespace(&client, OPERATOR_NS).await.unwrap();
    let smtp = SmtpSink::start().await.unwrap();
    let pp = kube::api::PostParams::default();
    Api::<Profile>::all(client.clone())
        .create(&pp, &Profile::new("analyst", ProfileSpec::default()))
        .await
        .unwrap();
    let api: Api<Organisation> = Api::all(client.clone());
    for name in orgs {
        let spec = OrganisationSpec {
            display_name: format!("Organisation {name}"),
            ..Default::default()
        };
        api.create(&pp, &Organisation::new(name, spec))
            .await
            .unwrap();
    }
    (env, client, smtp)
}

/// Waits until each of `names` exists as a Namespace (the controller creates an
/// Organisation's).
pub async fn wait_for_namespaces(client: &Client, names: &[String]) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for name in names {
        while namespaces.get_opt(name).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts the release `usher controller` on `env`, mailing through `smtp`, its probes on
/// `probes`, logging to `log` (`USHER_BENCH_LOG` sets `RUST_LOG`; default `warn`).
pub fn spawn_controller(env: &Envtest, smtp: &SmtpSink, probes: &str, log: &Path) -> Process {
    Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_usher"))
            .arg("controller")
            .env("KUBECONFIG", env.kubeconfig())
            .env("USHER_NAMESPACE", "usher-system")
            .env("USHER_SMTP_URL", smtp.url())
            .env("USHER_PROBE_LISTEN", probes)
            .env(
                "RUST_LOG",
                std::env::var("USHER_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        log,
        None,
    )
    .unwrap()
}

/// Counts the Users `users` serves that are Invited, kept up to date by a watch (one event per
/// change: no poll makes the API server encode every User again).
pub fn invited(users: Api<User>) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        let mut invited = HashSet::new();
        let stream = watcher(users, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let (user, gone) = match event {
                Ok(watcher::Event::Apply(u) | watcher::Event::InitApply(u)) => (u, false),
                Ok(watcher::Event::Delete(u)) => (u, true),
                _ => continue,
            };
            let key = (user.namespace(), user.name_any());
            if !gone && user.status.as_ref().and_then(|s| s.phase) == Some(UserPhase::Invited) {
                invited.insert(key);
            } else {
                invited.remove(&key);
            }
            counted.store(invited.len(), Ordering::Release);
        }
    });
    count
}

/// Polls `check` every `every` until it answers `Ok`; each `Err` is the progress so far, traced
/// with the time since `since`. Past `limit` it panics with the last progress and `log`. The time
/// from `since` when it is done.
pub async fn wait_for<F, Fut>(
    since: Instant,
    limit: Duration,
    every: Duration,
    log: &Path,
    mut check: F,
) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    loop {
        let progress = match check().await {
            Ok(()) => return since.elapsed(),
            Err(progress) => progress,
        };
        trace(|| format!("  {:>6.1} s: {progress}", since.elapsed().as_secs_f64()));
        if since.elapsed() > limit {
            panic!(
                "only {progress} after {} s; see {}",
                limit.as_secs(),
                log.display()
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Prints a progress line when `USHER_BENCH_TRACE` is set.
pub fn trace(line: impl FnOnce() -> String) {
    if std::env::var_os("USHER_BENCH_TRACE").is_some() {
        println!("{}", line());
    }
}

/// `apiserver_request_total` by verb and resource (`"POST users"`).
pub async fn api_requests(client: &Client) -> BTreeMap<String, f64> {
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

/// A `/proc/<pid>/status` field (`VmRSS:`, `VmHWM:`) in KiB.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
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

/// CPU seconds used so far by each process of this benchmark's tree, by command name.
pub fn cpu_by_process() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![std::process::id()];
    while let Some(pid) = stack.pop() {
        let children = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        stack.extend(
            children
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses; utime and stime are fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks: f64 =
            fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += ticks / 100.0;
    }
    out
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
pub fn thread_cpu(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            if !stat[open + 1..close].starts_with(prefix) {
                return None;
            }
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            Some(
                fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0),
            )
        })
        .sum::<f64>()
        / 100.0
}

/// Whether a request count's key ("POST users") is a write: every verb but reads and watches.
fn is_write(key: &str) -> bool {
    let verb = key.split(' ').next().unwrap_or("");
    matches!(
        verb,
        "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
    )
}

/// The writes among request counts ("POST users" and so on).
pub fn writes(requests: &[(String, f64)]) -> f64 {
    requests
        .iter()
        .filter(|(k, _)| is_write(k))
        .fold(0.0, |sum, (_, v)| sum + v)
}

/// The writes among request counts but those to `resources` (`leases`: the leader election's
/// renewals; `endpoints`: the API server's own).
pub fn writes_except(requests: &[(String, f64)], resources: &[&str]) -> f64 {
    requests
        .iter()
        .filter(|(k, _)| is_write(k) && !resources.iter().any(|r| k.ends_with(&format!(" {r}"))))
        .fold(0.0, |sum, (_, v)| sum + v)
}

/// What changed between two request counts, largest first.
pub fn deltas(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut d: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    d.sort_by(|a, b| b.1.total_cmp(&a.1));
    d
}

/// "ok" or "MISSED", beside a figure and its target.
pub fn verdict(met: bool) -> &'static str {
    if met { "ok" } else { "MISSED" }
}
