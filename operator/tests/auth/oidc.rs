//! The OpenID Connect provider over real sockets: an OIDCClient declared with the API, its
//! credentials delivered by the controller, the code flow with PKCE from a session, tokens
//! checked as an app would, and the attacks of issue 25 (each must fail).

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use usher_crds::{OIDCClient, User};

use crate::{
    common::{auth::*, oidc::*, *},
    *,
};

#[tokio::test]
async fn the_code_flow_issues_tokens_an_app_can_check_and_refuses_every_attack() {
    let (h, client) = harness().await;
    let (org, user, login) = active_member(h, &client, &["grafana:view"]).await;
    let (id, secret) = declare_client(
        &client,
        &org.ns,
        "grafana",
        json!({"redirectURIs": [REDIRECT], "requiredPermissions": ["grafana:view"]}),
    )
    .await;
    assert_eq!(id, format!("{}.grafana", org.ns));
    assert!(secret.len() >= 43, "at least 256 bits of secret");
    let oidc: Api<OIDCClient> = Api::namespaced(client.clone(), &org.ns);
    let declared = oidc.get("grafana").await.unwrap();
    assert_eq!(
        declared.status.unwrap().client_id.as_deref(),
        Some(id.as_str())
    );

    // Discovery and JWKS, as an app reads them.
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", h.a.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], h.a.base);
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let jwks: Value = eventually("the signing keys", Duration::from_secs(20), || async {
        let j: Value = reqwest::get(format!("{}/oauth2/jwks", h.b.base))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (j["keys"].as_array()?.len() >= 2).then_some(j)
    })
    .await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();

    // Without a session: to the sign-in page, which comes back here.
    let scope = "openid email profile organisation groups";
    let (status, location) = authorize(&h.a.base, None, &code_query(&id, scope)).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(
        location.starts_with("/login?rd=%2Foauth2%2Fauthorize"),
        "{location}"
    );

    // With one: back to the app with a code and the state.
    let session = h.a.session(&login, PASSWORD).await;
    let (status, location) = authorize(&h.a.base, Some(&session), &code_query(&id, scope)).await;
    assert_eq!(status, StatusCode::FOUND, "{location}");
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some("st-1"));
    assert_eq!(param(&location, "iss").as_deref(), Some(h.a.base.as_str()));
    let code = param(&location, "code").unwrap();

    // Attack: the wrong PKCE verifier (on the other replica), then the right one.
    let wrong = VERIFIER.replace('d', "e");
    let (status, body) = token(
        &h.b.base,
        &id,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // Attack: the wrong client secret.
    let (status, body) = token(
        &h.b.base,
        &id,
        "not-the-secret",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let first_code = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, tokens) = eventually("the code on replica b", Duration::from_secs(5), || async {
        let t = token(&h.b.base, &id, &secret, &first_code).await;
        (t.0 == StatusCode::OK).then_some(t)
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    let account = usher_operator::account_id(&login);
    assert_eq!(id_token["sub"], account.as_str());
    assert_eq!(id_token["aud"], id.as_str());
    // (Each test replica has a public URL of its own: the issuer is the one that answered.)
    assert_eq!(id_token["iss"], h.b.base.as_str());
    assert_eq!(id_token["nonce"], "n-1");
    assert_eq!(id_token["email"], login.as_str());
    assert_eq!(id_token["email_verified"], true);
    assert_eq!(id_token["org"], org.name.as_str());
    assert_eq!(id_token["permissions"], json!(["grafana:view"]));
    assert_eq!(id_token["amr"], json!(["pwd"]));
    assert!(
        id_token["groups"]
            .as_array()
            .unwrap()
            .contains(&json!(org.name))
    );
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                tokens["id_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(kids.contains(&header["kid"].as_str().unwrap()));
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let at = claims(&access);
    assert_eq!(
        (at["aud"].as_str(), at["client_id"].as_str()),
        (Some(id.as_str()), Some(id.as_str()))
    );

    // The access token opens userinfo, /me and forward-auth.
    let info: Value = no_redirects()
        .get(format!("{}/oauth2/userinfo", h.b.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (info["sub"].as_str(), info["email"].as_str()),
        (Some(account.as_str()), Some(login.as_str()))
    );
    assert_eq!(
        bearer(&h.b.base, "/api/v1/me", &access).await,
        StatusCode::OK
    );
    assert_eq!(
        bearer(&h.b.base, "/api/v1/verify", &access).await,
        StatusCode::OK
    );
    // Another issuer's token is refused (replica a is another issuer here).
    assert_eq!(
        bearer(&h.a.base, "/api/v1/me", &access).await,
        StatusCode::UNAUTHORIZED
    );

    // Refresh rotates; the old refresh token used again ends the grant and its tokens.
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = token(
        &h.a.base,
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], first.as_str());
    let (status, body) = token(
        &h.a.base,
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let second = refreshed["refresh_token"].as_str().unwrap();
    let (status, _) = token(
        &h.a.base,
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", second)],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the whole grant is revoked"
    );
    eventually(
        "the access token refused",
        Duration::from_secs(5),
        || async {
            (bearer(&h.b.base, "/oauth2/userinfo", &access).await == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;

    // ... and the Usher session it was taken from ends (its other apps are told): sign in again.
    assert_eq!(
        h.a.get("/api/v1/me", Some(&session)).await.code(),
        "session_ended"
    );
    let session = h.a.session(&login, PASSWORD).await;

    // Attack: the code replayed.
    let (status, body) = token(&h.a.base, &id, &secret, &first_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // A replayed code revokes what it issued: a fresh code, redeemed, then replayed.
    let (_, location) = authorize(&h.a.base, Some(&session), &code_query(&id, "openid")).await;
    let code2 = param(&location, "code").unwrap();
    let again = [
        ("grant_type", "authorization_code"),
        ("code", code2.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, t2) = token(&h.a.base, &id, &secret, &again).await;
    assert_eq!(status, StatusCode::OK, "{t2}");
    let access2 = t2["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        bearer(&h.a.base, "/oauth2/userinfo", &access2).await,
        StatusCode::OK
    );
    assert_eq!(
        token(&h.a.base, &id, &secret, &again).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        bearer(&h.a.base, "/oauth2/userinfo", &access2).await,
        StatusCode::UNAUTHORIZED
    );

    // Attack: an unregistered redirect URI gets a page, never a redirect.
    let mut evil = code_query(&id, "openid");
    evil[2] = ("redirect_uri", "https://evil.test/cb");
    let (status, location) = authorize(&h.a.base, Some(&session), &evil).await;
    assert_eq!((status, location.as_str()), (StatusCode::BAD_REQUEST, ""));
    let mut unknown = code_query("nobody.nothing", "openid");
    unknown[2] = ("redirect_uri", "https://evil.test/cb");
    assert_eq!(
        authorize(&h.a.base, Some(&session), &unknown).await,
        (StatusCode::BAD_REQUEST, String::new())
    );
    // Attack: PKCE `plain` goes back as an error.
    let mut plain = code_query(&id, "openid");
    plain[6] = ("code_challenge", VERIFIER);
    plain[7] = ("code_challenge_method", "plain");
    let (_, location) = authorize(&h.a.base, Some(&session), &plain).await;
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_request"),
        "{location}"
    );
    assert!(param(&location, "code").is_none());

    // Attack: `alg: none` and HS256 (keyed with the public modulus) as Bearer.
    let body_part = access.split('.').nth(1).unwrap();
    let kid = header["kid"].as_str().unwrap();
    let none = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#));
    assert_eq!(
        bearer(&h.b.base, "/api/v1/me", &format!("{none}.{body_part}.")).await,
        StatusCode::UNAUTHORIZED
    );
    let hs_header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#));
    let n = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()["n"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, n.as_bytes());
    let signing_input = format!("{hs_header}.{body_part}");
    let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signing_input.as_bytes()).as_ref());
    assert_eq!(
        bearer(&h.b.base, "/api/v1/me", &format!("{signing_input}.{sig}")).await,
        StatusCode::UNAUTHORIZED
    );

    // Attack: a secret forged into the delivered Secret authenticates nothing, and is put right.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &org.ns);
    let forged = "forged-secret-forged-secret-forged-secret-0";
    secrets
        .patch(
            "grafana-oidc",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"data": {"client-secret": ByteString(forged.as_bytes().to_vec())}}),
            ),
        )
        .await
        .unwrap();
    let (_, location) = authorize(&h.a.base, Some(&session), &code_query(&id, "openid")).await;
    let code3 = param(&location, "code").unwrap();
    let (status, _) = token(
        &h.a.base,
        &id,
        forged,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code3),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    eventually(
        "the delivered secret repaired",
        Duration::from_secs(20),
        || async {
            let s = secrets.get("grafana-oidc").await.ok()?;
            (secret_text(&s, "client-secret")? == secret).then_some(())
        },
    )
    .await;

    // A locked member's refresh is refused (and the access token with it).
    let (_, location) = authorize(&h.a.base, Some(&session), &code_query(&id, "openid")).await;
    let code4 = param(&location, "code").unwrap();
    let (_, t4) = redeem(&h.a.base, &id, &secret, &code4).await;
    let access4 = t4["access_token"].as_str().unwrap().to_owned();
    Api::<User>::namespaced(client.clone(), &org.ns)
        .patch(
            &user,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"locked": true}})),
        )
        .await
        .unwrap();
    eventually(
        "the locked member's access token refused",
        Duration::from_secs(10),
        || async {
            (bearer(&h.a.base, "/oauth2/userinfo", &access4).await == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;
    eventually(
        "forward-auth refusing it too",
        Duration::from_secs(10),
        || async {
            (bearer(&h.a.base, "/api/v1/verify", &access4).await == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;
    let (status, body) = token(
        &h.a.base,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t4["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_client_of_one_organisation_never_signs_in_a_member_of_another() {
    let (h, client) = harness().await;
    let (_, _, login) = active_member(h, &client, &[]).await;
    let (other, _, _) = member(&client, &[]).await;
    let (id, _) = declare_client(
        &client,
        &other.ns,
        "wiki",
        json!({"redirectURIs": [REDIRECT]}),
    )
    .await;
    let session = h.a.session(&login, PASSWORD).await;
    let (status, location) = authorize(&h.a.base, Some(&session), &code_query(&id, "openid")).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("access_denied"),
        "{location}"
    );
    assert!(param(&location, "code").is_none());
    // Nor through scope organisation:<name> of an organisation it does not serve.
    let mut named = code_query(&id, "openid");
    let scope = format!("openid organisation:{}", other.name);
    named[3] = ("scope", &scope);
    let (_, location) = authorize(&h.a.base, Some(&session), &named).await;
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("access_denied"),
        "{location}"
    );
}

#[tokio::test]
async fn an_id_token_hint_names_a_person_and_never_signs_anyone_in() {
    let (h, client) = harness().await;
    let (org, alice_user, alice) = active_member(h, &client, &[]).await;
    let users = Api::<User>::namespaced(client.clone(), &org.ns);
    let profile = users.get(&alice_user).await.unwrap().spec.profile;
    let bob = login("bob");
    users
        .create(
            &PostParams::default(),
            &user(&unique_user_name(), &bob, &profile),
        )
        .await
        .unwrap();
    onboard(&h.a, &h.smtp, &bob).await;
    let (id, secret) = declare_client(
        &client,
        &org.ns,
        "hinted",
        json!({"redirectURIs": [REDIRECT]}),
    )
    .await;
    // Bob's ID token, from replica a.
    let bob_session = h.a.session(&bob, PASSWORD).await;
    let (_, location) = authorize(&h.a.base, Some(&bob_session), &code_query(&id, "openid")).await;
    let code = param(&location, "code").unwrap();
    let (_, t) = redeem(&h.a.base, &id, &secret, &code).await;
    let bob_id_token = t["id_token"].as_str().unwrap().to_owned();
    let with_hint = |hint: &str| {
        let mut q: Vec<(String, String)> = code_query(&id, "openid")
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        q.push(("prompt".into(), "none".into()));
        q.push(("id_token_hint".into(), hint.to_owned()));
        q
    };
    let ask = |session: Option<String>, q: Vec<(String, String)>| async move {
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        authorize(&h.a.base, session.as_deref(), &q).await
    };
    // Without a session, the hint signs nobody in.
    let (_, location) = ask(None, with_hint(&bob_id_token)).await;
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("login_required"),
        "{location}"
    );
    // Alice signed in, the hint naming Bob: not Alice's code.
    let alice_session = h.a.session(&alice, PASSWORD).await;
    let (_, location) = ask(Some(alice_session.clone()), with_hint(&bob_id_token)).await;
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("login_required"),
        "{location}"
    );
    assert!(param(&location, "code").is_none());
    // A token of another issuer (replica b is one here), or not a token at all.
    let foreign = {
        let (_, location) =
            authorize(&h.b.base, Some(&bob_session), &code_query(&id, "openid")).await;
        let code = param(&location, "code").unwrap();
        let (_, t) = eventually("the code on b", Duration::from_secs(5), || async {
            let t = redeem(&h.b.base, &id, &secret, &code).await;
            (t.0 == StatusCode::OK).then_some(t)
        })
        .await;
        t["id_token"].as_str().unwrap().to_owned()
    };
    for hint in [foreign.as_str(), "eyJhbGciOiJub25lIn0.e30.", "garbage"] {
        let (_, location) = ask(Some(bob_session.clone()), with_hint(hint)).await;
        assert_eq!(
            param(&location, "error").as_deref(),
            Some("invalid_request"),
            "{hint}: {location}"
        );
    }
    // Bob's own hint with Bob's session: a code.
    let (_, location) = ask(Some(bob_session), with_hint(&bob_id_token)).await;
    assert!(param(&location, "code").is_some(), "{location}");
}
