//! etcd + kube-apiserver on free loopback ports, envtest style (see `shared/TESTING.md`).

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use tokio::sync::OnceCell;

use crate::Process;

/// The command that puts etcd, kube-apiserver, kube-controller-manager and kubectl into the
/// default assets folder on a Debian machine.
pub const PROVISION_COMMAND: &str = "scripts/provision-envtest.sh";

/// The Kubernetes release `scripts/envtest/go.mod` builds (a test keeps the two equal).
pub const ENVTEST_VERSION: &str = "1.37.2";
const ADMIN_USER: &str = "admin";

/// The folder holding `etcd` and `kube-apiserver`: `$KUBEBUILDER_ASSETS`, else the cache that
/// [`PROVISION_COMMAND`] fills (`~/.cache/usher/envtest/<ENVTEST_VERSION>`).
pub fn assets_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("KUBEBUILDER_ASSETS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .ok_or_else(|| anyhow!("neither KUBEBUILDER_ASSETS nor HOME is set"))?;
            cache.join("usher/envtest").join(ENVTEST_VERSION)
        }
    };
    for bin in ["etcd", "kube-apiserver"] {
        if !dir.join(bin).is_file() {
            bail!(
                "envtest binary {} is missing. Provision it with `{PROVISION_COMMAND}` (it builds \
                 Kubernetes {ENVTEST_VERSION} with Go, about 15 minutes the first time), or point \
                 KUBEBUILDER_ASSETS at a folder holding etcd and kube-apiserver (for example from \
                 setup-envtest)",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir)
}

/// A running etcd + kube-apiserver. Processes and files go when it is dropped, and a watchdog
/// removes them when the test process ends without dropping it (a `static`, a panic, a kill).
pub struct Envtest {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    kubectl: PathBuf,
    /// etcd first, then kube-apiserver; dropped in reverse order.
    processes: Vec<Process>,
}

static SHARED: OnceCell<Envtest> = OnceCell::const_new();

impl Envtest {
    /// The API server shared by every test of this test binary, started on first use with
    /// `crds` installed. Tests isolate themselves by name ([`unique_name`]), not by server.
    pub async fn shared(
        crds: impl FnOnce() -> Vec<CustomResourceDefinition>,
    ) -> Result<&'static Envtest> {
        SHARED
            .get_or_try_init(|| async {
                let env = Envtest::start().await?;
                env.install_crds(crds()).await?;
                Ok(env)
            })
            .await
    }

    /// Starts a new etcd + kube-apiserver pair on free loopback ports.
    pub async fn start() -> Result<Envtest> {
        let assets = assets_dir()?;
        let mut last_err = None;
        // A free port can be taken between probing and binding; try again on other ports.
        for _ in 0..3 {
            match Self::start_once(&assets).await {
                Ok(env) => return Ok(env),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("envtest did not start")))
    }

    async fn start_once(assets: &Path) -> Result<Envtest> {
        // etcd is much faster on tmpfs; fall back to the normal temp dir.
        let base = Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("usher-envtest-")
                .tempdir_in(base)
        } else {
            tempfile::Builder::new().prefix("usher-envtest-").tempdir()
        }?
        .keep();
        let mut env = Envtest {
            kubeconfig: dir.join("kubeconfig"),
            server: String::new(),
            kubectl: if assets.join("kubectl").is_file() {
                assets.join("kubectl")
            } else {
                PathBuf::from("kubectl")
            },
            dir,
            processes: Vec::new(),
        };
        let [etcd_port, peer_port, api_port] = free_ports()?;
        let dir = env.dir.clone();

        let sa_key = rcgen::KeyPair::generate()?;
        fs::write(dir.join("sa.key"), sa_key.serialize_pem())?;
        fs::write(dir.join("sa.pub"), sa_key.public_key_pem())?;
        let token = random_token();
        fs::write(
            dir.join("tokens.csv"),
            format!("{token},{ADMIN_USER},{ADMIN_USER},system:masters\n"),
        )?;

        let etcd = Process::spawn(
            Command::new(assets.join("etcd")).args([
                "--data-dir",
                &dir.join("etcd").to_string_lossy(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{etcd_port}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{etcd_port}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer_port}"),
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ]),
            &dir.join("etcd.log"),
            Some(&dir),
        )?;
        env.processes.push(etcd);

        let apiserver = Process::spawn(
            Command::new(assets.join("kube-apiserver")).args([
                "--etcd-servers",
                &format!("http://127.0.0.1:{etcd_port}"),
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                &api_port.to_string(),
                "--cert-dir",
                &dir.join("certs").to_string_lossy(),
                "--token-auth-file",
                &dir.join("tokens.csv").to_string_lossy(),
                "--authorization-mode",
                "RBAC",
                "--service-account-key-file",
                &dir.join("sa.pub").to_string_lossy(),
                "--service-account-signing-key-file",
                &dir.join("sa.key").to_string_lossy(),
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--service-cluster-ip-range",
                "10.0.0.0/24",
                // No kubelet or controller-manager: pods are never run, and the ServiceAccount
                // admission plugin would wait for token controllers that do not exist.
                "--disable-admission-plugins",
                "ServiceAccount",
                "--allow-privileged=true",
                // The `kubernetes` Service's endpoints would be 127.0.0.1, which current
                // releases refuse; nothing here reaches the API server through that Service.
                "--endpoint-reconciler-type",
                "none",
                // Tests reach loopback only. A webhook configuration naming a Service (the
                // chart's) would otherwise send the API server to that Service's cluster IP;
                // through its Endpoints instead, of which there are none, the call fails at once
                // without dialling anything.
                "--enable-aggregator-routing",
            ]),
            &dir.join("kube-apiserver.log"),
            Some(&dir),
        )?;
        env.processes.push(apiserver);

        env.server = format!("https://127.0.0.1:{api_port}");
        fs::write(&env.kubeconfig, kubeconfig_yaml(&env.server, &token))?;

        env.wait_ready(Duration::from_secs(60)).await?;
        Ok(env)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("not contacted yet");
        while Instant::now() < deadline {
            for process in &mut self.processes {
                if let Some(status) = process.try_wait()? {
                    bail!(
                        "an envtest process exited early ({status}); logs:\n{}",
                        self.log_tails()
                    );
                }
            }
            match self.ready_once().await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "kube-apiserver at {} not ready after {timeout:?}: {last}\n{}",
            self.server,
            self.log_tails()
        )
    }

    async fn ready_once(&self) -> Result<()> {
        let client = self.client().await?;
        let req = http::Request::get("/readyz").body(Vec::new())?;
        let body = client.request_text(req).await?;
        if body.trim() != "ok" {
            bail!("/readyz says {body}");
        }
        // The bootstrap controller creates `default` shortly after /readyz.
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
        ns.get("default").await?;
        Ok(())
    }

    fn log_tails(&self) -> String {
        ["etcd", "kube-apiserver"]
            .iter()
            .zip(&self.processes)
            .map(|(name, p)| format!("--- {name}\n{}", p.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A new client for the current Tokio runtime (a client must not outlive its runtime, and each
    /// `#[tokio::test]` has its own), authenticated as a `system:masters` member.
    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// The kubeconfig file (admin token, `insecure-skip-tls-verify`) for kubectl and binaries.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig beside [`Envtest::kubeconfig`] whose requests impersonate `user` in
    /// `groups` (kubectl's `--as`): a process run with it has exactly the rights RBAC gives
    /// that identity, such as a ServiceAccount's under a chart's rules.
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let text = fs::read_to_string(&self.kubeconfig)?;
        let groups: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
        let impersonating = text.replacen(
            "  user:\n",
            &format!(
                "  user:\n    as: \"{user}\"\n    as-groups: [{}]\n",
                groups.join(", ")
            ),
            1,
        );
        let name: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = self
            .kubeconfig
            .with_file_name(format!("kubeconfig-as-{name}"));
        fs::write(&path, impersonating)?;
        Ok(path)
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A `kubectl` command pointed at this server (the assets' kubectl when present).
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// A `kubectl` command pointed at this server through `KUBECONFIG` (plugins refuse flags
    /// placed before their name).
    pub fn kubectl_env(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs kubectl with `args`; returns stdout, or an error with stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self
            .kubectl()
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.kubectl.display()))?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Server-side applies `crds` and waits until each is `Established`.
    pub async fn install_crds(&self, crds: Vec<CustomResourceDefinition>) -> Result<()> {
        let client = self.client().await?;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        let pp = PatchParams::apply("usher-testkit").force();
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &pp, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("applying CRD {name}"))?;
            let cond = kube::runtime::conditions::is_crd_established();
            tokio::time::timeout(
                Duration::from_secs(30),
                kube::runtime::wait::await_condition(api.clone(), &name, cond),
            )
            .await
            .with_context(|| format!("CRD {name} not Established within 30s"))??;
        }
        Ok(())
    }
}

impl Drop for Envtest {
    fn drop(&mut self) {
        while let Some(process) = self.processes.pop() {
            drop(process);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A name unique within this test run, for objects of tests that share one API server:
/// `prefix-<pid>-<counter>`, a valid DNS label.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn free_ports<const N: usize>() -> Result<[u16; N]> {
    // Hold all listeners until every port is known so the N ports differ.
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l.local_addr()?.port();
    }
    Ok(ports)
}

fn random_token() -> String {
    // Guards a loopback server that lives for one test run; not a production credential.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}{:x}", std::process::id())
}

fn kubeconfig_yaml(server: &str, token: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: {ADMIN_USER}
  user:
    token: {token}
contexts:
- name: envtest
  context:
    cluster: envtest
    user: {ADMIN_USER}
    namespace: default
current-context: envtest
"#
    )
}

/// Creates namespace `name`; one that already exists is fine.
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&kube::api::PostParams::default(), &ns)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_scripts_envtest_builds() {
        let go_mod = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/envtest/go.mod"),
        )
        .unwrap();
        assert!(
            go_mod.contains(&format!("k8s.io/kubernetes v{ENVTEST_VERSION}\n")),
            "testkit's ENVTEST_VERSION ({ENVTEST_VERSION}) is not the release scripts/envtest/go.mod builds"
        );
    }

    #[test]
    fn unique_names_are_dns_labels_and_differ() {
        let a = unique_name("org");
        let b = unique_name("org");
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
