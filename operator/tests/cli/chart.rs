//! The Helm chart with the real Helm 4 and kubectl 1.33 (`scripts/install-tools.sh` fetches
//! them, with checkov): `helm lint --strict` for each `charts/usher/ci/` values file, what the
//! defaults alone say, the schema's refusals, checkov on the renders, and `helm install`,
//! `upgrade` and `uninstall` against a real kube-apiserver of the test's own (the chart registers
//! a webhook whose pods never run here, which would refuse other tests' objects).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use usher_testkit::Envtest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn chart() -> PathBuf {
    root().join("charts/usher")
}

/// Where `scripts/install-tools.sh` put helm, kubectl and checkov.
fn tools() -> PathBuf {
    let dir = std::env::var_os("USHER_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/usher/tools"),
        PathBuf::from,
    );
    for tool in ["helm", "kubectl", "checkov/bin/checkov"] {
        assert!(
            dir.join(tool).is_file(),
            "{tool} is missing in {}: run scripts/install-tools.sh",
            dir.display()
        );
    }
    dir
}

/// The output of a finished command: success, stdout, stderr.
pub(crate) struct Run {
    pub ok: bool,
    pub out: String,
    pub err: String,
}

fn run(cmd: &mut Command) -> Run {
    let o = cmd.output().unwrap();
    Run {
        ok: o.status.success(),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `helm` with `args`, against `kubeconfig` when given (its caches in a temporary home).
pub(crate) fn helm(args: &[&str], kubeconfig: Option<&Path>) -> Run {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    let mut cmd = Command::new(tools().join("helm"));
    cmd.args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    run(&mut cmd)
}

pub(crate) fn kubectl(env: &Envtest, args: &[&str]) -> Run {
    run(Command::new(tools().join("kubectl"))
        .arg("--kubeconfig")
        .arg(env.kubeconfig())
        .args(args))
}

fn ci_values() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    files
}

pub(crate) fn values_file(yaml: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), yaml).unwrap();
    f
}

/// `helm template` of the chart as release `usher` in `usher-system` with the values file
/// `values`.
fn template_with(values: &Path) -> Run {
    helm(
        &[
            "template",
            "usher",
            chart().to_str().unwrap(),
            "--namespace",
            "usher-system",
            "-f",
            values.to_str().unwrap(),
        ],
        None,
    )
}

/// [`template_with`] the values `values`.
fn template(values: &str) -> Run {
    let f = values_file(values);
    template_with(f.path())
}

pub(crate) const MINIMAL: &str = "publicUrl: https://usher.example.com\nsmtp:\n  url: smtp://relay.example.com:587?tls=required\n";

#[test]
fn helm_lint_strict_passes_for_each_ci_values_file() {
    for values in ci_values() {
        let r = helm(
            &[
                "lint",
                "--strict",
                chart().to_str().unwrap(),
                "-f",
                values.to_str().unwrap(),
            ],
            None,
        );
        assert!(r.ok, "{}: {}{}", values.display(), r.out, r.err);
        assert!(r.out.contains("0 chart(s) failed"), "{}", r.out);
    }
}

#[test]
fn the_defaults_alone_name_each_required_value_and_nothing_else() {
    let r = template("");
    assert!(!r.ok);
    assert!(r.err.contains("Usher needs these values"), "{}", r.err);
    assert!(r.err.contains("publicUrl (where people reach"), "{}", r.err);
    assert!(r.err.contains("smtp.url (the mail relay"), "{}", r.err);
    assert!(!r.err.contains("does not match pattern"), "{}", r.err);
    // One missing value: only it is named.
    let r = template("publicUrl: https://usher.example.com\n");
    assert!(!r.ok);
    assert!(
        r.err.contains("smtp.url (") && !r.err.contains("publicUrl ("),
        "{}",
        r.err
    );
    assert!(template(MINIMAL).ok);
}

#[test]
fn the_accounts_namespace_is_never_the_release_namespace() {
    let same = template(&format!("{MINIMAL}accounts:\n  namespace: usher-system\n"));
    assert!(!same.ok, "accounts in the release namespace");
    assert!(same.err.contains("accounts.namespace"), "{}", same.err);
    let other = template(&format!("{MINIMAL}accounts:\n  namespace: people\n"));
    assert!(other.ok, "{}", other.err);
    assert!(
        other.out.contains("name: people\n"),
        "the namespace is made"
    );
}

#[test]
fn trusted_proxies_need_the_network_policy_to_name_who_may_reach_the_auth_server() {
    // With trusted proxies, any pod reaching port 8080 from a trusted address picks its own
    // X-Forwarded-For: the chart refuses to open the port to every pod then.
    let proxies = format!("{MINIMAL}auth:\n  trustedProxies: 10.0.0.0/8\n");
    let r = template(&proxies);
    assert!(
        !r.ok,
        "trusted proxies with the auth server open to every pod"
    );
    assert!(r.err.contains("networkPolicy.authFrom"), "{}", r.err);
    let r = template(&format!(
        "{proxies}networkPolicy:\n  enabled: false\n  authFrom: [{{podSelector: {{}}}}]\n"
    ));
    assert!(
        !r.ok && r.err.contains("networkPolicy.enabled"),
        "{}",
        r.err
    );

    let peer = "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}";
    let r = template(&format!("{proxies}networkPolicy:\n  authFrom: [{peer}]\n"));
    assert!(r.ok, "{}", r.err);
    let rule = auth_port_rule(&r.out);
    assert!(
        rule.contains("from:") && rule.contains("ingress-nginx"),
        "{rule}"
    );
    // Without proxies, port 8080 stays open to all (forward-auth callers are not known).
    let rule = auth_port_rule(&template(MINIMAL).out);
    assert!(!rule.contains("from:"), "{rule}");
}

/// The auth server's NetworkPolicy rule for port 8080, as rendered (up to the metrics rule).
fn auth_port_rule(rendered: &str) -> String {
    let policy = rendered
        .split("\n---")
        .find(|d| d.contains("kind: NetworkPolicy") && d.contains("{port: 8080"))
        .expect("the auth server's NetworkPolicy");
    let start = policy.find("{port: 8080").unwrap();
    let end = start + policy[start..].find("{port: 9090").unwrap();
    policy[start..end].to_owned()
}

/// The Deployments of `rendered` (the controller's and the auth server's), each whole.
fn deployments(rendered: &str) -> Vec<&str> {
    rendered
        .split("\n---")
        .filter(|d| d.contains("\nkind: Deployment"))
        .filter(|d| d.contains("args: [\"auth\"]") || d.contains("args: [\"controller\""))
        .collect()
}

#[test]
fn a_collector_sink_keeps_undelivered_records_on_a_volume_of_each_pod() {
    let spooled = template(&format!(
        "{MINIMAL}audit:\n  sink: https://audit.example.com/usher\n  spool:\n    sizeLimit: 64Mi\n"
    ));
    assert!(spooled.ok, "{}", spooled.err);
    let both = deployments(&spooled.out);
    assert_eq!(both.len(), 2, "{}", spooled.out);
    for d in both {
        assert!(
            d.contains("{name: USHER_AUDIT_SPOOL, value: /var/spool/usher-audit}")
                && d.contains("{name: audit-spool, mountPath: /var/spool/usher-audit}")
                && d.contains("emptyDir: {sizeLimit: 64Mi}"),
            "{d}"
        );
    }
    // Written at once: no spool for stdout, and none when turned off.
    for values in [
        MINIMAL.to_owned(),
        format!(
            "{MINIMAL}audit:\n  sink: https://audit.example.com/usher\n  spool:\n    enabled: false\n"
        ),
    ] {
        let r = template(&values);
        assert!(r.ok && !r.out.contains("USHER_AUDIT_SPOOL"), "{values}");
        assert_eq!(deployments(&r.out).len(), 2);
    }
}

#[test]
fn values_are_checked_against_the_schema() {
    for (bad, says) in [
        (format!("{MINIMAL}replica: 3\n"), "replica"),
        (
            format!("{MINIMAL}webhook:\n  replicaCount: 3\n"),
            "replicaCount",
        ),
        (
            format!("{MINIMAL}session:\n  idleTimeout: 1 hour\n"),
            "idleTimeout",
        ),
        (format!("{MINIMAL}mfa:\n  enabled: yes please\n"), "enabled"),
        (format!("{MINIMAL}image:\n  digest: latest\n"), "digest"),
        (
            format!("{MINIMAL}audit:\n  spool:\n    sizeLimit: lots\n"),
            "sizeLimit",
        ),
        (
            "publicUrl: usher.example.com\nsmtp:\n  url: smtp://relay:25\n".to_owned(),
            "publicUrl",
        ),
    ] {
        let r = template(&bad);
        assert!(!r.ok, "{bad} was accepted");
        assert!(r.err.contains(says), "{bad}: {}", r.err);
    }
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
    // The chart's built-in profiles carry labels of their own; the rest is the examples'.
    let strip = |text: &str| -> String {
        text.lines()
            .filter(|l| {
                let t = l.trim_start();
                !l.starts_with('#')
                    && !t.starts_with("{{")
                    && t != "labels:"
                    && !t.starts_with("usher.dev/built-in")
            })
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

#[test]
fn checkov_fails_no_check_on_the_renders_and_each_skip_says_why() {
    // Not a dot-directory: checkov skips those.
    let dir = tempfile::Builder::new()
        .prefix("chart-render")
        .tempdir()
        .unwrap();
    let mut rendered = String::new();
    for values in ci_values() {
        let r = template_with(&values);
        assert!(r.ok, "{}", r.err);
        let name = values.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(dir.path().join(&name), &r.out).unwrap();
        rendered += &r.out;
    }
    let r = run(Command::new(tools().join("checkov/bin/checkov"))
        .args(["--framework", "kubernetes", "--quiet", "-o", "json", "-d"])
        .arg(dir.path())
        .env("BC_SKIP_MAPPING", "TRUE"));
    let report: Value = serde_json::from_str(&r.out)
        .unwrap_or_else(|e| panic!("checkov printed no JSON ({e}):\n{}\n{}", r.out, r.err));
    let reports = match report {
        Value::Array(a) => a,
        one => vec![one],
    };
    for report in &reports {
        // With nothing to check, checkov prints only its summary.
        let summary = report.get("summary").unwrap_or(report);
        assert!(
            summary["resource_count"].as_u64().unwrap() > 40,
            "{summary}"
        );
        let failed: Vec<String> = report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["check_name"]))
            .collect();
        assert!(failed.is_empty(), "checkov failed checks: {failed:#?}");
        assert_eq!(summary["failed"], 0, "{summary}");
        assert_eq!(summary["parsing_errors"], 0);
        assert!(summary["passed"].as_u64().unwrap() > 100, "{summary}");
    }
    // Each deliberate exception carries its reason next to it.
    let skips: Vec<&str> = rendered
        .lines()
        .filter(|l| l.contains("checkov.io/skip"))
        .collect();
    assert!(!skips.is_empty());
    for skip in skips {
        let (_, reason) = skip.split_once('=').unwrap();
        assert!(reason.len() > 40, "a skip without a reason: {skip}");
    }
}

/// Objects as the API server would store them: `manifest` through a server-side dry run.
fn stored(env: &Envtest, manifest: &str) -> Vec<Value> {
    let f = values_file(manifest);
    let r = kubectl(
        env,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "--field-manager=helm",
            "-o",
            "json",
            "-f",
            f.path().to_str().unwrap(),
        ],
    );
    assert!(r.ok, "server-side dry run refused:\n{}\n{manifest}", r.err);
    let v: Value = serde_json::from_str(&r.out).unwrap();
    match v["kind"].as_str() {
        Some("List") => v["items"].as_array().unwrap().clone(),
        _ => vec![v],
    }
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The auth server's ServiceAccount `sa` is bound to no cluster-wide rule on Secrets, and to
/// none in the release namespace `ns` (Helm's release records, the webhook's TLS key); its
/// Secrets rule is a Role in the accounts namespace `<ns>-accounts` (accounts and usher-keys).
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
    let secrets_in = |namespace: &str| {
        of_kind(objects, "Role").into_iter().any(|r| {
            roles.iter().any(|n| r["metadata"]["name"] == n.as_str())
                && r["metadata"]["namespace"] == namespace
                && secrets_rule(r)
        })
    };
    let accounts = format!("{ns}-accounts");
    assert!(
        secrets_in(&accounts),
        "the auth server needs its accounts in {accounts}"
    );
    assert!(
        !secrets_in(ns),
        "the auth server reaches the Secrets of the release namespace {ns}"
    );
    // The accounts namespace is the chart's, kept on uninstall.
    let namespace = of_kind(objects, "Namespace")
        .into_iter()
        .find(|n| n["metadata"]["name"] == accounts.as_str())
        .expect("the accounts namespace");
    assert_eq!(
        namespace["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
}

/// What a user checks of an installed release `release` in `ns`.
fn assert_release(env: &Envtest, release: &str, ns: &str, full: bool) {
    let manifest = helm(
        &["get", "manifest", release, "-n", ns],
        Some(env.kubeconfig()),
    );
    assert!(manifest.ok, "{}", manifest.err);
    let objects = stored(env, &manifest.out);

    // Restricted pod security everywhere, and the API token only as a projected volume.
    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 3, "{release}");
    for d in &deployments {
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        let token = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "kube-api-access")
            .expect("the projected API token");
        assert!(token["projected"]["sources"][0]["serviceAccountToken"].is_object());
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
            assert_eq!(sc["allowPrivilegeEscalation"], false);
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            assert!(c["resources"]["limits"]["cpu"].is_string(), "{}", c["name"]);
            assert!(c["resources"]["limits"]["memory"].is_string());
        }
    }
    for sa in of_kind(&objects, "ServiceAccount") {
        assert_eq!(sa["automountServiceAccountToken"], false);
    }
    // The controller and the auth server each in their own pod, with their own ServiceAccount.
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
    let image = auth["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    if full {
        assert_eq!(
            env_of(auth, "USHER_TRUSTED_PROXIES").as_deref(),
            Some("10.0.0.0/8,fd00::/8")
        );
        assert_eq!(
            env_of(auth, "USHER_COOKIE_DOMAIN").as_deref(),
            Some("example.com")
        );
        assert!(image.contains("@sha256:"), "{image}");
    } else {
        assert_eq!(env_of(auth, "USHER_COOKIE_DOMAIN"), None);
        assert!(image.ends_with(":0.1.0"), "{image}");
    }
    assert_auth_reaches_no_secret_outside(&objects, &account(auth), ns);
    // Every process is told where the accounts are, and the webhook keeps Organisations out of
    // both namespaces (before, it was told neither and guarded `usher-system` whatever the
    // release's namespace).
    let accounts = format!("{ns}-accounts");
    let webhook = deployments
        .iter()
        .find(|d| {
            d["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-webhook")
        })
        .unwrap();
    for d in [controller, auth, webhook] {
        assert_eq!(
            env_of(d, "USHER_ACCOUNTS_NAMESPACE").as_deref(),
            Some(accounts.as_str())
        );
        assert_eq!(env_of(d, "USHER_NAMESPACE").as_deref(), Some(ns));
    }
    assert_eq!(of_kind(&objects, "PodDisruptionBudget").len(), 1);
    // NetworkPolicies by default: one per pod.
    let policies = of_kind(&objects, "NetworkPolicy");
    assert_eq!(policies.len(), 3);
    // Egress: by default DNS goes to the cluster DNS pods alone; with the full values every
    // port goes only to the peers named (the API server, DNS, the relay), and only the
    // controller reaches the relay.
    for np in &policies {
        let rules = np["spec"]["egress"].as_array().unwrap();
        for rule in rules {
            let dns = rule["ports"][0]["port"] == 53;
            assert_eq!(
                rule["to"].as_array().is_some_and(|to| !to.is_empty()),
                full || dns,
                "{np}"
            );
        }
        let smtp = rules.iter().any(|r| {
            let port = if full { 465 } else { 587 };
            r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == port)
        });
        let is_controller = np["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-controller");
        assert_eq!(smtp, is_controller, "{np}");
    }

    let vwc = of_kind(&objects, "ValidatingWebhookConfiguration");
    let hooks = vwc[0]["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    for hook in hooks {
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["clientConfig"]["service"]["namespace"], ns);
    }
    let profiles_hook = hooks
        .iter()
        .find(|h| h["rules"][0]["resources"] == serde_json::json!(["profiles"]))
        .unwrap();
    assert_eq!(
        profiles_hook["objectSelector"]["matchExpressions"][0]["key"],
        "usher.dev/built-in"
    );
    if full {
        assert!(vwc[0]["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_string());
        assert_eq!(of_kind(&objects, "Certificate").len(), 1);
        assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 1);
        assert!(of_kind(&objects, "Profile").is_empty());
    } else {
        assert!(
            hooks[0]["clientConfig"]["caBundle"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        );
        assert_eq!(
            of_kind(&objects, "Secret").len(),
            1,
            "the generated serving certificate"
        );
        assert_eq!(of_kind(&objects, "Profile").len(), 4);
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

/// A CRD that accepts anything, standing in for cert-manager's and the Prometheus Operator's.
fn stub_crd(group: &str, kind: &str, plural: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: {kind}, plural: {plural}, singular: {}}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
        plural.trim_end_matches('s'),
    )
}

/// Every object of release `release` left in the cluster (by the chart's instance label), and
/// Helm's own record of it.
fn leftovers(env: &Envtest, release: &str) -> String {
    let kinds = "deployments,services,secrets,configmaps,serviceaccounts,roles,rolebindings,\
                 clusterroles,clusterrolebindings,validatingwebhookconfigurations,networkpolicies,\
                 poddisruptionbudgets,profiles.usher.dev,certificates.cert-manager.io,\
                 issuers.cert-manager.io,servicemonitors.monitoring.coreos.com";
    let labelled = kubectl(
        env,
        &[
            "get",
            kinds,
            "-A",
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
            "-o",
            "name",
        ],
    );
    assert!(labelled.ok, "{}", labelled.err);
    let records = kubectl(
        env,
        &[
            "get",
            "secrets",
            "-A",
            "-l",
            &format!("owner=helm,name={release}"),
            "-o",
            "name",
        ],
    );
    assert!(records.ok, "{}", records.err);
    labelled.out + &records.out
}

#[tokio::test]
async fn install_upgrade_and_uninstall_on_a_real_api_server_leave_nothing_behind() {
    // A server of its own, without Usher's CRDs: Helm installs them from the chart.
    let env = Envtest::start().await.unwrap();
    for crd in [
        stub_crd("cert-manager.io", "Issuer", "issuers"),
        stub_crd("cert-manager.io", "Certificate", "certificates"),
        stub_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ] {
        let f = values_file(&crd);
        let r = kubectl(&env, &["apply", "-f", f.path().to_str().unwrap()]);
        assert!(r.ok, "{}", r.err);
    }
    let kubeconfig = Some(env.kubeconfig());
    let chart_dir = chart();
    let chart_path = chart_dir.to_str().unwrap();
    let [minimal, full] = [
        chart().join("ci/minimal-values.yaml"),
        chart().join("ci/full-values.yaml"),
    ];
    for (release, ns, values) in [
        ("usher", "usher-system", &minimal),
        ("prod", "prod-usher", &full),
    ] {
        // The first install works although the webhook's pods never run: the chart's own
        // Profiles are not sent to it.
        let r = helm(
            &[
                "install",
                release,
                chart_path,
                "--namespace",
                ns,
                "--create-namespace",
                "-f",
                values.to_str().unwrap(),
                "--timeout",
                "2m",
            ],
            kubeconfig,
        );
        assert!(r.ok, "helm install {release}: {}{}", r.out, r.err);
        assert_release(&env, release, ns, values == &full);
    }
    // Helm installed the CRDs, and the built-in Profiles exist.
    let profiles = kubectl(&env, &["get", "profiles", "-o", "name"]);
    assert!(profiles.ok, "{}", profiles.err);
    assert_eq!(profiles.out.lines().count(), 4, "{}", profiles.out);
    // Anything else reaches the webhook, which refuses while it is unreachable (failurePolicy
    // Fail): the cluster is guarded from the first install.
    let f = values_file(
        "apiVersion: usher.dev/v1alpha1\nkind: Profile\nmetadata: {name: unchecked}\nspec: {permissions: [manageCase]}\n",
    );
    let refused = kubectl(&env, &["apply", "-f", f.path().to_str().unwrap()]);
    assert!(!refused.ok, "{}", refused.out);
    assert!(refused.err.contains("webhook"), "{}", refused.err);

    // An upgrade changes what it says and nothing else.
    let r = helm(
        &[
            "upgrade",
            "usher",
            chart_path,
            "--namespace",
            "usher-system",
            "-f",
            minimal.to_str().unwrap(),
            "--set",
            "replicas=3",
            "--set",
            "session.idleTimeout=30m",
        ],
        kubeconfig,
    );
    assert!(r.ok, "helm upgrade: {}{}", r.out, r.err);
    let auth = kubectl(
        &env,
        &[
            "get",
            "deployment",
            "usher-auth",
            "-n",
            "usher-system",
            "-o",
            "json",
        ],
    );
    let auth: Value = serde_json::from_str(&auth.out).unwrap();
    assert_eq!(auth["spec"]["replicas"], 3);
    let idle = auth["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "USHER_SESSION_IDLE_TIMEOUT")
        .unwrap()["value"]
        .clone();
    assert_eq!(idle, "30m");
    let history = helm(&["history", "usher", "-n", "usher-system"], kubeconfig);
    assert_eq!(history.out.lines().count(), 3, "{}", history.out);

    for (release, ns) in [("usher", "usher-system"), ("prod", "prod-usher")] {
        let r = helm(
            &["uninstall", release, "--namespace", ns, "--wait"],
            kubeconfig,
        );
        assert!(r.ok, "helm uninstall {release}: {}{}", r.out, r.err);
        let left = leftovers(&env, release);
        assert!(left.trim().is_empty(), "{release} left behind:\n{left}");
        // The accounts namespace stays, as the accounts in it do.
        let kept = kubectl(&env, &["get", "namespace", &format!("{ns}-accounts")]);
        assert!(kept.ok, "{}", kept.err);
    }
    // Installing again adopts the accounts namespace kept.
    let again = helm(
        &[
            "install",
            "usher",
            chart_path,
            "--namespace",
            "usher-system",
            "-f",
            minimal.to_str().unwrap(),
        ],
        kubeconfig,
    );
    assert!(again.ok, "helm install again: {}{}", again.out, again.err);
    let r = helm(
        &[
            "uninstall",
            "usher",
            "--namespace",
            "usher-system",
            "--wait",
        ],
        kubeconfig,
    );
    assert!(r.ok, "{}", r.err);
    // As Helm does, the CRDs stay (deleting them would delete every User); nothing else does but
    // the accounts namespaces.
    let crds = kubectl(&env, &["get", "crd", "users.usher.dev", "-o", "name"]);
    assert!(crds.ok, "{}", crds.err);
    let profiles = kubectl(&env, &["get", "profiles", "-o", "name"]);
    assert!(profiles.out.trim().is_empty(), "{}", profiles.out);
}
