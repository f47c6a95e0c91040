//! The shipped binary: the image builds `usher` without the opt-in `dev` feature, and without it
//! the local control plane (usher-testkit: etcd, kube-apiserver, test CAs) is not linked in.

use std::{path::PathBuf, process::Command};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The crates `usher-operator` links with these feature flags, as `cargo tree` lists them.
fn linked(features: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo())
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "usher-operator",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .args(features)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_image_build_leaves_the_test_harness_out_of_the_binary() {
    assert!(
        linked(&["--features", "dev"]).contains("usher-testkit"),
        "`usher dev` (the dev feature) uses the harness"
    );
    assert!(
        !linked(&[]).contains("usher-testkit"),
        "by default the harness must not be linked"
    );
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .unwrap();
    assert!(
        !build.contains("dev") && !build.contains("--all-features"),
        "the image must not turn on the dev feature: {build}"
    );
}
