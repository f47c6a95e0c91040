//! Onboarding benchmark: N Users created at once on the envtest API server; the time until all
//! are Invited with their email delivered, as a ratio to its real floor: the benchmark itself
//! making the same writes with the controller stopped (create the User, add the finalizer,
//! create an account Secret through the account codec, apply the status, send the invitation
//! email, at the same concurrency). Beside it the ratio to N plain ConfigMap creates (one write
//! each). Also: API requests per new User (from the API server's own `apiserver_request_total`,
//! less the benchmark's own requests) and the controller's resident memory.
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
    Api,
    api::{ObjectMeta, PostParams},
};
use usher_crds::{User, UserPhase, UserSpec, UserStatus};
use usher_testkit::{Envtest, SmtpSink, create_namespace, free_port};

mod common;
use common::{
    api_requests, block_on, cpu_by_process, deltas, env_number, invited, lab, rss_kib,
    spawn_controller, verdict, wait_for, wait_for_namespaces, writes_except,
};

const CONCURRENCY: usize = 32;

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

/// With `USHER_BENCH_PROFILE=<file>`: the API server's CPU profile of the next 8 s, written to
/// the file (`go tool pprof -top <file>` reads it).
fn profile_api_server(env: &Envtest, out: &std::ffi::OsStr) -> std::process::Child {
    let kubeconfig = std::fs::read_to_string(env.kubeconfig()).unwrap();
    let field = |name: &str| {
        kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    Command::new("curl")
        .args(["-skf", "-o"])
        .arg(out)
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", field("token:")))
        .arg(format!(
            "{}/debug/pprof/profile?seconds=8",
            field("server:")
        ))
        .spawn()
        .unwrap()
}

/// The benchmark's User number `i`.
fn user(i: usize) -> User {
    User::new(
        &format!("u{i}"),
        UserSpec {
            login: format!("u{i}@example.com"),
            full_name: format!("User {i}"),
            profile: "analyst".into(),
            ..Default::default()
        },
    )
}

/// The floor: what onboarding one User costs when a client makes exactly the writes the
/// controller makes (create, finalizer, account Secret, status, email), for `n` Users at the
/// same concurrency, with no controller running. The Users are in `namespace`, which no
/// Organisation holds; their finalizer is the benchmark's, removed afterwards (not timed).
async fn same_writes(
    client: &kube::Client,
    smtp: &SmtpSink,
    namespace: &str,
    n: usize,
) -> Duration {
    const FINALIZER: &str = "bench.usher.dev/floor";
    let users: Api<User> = Api::namespaced(client.clone(), namespace);
    let accounts = usher_operator::AccountStore::new(client.clone(), "usher-system");
    let mailer = std::sync::Arc::new(usher_operator::Mailer::from_url(&smtp.url()).unwrap());
    let elapsed = create_all(n, |i| {
        let (users, accounts, mailer) = (users.clone(), accounts.clone(), mailer.clone());
        Box::pin(async move {
            let created = users
                .create(&PostParams::default(), &user(i))
                .await
                .unwrap();
            let name = created.metadata.name.clone().unwrap();
            let finalized = users
                .patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(serde_json::json!({"metadata": {
                        "resourceVersion": created.metadata.resource_version,
                        "finalizers": [FINALIZER],
                    }})),
                )
                .await
                .unwrap();
            // The account as the controller first writes it: the record and an invitation's
            // hash and expiry (the controller's own record type is private to it).
            let mut account = usher_operator::Account::new(&created.spec.login);
            account.other.insert(
                "invitation".into(),
                k8s_openapi::ByteString(format!("{:064x}|2026-12-03T20:15:00Z", i).into_bytes()),
            );
            let account = accounts.create(&account).await.unwrap();
            let link = format!("http://127.0.0.1:8080/invite#token={:043}", i);
            let message = usher_operator::invitation_email(
                "usher@example.com",
                &usher_operator::Invitation {
                    login: &created.spec.login,
                    full_name: &created.spec.full_name,
                    organisation: "Organisation bench",
                    link: &link,
                    expires: "2026-12-03 20:15 UTC",
                },
            )
            .unwrap();
            mailer.send(message).await.unwrap();
            // A status of the controller's shape: phase, account, invitation, kstatus conditions.
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            );
            let condition = |type_: &str, status: &str, reason: &str, message: &str| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: reason.into(),
                    message: message.into(),
                    last_transition_time: now.clone(),
                    observed_generation: finalized.metadata.generation,
                }
            };
            let status = UserStatus {
                phase: Some(UserPhase::Invited),
                account_id: Some(account.id.clone()),
                invitation: Some(usher_crds::InvitationStatus {
                    sent_at: Some(now.clone()),
                    expires_at: Some(now.clone()),
                }),
                observed_generation: finalized.metadata.generation,
                conditions: vec![
                    condition(
                        "Ready",
                        "True",
                        "Invited",
                        "Invitation sent; waiting for the person to set a password",
                    ),
                    condition("Reconciling", "False", "Invited", "Nothing to do"),
                    condition("Stalled", "False", "Invited", "Nothing to do"),
                ],
                ..Default::default()
            };
            let apply = serde_json::json!({
                "apiVersion": "usher.dev/v1alpha1", "kind": "User", "status": status,
            });
            users
                .patch_status(
                    &name,
                    &kube::api::PatchParams::apply("usher-bench").force(),
                    &kube::api::Patch::Apply(apply),
                )
                .await
                .unwrap();
        })
    })
    .await;
    // Not timed: the benchmark's finalizers off, the Users and accounts gone, so the controller
    // started next never sees them.
    for i in 0..n {
        users
            .patch(
                &format!("u{i}"),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
    }
    users
        .delete_collection(&Default::default(), &Default::default())
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "usher-system")
        .delete_collection(
            &Default::default(),
            &kube::api::ListParams::default().labels(usher_crds::LABEL_ACCOUNT),
        )
        .await
        .unwrap();
    elapsed
}

/// Creates the benchmark's Users `0..n` through `users`; the time it took.
async fn create_users(users: &Api<User>, n: usize) -> Duration {
    create_all(n, |i| {
        let users = users.clone();
        Box::pin(async move {
            users
                .create(&PostParams::default(), &user(i))
                .await
                .unwrap();
        })
    })
    .await
}

fn main() {
    let n = env_number("USHER_BENCH_USERS", 1000) as usize;
    block_on(async move {
        let orgs = ["bench".to_owned()];
        let (env, client, smtp) = lab(&orgs).await;
        create_namespace(&client, "bench-raw").await.unwrap();
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
                    data: Some(BTreeMap::from([(
                        "login".into(),
                        format!("u{i}@example.com"),
                    )])),
                    ..Default::default()
                };
                cms.create(&PostParams::default(), &cm).await.unwrap();
            })
        })
        .await;

        // The ceiling: N Users created with no controller running (in a namespace of no
        // Organisation), then removed. Onboarding creates them too, so it cannot beat this.
        let bare_users: Api<User> = Api::namespaced(client.clone(), "bench-raw");
        let users_alone = create_users(&bare_users, n).await;
        bare_users
            .delete_collection(&Default::default(), &Default::default())
            .await
            .unwrap();

        // The floor: the same writes and emails, made by the benchmark itself.
        create_namespace(&client, "bench-floor").await.unwrap();
        let floor = same_writes(&client, &smtp, "bench-floor", n).await;
        let floor_mails = smtp.messages().unwrap().len();

        let log = std::env::temp_dir().join("usher-bench-controller.log");
        let controller = spawn_controller(
            &env,
            &smtp,
            &format!("127.0.0.1:{}", free_port().unwrap()),
            &log,
        );
        wait_for_namespaces(&client, &orgs).await;

        let requests_before = api_requests(&client).await;
        let cpu_before = cpu_by_process();
        let users: Api<User> = Api::namespaced(client.clone(), "bench");
        let profile =
            std::env::var_os("USHER_BENCH_PROFILE").map(|out| profile_api_server(&env, &out));
        let started = Instant::now();
        let created = create_users(&users, n).await;
        let invited_count = invited(users.clone());
        let onboarded = wait_for(
            started,
            Duration::from_secs(900),
            Duration::from_millis(100),
            &log,
            || async {
                let invited = invited_count.load(std::sync::atomic::Ordering::Acquire);
                let mails = smtp.messages().unwrap().len() - floor_mails;
                let done = invited == n && mails >= n;
                if done {
                    Ok(())
                } else {
                    Err(format!("{invited}/{n} Invited, {mails} emails"))
                }
            },
        )
        .await;
        if let Some(mut curl) = profile {
            curl.wait().unwrap();
        }
        let cpu_after = cpu_by_process();
        // Let trailing status/count writes land before counting requests.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = api_requests(&client).await;
        let deltas = deltas(&requests_before, &after);
        // The benchmark's own watch of the Users: a LIST, then a WATCH.
        let own_watch = 2.0;
        // The benchmark's own: the creates and its watch. Events are aside (the contract).
        let by = |k: &str| deltas.iter().find(|(d, _)| d == k).map_or(0.0, |(_, v)| *v);
        let events = by("POST events") + by("PATCH events");
        let all: f64 = deltas.iter().map(|(_, d)| d).sum();
        let controller_requests = all - n as f64 - own_watch - events;
        // Writes to the Users and their accounts, and apart from them the counts of the
        // Organisation and Profile (one write per batch of changes, not per User).
        // The leader election's renewals and the API server's own endpoints are not per User.
        let per_batch = ["leases", "endpoints"];
        let counts = writes_except(&deltas, &per_batch)
            - writes_except(
                &deltas,
                &["organisations", "profiles", "leases", "endpoints"],
            );
        let controller_writes = writes_except(&deltas, &per_batch) - n as f64 - events - counts;
        let emails = smtp.messages().unwrap().len() - floor_mails;
        let per_user = |v: f64| v / n as f64;
        let rate_ratio = raw.as_secs_f64() / onboarded.as_secs_f64();
        let floor_ratio = floor.as_secs_f64() / onboarded.as_secs_f64();

        println!(
            "onboarding benchmark: {n} Users created at once ({CONCURRENCY} concurrent creates), envtest kube-apiserver {}",
            usher_testkit::ENVTEST_VERSION
        );
        println!(
            "  raw create of {n} ConfigMaps (baseline)  {:>8.2} s",
            raw.as_secs_f64()
        );
        println!(
            "  create of {n} Users                       {:>8.2} s",
            created.as_secs_f64()
        );
        println!(
            "  all Invited with mail delivered          {:>8.2} s ({emails} emails)",
            onboarded.as_secs_f64()
        );
        println!(
            "  floor: the same writes and emails by the benchmark, no controller {:>6.2} s",
            floor.as_secs_f64()
        );
        println!(
            "  onboarding rate / same-writes floor rate  {floor_ratio:>8.2}  (target >= 0.7) {}",
            verdict(floor_ratio >= 0.7)
        );
        println!(
            "  onboarding rate / raw create rate         {rate_ratio:>8.2}  (ConfigMaps: one write each, for comparison)"
        );
        println!(
            "  ceiling: creating {n} Users, no controller {:>8.2} s, {:.2} of the raw create rate",
            users_alone.as_secs_f64(),
            raw.as_secs_f64() / users_alone.as_secs_f64()
        );
        println!(
            "  API requests per new User, Events aside   {:>8.1}  (target <= 5) {}",
            per_user(controller_requests),
            verdict(per_user(controller_requests) <= 5.0)
        );
        println!(
            "  API writes per new User, Events aside     {:>8.2}  (target <= 3) {}",
            per_user(controller_writes),
            verdict(per_user(controller_writes) <= 3.0)
        );
        println!(
            "    and count writes (Organisation, Profile) {counts:>8.0}  ({:.2} per User)",
            per_user(counts)
        );
        println!(
            "  Events per new User                       {:>8.1}",
            per_user(events)
        );
        println!(
            "  requests by verb and resource, from apiserver_request_total (the benchmark's {n} creates and its watch included):"
        );
        for (k, d) in deltas.iter().take(10) {
            println!("    {k:<40} {:>8.0}  ({:.1} per User)", d, d / n as f64);
        }
        let cpu = common::deltas(&cpu_before, &cpu_after);
        let api_cpu = cpu
            .iter()
            .find(|(k, _)| k == "kube-apiserver")
            .map_or(0.0, |(_, d)| *d);
        println!(
            "  API server CPU per new User                {:>7.1} ms",
            api_cpu * 1000.0 / n as f64
        );
        println!(
            "  CPU seconds while onboarding: {}",
            cpu.iter()
                .filter(|(_, d)| *d > 0.05)
                .map(|(k, d)| format!("{k} {d:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  controller RSS now / peak                 {:>5} / {} MiB",
            rss_kib(controller.id(), "VmRSS:") / 1024,
            rss_kib(controller.id(), "VmHWM:") / 1024
        );
    });
}
