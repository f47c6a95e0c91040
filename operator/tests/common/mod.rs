//! Shared by the controller's end-to-end tests: a real API server, a real SMTP server and the
//! real `usher controller` binary, and helpers to build and wait for objects.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

pub mod auth;
pub mod oidc;
pub mod webauthn;

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use usher_crds::{Organisation, OrganisationSpec, Profile, ProfileSpec, User, UserPhase, UserSpec};
use usher_testkit::{Envtest, Process, create_namespace, free_port, unique_name};

pub const OPERATOR_NS: &str = "usher-system";
pub const PUBLIC_URL: &str = "http://usher.test";

/// Starts `usher controller` against `env`, mailing through `smtp_url`.
pub fn start_controller(env: &Envtest, smtp_url: &str, log: &str) -> Process {
    start_controller_on(env, smtp_url, log, free_port().unwrap())
}

/// As [`start_controller`], serving /metrics and probes on 127.0.0.1:`probe_port`.
pub fn start_controller_on(env: &Envtest, smtp_url: &str, log: &str, probe_port: u16) -> Process {
    start_controller_with(env, smtp_url, log, probe_port, &[])
}

/// As [`start_controller_on`], with `extra` environment (another `KUBECONFIG`, say).
pub fn start_controller_with(
    env: &Envtest,
    smtp_url: &str,
    log: &str,
    probe_port: u16,
    extra: &[(&str, &str)],
) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
    cmd.arg("controller")
        .env("USHER_AUDIT_SINK", audit_file(log))
        .env("KUBECONFIG", env.kubeconfig())
        .env("USHER_SMTP_URL", smtp_url)
        .env("USHER_PUBLIC_URL", PUBLIC_URL)
        .env("USHER_NAMESPACE", OPERATOR_NS)
        .env("USHER_PROBE_LISTEN", format!("127.0.0.1:{probe_port}"))
        // A killed leader's Lease must expire before a restarted one leads.
        .env("USHER_LEASE_DURATION", "3s")
        .env("RUST_LOG", "info,kube=warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Process::spawn(&mut cmd, &log_path(log), None).unwrap()
}

pub async fn setup(env: &Envtest) -> Client {
    let client = env.client().await.unwrap();
    create_namespace(&client, OPERATOR_NS).await.unwrap();
    client
}

/// Polls `f` until it returns Some, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    usher_testkit::poll(timeout, &mut f)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// A profile, and an organisation holding a fresh namespace.
pub struct Org {
    pub name: String,
    pub ns: String,
    pub display: String,
}

pub async fn profile(client: &Client, permissions: &[&str]) -> String {
    let name = unique_name("profile");
    Api::<Profile>::all(client.clone())
        .create(
            &PostParams::default(),
            &Profile::new(
                &name,
                ProfileSpec {
                    description: None,
                    permissions: permissions.iter().map(|p| (*p).into()).collect(),
                },
            ),
        )
        .await
        .unwrap();
    name
}

pub async fn organisation(client: &Client) -> Org {
    let name = unique_name("org");
    let ns = format!("{name}-users");
    let display = format!("Org {name}");
    Api::<Organisation>::all(client.clone())
        .create(
            &PostParams::default(),
            &Organisation::new(
                &name,
                OrganisationSpec {
                    display_name: display.clone(),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    Org { name, ns, display }
}

pub fn user(name: &str, login: &str, profile: &str) -> User {
    User::new(
        name,
        UserSpec {
            login: login.into(),
            full_name: format!("Person {name}"),
            profile: profile.into(),
            ..Default::default()
        },
    )
}

/// A login unique to this test run.
pub fn login(prefix: &str) -> String {
    format!("{}@example.com", unique_name(prefix))
}

/// Waits until User `name` in `ns` is gone (its finalizer done), for at most `timeout`.
pub async fn wait_user_gone(client: &Client, ns: &str, name: &str, timeout: Duration) {
    let users = Api::<User>::namespaced(client.clone(), ns);
    eventually(&format!("User {ns}/{name} to be gone"), timeout, || async {
        users.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

pub async fn wait_phase(client: &Client, ns: &str, name: &str, phase: UserPhase) -> User {
    wait_phase_within(client, ns, name, phase, Duration::from_secs(30)).await
}

pub async fn wait_phase_within(
    client: &Client,
    ns: &str,
    name: &str,
    phase: UserPhase,
    timeout: Duration,
) -> User {
    let api: Api<User> = Api::namespaced(client.clone(), ns);
    eventually(&format!("{ns}/{name} to be {phase:?}"), timeout, || {
        let api = api.clone();
        async move {
            let u = api.get(name).await.ok()?;
            (u.status.as_ref()?.phase == Some(phase)).then_some(u)
        }
    })
    .await
}

pub async fn account_secret(client: &Client, login: &str) -> Option<Secret> {
    let id = usher_operator::account_id(login);
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NS)
        .get_opt(&usher_operator::secret_name(&id))
        .await
        .unwrap()
}

/// The account of `login`, decoded as every reader decodes it.
pub async fn account(client: &Client, login: &str) -> Option<usher_operator::Account> {
    Some(usher_operator::Account::from_secret(&account_secret(client, login).await?).unwrap())
}

/// Waits until the controller has mailed the reset link asked for `login` and recorded it:
/// from then on it mails nothing more for that request.
pub async fn reset_recorded(client: &Client, login: &str) {
    eventually(
        &format!("the reset of {login} recorded as sent"),
        Duration::from_secs(30),
        || async {
            let a = account(client, login).await?;
            (a.reset.sent_at.is_some() && !a.reset.wanted()).then_some(())
        },
    )
    .await;
}

/// Waits until the account of `login` records the invitation it was emailed (the email goes
/// first, then the account records it).
pub async fn invitation_recorded(client: &Client, login: &str) -> Secret {
    eventually(
        &format!("the invitation of {login} recorded"),
        Duration::from_secs(30),
        || async {
            let secret = account_secret(client, login).await?;
            let a = usher_operator::Account::from_secret(&secret).ok()?;
            a.invitation.as_ref()?.sent_at?;
            Some(secret)
        },
    )
    .await
}

pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8(v.0.clone()).unwrap())
}

pub fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}-{}.log", std::process::id()))
}

/// The directory where every Usher process this test binary starts writes its audit records
/// (`USHER_AUDIT_SINK`, one JSON-lines file per process).
pub fn audit_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("usher-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The audit file of the process logging to `log`.
pub fn audit_file(log: &str) -> String {
    audit_dir()
        .join(format!("{log}.jsonl"))
        .display()
        .to_string()
}

/// Every audit record the processes of this test binary wrote so far.
pub fn audit_records() -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(audit_dir()).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.ends_with('}')) {
            if let Ok(v) = serde_json::from_str(line) {
                out.push(v);
            }
        }
    }
    out
}

/// Waits until the controller created the organisation's namespace; returns its name.
pub async fn wait_ns(client: &Client, org: &Org) -> String {
    eventually(
        &format!("namespace {}", org.ns),
        Duration::from_secs(20),
        || async {
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .get_opt(&org.ns)
                .await
                .ok()
                .flatten()
                .map(|_| org.ns.clone())
        },
    )
    .await
}

/// The account fields an accepted invitation and a TOTP enrolment leave, written directly (for
/// controller tests that run without the auth server).
pub async fn activate(client: &Client, login: &str) {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), OPERATOR_NS);
    let name = account_secret(client, login).await.unwrap().name_any();
    let data = BTreeMap::from([
        (
            "passwordHash".to_string(),
            ByteString(b"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_vec()),
        ),
        (
            "activatedAt".to_string(),
            ByteString(b"2026-11-27T12:00:00Z".to_vec()),
        ),
        (
            "mfaEnrolledAt".to_string(),
            ByteString(b"2026-11-27T12:05:00Z".to_vec()),
        ),
        // Enrolled in TOTP, as a confirmed enrolment leaves the account (status mfaEnrolled).
        (
            "totp.secret".to_string(),
            ByteString(b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".to_vec()),
        ),
        ("invitation.tokenHash".to_string(), ByteString(Vec::new())),
    ]);
    let patch = serde_json::json!({"data": data});
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Runs `usher account …` against `env`: whether it succeeded, and its stdout and stderr.
pub fn run_usher_account(env: &Envtest, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_usher"))
        .arg("account")
        .args(args)
        .env("USHER_AUDIT_SINK", audit_file("usher-account"))
        .env("USER", "platform-operator")
        .env("KUBECONFIG", env.kubeconfig())
        .env("USHER_NAMESPACE", OPERATOR_NS)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Where `scripts/install-tools.sh` put helm, kubectl 1.33 and checkov (`USHER_TOOLS`, else
/// `~/.cache/usher/tools`); `tool` must be there.
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("USHER_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/usher/tools"),
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} is missing in {}: run scripts/install-tools.sh",
        dir.display()
    );
    path
}

/// The Warning Events about object `name` in namespace `ns` (Organisations: "default"), as
/// (reason, note).
pub fn warnings(env: &Envtest, ns: &str, name: &str) -> Vec<(String, String)> {
    let selector = format!("involvedObject.name={name},type=Warning");
    let out = env
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &selector,
            "-o",
            "json",
        ])
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["message"]
                    .as_str()
                    .or(e["note"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// The condition `type_` of a status's conditions.
pub fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_).cloned()
}

/// `value` as a Lua expression: objects become tables with string keys, arrays sequences,
/// `null` nil (as Argo CD hands a resource to a health script).
fn lua_literal(value: &serde_json::Value) -> String {
    use serde_json::Value;
    let string = |s: &str| {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// What the Argo CD health check of docs/gitops/health.lua says of `obj` (a live object),
/// run by a real Lua 5.4 interpreter: (status, message).
pub fn argo_health(obj: &impl serde::Serialize) -> (String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gitops/health.lua");
    // The page people copy it from shows this very script.
    let doc = std::fs::read_to_string(script.with_file_name("../gitops.md")).unwrap();
    let indented: String = std::fs::read_to_string(&script)
        .unwrap()
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::from("\n")
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        doc.contains(&indented),
        "docs/gitops.md does not show docs/gitops/health.lua"
    );
    let program = format!(
        "obj = {}\nlocal check = assert(loadfile({:?}))\nlocal hs = check()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(&serde_json::to_value(obj).unwrap()),
        script.display().to_string()
    );
    let out = Command::new("lua5.4")
        .args(["-e", &program])
        .output()
        .unwrap_or_else(|e| panic!("lua5.4 is missing ({e}): run scripts/install-deps.sh"));
    assert!(
        out.status.success(),
        "the health check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_owned(), message.to_owned())
}

/// An API server of the test's own with Usher's CRDs, for a test that runs, kills or starves a
/// controller of its own: on the shared one, its controller and the binary's would take turns
/// leading.
pub async fn own_cluster() -> Envtest {
    let env = Envtest::start().await.unwrap();
    env.install_crds(usher_crds::crds()).await.unwrap();
    env
}

/// Runs the browser script `e2e/<script>` (playwright-core driving Debian's chromium) with
/// `vars` in its environment; fails naming the command that provisions whatever is missing.
pub fn browser_script<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    script: &str,
    vars: impl IntoIterator<Item = (K, V)>,
) -> std::process::Output {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci --prefix e2e`"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHROMIUM").is_some(),
        "chromium is missing: run scripts/install-deps.sh (Debian package chromium)"
    );
    Command::new("node")
        .arg(e2e.join(script))
        .envs(vars)
        .output()
        .unwrap_or_else(|e| panic!("node is missing ({e}): install Node.js 20+"))
}

/// True when the tests run as root (CI does): servers that drop privileges need a user then.
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}
