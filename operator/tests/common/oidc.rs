//! OpenID Connect from an app's side, for the tests of the auth server and of the controller:
//! declare a client, run the code flow with a session, redeem and refresh, and a back-channel
//! logout endpoint ([`Receiver`]) that checks every logout token as an app must
//! (Back-Channel Logout 1.0, §2.6).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, api::PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use usher_crds::OIDCClient;

use super::{eventually, secret_text};

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT: &str = "https://app.example.test/cb";

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Declares a confidential client in `ns` and waits for its delivered credentials.
pub async fn declare_client(
    client: &Client,
    ns: &str,
    name: &str,
    spec: Value,
) -> (String, String) {
    let api: Api<OIDCClient> = Api::namespaced(client.clone(), ns);
    let obj: OIDCClient = serde_json::from_value(json!({
        "apiVersion": "usher.dev/v1alpha1", "kind": "OIDCClient",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    eventually("the client's credentials", Duration::from_secs(30), || {
        let secrets = secrets.clone();
        let name = format!("{name}-oidc");
        async move {
            let s = secrets.get_opt(&name).await.ok()??;
            Some((
                secret_text(&s, "client-id")?,
                secret_text(&s, "client-secret").unwrap_or_default(),
            ))
        }
    })
    .await
}

/// `GET /oauth2/authorize?…` with the session cookie: the Location it answers with.
pub async fn authorize(
    base: &str,
    cookie: Option<&str>,
    query: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut url = url::Url::parse(&format!("{base}/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(query);
    let mut req = no_redirects().get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("usher_session={c}"));
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location)
}

pub fn param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn code_query<'a>(client_id: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

pub async fn token(
    base: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let res = no_redirects()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

/// Redeems `code` (issued for [`REDIRECT`] with the challenge of [`VERIFIER`]).
pub async fn redeem(base: &str, id: &str, secret: &str, code: &str) -> (StatusCode, Value) {
    token(
        base,
        id,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

pub fn claims(jwt: &str) -> Value {
    let body = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

pub async fn bearer(base: &str, path: &str, token: &str) -> StatusCode {
    no_redirects()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// An app signed in through a session: what its token response held.
pub struct AppSession {
    /// The ID token's claims.
    pub id: Value,
    /// The ID token itself (an `id_token_hint`).
    pub raw_id_token: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// Signs the person of `cookie` in to client `id` on `base` (code flow with PKCE).
pub async fn sign_in_app(base: &str, cookie: &str, id: &str, secret: &str) -> AppSession {
    let (status, location) = authorize(base, Some(cookie), &code_query(id, "openid")).await;
    assert_eq!(status, StatusCode::FOUND, "{location}");
    let code = param(&location, "code").unwrap_or_else(|| panic!("no code: {location}"));
    let (status, body) = redeem(base, id, secret, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    AppSession {
        id: claims(body["id_token"].as_str().unwrap()),
        raw_id_token: body["id_token"].as_str().unwrap().to_owned(),
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// A back-channel logout endpoint on 127.0.0.1: answers 200 and keeps each `logout_token`.
pub struct Receiver {
    pub port: u16,
    tokens: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on a free port.
    pub async fn start() -> Receiver {
        Receiver::start_on(usher_testkit::free_port().unwrap()).await
    }

    /// Listens on `port` (one that refused connections so far: the app comes back).
    pub async fn start_on(port: u16) -> Receiver {
        let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = tokens.clone();
        let app = axum::Router::new().route(
            "/backchannel",
            axum::routing::post(
                move |axum::Form(f): axum::Form<std::collections::HashMap<String, String>>| {
                    let kept = kept.clone();
                    async move {
                        if let Some(t) = f.get("logout_token") {
                            kept.lock().unwrap().push(t.clone());
                        }
                        StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { port, tokens, task }
    }

    /// Its URL, for `spec.backchannelLogoutURI`.
    pub fn uri(&self) -> String {
        uri_on(self.port)
    }

    /// The tokens received so far.
    pub fn received(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }

    /// Waits for a logout token for session `sid`, checks it as an app must against the
    /// provider's JWKS at `issuer` and for client `client_id`, and returns its claims.
    pub async fn logout_for(&self, issuer: &str, client_id: &str, sid: &str, what: &str) -> Value {
        self.logout_from(issuer, issuer, client_id, sid, what).await
    }

    /// As [`Receiver::logout_for`], with the JWKS of the provider at `jwks_base` (the
    /// issuer's URL may have moved: a restarted auth server of the tests listens elsewhere).
    pub async fn logout_from(
        &self,
        jwks_base: &str,
        issuer: &str,
        client_id: &str,
        sid: &str,
        what: &str,
    ) -> Value {
        let token = eventually(what, Duration::from_secs(30), || async {
            self.received()
                .into_iter()
                .find(|t| claims(t)["sid"] == sid)
        })
        .await;
        verify_logout_token(jwks_base, issuer, client_id, &token).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The back-channel URL a [`Receiver`] on `port` has.
pub fn uri_on(port: u16) -> String {
    format!("http://127.0.0.1:{port}/backchannel")
}

/// Checks a logout token as Back-Channel Logout 1.0 §2.6 says an app must: signed by a key of
/// the issuer's JWKS with that key's algorithm, `iss`, `aud`, `iat`, `exp` in the future, a
/// `jti`, the back-channel event, a `sid` and `sub`, and no `nonce`. Returns its claims.
pub async fn verify_logout_token(
    jwks_base: &str,
    issuer: &str,
    client_id: &str,
    token: &str,
) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{jwks_base}/oauth2/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the token's key is published");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[client_id]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let c = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap_or_else(|e| panic!("the logout token does not verify: {e}"))
    .claims;
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c}");
    assert_eq!(
        c["events"]["http://schemas.openid.net/event/backchannel-logout"],
        json!({}),
        "{c}"
    );
    assert!(c["sid"].as_str().is_some_and(|s| !s.is_empty()), "{c}");
    assert!(
        c.get("nonce").is_none(),
        "a logout token never carries a nonce: {c}"
    );
    c
}
