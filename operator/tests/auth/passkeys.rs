//! Passkeys through the JSON API (issue 27) with a software authenticator: added on one replica
//! and finished on another, the second factor after the password, a passwordless sign-in, the
//! re-authentication window, the platform operator's reset; and the attacks: a replayed
//! assertion, a counter gone backwards, a foreign origin, another RP ID, another account's
//! credential, a ceremony finished twice. (The browser flow is `passkeys_browser.rs`.)

use std::{collections::BTreeMap, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use usher_testkit::free_port;

use crate::{
    common::{auth::*, webauthn::*, *},
    *,
};

/// Two replicas with the public URL `http://localhost:<c's port>` (passkeys need a host name):
/// a browser or an authenticator sees one origin whichever of them answers.
pub struct Localhost {
    pub c: AuthServer,
    pub d: AuthServer,
    /// Their public URL, the origin passkeys are bound to.
    pub origin: String,
}

static LOCALHOST: OnceCell<Localhost> = OnceCell::const_new();

pub async fn localhost(h: &'static Harness) -> &'static Localhost {
    LOCALHOST
        .get_or_init(|| async {
            let port = free_port().unwrap();
            let origin = format!("http://localhost:{port}");
            let env = [("USHER_PUBLIC_URL", origin.as_str())];
            let c = start_auth_on(h.env, "auth-passkeys-c", port, &env).await;
            let d = start_auth_on(h.env, "auth-passkeys-d", free_port().unwrap(), &env).await;
            Localhost { c, d, origin }
        })
        .await
}

/// A client that keeps the cookies it is given (the session's, the ceremony's).
#[derive(Default, Clone)]
pub struct Jar {
    pub cookies: BTreeMap<String, String>,
}

impl Jar {
    pub async fn send(
        &mut self,
        to: &AuthServer,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", to.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", header.join("; "));
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let first = v.split(';').next().unwrap();
            let (k, val) = first.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&mut self, to: &AuthServer, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(to, Method::POST, path, Some(body)).await
    }

    /// Signs in with the password.
    pub async fn sign_in(&mut self, to: &AuthServer, login: &str) -> (StatusCode, Value) {
        self.post(
            to,
            "/api/v1/login",
            json!({"login": login, "password": PASSWORD}),
        )
        .await
    }
}

/// Adds `key` to the account signed in in `jar`: start on `start`, finish on `finish`.
pub async fn add_passkey(
    jar: &mut Jar,
    start: &AuthServer,
    finish: &AuthServer,
    key: &mut SoftPasskey,
    site: &Site,
    name: &str,
) -> (StatusCode, Value) {
    let (status, options) = jar
        .post(start, "/api/v1/me/passkeys/register/start", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let credential = key.register(&options, site);
    jar.post(
        finish,
        "/api/v1/me/passkeys/register/finish",
        json!({"name": name, "credential": credential}),
    )
    .await
}

/// A passkey sign-in of `key` (`login`: the second factor after the password; `None`:
/// discoverable), started on `start`, finished on `finish` in a jar of its own.
async fn passkey_sign_in(
    start: &AuthServer,
    finish: &AuthServer,
    key: &mut SoftPasskey,
    site: &Site,
    login: Option<&str>,
) -> (Jar, StatusCode, Value, Value) {
    let mut jar = Jar::default();
    let body = login.map_or_else(|| json!({}), |l| json!({"login": l}));
    let (status, options) = jar.post(start, "/api/v1/login/passkey/start", body).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let credential = key.assert(&options, site);
    let (status, body) = jar
        .post(
            finish,
            "/api/v1/login/passkey/finish",
            json!({"credential": credential}),
        )
        .await;
    (jar, status, body, credential)
}

async fn code_guesses(client: &kube::Client, login: &str) -> u32 {
    account(client, login).await.unwrap().guesses.code
}

#[tokio::test]
async fn a_passkey_is_added_on_one_replica_signs_in_on_another_and_every_attack_is_refused() {
    let (h, client) = harness().await;
    let l = localhost(h).await;
    let (org, name, login) = active_member(h, &client, &["manageCase"]).await;
    let site = Site::at(&l.origin);
    let mut alice = Jar::default();
    assert_eq!(alice.sign_in(&l.c, &login).await.0, StatusCode::OK);

    // Added: started on c, finished on d.
    let (status, options) = alice
        .post(&l.c, "/api/v1/me/passkeys/register/start", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let sel = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(sel["residentKey"], "required", "{options}");
    assert_eq!(sel["userVerification"], "required", "{options}");
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    let mut key = SoftPasskey::new();
    let credential = key.register(&options, &site);
    let before_finish = alice.clone();
    let finish = json!({"name": " Laptop\n", "credential": credential});
    let (status, added) = alice
        .post(&l.d, "/api/v1/me/passkeys/register/finish", finish.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added, json!({"id": key.id(), "name": "Laptop"}));
    let recorded = eventually("the audit record", Duration::from_secs(10), || async {
        let r: Vec<Value> = audit_records()
            .into_iter()
            .filter(|r| r["action"] == "passkey.added" && r["target"]["login"] == login.as_str())
            .collect();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    // The same ceremony finished twice: refused.
    let (status, twice) = before_finish
        .clone()
        .post(&l.c, "/api/v1/me/passkeys/register/finish", finish)
        .await;
    assert_eq!(
        (status, twice["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("ceremony_expired"))
    );

    let (_, list) = alice
        .send(&l.c, Method::GET, "/api/v1/me/passkeys", None)
        .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "Laptop");
    assert!(list[0]["createdAt"].is_string() && list[0].get("lastUsedAt").is_none());
    let (_, me) = alice.send(&l.d, Method::GET, "/api/v1/me", None).await;
    assert_eq!(me["mfaEnrolled"], true, "{me}");
    eventually(
        "the User's status to say MFA is enrolled",
        Duration::from_secs(20),
        || async {
            let u = kube::Api::<usher_crds::User>::namespaced(client.clone(), &org.ns)
                .get(&name)
                .await
                .ok()?;
            (u.status?.mfa_enrolled == Some(true)).then_some(())
        },
    )
    .await;

    // The password alone is no longer enough; the passkey finishes the sign-in.
    let (status, refused) = Jar::default().sign_in(&l.d, &login).await;
    assert_eq!(
        (status, refused["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("mfa_required"))
    );
    assert_eq!(refused["methods"], json!(["passkey"]));
    let (mut second, status, body, _) =
        passkey_sign_in(&l.d, &l.c, &mut key, &site, Some(&login)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["login"], login.as_str());
    let (status, _) = second.send(&l.d, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);
    // An app that requires MFA takes the passkey session; its ID token says how (RFC 8176).
    let (app, secret) = crate::common::oidc::declare_client(
        &client,
        &org.ns,
        "mfa-app",
        json!({"redirectURIs": [crate::common::oidc::REDIRECT], "requireMFA": true}),
    )
    .await;
    let cookie = second.cookies["usher_session"].clone();
    let signed_in = crate::common::oidc::sign_in_app(&l.c.base, &cookie, &app, &secret).await;
    assert_eq!(signed_in.id["amr"], json!(["hwk", "mfa"]));
    // Passwordless: no login typed.
    let (_, status, body, used) = passkey_sign_in(&l.c, &l.d, &mut key, &site, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = alice
        .send(&l.c, Method::GET, "/api/v1/me/passkeys", None)
        .await;
    assert!(list[0]["lastUsedAt"].is_string(), "{list}");

    // Attack: the assertion replayed with its own ceremony, then with a fresh one.
    let mut replay = Jar::default();
    let (_, options) = replay
        .post(&l.c, "/api/v1/login/passkey/start", json!({}))
        .await;
    let fresh = key.assert(&options, &site);
    let before = replay.clone();
    let ok = replay
        .post(
            &l.c,
            "/api/v1/login/passkey/finish",
            json!({"credential": fresh}),
        )
        .await;
    assert_eq!(ok.0, StatusCode::OK);
    let again = before
        .clone()
        .post(
            &l.d,
            "/api/v1/login/passkey/finish",
            json!({"credential": fresh}),
        )
        .await;
    assert_eq!(
        again.1["error"], "ceremony_expired",
        "the same ceremony twice: {again:?}"
    );
    let guesses = code_guesses(&client, &login).await;
    let mut other = Jar::default();
    other
        .post(&l.c, "/api/v1/login/passkey/start", json!({}))
        .await;
    let stale = other
        .post(
            &l.d,
            "/api/v1/login/passkey/finish",
            json!({"credential": used}),
        )
        .await;
    assert_eq!(
        (stale.0, stale.1["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_passkey"))
    );
    assert_eq!(
        code_guesses(&client, &login).await,
        guesses + 1,
        "counted like a wrong code"
    );

    // Attack: a cloned authenticator (its counter behind the stored one).
    let counter = key.counter;
    key.counter = 1;
    let (_, status, body, _) = passkey_sign_in(&l.c, &l.d, &mut key, &site, None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_passkey"))
    );
    key.counter = counter;
    // Attack: a clone answering a ceremony it started before the real passkey signed in again
    // (the ceremony carries the counter as it was at its start; the account holds a newer one).
    let mut clone = Jar::default();
    let (status, early) = clone
        .post(
            &l.c,
            "/api/v1/login/passkey/start",
            json!({"login": login.clone()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{early}");
    let seen = key.counter;
    let (_, status, body, _) = passkey_sign_in(&l.c, &l.d, &mut key, &site, Some(&login)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counter = key.counter;
    key.counter = seen;
    let copied = key.assert(&early, &site);
    key.counter = counter;
    let (status, body) = clone
        .post(
            &l.d,
            "/api/v1/login/passkey/finish",
            json!({"credential": copied}),
        )
        .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_passkey")),
        "a counter the account has seen, in a ceremony started before it did"
    );
    // Attack: a phishing site's origin, and another RP ID.
    let phish = Site::at("http://localhost.evil.example");
    let (_, status, _, _) = passkey_sign_in(&l.c, &l.d, &mut key, &phish, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let other_rp = Site {
        origin: l.origin.clone(),
        rp_id: Some("evil.example".into()),
    };
    let (_, status, _, _) = passkey_sign_in(&l.c, &l.d, &mut key, &other_rp, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Attack: another account's credential presented for Alice.
    let (_, _, bob_login) = active_member(h, &client, &[]).await;
    let mut bob = Jar::default();
    bob.sign_in(&l.c, &bob_login).await;
    let mut bob_key = SoftPasskey::new();
    let (status, _) = add_passkey(&mut bob, &l.c, &l.c, &mut bob_key, &site, "Bob's").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, status, _, _) = passkey_sign_in(&l.c, &l.c, &mut bob_key, &site, Some(&login)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "Bob's passkey for Alice's login"
    );
    let alice_user = key.user.clone();
    bob_key.user = alice_user;
    let (_, status, _, _) = passkey_sign_in(&l.c, &l.c, &mut bob_key, &site, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "Bob's passkey under Alice's user handle"
    );

    // The real passkey still works after those failures, and resets the count.
    let (_, status, body, _) = passkey_sign_in(&l.d, &l.c, &mut key, &site, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(code_guesses(&client, &login).await, 0);

    // Removed: the list is empty and MFA is off again.
    let (status, _) = alice
        .send(
            &l.d,
            Method::DELETE,
            &format!("/api/v1/me/passkeys/{}", key.id()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = alice
        .send(&l.c, Method::GET, "/api/v1/me/passkeys", None)
        .await;
    assert_eq!(list, json!([]));
    let (_, status, _, _) = passkey_sign_in(&l.c, &l.d, &mut key, &site, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a removed passkey signs nobody in"
    );
    eventually(
        "the audit record of the removal",
        Duration::from_secs(10),
        || async {
            audit_records()
                .iter()
                .any(|r| r["action"] == "passkey.removed" && r["target"]["login"] == login.as_str())
                .then_some(())
        },
    )
    .await;
    assert_eq!(Jar::default().sign_in(&l.c, &login).await.0, StatusCode::OK);
}

#[tokio::test]
async fn adding_or_removing_a_passkey_needs_a_recent_sign_in_and_the_operator_reset_removes_them() {
    let (h, client) = harness().await;
    let l = localhost(h).await;
    let port = free_port().unwrap();
    let env = [
        ("USHER_PUBLIC_URL", l.origin.as_str()),
        ("USHER_REAUTH_WINDOW", "2s"),
    ];
    let e = start_auth_on(h.env, "auth-passkeys-reauth", port, &env).await;
    let (_org, _name, login) = active_member(h, &client, &[]).await;
    let site = Site::at(&l.origin);
    let mut jar = Jar::default();
    jar.sign_in(&e, &login).await;
    let mut key = SoftPasskey::new();
    let (status, _) = add_passkey(&mut jar, &e, &e, &mut key, &site, "Phone").await;
    assert_eq!(status, StatusCode::CREATED);
    // Once the window (2 s) passed, a stolen session cookie cannot add its own passkey.
    let body = eventually(
        "the re-authentication window to pass",
        Duration::from_secs(15),
        || {
            let mut jar = jar.clone();
            let e = &e;
            async move {
                let (status, body) = jar
                    .post(e, "/api/v1/me/passkeys/register/start", json!({}))
                    .await;
                (status == StatusCode::FORBIDDEN).then_some(body)
            }
        },
    )
    .await;
    assert_eq!(body["error"], "reauthentication_required");
    let (status, body) = jar
        .send(
            &e,
            Method::DELETE,
            &format!("/api/v1/me/passkeys/{}", key.id()),
            None,
        )
        .await;
    assert_eq!(body["error"], "reauthentication_required", "{status}");
    // Proving it again opens both.
    let (status, _) = jar
        .post(
            &e,
            "/api/v1/me/reauthenticate",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut second = SoftPasskey::new();
    let (status, _) = add_passkey(&mut jar, &e, &e, &mut second, &site, "Key").await;
    assert_eq!(status, StatusCode::CREATED);

    // The platform operator's reset removes TOTP and passkeys alike.
    let out = usher_account(h.env, &["reset-mfa", &login]);
    assert!(out.contains("MFA reset for"), "{out}");
    eventually(
        "the passkeys to be gone",
        Duration::from_secs(10),
        || async {
            account(&client, &login)
                .await
                .filter(|a| a.passkeys.keys.is_empty())
        },
    )
    .await;
    let (_, status, _, _) = passkey_sign_in(&l.c, &l.c, &mut key, &site, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
