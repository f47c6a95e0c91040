//! `usher crds` prints exactly the committed YAML, and `kubectl apply -f crds/` installs it on a
//! fresh real API server.

use std::{path::PathBuf, process::Command};

use usher_testkit::Envtest;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn usher_crds_prints_the_committed_yaml() {
    let out = Command::new(env!("CARGO_BIN_EXE_usher"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed: String = [
        "profiles.yaml",
        "organisations.yaml",
        "users.yaml",
        "oidcclients.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(repo().join("crds").join(f)).unwrap())
    .collect();
    assert_eq!(
        printed, committed,
        "run `make crds` to regenerate crds/*.yaml"
    );
}

#[tokio::test]
async fn kubectl_apply_of_the_crds_folder_installs_every_kind() {
    // A server of its own: nothing pre-installed.
    let env = Envtest::start().await.unwrap();
    let dir = repo().join("crds");
    let out = env
        .kubectl_ok(&["apply", "-f", dir.to_str().unwrap()])
        .unwrap();
    for crd in [
        "profiles.usher.dev",
        "organisations.usher.dev",
        "users.usher.dev",
    ] {
        assert!(
            out.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{crd} created"
            )),
            "{out}"
        );
    }
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/profiles.usher.dev",
        "crd/organisations.usher.dev",
        "crd/users.usher.dev",
    ])
    .unwrap();
    // Applying the same files server-side again changes nothing and conflicts with nothing.
    let out = env
        .kubectl_ok(&["apply", "--server-side", "-f", dir.to_str().unwrap()])
        .unwrap();
    assert!(out.contains("serverside-applied"), "{out}");
    // The field docs reach `kubectl explain` once the server republishes its OpenAPI (seconds).
    let explained = usher_testkit::poll(std::time::Duration::from_secs(30), || async {
        env.kubectl_ok(&["explain", "users.spec.login"]).ok()
    })
    .await;
    let out = explained.expect("kubectl explain users.spec.login never answered");
    assert!(out.contains("canonical form"), "{out}");
}
