//! OpenID Connect benchmark, every figure a ratio to a baseline measured in the same run:
//!
//! - `GET /oauth2/userinfo` and `GET /api/v1/verify` with an access token (a JWT: signature,
//!   then the session, grant and membership from the caches) against a bare axum handler on its
//!   own listener in the same process, both under `wrk -t2 -c64`, interleaved (target >= 0.7);
//! - refresh grants per second (each rotates the refresh token: one write of the account
//!   Secret) against plain Secret updates per second on the same API server, with as many
//!   writers as grants, each on an object of its own (target >= 0.5); p99s of both.
//!
//! The real `usher controller` makes the signing keys and registers the client; the auth server
//! runs in this process on a real envtest API server.
//!
//! `cargo bench -p usher-operator --bench oidc` (or `make bench`). Needs `wrk`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code may panic

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use argon2::{Argon2, password_hash::PasswordHasher};
use axum::routing::get;
use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use serde_json::{Value, json};
use usher_crds::{OIDCClient, User, UserSpec};
use usher_operator::{
    AccountStore, AuthSettings as Settings, AuthState as State, Clock, Keys, StoreError,
    auth_layers, auth_routes,
};

mod common;
use common::wrk::compare;

const PASSWORD: &str = "Tz8#qL2!vR9$wX4m-orbit";
const REDIRECT: &str = "https://app.bench.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Grants refreshed at once (and Secrets updated at once for the baseline).
const WRITERS: usize = 8;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    common::block_on(bench());
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

async fn bench() {
    let (env, client, smtp) = common::lab(&["bench".to_owned()]).await;
    common::wait_for_namespaces(&client, &[]).await;
    let logs = tempfile::tempdir().unwrap();
    let _controller = common::spawn_controller(
        &env,
        &smtp,
        "127.0.0.1:0",
        &logs.path().join("controller.log"),
    );
    common::wait_for_namespaces(&client, &["bench".to_owned()]).await;
    // WRITERS people, each with a password, as an accepted invitation leaves them.
    let phc = Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let users: Api<User> = Api::namespaced(client.clone(), "bench");
    let store = AccountStore::new(client.clone(), "usher-system");
    let logins: Vec<String> = (0..WRITERS).map(|i| format!("p{i}@example.com")).collect();
    for (i, login) in logins.iter().enumerate() {
        users
            .create(
                &PostParams::default(),
                &User::new(
                    &format!("p{i}"),
                    UserSpec {
                        login: login.clone(),
                        full_name: format!("Person {i}"),
                        profile: "analyst".into(),
                        ..Default::default()
                    },
                ),
            )
            .await
            .unwrap();
        // The controller makes the account and invites; the password is set as acceptance would.
        let account = loop {
            if let Some(a) = store
                .get_id(&usher_operator::account_id(login))
                .await
                .unwrap()
            {
                break a;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        store
            .modify(account, |a| {
                a.password_hash = Some(phc.clone());
                a.activated_at = Some(Timestamp::now());
                a.invitation = None;
                Ok::<_, StoreError>(true)
            })
            .await
            .unwrap();
    }
    let oidc: Api<OIDCClient> = Api::namespaced(client.clone(), "bench");
    oidc.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"apiVersion": "usher.dev/v1alpha1", "kind": "OIDCClient",
            "metadata": {"name": "app"}, "spec": {"redirectURIs": [REDIRECT]}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "bench");
    let (client_id, client_secret) = loop {
        if let Some(s) = secrets.get_opt("app-oidc").await.unwrap() {
            let text = |k: &str| String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap();
            break (text("client-id"), text("client-secret"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let state = State::new(
        client.clone(),
        Settings::new("usher-system", &base),
        Keys::load_or_create(client.clone(), "usher-system")
            .await
            .unwrap(),
        Clock::system(),
    )
    .unwrap();
    state.start_caches();
    let app = auth_layers(auth_routes(), state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare = format!("http://{}/", bare_listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            bare_listener,
            axum::Router::new().route("/", get(|| async {})),
        )
        .await
        .unwrap();
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The caches hold the people, the client and the keys once a sign-in and a code work.
    let mut grants = Vec::new();
    for login in &logins {
        let tokens = loop {
            if let Some(t) = code_flow(&http, &base, login, &client_id, &client_secret).await {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        grants.push(tokens);
    }
    let access = grants[0]["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Authorization: Bearer {access}");

    println!("OIDC benchmark (wrk -t2 -c64; {WRITERS} grants and writers)");
    let skip_http = std::env::var_os("USHER_BENCH_SKIP_HTTP").is_some();
    for path in ["/oauth2/userinfo", "/api/v1/verify"]
        .into_iter()
        .filter(|_| !skip_http)
    {
        let c = compare(&bare, &format!("{base}{path}"), &bearer).await;
        println!(
            "{path} with an access token: {:.0} req/s vs the bare handler {:.0}: ratio {:.2} (target >= 0.7) {}; p99 {:.2} ms vs {:.2} ms",
            c.target.rps,
            c.base.rps,
            c.ratio,
            common::verdict(c.ratio >= 0.7),
            c.target.p99_ms,
            c.base.p99_ms
        );
    }

    // Refresh grants: WRITERS chains, each rotating its own grant's refresh token.
    let secs = 10.0;
    let mut baseline_names = Vec::new();
    for i in 0..WRITERS {
        let name = format!("plain-{i}");
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    data: Some([("n".to_owned(), ByteString(b"0".to_vec()))].into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        baseline_names.push(name);
    }
    for round in 1..=2 {
        let cpu = common::cpu_by_process();
        let (updates, update_lat) = plain_updates(&secrets, &baseline_names, secs).await;
        let cpu_updates = cpu_delta(&cpu);
        let cpu = common::cpu_by_process();
        let requests = common::api_requests(&client).await;
        let (refreshes, refresh_lat, next) =
            refresh_chains(&http, &base, &client_id, &client_secret, grants, secs).await;
        let cpu_refreshes = cpu_delta(&cpu);
        let made = common::deltas(&requests, &common::api_requests(&client).await);
        println!(
            "  API requests during the refreshes: {}",
            made.iter()
                .take(6)
                .map(|(k, v)| format!("{k} {v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(a) = store
            .get_id(&usher_operator::account_id(&logins[0]))
            .await
            .unwrap()
        {
            let bytes = serde_json::to_vec(&a.to_secret("usher-system"))
                .unwrap()
                .len();
            println!("  an account Secret after the refreshes: {bytes} bytes of JSON");
        }
        println!(
            "  CPU seconds during the updates: {cpu_updates}; during the refreshes: {cpu_refreshes}"
        );
        grants = next;
        let ratio = refreshes / updates;
        println!(
            "refresh grants (run {round}): {refreshes:.1}/s (p99 {:.1} ms) vs plain Secret updates {updates:.1}/s (p99 {:.1} ms): ratio {ratio:.2} (target >= 0.5) {}",
            refresh_lat,
            update_lat,
            common::verdict(ratio >= 0.5)
        );
    }
}

/// CPU seconds each process used since `before`, as `name s, …`.
fn cpu_delta(before: &std::collections::BTreeMap<String, f64>) -> String {
    common::cpu_by_process()
        .iter()
        .map(|(k, v)| (k, v - before.get(k).unwrap_or(&0.0)))
        .filter(|(_, v)| *v >= 0.1)
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Signs `login` in, authorizes the client and redeems the code: the token answer.
async fn code_flow(
    http: &reqwest::Client,
    base: &str,
    login: &str,
    client_id: &str,
    client_secret: &str,
) -> Option<Value> {
    let res = http
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"login": login, "password": PASSWORD}))
        .send()
        .await
        .ok()?;
    if res.status() != 200 {
        return None;
    }
    let cookie = res
        .headers()
        .get("set-cookie")?
        .to_str()
        .ok()?
        .split(';')
        .next()?
        .to_owned();
    let mut url = url::Url::parse(&format!("{base}/oauth2/authorize")).ok()?;
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email organisation"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let res = http.get(url).header("cookie", cookie).send().await.ok()?;
    let location = res.headers().get("location")?.to_str().ok()?.to_owned();
    let code = url::Url::parse(&location)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "code")?
        .1
        .into_owned();
    let (status, body) = token(
        http,
        base,
        client_id,
        client_secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    (status == 200).then_some(body)
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let res = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// WRITERS tasks refreshing their grant for `secs`: refreshes per second, p99 in ms, and the
/// grants with their last tokens.
async fn refresh_chains(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    grants: Vec<Value>,
    secs: f64,
) -> (f64, f64, Vec<Value>) {
    let started = Instant::now();
    let tasks: Vec<_> = grants
        .into_iter()
        .map(|mut g| {
            let (http, base, id, secret) = (
                http.clone(),
                base.to_owned(),
                id.to_owned(),
                secret.to_owned(),
            );
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while started.elapsed().as_secs_f64() < secs {
                    let t = Instant::now();
                    let rt = g["refresh_token"].as_str().unwrap().to_owned();
                    let (status, next) = token(
                        &http,
                        &base,
                        &id,
                        &secret,
                        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                    )
                    .await;
                    assert_eq!(status, 200, "{next}");
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    g = next;
                }
                (lat, g)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut next = Vec::new();
    for t in tasks {
        let (lat, g) = t.await.unwrap();
        all.extend(lat);
        next.push(g);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    (rate, p99(all), next)
}

/// WRITERS tasks each updating a Secret of its own for `secs` (read-modify-write with the
/// resourceVersion, as the account store does): updates per second and p99 in ms.
async fn plain_updates(secrets: &Api<Secret>, names: &[String], secs: f64) -> (f64, f64) {
    let started = Instant::now();
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let (api, name) = (secrets.clone(), name.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut current = api.get(&name).await.unwrap();
                let mut n = 0u64;
                while started.elapsed().as_secs_f64() < secs {
                    let t = Instant::now();
                    n += 1;
                    current.data =
                        Some([("n".to_owned(), ByteString(n.to_string().into_bytes()))].into());
                    current = api
                        .replace(&name, &PostParams::default(), &current)
                        .await
                        .unwrap();
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all.len() as f64 / started.elapsed().as_secs_f64(), p99(all))
}
