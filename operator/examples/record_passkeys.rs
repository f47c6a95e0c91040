//! Records what a real browser answers to Usher's passkey ceremonies, for the unit tests of
//! `auth::passkey::ceremony` (they replay the answers, with no browser):
//!
//! ```text
//! npm ci --prefix e2e
//! cargo run -p usher-operator --example record_passkeys -- operator/tests/fixtures/passkeys.json
//! ```
//!
//! It serves the ceremonies as the auth server starts and finishes them (the same functions),
//! at `http://localhost:<port>` (RP ID `localhost`; Chromium's secure context without TLS),
//! and runs `e2e/record-passkeys.mjs`: headless Chromium with a CDP virtual authenticator
//! (ctap2, internal transport, resident keys, user verification) that calls
//! `navigator.credentials` through the pages' own script (`assets/usher.js`). One ceremony,
//! `phished`, is answered on a page of another origin (`http://localhost:<other port>`, the
//! same RP ID) that relays the real server's options, as a live phishing proxy would. Each
//! ceremony's sealed state (`Sealed`, in clear here) and the browser's answer are written out.

use std::{
    collections::BTreeMap,
    process::Command,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, bail};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::header,
    response::{Html, IntoResponse},
    routing::{get, post},
};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use usher_operator::{
    Account,
    passkey::{RelyingParty, Sealed, ceremony},
};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Uuid};

/// The accounts the ceremonies are for: a person, and somebody else with a passkey of their own.
const LOGIN: &str = "ada@example.com";
const OTHER: &str = "grace@example.com";
/// The session that adds the passkeys.
const SID: &str = "recorded-session";
/// The ceremonies answered on the real origin, in order; then `phished` on the other one.
const STEPS: [&str; 6] = [
    "register",
    "sign-in-1",
    "sign-in-2",
    "discover",
    "no-user-verification",
    "register-other",
];

struct Recorder {
    rp: RelyingParty,
    accounts: BTreeMap<&'static str, Account>,
    started: BTreeMap<String, Sealed>,
    recorded: serde_json::Map<String, Value>,
}

type Shared = Arc<Mutex<Recorder>>;

fn whose(step: &str) -> &'static str {
    if step == "register-other" {
        OTHER
    } else {
        LOGIN
    }
}

async fn start(State(rec): State<Shared>, Path(step): Path<String>) -> Result<Json<Value>, String> {
    let mut rec = rec.lock().map_err(|e| e.to_string())?;
    let webauthn = rec.rp.get()?.clone();
    let now_ms = Timestamp::now().as_millisecond();
    let account = rec.accounts.get(whose(&step)).ok_or("no such account")?;
    let started = match step.as_str() {
        "register" | "register-other" => ceremony::start_registration(
            &webauthn,
            account,
            SID,
            "Recorded Person",
            Uuid::from_bytes(*user_handle(&step)),
            now_ms,
        )?,
        "discover" => ceremony::start_sign_in(&webauthn, None, now_ms)?,
        _ => ceremony::start_sign_in(&webauthn, Some(account), now_ms)?,
    };
    rec.started.insert(step, started.sealed);
    Ok(Json(started.options))
}

/// A fixed user handle per account, so recordings differ only in what the browser made.
fn user_handle(step: &str) -> &'static [u8; 16] {
    if step == "register-other" {
        b"usher-recorded-2"
    } else {
        b"usher-recorded-1"
    }
}

async fn finish(
    State(rec): State<Shared>,
    Path(step): Path<String>,
    Json(answer): Json<Value>,
) -> Result<Json<Value>, String> {
    let mut rec = rec.lock().map_err(|e| e.to_string())?;
    let rec = &mut *rec;
    let webauthn = rec.rp.get()?.clone();
    let sealed = rec.started.remove(&step).ok_or("not started")?;
    let account = rec
        .accounts
        .get_mut(whose(&step))
        .ok_or("no such account")?;
    let now = Timestamp::now();
    // Finished as the auth server does, so the next ceremony starts from the account as it
    // would be (its passkeys, their counters).
    let outcome = if step.starts_with("register") {
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(answer.clone()).map_err(|e| e.to_string())?;
        ceremony::finish_registration(&webauthn, &sealed, &account.id, SID, &credential)
            .map_err(|r| format!("{r:?}"))
            .and_then(|r| {
                ceremony::add(&mut account.passkeys, &sealed, &r, "Recorded key", now)
                    .map_err(|r| format!("{r:?}"))
            })
            .map(|_| ())
    } else {
        let credential: PublicKeyCredential =
            serde_json::from_value(answer.clone()).map_err(|e| e.to_string())?;
        ceremony::finish_sign_in(&webauthn, &sealed, account, &credential)
            .map_err(|r| format!("{r:?}"))
            .and_then(|v| {
                ceremony::record_use(&mut account.passkeys, &sealed, &v, now)
                    .map_err(|r| format!("{r:?}"))
            })
    };
    let sealed = serde_json::to_value(&sealed).map_err(|e| e.to_string())?;
    rec.recorded.insert(
        step.clone(),
        json!({ "sealed": sealed, "answer": answer, "recordedAtMs": now.as_millisecond() }),
    );
    // The recorder's own verdict, for its log: the tests decide what each must be.
    Ok(Json(
        json!({ "step": step, "accepted": outcome.is_ok(), "why": outcome.err() }),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .context("usage: record_passkeys <fixture.json>")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let phishing = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://localhost:{}", listener.local_addr()?.port());
    let phishing_origin = format!("http://localhost:{}", phishing.local_addr()?.port());
    let rp = RelyingParty::new(&origin, None);
    if let Err(why) = rp.get() {
        bail!("{why}");
    }
    let mut accounts = BTreeMap::new();
    for login in [LOGIN, OTHER] {
        accounts.insert(login, Account::new(login));
    }
    let rec: Shared = Arc::new(Mutex::new(Recorder {
        rp,
        accounts,
        started: BTreeMap::new(),
        recorded: serde_json::Map::new(),
    }));
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                Html("<!doctype html><title>Passkey recorder</title><script src=\"/usher.js\"></script>")
            }),
        )
        .route(
            "/usher.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript")],
                    include_str!("../assets/usher.js"),
                )
                    .into_response()
            }),
        )
        .route("/start/{step}", post(start))
        .route("/finish/{step}", post(finish))
        .with_state(rec.clone());
    let relay = app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let proxy = tokio::spawn(async move { axum::serve(phishing, relay).await });

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let browser = Command::new("node")
        .arg("e2e/record-passkeys.mjs")
        .current_dir(root)
        .env("BASE", &origin)
        .env("PHISHING", &phishing_origin)
        .env("STEPS", STEPS.join(","))
        .status()
        .context("node (Node.js 20+) runs the browser")?;
    server.abort();
    proxy.abort();
    if !browser.success() {
        bail!("the browser did not answer every ceremony: see above");
    }
    let rec = rec.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = Command::new(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let fixture = json!({
        "recordedWith": format!("{version}; CDP virtual authenticator: ctap2, internal transport, resident keys, user verification"),
        "recordedBy": "cargo run -p usher-operator --example record_passkeys",
        "origin": origin,
        "rpId": "localhost",
        "phishingOrigin": phishing_origin,
        "login": LOGIN,
        "otherLogin": OTHER,
        "sid": SID,
        "ceremonies": rec.recorded,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&fixture)? + "\n")
        .with_context(|| format!("cannot write {out}"))?;
    println!("recorded {} ceremonies to {out}", rec.recorded.len());
    Ok(())
}
