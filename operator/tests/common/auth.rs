//! Helpers for tests of `usher auth`: start replicas, talk to them over real sockets, onboard a
//! person through the real invitation email, and compute TOTP codes with `oathtool`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use usher_testkit::{Envtest, Process, SmtpSink, free_port};

use super::{OPERATOR_NS, eventually, log_path};

/// A running `usher auth`.
pub struct AuthServer {
    pub base: String,
    /// Where its `/metrics` listener is (off the public port).
    pub metrics: String,
    pub process: Process,
}

/// Starts `usher auth` with `extra` environment, waiting for /readyz.
pub async fn start_auth(env: &Envtest, log: &str, extra: &[(&str, &str)]) -> AuthServer {
    start_auth_on(env, log, free_port().unwrap(), extra).await
}

/// As [`start_auth`], listening on `port` (a public URL in `extra` may name another).
pub async fn start_auth_on(
    env: &Envtest,
    log: &str,
    port: u16,
    extra: &[(&str, &str)],
) -> AuthServer {
    let base = format!("http://127.0.0.1:{port}");
    let metrics = format!("http://127.0.0.1:{}", free_port().unwrap());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
    cmd.arg("auth")
        .env("USHER_AUDIT_SINK", super::audit_file(log))
        .env("KUBECONFIG", env.kubeconfig())
        .env("USHER_NAMESPACE", OPERATOR_NS)
        .env("USHER_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "USHER_METRICS_LISTEN",
            metrics.trim_start_matches("http://"),
        )
        .env("USHER_PUBLIC_URL", &base)
        .env("RUST_LOG", "info,kube=warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let process = Process::spawn(&mut cmd, &log_path(log), None).unwrap();
    let client = reqwest::Client::new();
    let ready = format!("{base}/readyz");
    eventually(
        "the auth server to be ready",
        Duration::from_secs(30),
        || {
            let (client, ready) = (client.clone(), ready.clone());
            async move {
                let r = client.get(&ready).send().await.ok()?;
                (r.status() == StatusCode::OK).then_some(())
            }
        },
    )
    .await;
    AuthServer {
        base,
        metrics,
        process,
    }
}

/// An answer: status, headers and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `error` code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// The session cookie's value set by this answer.
    pub fn cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let first = v.split(';').next()?;
                let (name, value) = first.split_once('=')?;
                (name.ends_with("usher_session") && !value.is_empty()).then(|| value.to_owned())
            })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

impl AuthServer {
    /// Sends a request; `cookie` is the session cookie's value, `bearer` an API key.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        cookie: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let client = reqwest::Client::new();
        let mut req = client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", format!("usher_session={c}"));
        }
        if let Some(k) = bearer {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            !status.is_server_error(),
            "{path}: {status} {body}\n{}",
            self.process.log_tail(20)
        );
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn login(&self, login: &str, password: &str) -> Answer {
        self.call(
            Method::POST,
            "/api/v1/login",
            Some(json!({"login": login, "password": password})),
            None,
            None,
        )
        .await
    }

    pub async fn login_with_code(&self, login: &str, password: &str, code: &str) -> Answer {
        self.call(
            Method::POST,
            "/api/v1/login",
            Some(json!({"login": login, "password": password, "code": code})),
            None,
            None,
        )
        .await
    }

    /// Logs in, retrying while this replica's cache has not yet seen the account.
    pub async fn session(&self, login: &str, password: &str) -> String {
        eventually(
            &format!("{login} to log in"),
            Duration::from_secs(20),
            || async { self.login(login, password).await.cookie() },
        )
        .await
    }

    /// Logs in to organisation `org`, retrying while this replica's cache has not yet seen the
    /// account.
    pub async fn session_in(&self, login: &str, password: &str, org: &str) -> String {
        eventually(
            &format!("{login} to log in to {org}"),
            Duration::from_secs(20),
            || async {
                self.post(
                    "/api/v1/login",
                    json!({"login": login, "password": password, "organisation": org}),
                    None,
                )
                .await
                .cookie()
            },
        )
        .await
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, cookie, None).await
    }

    /// The HTML of page `path` as the holder of session cookie `cookie` sees it.
    pub async fn page(&self, path: &str, cookie: &str) -> String {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("usher_session={cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, None, cookie, None).await
    }

    pub async fn post(&self, path: &str, body: Value, cookie: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), cookie, None)
            .await
    }

    /// Enrolls TOTP in the session `cookie`, confirming with `oathtool`'s code for
    /// `now + offset` seconds; the secret.
    pub async fn enroll_totp(&self, cookie: &str, offset: i64) -> String {
        let start = self
            .post("/api/v1/me/mfa/totp", json!({}), Some(cookie))
            .await;
        assert_eq!(start.status, StatusCode::OK, "{}", start.body);
        let secret = start.body["secret"].as_str().unwrap().to_owned();
        let confirm = self
            .post(
                "/api/v1/me/mfa/totp/confirm",
                json!({"code": oathtool(&secret, offset)}),
                Some(cookie),
            )
            .await;
        assert_eq!(confirm.status, StatusCode::NO_CONTENT, "{}", confirm.body);
        secret
    }

    pub async fn accept(&self, token: &str, password: &str) -> Answer {
        self.post(
            "/api/v1/invitations/accept",
            json!({"token": token, "password": password}),
            None,
        )
        .await
    }
}

/// A password the policy accepts.
pub const PASSWORD: &str = "Tz8#qL2!vR9$wX4m-orbit";

/// The token of the newest invitation email to `login`.
pub async fn invitation_token(smtp: &SmtpSink, login: &str, nth: usize) -> String {
    let emails = eventually(
        &format!("invitation {nth} to {login}"),
        Duration::from_secs(30),
        || async {
            let got = smtp.emails_to(login).unwrap();
            (got.len() >= nth).then_some(got)
        },
    )
    .await;
    emails[nth - 1].invitation_token().unwrap()
}

/// The reset emails `login` received so far.
pub fn reset_emails(smtp: &SmtpSink, login: &str) -> Vec<usher_testkit::Email> {
    smtp.emails_to(login)
        .unwrap()
        .into_iter()
        .filter(|e| e.subject == "Reset your password")
        .collect()
}

/// The token of the `nth` password reset email to `login`, waiting for it.
pub async fn reset_token(smtp: &SmtpSink, login: &str, nth: usize) -> String {
    let emails = eventually(
        &format!("reset email {nth} to {login}"),
        Duration::from_secs(30),
        || async {
            let got = reset_emails(smtp, login);
            (got.len() >= nth).then_some(got)
        },
    )
    .await;
    emails[nth - 1].token_for("reset").unwrap()
}

/// Accepts the invitation emailed to `login` with [`PASSWORD`] (retrying while the replica's
/// cache has not yet seen the invitation).
pub async fn onboard(auth: &AuthServer, smtp: &SmtpSink, login: &str) {
    let token = invitation_token(smtp, login, 1).await;
    eventually(
        &format!("{login} to accept the invitation"),
        Duration::from_secs(20),
        || async {
            let a = auth.accept(&token, PASSWORD).await;
            (a.status == StatusCode::NO_CONTENT).then_some(())
        },
    )
    .await;
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The TOTP code `oathtool` computes for `secret` (base32) at `now + offset` seconds.
pub fn oathtool(secret: &str, offset: i64) -> String {
    let at = unix_now() as i64 + offset;
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret, "--now", &format!("@{at}")])
        .output()
        .unwrap_or_else(|e| panic!("oathtool is missing ({e}): scripts/install-deps.sh"));
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What `zbarimg` reads from a PNG.
pub fn zbarimg(png: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.png");
    std::fs::write(&path, png).unwrap();
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw", path.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("zbarimg is missing ({e}): scripts/install-deps.sh"));
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs `usher account …` against `env`, which must succeed; its output.
pub fn usher_account(env: &Envtest, args: &[&str]) -> String {
    let (ok, out) = super::run_usher_account(env, args);
    assert!(ok, "usher account {args:?}: {out}");
    out
}
