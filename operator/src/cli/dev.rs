//! `usher dev`: everything on one machine. A local control plane (etcd + kube-apiserver from
//! `KUBEBUILDER_ASSETS`, provisioned on the first run), the CRDs, the admission webhook
//! (registered by URL with a CA made here), the controller writing mail to a local outbox, the
//! examples applied, a kubeconfig for kubectl, and each invitation link printed. Ctrl-C stops it
//! all. The auth server listens on `USHER_LISTEN` (default 127.0.0.1:8080), so the links work.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use kube::Client;
use usher_testkit::{
    Email, Envtest, Process, TestCa, create_namespace, free_port, register_webhook,
};

use crate::{
    auth,
    controller::{self, Metrics},
    mail::Mailer,
};

/// Flags of `usher dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Folder for the kubeconfig, the outbox and logs.
    #[arg(long, env = "USHER_DEV_DIR", default_value = ".usher/dev")]
    pub dir: PathBuf,
    /// The examples to apply.
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    /// Address of the auth server.
    #[arg(long, env = "USHER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Base URL of the auth server, used in invitation links (default: http://<listen>).
    #[arg(long, env = "USHER_PUBLIC_URL")]
    pub public_url: Option<String>,
}

const STEPS: u32 = 6;

/// Runs `usher dev` until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let step = |n: u32, what: &str| {
        eprintln!(
            "[{n}/{STEPS}] {:>6.1}s  {what}",
            started.elapsed().as_secs_f64()
        );
    };
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    // Bind first: a busy port is reported before minutes of work.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (USHER_LISTEN); is another usher dev running?",
                args.listen
            )
        })?;
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    // Each run is a new cluster: links from an earlier run lead nowhere.
    let outbox = dir.join("outbox");
    let audit = dir.join("audit.jsonl");
    if outbox.exists() {
        std::fs::remove_dir_all(&outbox)?;
    }
    std::fs::create_dir_all(&outbox)?;

    step(1, "local control plane: etcd + kube-apiserver");
    provision_if_missing(&dir.join("provision.log"))?;
    let env = Envtest::start().await?;
    env.install_crds(usher_crds::crds()).await?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(env.kubeconfig(), &kubeconfig)?;
    let client = env.client().await?;
    create_namespace(&client, "usher-system").await?;

    step(2, "admission webhook");
    let _webhook = start_webhook(&env, &client, &dir).await?;

    step(3, "controller (mail goes to the outbox)");
    let settings = controller::Settings {
        namespace: "usher-system".into(),
        public_url: public_url.clone(),
        mail_from: "Usher <usher@usher.invalid>".into(),
        invitation_ttl: Duration::from_secs(24 * 3600),
        reset_ttl: Duration::from_secs(3600),
        // `usher dev` runs as the cluster's admin: nothing to bind.
        secrets_role: None,
        moved_from: None,
        operator_namespace: "usher-system".into(),
        oidc_key_rotation: Duration::from_secs(30 * 86_400),
        logout_retry: Duration::from_secs(86_400),
        logout_ca: None,
        // The trail goes to a file beside the outbox: stdout is the person's.
        audit_sink: audit.display().to_string(),
        audit_spool: None,
    };
    let mailer = Mailer::from_url(&format!("file://{}", outbox.display()))?;
    let controller = tokio::spawn(controller::run(
        client.clone(),
        settings,
        mailer,
        Metrics::default(),
        Default::default(),
    ));

    step(4, &format!("auth server on {public_url}"));
    let mut auth_settings = auth::Settings::new("usher-system", &public_url);
    auth_settings.audit_sink = audit.display().to_string();
    auth_settings.audit_spool = None;
    let auth = tokio::spawn(auth::run(client.clone(), auth_settings, listener, None));

    step(5, &format!("examples from {}", args.examples.display()));
    apply_examples(&env, &args.examples).await?;

    step(6, "ready");
    println!(
        "kubectl:  export KUBECONFIG={}   then   kubectl get usher -A",
        kubeconfig.display()
    );
    println!("outbox:   {}", outbox.display());
    println!("audit:    {}", audit.display());
    println!("sign in:  {public_url}/api/v1/login (after opening an invitation link)");
    println!(
        "Invitation and password reset links appear below as the controller sends them. Ctrl-C stops everything."
    );

    let mut seen = HashSet::new();
    // One listener for the whole wait: a Ctrl-C between two turns of the loop is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        print_new_invitations(&outbox, &mut seen);
        if controller.is_finished() || auth.is_finished() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut ctrl_c => break,
        }
    }
    eprintln!("stopping");
    for task in [controller, auth] {
        if task.is_finished() {
            // It stopped by itself: say why.
            task.await??;
        } else {
            task.abort();
        }
    }
    Ok(())
}

/// Builds the local control plane when it is missing, showing a progress bar with the
/// script's current step and the time so far; the script's full output goes to `log`.
fn provision_if_missing(log: &Path) -> anyhow::Result<()> {
    if usher_testkit::assets_dir().is_ok() {
        return Ok(());
    }
    let script = Path::new("scripts/provision-envtest.sh");
    if !script.exists() {
        usher_testkit::assets_dir()?;
    }
    eprintln!(
        "         first run: building Kubernetes {} (etcd, kube-apiserver, kube-controller-manager, kubectl) with Go (about 15 minutes on 2 cores; later runs start in seconds; log: {})",
        usher_testkit::ENVTEST_VERSION,
        log.display()
    );
    let mut child = Command::new("bash")
        .arg(script)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running scripts/provision-envtest.sh")?;
    let current = std::sync::Arc::new(std::sync::Mutex::new((0usize, String::from("starting"))));
    let reader = child.stderr.take().map(|stderr| {
        let (current, log) = (current.clone(), log.to_owned());
        std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            let mut file = std::fs::File::create(log).ok();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                // The script announces steps as "==> [time] what".
                if let Some(step) = line.strip_prefix("==> ") {
                    let what = step.split_once("] ").map_or(step, |(_, w)| w).to_owned();
                    if let Ok(mut c) = current.lock() {
                        *c = (c.0 + 1, what);
                    }
                }
            }
        })
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let (n, what) = current.lock().map(|c| c.clone()).unwrap_or_default();
        eprint!(
            "\r{}",
            progress_line(n, PROVISION_STEPS, started.elapsed(), &what)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    if let Some(r) = reader {
        let _ = r.join();
    }
    eprintln!();
    if !status.success() {
        bail!(
            "scripts/provision-envtest.sh failed ({status}); see {}",
            log.display()
        );
    }
    Ok(())
}

/// Steps scripts/provision-envtest.sh announces (Go, modules, four builds, install).
const PROVISION_STEPS: usize = 7;

/// `[#####.....] 3/6  123s  what`, cut to 100 columns.
fn progress_line(step: usize, steps: usize, elapsed: Duration, what: &str) -> String {
    const WIDTH: usize = 20;
    let filled = (step.min(steps) * WIDTH) / steps.max(1);
    let bar: String = "#".repeat(filled) + &".".repeat(WIDTH - filled);
    let line = format!(
        "[{bar}] {}/{steps} {:>5}s  {what}",
        step.min(steps),
        elapsed.as_secs()
    );
    let mut cut: String = line.chars().take(100).collect();
    cut.push_str(&" ".repeat(100usize.saturating_sub(cut.chars().count())));
    cut
}

async fn start_webhook(
    env: &Envtest,
    client: &Client,
    dir: &Path,
) -> anyhow::Result<Option<Process>> {
    let binary = std::env::current_exe()?.with_file_name("usher-webhook");
    if !binary.is_file() {
        eprintln!(
            "         usher-webhook not found next to usher ({}); build it with `cargo build --bins`. Continuing without admission checks.",
            binary.display()
        );
        return Ok(None);
    }
    let ca = TestCa::new()?;
    let cert = ca.issue(1)?;
    let certs = dir.join("webhook");
    std::fs::create_dir_all(&certs)?;
    std::fs::write(certs.join("tls.crt"), &cert.cert_pem)?;
    std::fs::write(certs.join("tls.key"), &cert.key_pem)?;
    let port = free_port()?;
    let process = Process::spawn(
        Command::new(&binary)
            .env("USHER_WEBHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("USHER_WEBHOOK_CERT", certs.join("tls.crt"))
            .env("USHER_WEBHOOK_KEY", certs.join("tls.key"))
            .env("KUBECONFIG", env.kubeconfig()),
        &dir.join("webhook.log"),
        None,
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "usher-webhook did not start; see {}",
                dir.join("webhook.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    register_webhook(
        client,
        &format!("https://127.0.0.1:{port}/validate"),
        &ca.cert_pem(),
    )
    .await?;
    Ok(Some(process))
}

/// Profiles and Organisations first; once the controller has created the organisations'
/// namespaces, everything (`kubectl apply -k`).
async fn apply_examples(env: &Envtest, examples: &Path) -> anyhow::Result<()> {
    // One `kubectl apply -k`, as a GitOps tool does; retried only while the webhook that was
    // just started is not yet answering.
    let dir = examples.to_string_lossy();
    let mut attempts = 0;
    loop {
        match env.kubectl_ok(&["apply", "-k", &dir]) {
            Ok(out) => {
                eprint!("{out}");
                return Ok(());
            }
            Err(e) if attempts < 20 && e.to_string().contains("failed calling webhook") => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn print_new_invitations(outbox: &Path, seen: &mut HashSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(outbox) else {
        return;
    };
    let mut new: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml") && !seen.contains(p))
        .collect();
    new.sort();
    for path in new {
        if let Ok(raw) = std::fs::read_to_string(&path) {
            let email = Email::parse(&raw);
            if let Some(link) = email.invitation_link() {
                println!("invitation for {}: {link}", email.to);
            } else if let Some(link) = email.link_to("reset") {
                println!("password reset for {}: {link}", email.to);
            }
            seen.insert(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_the_step_the_bar_and_the_time() {
        let line = progress_line(3, 6, Duration::from_secs(125), "building kube-apiserver");
        assert!(
            line.starts_with("[##########..........] 3/6   125s  building kube-apiserver"),
            "{line}"
        );
        assert_eq!(line.chars().count(), 100);
        let long = progress_line(9, 6, Duration::ZERO, &"x".repeat(300));
        assert!(long.starts_with("[####################] 6/6"), "{long}");
        assert_eq!(long.chars().count(), 100);
    }
}
