//! Handler logic in process: the real router over caches filled by hand, driven with
//! `tower::ServiceExt::oneshot`. Its Kubernetes client points at a closed port, so any answer that
//! needed a write would come back 503 `unavailable`: these answers are decided before any I/O.

use std::{net::SocketAddr, time::Duration};

use argon2::{Argon2, password_hash::PasswordHasher};
use axum::{
    Router,
    body::{Body, to_bytes},
    extract::ConnectInfo,
    http::{Request, StatusCode, header},
};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tower::ServiceExt;
use usher_crds::{Organisation, OrganisationSpec, Profile, ProfileSpec, User, UserSpec};
use usher_operator::{
    Account, ApiKey, AuthSettings, AuthState, Clock, Keys, SessionActing, SessionClaims,
    account_id,
    apikey_renew::{NewKey, renew},
    auth_router, seal_session,
};

const NS: &str = "usher-system";
const PASSWORD: &str = "Tz8#qL2!vR9$wX4m-orbit";

/// A router over hand-filled caches: organisation `acme` (namespace `acme`), profiles
/// `analyst` and `org-admin`, and the Users given, each with an activated account.
struct InProcess {
    app: Router,
    state: AuthState,
    phc: String,
    /// The server's clock, which only the test moves.
    clock: Clock,
}

/// The keys the in-process server seals and signs with.
fn keys() -> Keys {
    Keys::from_bytes([1; 32], [2; 32])
}

/// An activated account for `login` with password [`PASSWORD`] (hash `phc`).
fn account(login: &str, phc: &str, rv: &str) -> Account {
    let mut account = Account::new(login);
    account.password_hash = Some(phc.to_owned());
    account.activated_at = Some(Timestamp::now());
    account.resource_version = Some(rv.into());
    account
}

fn user(name: &str, login: &str, profile: &str) -> User {
    let mut u = User::new(
        name,
        UserSpec {
            login: login.into(),
            full_name: format!("Person {name}"),
            profile: profile.into(),
            ..Default::default()
        },
    );
    u.metadata.namespace = Some("acme".into());
    u.metadata.uid = Some(format!("uid-{name}"));
    u.metadata.resource_version = Some("1".into());
    u
}

/// alice of acme, an analyst, with `spec.apiKey.enabled`.
fn alice_with_key() -> User {
    let mut alice = user("alice", "alice@example.com", "analyst");
    alice.spec.api_key = Some(usher_crds::ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    alice
}

async fn in_process(users: &[User]) -> InProcess {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let clock = Clock::manual("2026-12-03T09:00:00Z".parse().unwrap());
    let settings = AuthSettings::new(NS, "http://usher.test");
    let state = AuthState::new(client, settings, keys(), clock.clone()).unwrap();
    let d = &state.directory;
    d.organisations.apply_own_write(Organisation::new(
        "acme",
        OrganisationSpec {
            display_name: "ACME".into(),
            ..Default::default()
        },
    ));
    for (name, permissions) in [
        ("analyst", vec!["manageCase"]),
        ("org-admin", vec!["manageUser", "manageCase"]),
    ] {
        d.profiles.apply_own_write(Profile::new(
            name,
            ProfileSpec {
                description: None,
                permissions: permissions.into_iter().map(String::from).collect(),
            },
        ));
    }
    let phc = Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    for u in users {
        d.users.apply_own_write(u.clone());
        d.accounts
            .apply_own_write(account(&u.spec.login, &phc, "1").to_secret(NS));
    }
    InProcess {
        app: auth_router(state.clone()),
        state,
        phc,
        clock,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl InProcess {
    /// Records a key for `user` in its account, as the controller does, and returns it.
    fn give_key(&self, user: &User) -> ApiKey {
        let mut a = account(&user.spec.login, &self.phc, "2");
        let new = NewKey::generate(&keys(), &a.id, user).unwrap();
        renew(&mut a, user, &new, None, self.clock.now());
        self.state
            .directory
            .accounts
            .apply_own_write(a.to_secret(NS));
        new.key
    }

    async fn send(&self, mut req: Request<Body>) -> Reply {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn json(&self, method: &str, path: &str, body: Value, cookie: Option<&str>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, format!("usher_session={c}"));
        }
        self.send(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn get(&self, path: &str, auth: Option<(&str, String)>) -> Reply {
        let mut req = Request::builder().uri(path);
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// A session cookie for `login` in `acme` (through the User named as its local part),
    /// signed as the server signs them (signing in would record the session in the account, a
    /// write this client cannot make).
    fn session(&self, login: &str) -> String {
        let now = self.clock.now_ms();
        let uid = format!("uid-{}", login.split('@').next().unwrap());
        let acting = SessionActing {
            organisation: "acme",
            user_uid: &uid,
        };
        let claims = SessionClaims::new(&account_id(login), "", acting, now, now).unwrap();
        seal_session(&keys().session, &claims)
    }
}

#[tokio::test]
async fn verify_answers_for_a_key_the_account_records_and_for_no_other() {
    let alice = alice_with_key();
    let p = in_process(std::slice::from_ref(&alice)).await;
    let key = p.give_key(&alice);
    let bearer = |k: &str| Some(("authorization", format!("Bearer {k}")));
    let ok = p.get("/api/v1/verify", bearer(key.expose())).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["x-usher-login"], "alice@example.com");
    assert_eq!(ok.headers["x-usher-organisation"], "acme");
    assert_eq!(ok.headers["x-usher-permissions"], "manageCase");

    // A well-formed key the account does not record authenticates nobody.
    let made_up = ApiKey::generate().unwrap();
    let r = p.get("/api/v1/verify", bearer(made_up.expose())).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    // Nor does the recorded one once spec.apiKey.enabled is false.
    let mut disabled = alice.clone();
    disabled.spec.api_key = None;
    disabled.metadata.resource_version = Some("2".into());
    p.state.directory.users.apply_own_write(disabled);
    let r = p.get("/api/v1/verify", bearer(key.expose())).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    let r = p
        .get(
            "/api/v1/verify",
            Some(("authorization", "Basic eDp5".into())),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(
        r.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"usher\", error=\"invalid_request\""
    );
    let r = p.get("/api/v1/verify", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
}

#[tokio::test]
async fn a_session_made_in_process_reads_me_and_a_tampered_one_is_refused() {
    let alice = user("alice", "alice@example.com", "analyst");
    let p = in_process(&[alice]).await;
    let cookie = p.session("alice@example.com");
    let me = p
        .get(
            "/api/v1/me",
            Some(("cookie", format!("usher_session={cookie}"))),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["login"], "alice@example.com");
    assert_eq!(me.body["permissions"], json!(["manageCase"]));
    let mut tampered = cookie.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let r = p
        .get(
            "/api/v1/me",
            Some(("cookie", format!("usher_session={tampered}"))),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "session_ended")
    );
    let wrong = p
        .json(
            "POST",
            "/api/v1/login",
            json!({"login": "alice@example.com", "password": "not the password at all"}),
            None,
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
}

#[tokio::test]
async fn refusals_come_before_any_handler_with_their_stable_codes() {
    let p = in_process(&[]).await;
    let cross = p
        .send(
            Request::builder()
                .method("POST")
                .uri("/api/v1/logout")
                .header(header::COOKIE, "usher_session=x")
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (cross.status, cross.code()),
        (StatusCode::FORBIDDEN, "cross_site_request")
    );
    let big = p
        .json(
            "POST",
            "/api/v1/login",
            json!({"login": "a@example.com", "password": "x".repeat(70_000)}),
            None,
        )
        .await;
    assert_eq!(
        (big.status, big.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let text = p
        .send(
            Request::builder()
                .method("POST")
                .uri("/api/v1/login")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("login=a"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (text.status, text.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let unknown = p.get("/api/v1/nothing-here", None).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let method = p.json("PUT", "/api/v1/me", json!({}), None).await;
    assert_eq!(
        (method.status, method.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert_eq!(unknown.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn pages_send_strangers_to_sign_in_and_refuse_api_keys() {
    let p = in_process(&[]).await;
    let r = p.get("/account", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/login");
    let r = p
        .get("/account", Some(("authorization", "Bearer usk_x".into())))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_admin_api_refuses_a_second_user_with_a_login_of_the_organisation_before_writing() {
    let admin = user("admin", "admin@example.com", "org-admin");
    let carol = user("carol", "carol@example.com", "analyst");
    let p = in_process(&[admin, carol]).await;
    let cookie = p.session("admin@example.com");
    let add = p
        .json(
            "POST",
            "/api/v1/users",
            json!({"login": "Carol@Example.com", "fullName": "Carol", "profile": "analyst"}),
            Some(&cookie),
        )
        .await;
    assert_eq!(
        (add.status, add.code()),
        (StatusCode::CONFLICT, "login_taken")
    );
    assert!(
        add.body["message"].as_str().unwrap().contains("\"carol\""),
        "{}",
        add.body
    );
    // Moving the admin's own membership onto carol's login is the same refusal.
    let edit = p
        .json(
            "PATCH",
            "/api/v1/users/admin",
            json!({"login": "carol@example.com"}),
            Some(&cookie),
        )
        .await;
    assert_eq!(
        (edit.status, edit.code()),
        (StatusCode::CONFLICT, "login_taken")
    );
    // A new login gets as far as the write, which this client cannot make: proof that the
    // refusals above were decided before any write.
    let fresh = p
        .json(
            "POST",
            "/api/v1/users",
            json!({"login": "dave@example.com", "fullName": "Dave", "profile": "analyst"}),
            Some(&cookie),
        )
        .await;
    assert_eq!(
        fresh.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        fresh.body
    );
}

#[tokio::test]
async fn of_two_users_sharing_a_login_in_one_organisation_only_the_older_counts() {
    let mut old = user("bob", "bob@example.com", "analyst");
    old.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-27T10:00:00Z".parse().unwrap(),
    ));
    let mut newer = user("second", "bob@example.com", "org-admin");
    newer.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-27T11:00:00Z".parse().unwrap(),
    ));
    let p = in_process(&[newer.clone(), old]).await;
    let cookie = p.session("bob@example.com");
    let me = p
        .get(
            "/api/v1/me",
            Some(("cookie", format!("usher_session={cookie}"))),
        )
        .await;
    assert_eq!(me.body["profile"], "analyst", "{}", me.body);
    assert_eq!(me.body["organisations"].as_array().unwrap().len(), 1);
    // The duplicate's key does not authenticate either.
    newer.spec.api_key = Some(usher_crds::ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    newer.metadata.resource_version = Some("2".into());
    p.state.directory.users.apply_own_write(newer.clone());
    let key = p.give_key(&newer);
    let r = p
        .get(
            "/api/v1/verify",
            Some(("authorization", format!("Bearer {}", key.expose()))),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// `(status, code, renewed cookie)` of `GET path` with session `cookie`.
async fn with_session(
    p: &InProcess,
    path: &str,
    cookie: &str,
) -> (StatusCode, String, Option<String>) {
    let r = p
        .get(path, Some(("cookie", format!("usher_session={cookie}"))))
        .await;
    let renewed = r
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.split_once('='))
        .map(|(_, token)| token.to_owned());
    (r.status, r.code().to_owned(), renewed)
}

#[tokio::test]
async fn a_session_ends_when_idle_and_at_its_maximum_lifetime() {
    let alice = user("alice", "alice@example.com", "analyst");
    let p = in_process(std::slice::from_ref(&alice)).await;
    let settings = &p.state.settings;
    let (idle, max) = (settings.idle_timeout, settings.max_lifetime);
    let second = Duration::from_secs(1);

    let unused = p.session("alice@example.com");
    p.clock.advance(idle - second);
    assert_eq!(
        with_session(&p, "/api/v1/me", &unused).await.0,
        StatusCode::OK
    );
    let unused = p.session("alice@example.com");
    p.clock.advance(idle + second);
    let (status, code, _) = with_session(&p, "/api/v1/me", &unused).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "session_expired")
    );

    // Used within the idle timeout, it lives on, its cookie renewed, until its maximum lifetime.
    let started = p.clock.now();
    let mut busy = p.session("alice@example.com");
    loop {
        p.clock.advance(idle / 2);
        let (status, code, renewed) = with_session(&p, "/api/v1/me", &busy).await;
        if p.clock.now().duration_since(started).unsigned_abs() < max {
            assert_eq!(
                status,
                StatusCode::OK,
                "used within the idle timeout: {code}"
            );
            busy = renewed.unwrap_or(busy);
        } else {
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::UNAUTHORIZED, "session_expired")
            );
            break;
        }
    }
}

#[tokio::test]
async fn sensitive_actions_ask_for_the_password_again_after_the_window() {
    let alice = alice_with_key();
    let p = in_process(std::slice::from_ref(&alice)).await;
    p.give_key(&alice);
    let window = p.state.settings.reauth_window;
    let cookie = p.session("alice@example.com");

    p.clock.advance(window);
    let (status, code, _) = with_session(&p, "/api/v1/me/api-key", &cookie).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::OK, ""),
        "at the end of the window"
    );
    p.clock.advance(Duration::from_secs(1));
    let (status, code, _) = with_session(&p, "/api/v1/me/api-key", &cookie).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "reauthentication_required")
    );
    // The session itself still works.
    assert_eq!(
        with_session(&p, "/api/v1/me", &cookie).await.0,
        StatusCode::OK
    );

    let wrong = p
        .json(
            "POST",
            "/api/v1/me/reauthenticate",
            json!({"password": "not-the-password-at-all"}),
            Some(&cookie),
        )
        .await;
    assert_eq!(wrong.code(), "invalid_credentials");
    // Re-authenticating (tested end to end in passwords.rs) gives a session whose proof is now.
    let fresh = p.session("alice@example.com");
    let (status, code, _) = with_session(&p, "/api/v1/me/api-key", &fresh).await;
    assert_eq!((status, code.as_str()), (StatusCode::OK, ""));
}

/// Where the sign-in page sends the browser afterwards (its form's `data-then`).
fn then_of(page: &str) -> String {
    let start = page.find("data-then=\"").unwrap() + "data-then=\"".len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn the_sign_in_page_sends_nobody_to_another_site() {
    let p = in_process(&[]).await;
    // Browsers drop a tab or a newline inside a URL: "/\t/evil.test" becomes "//evil.test".
    for rd in [
        "/%09/evil.test",
        "/%0a/evil.test",
        "/%0d/evil.test",
        "%09//evil.test",
        "/%5cevil.test",
        "%20//evil.test",
        "https:/%09/evil.test",
        "http://usher.test%09.evil.test/",
    ] {
        let page = p.get(&format!("/login?rd={rd}"), None).await;
        assert_eq!(page.status, StatusCode::OK, "{rd}");
        let then = then_of(&page.text);
        assert!(
            then == "/account" || then.starts_with("http://usher.test/"),
            "{rd} sends the browser to {then:?}"
        );
        assert!(!then.contains("evil"), "{rd} sends the browser to {then:?}");
    }
    let page = p.get("/login?rd=/cases%3Fid%3D7", None).await;
    assert_eq!(then_of(&page.text), "http://usher.test/cases?id=7");
}

#[tokio::test]
async fn forward_auth_for_one_organisation_refuses_a_key_or_session_of_another() {
    let alice = alice_with_key();
    let p = in_process(std::slice::from_ref(&alice)).await;
    let key = p.give_key(&alice);
    let bearer = || Some(("authorization", format!("Bearer {}", key.expose())));
    // Twice each: the first answer is computed, the second comes from the kept answers.
    for _ in 0..2 {
        let other = p.get("/api/v1/verify?organisation=globex", bearer()).await;
        assert_eq!(
            (other.status, other.code()),
            (StatusCode::FORBIDDEN, "wrong_organisation")
        );
        let own = p.get("/api/v1/verify?organisation=acme", bearer()).await;
        assert_eq!(own.status, StatusCode::OK);
    }
    let cookie = format!("usher_session={}", p.session("alice@example.com"));
    let other = p
        .get(
            "/api/v1/verify?organisation=globex",
            Some(("cookie", cookie.clone())),
        )
        .await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::FORBIDDEN, "wrong_organisation")
    );
    let own = p
        .get(
            "/api/v1/verify?organisation=acme&permission=manageCase",
            Some(("cookie", cookie)),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_of_one_membership_learns_nothing_of_the_persons_other_organisations() {
    let alice = alice_with_key();
    let p = in_process(std::slice::from_ref(&alice)).await;
    // The same login is also a member of another organisation, which acme's admin cannot see.
    let d = &p.state.directory;
    d.organisations.apply_own_write(Organisation::new(
        "globex",
        OrganisationSpec {
            display_name: "Globex".into(),
            ..Default::default()
        },
    ));
    let mut elsewhere = user("alice-g", "alice@example.com", "org-admin");
    elsewhere.metadata.namespace = Some("globex".into());
    d.users.apply_own_write(elsewhere);
    let key = p.give_key(&alice);

    let me = p
        .get(
            "/api/v1/me",
            Some(("authorization", format!("Bearer {}", key.expose()))),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let seen: Vec<&str> = me.body["organisations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["acme"], "{}", me.body);
    assert!(
        !me.text.contains("globex") && !me.text.contains("org-admin"),
        "{}",
        me.text
    );

    // The person, signed in, sees both.
    let cookie = format!("usher_session={}", p.session("alice@example.com"));
    let mine = p.get("/api/v1/me", Some(("cookie", cookie))).await;
    assert_eq!(
        mine.body["organisations"].as_array().unwrap().len(),
        2,
        "{}",
        mine.body
    );
}

#[tokio::test]
async fn an_ipv6_client_is_one_client_per_64_and_an_address_has_few_attempts_in_flight() {
    let p = in_process(&[]).await;
    let now = p.clock.instant();
    // One host owns a whole /64: a new address per guess must not be a new client.
    let mut refused_at = None;
    for i in 0..200u32 {
        let address = format!("2001:db8:0:1::{i:x}");
        match p
            .state
            .reserve_sign_in(&format!("guess{i}@example.com"), &address, None, now)
        {
            Ok(reserved) => {
                reserved.failed();
            }
            Err(_) => {
                refused_at = Some(i);
                break;
            }
        }
    }
    assert!(
        refused_at.is_some_and(|i| i <= 51),
        "refused at {refused_at:?}"
    );
    // Another /64 is another client.
    let other = p
        .state
        .reserve_sign_in("x@example.com", "2001:db8:0:2::1", None, now);
    assert!(other.is_ok());

    // Many sign-ins from one address at once (each a different login): a few are checked at a
    // time, the rest refused at once.
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..100u32 {
        match p
            .state
            .reserve_sign_in(&format!("burst{i}@example.com"), "192.0.2.7", None, now)
        {
            Ok(r) => held.push(r),
            Err(_) => refused += 1,
        }
    }
    assert!(
        held.len() <= 16 && refused >= 84,
        "{} in flight",
        held.len()
    );
    for r in held {
        r.cancel();
    }
}
