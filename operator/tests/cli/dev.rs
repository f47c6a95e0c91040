//! `usher dev` as a newcomer runs it: on its fresh API server the examples apply in one
//! `kubectl apply -k` and every resource becomes Ready, the links appear, kubectl works with the
//! written kubeconfig, and Ctrl-C stops everything.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

#[test]
fn usher_dev_prints_invitation_links_serves_kubectl_and_stops_on_ctrl_c() {
    usher_testkit::assets_dir().expect("envtest assets");
    let dir = tempfile::tempdir().unwrap();
    let port = usher_testkit::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut child = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([
            "dev",
            "--dir",
            dir.path().to_str().unwrap(),
            "--examples",
            examples,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut links = Vec::new();
    let mut kubeconfig_line = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while links.len() < 2 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.starts_with("kubectl:") {
                kubeconfig_line = Some(line.clone());
            }
            if let Some(rest) = line.strip_prefix("invitation for ") {
                links.push(rest.to_owned());
            }
        }
    }
    let kill = |c: &mut std::process::Child| {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
    };
    if links.len() < 2 {
        kill(&mut child);
        panic!(
            "only {} invitation link(s) after 90 s: {links:?}",
            links.len()
        );
    }
    // alice is in two organisations and gets one invitation, bob one; the service user none.
    let mut logins: Vec<&str> = links.iter().map(|l| l.split(':').next().unwrap()).collect();
    logins.sort();
    assert_eq!(logins, ["alice@example.com", "bob@example.com"]);
    assert!(
        links
            .iter()
            .all(|l| l.contains(&format!("{base}/invite#token="))),
        "{links:?}"
    );
    assert!(kubeconfig_line.unwrap().contains("kubectl get usher -A"));

    let kubeconfig = dir.path().join("kubeconfig");
    let out = Command::new(usher_testkit::assets_dir().unwrap().join("kubectl"))
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "users",
            "-A",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("alice@example.com") && table.contains("Invited"),
        "{table}"
    );
    // Every example is Ready, as `kubectl wait` (kubectl 1.33) and GitOps health read it: the
    // Invited people, the service user with its key, the organisations and the profiles.
    let tools = std::env::var_os("USHER_TOOLS").map_or_else(
        || std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/usher/tools"),
        std::path::PathBuf::from,
    );
    let kubectl = tools.join("kubectl");
    assert!(
        kubectl.is_file(),
        "kubectl 1.33 is missing: run scripts/install-tools.sh"
    );
    for kind in ["users", "organisations", "profiles"] {
        let wait = Command::new(&kubectl)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "wait"])
            .args([
                "--for=condition=Ready",
                kind,
                "--all",
                "-A",
                "--timeout=60s",
            ])
            .output()
            .unwrap();
        assert!(
            wait.status.success(),
            "{kind} not Ready: {}{}",
            String::from_utf8_lossy(&wait.stdout),
            String::from_utf8_lossy(&wait.stderr)
        );
    }
    let service = Command::new(&kubectl)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args([
            "get",
            "user",
            "case-sync",
            "-n",
            "acme",
            "-o",
            "jsonpath={.status.phase} {.status.apiKey.fingerprint}",
        ])
        .output()
        .unwrap();
    let service = String::from_utf8_lossy(&service.stdout);
    assert!(service.starts_with("Active usk_"), "{service}");

    // The link works: bob sets a password through the auth server and signs in.
    let bob = links.iter().find(|l| l.starts_with("bob@")).unwrap();
    let token = bob.split_once("#token=").unwrap().1;
    let password = "Tz8#qL2!vR9$wX4m-orbit";
    let post = |path: &str, body: serde_json::Value| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "content-type: application/json",
                "-d",
            ])
            .arg(body.to_string())
            .arg(format!("{base}{path}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        post(
            "/api/v1/invitations/accept",
            serde_json::json!({"token": token, "password": password})
        ),
        "204"
    );
    let signed_in = usher_testkit::poll_blocking(Duration::from_secs(10), || {
        let code = post(
            "/api/v1/login",
            serde_json::json!({"login": "bob@example.com", "password": password}),
        );
        (code == "200").then_some(())
    });
    assert!(signed_in.is_some(), "bob cannot sign in");
    // The audit trail goes to a file beside the outbox, not into the person's terminal.
    let trail = usher_testkit::poll_blocking(Duration::from_secs(10), || {
        std::fs::read_to_string(dir.path().join("audit.jsonl"))
            .ok()
            .filter(|t| {
                t.lines().any(|l| {
                    l.contains(r#""action":"login.succeeded""#) && l.contains("bob@example.com")
                })
            })
    });
    assert!(
        trail.is_some(),
        "no login.succeeded record for bob in audit.jsonl"
    );

    kill(&mut child);
    let status =
        usher_testkit::poll_blocking(Duration::from_secs(20), || child.try_wait().unwrap());
    let status = status.expect("usher dev did not stop on Ctrl-C");
    assert!(status.success(), "usher dev exited with {status}");
    // The control plane went with it (usher dev exits after its children).
    let out = Command::new(usher_testkit::assets_dir().unwrap().join("kubectl"))
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "users",
            "-A",
            "--request-timeout=3s",
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the API server still answers after Ctrl-C"
    );
}
