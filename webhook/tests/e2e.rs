//! End to end: the real kube-apiserver calls the `usher-webhook` binary over TLS (registered by
//! URL with its CA in `caBundle`), and kubectl shows the refusal messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::json;
use tokio::sync::OnceCell;
use usher_crds::{Organisation, OrganisationSpec, Profile, ProfileSpec, User};
use usher_testkit::admission::user;
use usher_testkit::{
    Envtest, Process, TestCa, create_namespace, free_port, poll, register_webhook, unique_name,
};

struct Webhook {
    env: &'static Envtest,
    dir: PathBuf,
    port: u16,
    ca: TestCa,
    process: Process,
}

static WEBHOOK: OnceCell<Webhook> = OnceCell::const_new();

async fn webhook() -> &'static Webhook {
    WEBHOOK
        .get_or_init(|| async {
            let env = Envtest::shared(usher_crds::crds).await.unwrap();
            let dir = tempfile::tempdir().unwrap().keep();
            let ca = TestCa::new().unwrap();
            let cert = ca.issue(1001).unwrap();
            std::fs::write(dir.join("tls.crt"), &cert.cert_pem).unwrap();
            std::fs::write(dir.join("tls.key"), &cert.key_pem).unwrap();
            std::fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
            let port = free_port().unwrap();
            let process = Process::spawn(
                Command::new(env!("CARGO_BIN_EXE_usher-webhook"))
                    .env("USHER_WEBHOOK_LISTEN", format!("127.0.0.1:{port}"))
                    .env("USHER_WEBHOOK_CERT", dir.join("tls.crt"))
                    .env("USHER_WEBHOOK_KEY", dir.join("tls.key"))
                    .env("KUBECONFIG", env.kubeconfig())
                    .env("RUST_LOG", "info"),
                &dir.join("webhook.log"),
                Some(&dir),
            )
            .unwrap();
            let hook = Webhook {
                env,
                dir,
                port,
                ca,
                process,
            };
            hook.wait_listening().await;
            hook.register().await;
            hook
        })
        .await
}

impl Webhook {
    async fn wait_listening(&self) {
        let listening = poll(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .ok()
        })
        .await;
        assert!(
            listening.is_some(),
            "usher-webhook did not listen:\n{}",
            self.process.log()
        );
    }

    async fn register(&self) {
        let client = self.env.client().await.unwrap();
        let url = format!("https://127.0.0.1:{}/validate", self.port);
        register_webhook(&client, &url, &self.ca.cert_pem())
            .await
            .unwrap();
        // The API server picks the configuration up asynchronously: wait until it refuses.
        let ns = unique_name("nowhere");
        let users: Api<User> = Api::namespaced(client.clone(), "default");
        let refused = poll(Duration::from_secs(20), || async {
            match users
                .create(
                    &PostParams::default(),
                    &user("default", &ns, "x@example.com", "analyst"),
                )
                .await
            {
                Err(kube::Error::Api(s)) if s.message.contains("belongs to no Organisation") => {
                    Some(())
                }
                Ok(_) => {
                    let _ = users.delete(&ns, &DeleteParams::default()).await;
                    None
                }
                Err(_) => None,
            }
        })
        .await;
        assert!(
            refused.is_some(),
            "the API server never called the webhook:\n{}",
            self.process.log()
        );
    }

    /// `kubectl apply -f -` of `yaml`; returns (success, stdout + stderr).
    fn kubectl_apply(&self, yaml: &str) -> (bool, String) {
        let mut child = self
            .env
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `curl --cacert ca.crt https://127.0.0.1:PORT<path>`: a real TLS client.
    fn curl(&self, args: &[&str], path: &str) -> (String, String) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(self.dir.join("ca.crt"))
            .args(args)
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .expect("curl (apt-get install curl)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
        (code.to_owned(), body.to_owned())
    }
}

/// An organisation with its namespace, and a profile, named uniquely for this test.
/// The flood test drains the shared webhook's budget of fresh Lists, which the other tests'
/// refusals need (a duplicate login is refused from a fresh List, not from a cache a moment
/// behind): it runs alone, and gives the budget back refilled.
static BUDGET: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

struct World {
    client: Client,
    org: String,
    ns: String,
    profile: String,
    _budget: tokio::sync::RwLockReadGuard<'static, ()>,
}

async fn world() -> World {
    let budget = BUDGET.read().await;
    let hook = webhook().await;
    let client = hook.env.client().await.unwrap();
    let org = unique_name("org");
    let ns = format!("{org}-users");
    let profile = unique_name("analyst");
    create_namespace(&client, &ns).await.unwrap();
    Api::<Profile>::all(client.clone())
        .create(
            &PostParams::default(),
            &Profile::new(
                &profile,
                ProfileSpec {
                    description: None,
                    permissions: vec!["manageCase".into()],
                },
            ),
        )
        .await
        .unwrap();
    Api::<Organisation>::all(client.clone())
        .create(
            &PostParams::default(),
            &Organisation::new(
                &org,
                OrganisationSpec {
                    display_name: "Org".into(),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    World {
        client,
        org,
        ns,
        profile,
        _budget: budget,
    }
}

/// The webhook's refusal as the client gets it through the API server: 403, its message, and
/// details naming usher.dev and the rule (what the admin API tells Usher's refusals by).
fn refusal<T: std::fmt::Debug>(r: kube::Result<T>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            let details = s.details.as_ref().expect("the refusal carries details");
            assert_eq!(details.group, "usher.dev", "{s:?}");
            assert_eq!(details.causes.len(), 1, "{s:?}");
            s
        }
        other => panic!("expected the webhook to refuse, got {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(r: kube::Result<T>) -> String {
    refusal(r).message
}

#[tokio::test]
async fn kubectl_apply_shows_the_canonical_login_to_use() {
    let w = world().await;
    let hook = webhook().await;
    let yaml = format!(
        "apiVersion: usher.dev/v1alpha1\nkind: User\nmetadata:\n  name: alice\n  namespace: {}\nspec:\n  login: Alice@Example.COM\n  fullName: Alice\n  profile: {}\n",
        w.ns, w.profile
    );
    let (ok, out) = hook.kubectl_apply(&yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains(r#"admission webhook "validate.usher.dev" denied the request: spec.login "Alice@Example.COM" is not in canonical form; use "alice@example.com""#),
        "{out}"
    );
    let fixed = yaml.replace("Alice@Example.COM", "alice@example.com");
    let (ok, out) = hook.kubectl_apply(&fixed);
    assert!(ok, "{out}");
    assert!(out.contains("user.usher.dev/alice created"), "{out}");
}

#[tokio::test]
async fn cross_object_rules_are_enforced_by_the_api_server() {
    let w = world().await;
    let users: Api<User> = Api::namespaced(w.client.clone(), &w.ns);
    let pp = PostParams::default();
    users
        .create(&pp, &user(&w.ns, "bob", "bob@example.com", &w.profile))
        .await
        .unwrap();

    let s = refusal(
        users
            .create(&pp, &user(&w.ns, "bob2", "bob@example.com", &w.profile))
            .await,
    );
    assert!(s.message.contains("already used by User \"bob\""), "{s:?}");
    let details = s.details.as_ref().unwrap();
    assert_eq!(
        (details.kind.as_str(), details.name.as_str()),
        ("User", "bob2")
    );
    let cause = &details.causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("LoginTaken", "spec.login")
    );

    let m = refused(
        users
            .create(
                &pp,
                &user(&w.ns, "carol", "carol@example.com", "no-such-profile"),
            )
            .await,
    );
    assert!(
        m.contains("\"no-such-profile\" does not exist") && m.contains(&w.profile),
        "{m}"
    );

    let m = refused(
        users
            .create(
                &pp,
                &user(&w.ns, "eve", "\u{430}lice@example.com", &w.profile),
            )
            .await,
    );
    assert!(m.contains("different scripts"), "{m}");

    let orgs: Api<Organisation> = Api::all(w.client.clone());
    let clash = Organisation::new(
        &unique_name("org"),
        OrganisationSpec {
            display_name: "Clash".into(),
            namespace: Some(w.ns.clone()),
            ..Default::default()
        },
    );
    let m = refused(orgs.create(&pp, &clash).await);
    assert!(
        m.contains(&format!("already belongs to Organisation \"{}\"", w.org)),
        "{m}"
    );
    let system = Organisation::new(
        &unique_name("org"),
        OrganisationSpec {
            display_name: "Sys".into(),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
    );
    assert!(refused(orgs.create(&pp, &system).await).contains("system namespace"));

    let dp = DeleteParams::default();
    let m = refused(
        Api::<Profile>::all(w.client.clone())
            .delete(&w.profile, &dp)
            .await,
    );
    assert!(
        m.contains(&format!("still used by 1 User(s): {}/bob", w.ns)),
        "{m}"
    );
    let m = refused(orgs.delete(&w.org, &dp).await);
    assert!(m.contains("still has 1 User(s)"), "{m}");

    // Once the User is gone, both deletions go through.
    users.delete("bob", &dp).await.unwrap();
    Api::<Profile>::all(w.client.clone())
        .delete(&w.profile, &dp)
        .await
        .unwrap();
    orgs.delete(&w.org, &dp).await.unwrap();
}

#[tokio::test]
async fn hostile_objects_get_clear_answers() {
    let w = world().await;
    let hook = webhook().await;

    // Unknown fields are pruned by the API server; the rest is judged normally.
    let yaml = format!(
        "apiVersion: usher.dev/v1alpha1\nkind: User\nmetadata:\n  name: dave\n  namespace: {}\nspec:\n  login: dave@example.com\n  fullName: Dave\n  profile: {}\n  isAdmin: true\n",
        w.ns, w.profile
    );
    let out = hook
        .env
        .kubectl()
        .args(["apply", "--validate=false", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(yaml.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = Api::<User>::namespaced(w.client.clone(), &w.ns)
        .get("dave")
        .await
        .unwrap();
    let raw = serde_json::to_value(&stored).unwrap();
    assert!(raw["spec"].get("isAdmin").is_none(), "{raw}");

    // Duplicate keys: the API server keeps the last value, which the webhook then judges.
    let body = format!(
        r#"{{"apiVersion":"usher.dev/v1alpha1","kind":"User","metadata":{{"name":"dup","namespace":"{ns}"}},
        "spec":{{"login":"dup@example.com","login":"Dup@Example.com","fullName":"D","profile":"{p}"}}}}"#,
        ns = w.ns,
        p = w.profile
    );
    let req = http::Request::post(format!(
        "/apis/usher.dev/v1alpha1/namespaces/{}/users",
        w.ns
    ))
    .header("content-type", "application/json")
    .body(body.into_bytes())
    .unwrap();
    match w.client.request_text(req).await {
        Err(kube::Error::Api(s)) => {
            assert!(s.message.contains("use \"dup@example.com\""), "{s:?}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A megabyte in a field: the schema's maxLength refuses it before the webhook.
    let mut big = (*user(&w.ns, "big", "big@example.com", &w.profile)).clone();
    big.spec.full_name = "x".repeat(1 << 20);
    match Api::<User>::namespaced(w.client.clone(), &w.ns)
        .create(&PostParams::default(), &big)
        .await
    {
        Err(kube::Error::Api(s)) => assert!(s.code == 422 || s.code == 413, "{s:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Sent straight to the webhook: a 1 MB review is answered, garbage gets a 400, never a 5xx.
    let review = usher_testkit::admission::review_json(
        "CREATE",
        "User",
        Some(&w.ns),
        "big",
        Some(json!({"apiVersion": "usher.dev/v1alpha1", "kind": "User",
            "metadata": {"name": "big", "namespace": w.ns},
            "spec": {"login": "big@example.com", "fullName": "x".repeat(1 << 20), "profile": w.profile}})),
        None,
    );
    let file = hook.dir.join("big-review.json");
    std::fs::write(&file, serde_json::to_vec(&review).unwrap()).unwrap();
    let data = format!("@{}", file.display());
    let (code, body) = hook.curl(
        &[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &data,
        ],
        "/validate",
    );
    assert_eq!(code, "200", "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{body}");
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);

    let (code, body) = hook.curl(
        &[
            "-H",
            "content-type: application/json",
            "--data",
            "{not json",
        ],
        "/validate",
    );
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("\"error\":\"invalid_review\""), "{body}");
    let (code, _) = hook.curl(&["--data", "{}"], "/validate");
    assert_eq!(code, "400");
}

fn served_serial(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn file_serial(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn certificate_files_are_reloaded_when_they_change() {
    let hook = webhook().await;
    let w = world().await;
    let before = served_serial(hook.port);
    assert!(before.starts_with("serial="), "{before}");

    let next = hook.ca.issue(2002).unwrap();
    // Key first, then certificate: the reloader retries a mismatched pair until both are new.
    std::fs::write(hook.dir.join("tls.key"), &next.key_pem).unwrap();
    std::fs::write(hook.dir.join("tls.crt"), &next.cert_pem).unwrap();
    let want = file_serial(&hook.dir.join("tls.crt"));
    assert_ne!(want, before);
    let served = poll(Duration::from_secs(10), || async {
        Some(served_serial(hook.port)).filter(|s| *s == want)
    })
    .await;
    assert_eq!(served, Some(want), "{}", hook.process.log_tail(20));

    // The API server still reaches the webhook with the new certificate.
    let users: Api<User> = Api::namespaced(w.client.clone(), &w.ns);
    let m = refused(
        users
            .create(
                &PostParams::default(),
                &user(&w.ns, "x", "X@example.com", &w.profile),
            )
            .await,
    );
    assert!(m.contains("use \"x@example.com\""), "{m}");
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let hook = webhook().await;
    let (code, body) = hook.curl(&[], "/healthz");
    assert_eq!((code.as_str(), body.as_str()), ("200", "ok"));
    let (code, _) = hook.curl(&[], "/readyz");
    assert_eq!(code, "200");
    // Registration already had reviews refused (namespace of no organisation).
    let (code, body) = hook.curl(&[], "/metrics");
    assert_eq!(code, "200");
    assert!(
        body.lines()
            .any(|l| l.starts_with("usher_webhook_reviews_total{")
                && l.contains("kind=\"User\"")
                && l.contains("decision=\"denied\"")),
        "{body}"
    );
    assert!(
        body.contains("usher_webhook_review_duration_seconds_bucket"),
        "{body}"
    );
}

#[tokio::test]
async fn the_caches_list_afresh_until_synced_and_then_agree() {
    let w = world().await;
    use usher_webhook::{cache::Caches, rules::Lookup};
    let caches = Caches::start(w.client.clone());
    let listed = caches.list(None).await.unwrap();
    assert!(
        listed
            .organisations()
            .iter()
            .any(|o| o.metadata.name.as_deref() == Some(&w.org))
    );
    let synced = poll(Duration::from_secs(5), || async {
        caches.is_synced().then_some(())
    })
    .await;
    assert!(synced.is_some(), "the caches never synced");
    assert!(
        caches
            .organisations()
            .iter()
            .any(|o| o.metadata.name.as_deref() == Some(&w.org))
    );
    assert!(
        caches
            .profiles()
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(&w.profile))
    );
}

/// Every file in `examples/` passes the API server's schema and the webhook, applied in one go
/// the way a GitOps tool does (`kubectl apply -k examples/`).
#[tokio::test]
async fn every_example_applies_in_one_go_through_the_webhook() {
    let hook = webhook().await;
    let client = hook.env.client().await.unwrap();
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    // The namespaces come with the examples: no step before the one apply.
    let out = hook
        .env
        .kubectl_ok(&["apply", "-k", examples.to_str().unwrap()])
        .unwrap();
    for expect in [
        "namespace/acme",
        "namespace/globex-users",
        "profile.usher.dev/admin",
        "profile.usher.dev/org-admin",
        "profile.usher.dev/analyst",
        "profile.usher.dev/read-only",
        "organisation.usher.dev/acme",
        "organisation.usher.dev/globex",
        "user.usher.dev/alice",
        "user.usher.dev/bob",
        "user.usher.dev/case-sync",
        "deployment.apps/case-sync",
    ] {
        assert!(out.contains(expect), "{expect} missing in:\n{out}");
    }
    // alice is a member of both organisations, with a different profile in each.
    let acme = Api::<User>::namespaced(client.clone(), "acme")
        .get("alice")
        .await
        .unwrap();
    let globex = Api::<User>::namespaced(client.clone(), "globex-users")
        .get("alice")
        .await
        .unwrap();
    assert_eq!(acme.spec.login, globex.spec.login);
    assert_ne!(acme.spec.profile, globex.spec.profile);
    // Every file is also valid on its own (a newcomer applies them one by one).
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    for file in files {
        hook.env
            .kubectl_ok(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

/// The API server's count of LIST requests for Organisations so far.
fn organisation_lists(env: &Envtest) -> f64 {
    env.kubectl_ok(&["get", "--raw", "/metrics"])
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{")
                && l.contains("resource=\"organisations\"")
                && l.contains("verb=\"LIST\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The webhook's budget of fresh Lists as its /metrics shows it.
fn fresh_lists_available(hook: &Webhook) -> Option<f64> {
    let (_, body) = hook.curl(&[], "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix("usher_webhook_fresh_lists_available "))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

#[tokio::test]
async fn a_flood_of_refused_reviews_does_not_become_a_flood_of_lists() {
    // Any pod that reaches the webhook can post reviews; each refused User used to cost the
    // API server fresh cluster-wide Lists of Organisations, Profiles and Users.
    let _alone = BUDGET.write().await;
    let hook = webhook().await;
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "flood",
            "kind": {"group": "usher.dev", "version": "v1alpha1", "kind": "User"},
            "resource": {"group": "usher.dev", "version": "v1alpha1", "resource": "users"},
            "namespace": "nowhere",
            "name": "x",
            "operation": "CREATE",
            "userInfo": {"username": "attacker"},
            "object": {
                "apiVersion": "usher.dev/v1alpha1",
                "kind": "User",
                "metadata": {"name": "x", "namespace": "nowhere"},
                "spec": {"login": "x@example.com", "fullName": "X", "profile": "p"}
            },
            "dryRun": false
        }
    });
    let body = hook.dir.join("flood.json");
    std::fs::write(&body, review.to_string()).unwrap();
    let before = organisation_lists(hook.env);
    let n = 100;
    let data = format!("@{}", body.display());
    let args = [
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        data.as_str(),
    ];
    for _ in 0..n {
        let (code, answer) = hook.curl(&args, "/validate");
        assert_eq!(code, "200", "{answer}");
        assert!(answer.contains("\"allowed\":false"), "{answer}");
    }
    let lists = organisation_lists(hook.env) - before;
    assert!(
        lists <= 30.0,
        "{n} refused reviews cost the API server {lists} Lists of Organisations"
    );
    let left = fresh_lists_available(hook);
    assert!(
        left.is_some_and(|v| v < 10.0),
        "the budget shown spent: {left:?}"
    );
    // The budget refills (a refused review lists afresh again), and is full again before the
    // others go on: they create Users each needing a fresh List, and a cache a moment behind
    // would decide them otherwise.
    let refilled = usher_testkit::poll(std::time::Duration::from_secs(15), || async {
        let before = organisation_lists(hook.env);
        hook.curl(&args, "/validate");
        (organisation_lists(hook.env) > before).then_some(())
    })
    .await;
    assert!(
        refilled.is_some(),
        "the budget of fresh Lists never refilled"
    );
    let full = usher_testkit::poll(std::time::Duration::from_secs(15), || async {
        fresh_lists_available(hook).filter(|v| *v >= 10.0)
    })
    .await;
    assert!(full.is_some(), "the budget of fresh Lists never filled up");
}

#[tokio::test]
async fn a_misplaced_oidc_client_is_refused_naming_the_fix() {
    let w = world().await;
    let pp = PostParams::default();
    let client_in = |ns: &str, spec: serde_json::Value| -> usher_crds::OIDCClient {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "usher.dev/v1alpha1", "kind": "OIDCClient",
            "metadata": {"name": unique_name("app"), "namespace": ns}, "spec": spec,
        }))
        .unwrap()
    };
    let here: Api<usher_crds::OIDCClient> = Api::namespaced(w.client.clone(), &w.ns);
    let s = refusal(
        here.create(
            &pp,
            &client_in(&w.ns, serde_json::json!({"redirectURIs": ["https://a.example.com/cb"], "organisations": ["*"]})),
        )
        .await,
    );
    assert!(
        s.message
            .contains(&format!("serves organisation \"{}\"", w.org))
            && s.message.contains("remove spec.organisations"),
        "{s:?}"
    );
    let cause = &s.details.as_ref().unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("ClientListsOrganisations", "spec.organisations")
    );

    let stray = unique_name("stray");
    create_namespace(&w.client, &stray).await.unwrap();
    let there: Api<usher_crds::OIDCClient> = Api::namespaced(w.client.clone(), &stray);
    let m = refused(
        there
            .create(
                &pp,
                &client_in(
                    &stray,
                    serde_json::json!({"redirectURIs": ["https://a.example.com/cb"]}),
                ),
            )
            .await,
    );
    assert!(
        m.contains("belongs to no Organisation")
            && m.contains("create the OIDCClient in an organisation's namespace"),
        "{m}"
    );

    here.create(
        &pp,
        &client_in(
            &w.ns,
            serde_json::json!({"redirectURIs": ["https://a.example.com/cb"]}),
        ),
    )
    .await
    .unwrap();
}
