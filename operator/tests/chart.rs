//! The Helm chart, checked without Helm: values against `values.schema.json` (python3-jsonschema,
//! the same draft Helm uses), templates rendered by Go text/template + sprig
//! (`tools/chart-render`, built from Debian's packages), and every rendering applied with
//! server-side dry-run to a real kube-apiserver.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use common::*;
use serde_json::Value;
use usher_testkit::{Envtest, create_namespace, unique_name};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    root().join("charts/usher")
}

/// Builds tools/chart-render once per test binary.
fn renderer() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart-render");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(root().join("tools/chart-render/main.go"))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache"))
            .status()
            .unwrap_or_else(|e| {
                panic!("go is missing ({e}): run scripts/install-deps.sh (golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev)")
            });
        assert!(status.success(), "building tools/chart-render failed; run scripts/install-deps.sh");
        out
    })
}

fn write_values(yaml: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), yaml).unwrap();
    f
}

/// Renders the chart as release `name` in `namespace`; Err carries the renderer's message.
fn render(
    name: &str,
    namespace: &str,
    values: &str,
    api_versions: &[String],
) -> Result<String, String> {
    let file = write_values(values);
    let mut cmd = Command::new(renderer());
    cmd.args(["-name", name, "-namespace", namespace, "-f"])
        .arg(file.path());
    for v in api_versions {
        cmd.args(["-api-versions", v]);
    }
    let out = cmd.arg(chart()).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Validates values.yaml with `overrides` merged over it, as Helm does before rendering.
fn validate(overrides: &str) -> Result<(), String> {
    let file = write_values(overrides);
    let script = r#"
import json, sys, yaml, jsonschema
def merge(a, b):
    for k, v in b.items():
        a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a
chart = sys.argv[1]
values = merge(yaml.safe_load(open(chart + "/values.yaml")), yaml.safe_load(open(sys.argv[2])) or {})
schema = json.load(open(chart + "/values.schema.json"))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=str)
for e in errors:
    print("/".join(map(str, e.path)) or "(root)", ":", e.message)
sys.exit(1 if errors else 0)
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(chart())
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("python3 is missing ({e}): scripts/install-deps.sh"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("ModuleNotFoundError"),
        "{text}: run scripts/install-deps.sh (python3-jsonschema, python3-yaml)"
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

const MINIMAL: &str = "publicUrl: https://usher.example.com\nsmtp:\n  url: smtp://relay.example.com:587?tls=required\n";

#[test]
fn values_are_checked_against_the_schema() {
    validate(MINIMAL).unwrap();
    validate(&format!(
        "{MINIMAL}  existingSecret: usher-smtp\nwebhook:\n  certManager:\n    enabled: true\n    issuerRef: {{name: corp-ca, kind: ClusterIssuer}}\nnetworkPolicy: {{enabled: true}}\nserviceMonitor: {{enabled: true, interval: 1m}}\n"
    ))
    .unwrap();
    for (bad, says) in [
        (format!("{MINIMAL}replica: 3\n"), "'replica' was unexpected"),
        (
            format!("{MINIMAL}webhook:\n  replicaCount: 3\n"),
            "'replicaCount' was unexpected",
        ),
        (
            format!("{MINIMAL}session:\n  idleTimeout: 1 hour\n"),
            "does not match",
        ),
        (
            format!("{MINIMAL}mfa:\n  enabled: yes please\n"),
            "is not of type 'boolean'",
        ),
        ("smtp:\n  url: smtp://relay:25\n".to_owned(), "publicUrl"),
    ] {
        let e = validate(&bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn the_chart_says_what_is_missing() {
    let e = render(
        "usher",
        "usher-system",
        "smtp:\n  url: smtp://relay:25\n",
        &[],
    )
    .unwrap_err();
    assert!(e.contains("publicUrl is required"), "{e}");
}

#[test]
fn rbac_rules_each_give_their_reason_and_profiles_match_the_examples() {
    let rbac = std::fs::read_to_string(chart().join("templates/rbac.yaml")).unwrap();
    let lines: Vec<&str> = rbac.lines().collect();
    let mut rules = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- apiGroups:") {
            rules += 1;
            let before = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap();
            assert!(
                before.trim_start().starts_with('#'),
                "rule without a reason: {line}"
            );
        }
    }
    assert!(rules >= 8, "{rules}");
    let strip = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("{{"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let chart_profiles = std::fs::read_to_string(chart().join("templates/profiles.yaml")).unwrap();
    let examples = std::fs::read_to_string(root().join("examples/profiles.yaml")).unwrap();
    assert_eq!(
        strip(&chart_profiles),
        strip(&examples),
        "charts/usher/templates/profiles.yaml differs from examples/profiles.yaml"
    );
}

/// Objects of a server-side dry-run.
fn dry_run(env: &Envtest, manifests: &str) -> Vec<Value> {
    let file = write_values(manifests);
    let out = env
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=helm",
            "-o",
            "json",
            "-f",
        ])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "server-side dry-run refused the chart:\n{}\n{manifests}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    match v["kind"].as_str() {
        Some("List") => v["items"].as_array().unwrap().clone(),
        _ => vec![v],
    }
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The auth server's ServiceAccount `sa` is bound to no cluster-wide rule on Secrets; its
/// Secrets rule is a Role in the release namespace `ns` (accounts and usher-keys).
fn assert_auth_reaches_no_secret_outside(objects: &[Value], sa: &str, ns: &str) {
    let bound = |binding_kind: &str| -> Vec<String> {
        of_kind(objects, binding_kind)
            .into_iter()
            .filter(|b| {
                b["subjects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa)
            })
            .map(|b| b["roleRef"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let secrets_rule = |role: &Value| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "secrets" || x == "*")
        })
    };
    let cluster_roles = bound("ClusterRoleBinding");
    assert!(
        !cluster_roles.is_empty(),
        "the auth server reads Users cluster-wide"
    );
    for name in &cluster_roles {
        let role = of_kind(objects, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"] == name.as_str())
            .unwrap();
        assert!(
            !secrets_rule(role),
            "ClusterRole {name} gives the auth server Secrets cluster-wide: {role}"
        );
    }
    let roles = bound("RoleBinding");
    let in_release = of_kind(objects, "Role").into_iter().any(|r| {
        roles.iter().any(|n| r["metadata"]["name"] == n.as_str())
            && r["metadata"]["namespace"] == ns
            && secrets_rule(r)
    });
    assert!(in_release, "the auth server needs its accounts in {ns}");
}

/// A CRD that accepts anything, standing in for cert-manager's and the Prometheus Operator's.
fn stub_crd(group: &str, kind: &str, plural: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: {kind}, plural: {plural}, singular: {}}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
        plural.trim_end_matches('s'),
    )
}

#[tokio::test]
async fn every_rendering_applies_to_a_real_api_server_with_restricted_pods() {
    let env = Envtest::shared(usher_crds::crds).await.unwrap();
    let client = setup(env).await;
    for crd in [
        stub_crd("cert-manager.io", "Issuer", "issuers"),
        stub_crd("cert-manager.io", "Certificate", "certificates"),
        stub_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ] {
        let f = write_values(&crd);
        env.kubectl_ok(&["apply", "-f", f.path().to_str().unwrap()])
            .unwrap();
    }
    // Helm renders against the cluster's API versions.
    let api_versions: Vec<String> = env
        .kubectl_ok(&["api-versions"])
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let everything = format!(
        "{MINIMAL}  existingSecret: usher-smtp\n  caSecret: relay-ca\nwebhook:\n  certManager: {{enabled: true}}\nnetworkPolicy: {{enabled: true}}\nserviceMonitor: {{enabled: true}}\nbuiltinProfiles: {{enabled: false}}\nnodeSelector: {{kubernetes.io/os: linux}}\nauth:\n  trustedProxies: 10.0.0.0/8,fd00::/8\n  cookieDomain: example.com\n"
    );
    for (release, values) in [("usher", MINIMAL.to_owned()), ("prod", everything)] {
        let ns = unique_name("chart");
        create_namespace(&client, &ns).await.unwrap();
        validate(&values).unwrap();
        let rendered = render(release, &ns, &values, &api_versions).unwrap();
        let objects = dry_run(env, &rendered);
        let full = values.contains("certManager: {enabled: true}");

        // Restricted pod security everywhere.
        let deployments = of_kind(&objects, "Deployment");
        assert_eq!(deployments.len(), 3, "{release}");
        for d in &deployments {
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            for c in pod["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
                assert_eq!(sc["allowPrivilegeEscalation"], false);
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            }
        }
        // The controller and the auth server each in their own pod, with their own
        // ServiceAccount.
        let by_args = |arg: &str| {
            *deployments
                .iter()
                .find(|d| d["spec"]["template"]["spec"]["containers"][0]["args"][0] == arg)
                .unwrap_or_else(|| panic!("no Deployment runs `usher {arg}`"))
        };
        let (controller, auth) = (by_args("controller"), by_args("auth"));
        let account = |d: &Value| {
            d["spec"]["template"]["spec"]["serviceAccountName"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_ne!(account(controller), account(auth));
        let env_of = |d: &Value, name: &str| {
            d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].as_str().unwrap_or_default().to_owned())
        };
        if full {
            assert_eq!(
                env_of(auth, "USHER_TRUSTED_PROXIES").as_deref(),
                Some("10.0.0.0/8,fd00::/8")
            );
            assert_eq!(
                env_of(auth, "USHER_COOKIE_DOMAIN").as_deref(),
                Some("example.com")
            );
        } else {
            assert_eq!(env_of(auth, "USHER_COOKIE_DOMAIN"), None);
        }
        let webhook = deployments
            .iter()
            .find(|d| {
                d["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-webhook")
            })
            .unwrap();
        assert_eq!(webhook["spec"]["replicas"], 2);
        assert_auth_reaches_no_secret_outside(&objects, &account(auth), &ns);
        assert_eq!(of_kind(&objects, "PodDisruptionBudget").len(), 1);

        let vwc = of_kind(&objects, "ValidatingWebhookConfiguration");
        let hook = &vwc[0]["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["clientConfig"]["service"]["namespace"], ns.as_str());
        if full {
            assert!(
                vwc[0]["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_string()
            );
            assert_eq!(of_kind(&objects, "Certificate").len(), 1);
            assert_eq!(of_kind(&objects, "NetworkPolicy").len(), 3);
            assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 1);
            assert!(of_kind(&objects, "Profile").is_empty());
        } else {
            assert!(
                hook["clientConfig"]["caBundle"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            );
            assert_eq!(
                of_kind(&objects, "Secret").len(),
                1,
                "the generated serving certificate"
            );
            assert_eq!(of_kind(&objects, "Profile").len(), 4);
            assert!(of_kind(&objects, "NetworkPolicy").is_empty());
        }
        // The ClusterRoles never grant everything.
        for role in of_kind(&objects, "ClusterRole") {
            for rule in role["rules"].as_array().unwrap() {
                assert!(
                    !rule["verbs"]
                        .as_array()
                        .unwrap()
                        .contains(&Value::from("*"))
                );
                assert!(
                    !rule["resources"]
                        .as_array()
                        .unwrap()
                        .contains(&Value::from("*"))
                );
            }
        }
    }
}
