//! Usher behind a real ingress: a real nginx (`nginx-light`, with `auth_request`) in front of two
//! real `usher auth` replicas that trust it (`USHER_TRUSTED_PROXIES`), and in front of an app
//! protected by forward-auth, with the configuration of `docs/nginx/forward-auth.conf`. Clients
//! connect from several loopback addresses (127.0.0.x), so nginx forwards several client
//! addresses. One harness for the binary; tests in one file per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may panic

#[path = "../common/mod.rs"]
mod common;

mod cookies;
mod forward_auth;
mod limits;
mod throttling;

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{auth::*, *};
use kube::{Api, Client, api::PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use usher_crds::{User, UserPhase};
use usher_testkit::{Envtest, Process, SmtpSink, free_port};

/// Host names the browser and nginx use; Chromium maps them to 127.0.0.1.
pub const LOGIN_HOST: &str = "login.usher.test";
pub const APP_HOST: &str = "app.usher.test";

pub struct Ingress {
    pub env: &'static Envtest,
    pub smtp: SmtpSink,
    pub a: AuthServer,
    pub b: AuthServer,
    /// nginx's port (both host names).
    pub port: u16,
    _nginx: Process,
    _controller: Process,
    _dir: tempfile::TempDir,
}

impl Ingress {
    /// `http://login.usher.test:PORT`: Usher's public URL.
    pub fn login_url(&self) -> String {
        format!("http://{LOGIN_HOST}:{}", self.port)
    }

    /// `http://app.usher.test:PORT`.
    pub fn app_url(&self) -> String {
        format!("http://{APP_HOST}:{}", self.port)
    }
}

static INGRESS: OnceCell<Ingress> = OnceCell::const_new();

pub async fn ingress() -> (&'static Ingress, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = INGRESS
        .get_or_init(|| async {
            let env = Envtest::shared(usher_crds::crds).await.unwrap();
            setup(env).await;
            let smtp = SmtpSink::start().await.unwrap();
            let controller = start_controller(env, &smtp.url(), "ingress-controller");
            let port = free_port().unwrap();
            let public = format!("http://{LOGIN_HOST}:{port}");
            let extra = [
                ("USHER_PUBLIC_URL", public.as_str()),
                // nginx connects from 127.0.0.1; the tests' own clients use other addresses.
                ("USHER_TRUSTED_PROXIES", "127.0.0.1/32"),
                ("USHER_COOKIE_DOMAIN", "usher.test"),
                ("USHER_SOFT_LOCK_AFTER", "4"),
            ];
            let a = start_auth(env, "ingress-a", &extra).await;
            let b = start_auth(env, "ingress-b", &extra).await;
            let app = start_echo_app();
            let dir = tempfile::tempdir().unwrap();
            let nginx = start_nginx(dir.path(), port, &[&a, &b], app);
            Ingress {
                env,
                smtp,
                a,
                b,
                port,
                _nginx: nginx,
                _controller: controller,
                _dir: dir,
            }
        })
        .await;
    (h, h.env.client().await.unwrap())
}

/// An app that answers every request with the headers it received, as JSON (lowercase names).
/// It runs on a thread of its own, outliving any one test's runtime.
fn start_echo_app() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
                let mut seen = serde_json::Map::new();
                for (k, v) in &headers {
                    seen.insert(
                        k.as_str().to_owned(),
                        Value::from(v.to_str().unwrap_or_default()),
                    );
                }
                axum::Json(Value::Object(seen))
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// nginx with `docs/nginx/forward-auth.conf`, listening on 127.0.0.1:`port`.
fn start_nginx(dir: &Path, port: u16, replicas: &[&AuthServer], app: SocketAddr) -> Process {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("nginx is missing: run scripts/install-deps.sh (Debian package nginx-light)")
        });
    let site = std::fs::read_to_string(repo().join("docs/nginx/forward-auth.conf")).unwrap();
    let servers: String = replicas
        .iter()
        .map(|r| format!("server {};\n    ", r.base.trim_start_matches("http://")))
        .collect();
    let site = site
        .replace("@USHER_SERVERS@", servers.trim_end())
        .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
        .replace("@LOGIN_HOST@", LOGIN_HOST)
        .replace("@APP_HOST@", APP_HOST)
        .replace("@LOGIN_URL@", &format!("http://{LOGIN_HOST}:{port}"))
        .replace("@APP@", &app.to_string());
    let left = [
        "@USHER_SERVERS@",
        "@LISTEN@",
        "@LOGIN_HOST@",
        "@APP_HOST@",
        "@LOGIN_URL@",
        "@APP@",
    ];
    assert!(
        left.iter().all(|p| !site.contains(p)),
        "a placeholder is left:\n{site}"
    );
    let d = dir.display();
    // As root, nginx would hand its workers to an unprivileged user that cannot reach `dir`.
    let user = if running_as_root() { "user root;" } else { "" };
    let conf = format!(
        "{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
         scgi_temp_path {d}/scgi;\n{site}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, &conf).unwrap();
    let test = Command::new(nginx)
        .args(["-t", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "nginx refused the configuration:\n{}\n{conf}",
        String::from_utf8_lossy(&test.stderr)
    );
    let process = Process::spawn(
        Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"]),
        &log_path("ingress-nginx"),
        None,
    )
    .unwrap();
    let listening = usher_testkit::poll_blocking(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(
        listening.is_some(),
        "nginx did not start: {}",
        process.log_tail(20)
    );
    process
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A client that connects from `from` (a loopback address: 127.0.0.x) and sends requests to
/// nginx for `host`.
pub struct Client127 {
    pub http: reqwest::Client,
    port: u16,
}

impl Client127 {
    pub fn new(from: &str, port: u16) -> Client127 {
        Client127 {
            http: reqwest::Client::builder()
                .local_address(from.parse::<IpAddr>().unwrap())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            port,
        }
    }

    /// A sign-in through nginx as `login.usher.test`, with extra headers.
    pub async fn login(&self, login: &str, password: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(format!("http://127.0.0.1:{}/api/v1/login", self.port))
            .header("host", format!("{LOGIN_HOST}:{}", self.port))
            .json(&json!({"login": login, "password": password}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.send().await.unwrap()).await
    }
}

/// The parts of an answer the tests read.
pub async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// A person who accepted their invitation, in a fresh organisation with `manageCase`.
pub async fn person(h: &Ingress, client: &Client, name: &str) -> String {
    let profile = profile(client, &["manageCase"]).await;
    let org = organisation(client).await;
    let ns = wait_ns(client, &org).await;
    let login = login(name);
    Api::<User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &user(name, &login, &profile))
        .await
        .unwrap();
    onboard(&h.a, &h.smtp, &login).await;
    wait_phase(client, &ns, name, UserPhase::Active).await;
    // Both replicas have seen the account.
    for server in [&h.a, &h.b] {
        server.session(&login, PASSWORD).await;
    }
    login
}

/// Status counts of a set of answers.
pub fn count(answers: &[Answer], status: StatusCode) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}
