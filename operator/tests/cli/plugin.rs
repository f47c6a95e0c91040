//! `usher` as a kubectl plugin: installed as `kubectl-usher` on the PATH, `kubectl usher …` sets
//! the one-shot annotations and runs the account commands, against a real kube-apiserver.

use crate::common::*;
use kube::{Api, ResourceExt, api::PostParams};
use usher_crds::User;
use usher_testkit::{Envtest, create_namespace};

#[tokio::test]
async fn kubectl_usher_sets_the_one_shot_annotations() {
    let env = Envtest::shared(usher_crds::crds).await.unwrap();
    let client = setup(env).await;
    let ns = usher_testkit::unique_name("plugin");
    create_namespace(&client, &ns).await.unwrap();
    let users: Api<User> = Api::namespaced(client.clone(), &ns);
    users
        .create(
            &PostParams::default(),
            &user("alice", "alice@example.com", "analyst"),
        )
        .await
        .unwrap();

    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_usher"),
        bin.path().join("kubectl-usher"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let kubectl = |args: &[&str]| {
        let out = env
            .kubectl_env()
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    let (ok, listed) = kubectl(&["plugin", "list"]);
    assert!(ok && listed.contains("kubectl-usher"), "{listed}");
    for (action, annotation) in [
        ("kill-session", "usher.dev/kill-sessions"),
        ("renew-key", "usher.dev/renew-api-key"),
        ("resend-invitation", "usher.dev/resend-invitation"),
        ("reset-password", "usher.dev/reset-password"),
    ] {
        let (ok, out) = kubectl(&["usher", action, "alice", "-n", &ns]);
        assert!(ok, "{out}");
        assert!(out.contains(annotation), "{out}");
        let u = users.get("alice").await.unwrap();
        assert!(u.annotations().contains_key(annotation), "{action}");
    }
    // A second kill-session sets a new value (each value is processed once).
    let before = users.get("alice").await.unwrap().annotations()["usher.dev/kill-sessions"].clone();
    kubectl(&["usher", "kill-session", "alice", "-n", &ns]);
    let after = users.get("alice").await.unwrap().annotations()["usher.dev/kill-sessions"].clone();
    assert_ne!(before, after);

    let (ok, out) = kubectl(&["usher", "kill-session", "nobody", "-n", &ns]);
    assert!(!ok && out.contains("no User \"nobody\""), "{out}");
    let (ok, out) = kubectl(&["usher", "account", "list", "--namespace", OPERATOR_NS]);
    assert!(ok && out.contains("LOGIN"), "{out}");
}
