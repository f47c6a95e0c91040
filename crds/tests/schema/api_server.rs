//! The CRDs against a real kube-apiserver (envtest): they install with the right scopes, every
//! kind round-trips, the schema itself refuses bad input, and kubectl shows the printer columns.

use std::collections::BTreeMap;

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use usher_crds::{
    ApiKeySpec, MfaPolicy, Organisation, OrganisationSpec, Profile, ProfileSpec, User, UserPhase,
    UserSpec, UserStatus,
};
use usher_testkit::{Envtest, create_namespace, unique_name};

async fn env() -> (&'static Envtest, Client) {
    let env = Envtest::shared(usher_crds::crds).await.expect("envtest");
    (env, env.client().await.expect("client"))
}

async fn namespace(client: &Client) -> String {
    let name = unique_name("ns");
    create_namespace(client, &name).await.unwrap();
    name
}

fn user(name: &str, login: &str) -> User {
    User::new(
        name,
        UserSpec {
            login: login.into(),
            full_name: "Alice Example".into(),
            profile: "analyst".into(),
            ..Default::default()
        },
    )
}

/// The message of an API error, or a panic saying the request unexpectedly succeeded.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}

#[tokio::test]
async fn crds_install_with_the_right_scopes_names_and_status_subresources() {
    let (_, client) = env().await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for (name, scope, short) in [
        ("profiles.usher.dev", "Cluster", "prof"),
        ("organisations.usher.dev", "Cluster", "org"),
        ("users.usher.dev", "Namespaced", "usr"),
        ("oidcclients.usher.dev", "Namespaced", "oidc"),
    ] {
        let crd = api.get(name).await.unwrap();
        assert_eq!(crd.spec.scope, scope, "{name}");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["usher".to_string()][..])
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }
}

#[tokio::test]
async fn every_kind_round_trips_spec_and_status() {
    let (_, client) = env().await;

    let profiles: Api<Profile> = Api::all(client.clone());
    let pname = unique_name("analyst");
    let mut profile = Profile::new(
        &pname,
        ProfileSpec {
            description: Some("Works cases".into()),
            permissions: vec!["manageCase".into(), "case:read".into()],
        },
    );
    let created = profiles
        .create(&PostParams::default(), &profile)
        .await
        .unwrap();
    assert_eq!(created.spec, profile.spec);

    let orgs: Api<Organisation> = Api::all(client.clone());
    let oname = unique_name("acme");
    let org = Organisation::new(
        &oname,
        OrganisationSpec {
            display_name: "ACME Corp".into(),
            description: Some("Rockets".into()),
            namespace: Some(format!("{oname}-users")),
            mfa: Some(MfaPolicy {
                required: true,
                grace_period: Some("72h".parse().unwrap()),
            }),
            user_management: usher_crds::UserManagement::GitOps,
        },
    );
    let created = orgs.create(&PostParams::default(), &org).await.unwrap();
    assert_eq!(created.spec, org.spec);
    assert_eq!(created.namespace_name(), format!("{oname}-users"));

    let ns = namespace(&client).await;
    let users: Api<User> = Api::namespaced(client.clone(), &ns);
    let mut alice = user("alice", "alice@example.com");
    alice.spec.api_key = Some(ApiKeySpec {
        enabled: true,
        secret_name: None,
        rotate_every: Some("30d".parse().unwrap()),
        grace_period: Some("0s".parse().unwrap()),
    });
    let created = users.create(&PostParams::default(), &alice).await.unwrap();
    assert_eq!(created.spec, alice.spec);
    assert_eq!(created.api_key_secret_name(), "alice-api-key");

    // Status goes through the status subresource and comes back whole.
    let now = Time(jiff_now());
    let status = UserStatus {
        phase: Some(UserPhase::Invited),
        account_id: Some("acc-123".into()),
        mfa_enrolled: Some(false),
        observed_generation: created.metadata.generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "Invited".into(),
            message: "waiting for the invitation to be accepted".into(),
            last_transition_time: now.clone(),
            observed_generation: created.metadata.generation,
        }],
        ..Default::default()
    };
    let patch = serde_json::json!({"status": status});
    users
        .patch_status("alice", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let got = users.get_status("alice").await.unwrap();
    assert_eq!(got.status, Some(status));
    assert_eq!(got.spec, alice.spec, "a status write must not touch spec");

    // A spec write through the main resource cannot change status.
    profile.spec.permissions.push("manageUser".into());
    let patch = serde_json::json!({"spec": profile.spec, "status": {"users": 99}});
    let updated = profiles
        .patch(&pname, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(updated.grants("manageUser"));
    assert_eq!(updated.status.and_then(|s| s.users), None);
}

/// Now, at the second precision the API server stores for `Time`.
fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    let secs = k8s_openapi::jiff::Timestamp::now().as_second();
    k8s_openapi::jiff::Timestamp::from_second(secs).expect("valid timestamp")
}

#[tokio::test]
async fn the_schema_refuses_a_login_that_is_not_an_email_even_without_the_webhook() {
    let (_, client) = env().await;
    let ns = namespace(&client).await;
    let users: Api<User> = Api::namespaced(client, &ns);
    for bad in [
        "alice",
        "alice@example",
        "alice@@example.com",
        "alice@example.com.",
        "alice smith@example.com",
        "alice@exa mple.com",
    ] {
        let (code, message) = refusal(
            users
                .create(&PostParams::default(), &user(&unique_name("u"), bad))
                .await,
        );
        assert_eq!(code, 422, "{bad}");
        assert!(message.contains("spec.login"), "{bad}: {message}");
    }
    let long = format!("{}@example.com", "a".repeat(250));
    let (code, message) = refusal(
        users
            .create(&PostParams::default(), &user(&unique_name("u"), &long))
            .await,
    );
    assert_eq!(code, 422);
    assert!(message.contains("spec.login"), "{message}");
}

#[tokio::test]
async fn the_schema_accepts_every_canonical_login_including_unicode_and_the_longest() {
    let (_, client) = env().await;
    let ns = namespace(&client).await;
    let users: Api<User> = Api::namespaced(client, &ns);
    let longest = format!(
        "{}@{}.{}.{}.com",
        "a".repeat(64),
        "b".repeat(61),
        "c".repeat(61),
        "d".repeat(61)
    );
    for input in [
        "josé@example.com",
        "用户@例子.中国",
        "alice@bücher.de",
        "o'brien+tag@sub.example.co.uk",
        longest.as_str(),
    ] {
        let canonical = usher_crds::login::canonical_login(input).unwrap();
        users
            .create(&PostParams::default(), &user(&unique_name("u"), &canonical))
            .await
            .unwrap_or_else(|e| panic!("{canonical}: {e}"));
    }
}

#[tokio::test]
async fn the_schema_refuses_bad_permissions_durations_and_missing_fields() {
    let (_, client) = env().await;
    let profiles: Api<Profile> = Api::all(client.clone());
    let bad = Profile::new(
        &unique_name("p"),
        ProfileSpec {
            description: None,
            permissions: vec!["manage user".into()],
        },
    );
    let (code, message) = refusal(profiles.create(&PostParams::default(), &bad).await);
    assert_eq!(code, 422);
    assert!(message.contains("spec.permissions"), "{message}");

    // A bad duration cannot even be held by the typed API; send it as a dynamic object.
    let raw = serde_json::json!({
        "apiVersion": "usher.dev/v1alpha1", "kind": "Organisation",
        "metadata": {"name": unique_name("o")},
        "spec": {"displayName": "X", "mfa": {"required": true, "gracePeriod": "3 days"}}
    });
    assert!(serde_json::from_value::<Organisation>(raw.clone()).is_err());
    let dynamic: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<Organisation>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(raw).unwrap();
    let (code, message) = refusal(dynamic.create(&PostParams::default(), &obj).await);
    assert_eq!(code, 422);
    assert!(message.contains("spec.mfa.gracePeriod"), "{message}");

    let missing = serde_json::json!({
        "apiVersion": "usher.dev/v1alpha1", "kind": "Organisation",
        "metadata": {"name": unique_name("o")}, "spec": {}
    });
    let obj: kube::api::DynamicObject = serde_json::from_value(missing).unwrap();
    let (code, message) = refusal(dynamic.create(&PostParams::default(), &obj).await);
    assert_eq!(code, 422);
    assert!(message.contains("displayName"), "{message}");
}

#[tokio::test]
async fn kubectl_shows_the_printer_columns_and_the_usher_category() {
    let (env, client) = env().await;
    let ns = namespace(&client).await;
    let pname = unique_name("analyst");
    Api::<Profile>::all(client.clone())
        .create(
            &PostParams::default(),
            &Profile::new(
                &pname,
                ProfileSpec {
                    description: None,
                    permissions: vec!["manageCase".into()],
                },
            ),
        )
        .await
        .unwrap();
    let oname = unique_name("acme");
    Api::<Organisation>::all(client.clone())
        .create(
            &PostParams::default(),
            &Organisation::new(
                &oname,
                OrganisationSpec {
                    display_name: "ACME".into(),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
    let mut u = user("bob", "bob@example.com");
    u.metadata.labels = Some(BTreeMap::from([("team".into(), "blue".into())]));
    Api::<User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &u)
        .await
        .unwrap();

    let out = env.kubectl_ok(&["get", "users", "-n", &ns]).unwrap();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "LOGIN", "PROFILE", "PHASE", "READY", "MFA", "AGE"],
        "{out}"
    );
    assert!(
        out.contains("bob@example.com") && out.contains("analyst"),
        "{out}"
    );

    let out = env.kubectl_ok(&["get", "organisations", &oname]).unwrap();
    let header = out.lines().next().unwrap();
    for col in [
        "NAME",
        "DISPLAY NAME",
        "NAMESPACE",
        "MEMBERS",
        "READY",
        "AGE",
    ] {
        assert!(header.contains(col), "{col} missing in {out}");
    }
    let out = env.kubectl_ok(&["get", "prof", &pname]).unwrap();
    assert!(out.lines().next().unwrap().contains("PERMISSIONS"), "{out}");
    assert!(out.lines().next().unwrap().contains("READY"), "{out}");
    assert!(out.contains("manageCase"), "{out}");

    // The `usher` category lists all three kinds.
    let out = env.kubectl_ok(&["get", "usher", "-n", &ns]).unwrap();
    for expect in [
        "user.usher.dev/bob",
        &format!("organisation.usher.dev/{oname}"),
        &format!("profile.usher.dev/{pname}"),
    ] {
        assert!(out.contains(expect), "{expect} missing in {out}");
    }
}

/// A dynamic Api for kind `K`, to send what the typed structs cannot hold.
fn dynamic<K: kube::Resource<DynamicType = ()>>(
    client: &Client,
    namespace: Option<&str>,
) -> Api<kube::api::DynamicObject> {
    let resource = kube::api::ApiResource::erase::<K>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn object(value: serde_json::Value) -> kube::api::DynamicObject {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn the_api_server_itself_refuses_changing_an_organisations_namespace() {
    let (_, client) = env().await;
    let orgs: Api<Organisation> = Api::all(client.clone());
    let name = unique_name("o");
    let ns = unique_name("ns");
    orgs.create(
        &PostParams::default(),
        &Organisation::new(
            &name,
            OrganisationSpec {
                display_name: "Acme".into(),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();

    // No webhook runs here: this is the CRD's CEL rule.
    let moved = serde_json::json!({"spec": {"namespace": unique_name("elsewhere")}});
    let (code, message) = refusal(
        orgs.patch(&name, &PatchParams::default(), &Patch::Merge(&moved))
            .await,
    );
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("spec.namespace") && message.contains("cannot change once set"),
        "{message}"
    );
    let removed = serde_json::json!({"spec": {"namespace": null}});
    let (code, message) = refusal(
        orgs.patch(&name, &PatchParams::default(), &Patch::Merge(&removed))
            .await,
    );
    assert_eq!(code, 422, "{message}");

    // Other edits still pass, and the namespace is what it was.
    let renamed = serde_json::json!({"spec": {"displayName": "Acme Corp"}});
    let o = orgs
        .patch(&name, &PatchParams::default(), &Patch::Merge(&renamed))
        .await
        .unwrap();
    assert_eq!(o.spec.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(o.spec.display_name, "Acme Corp");
}

#[tokio::test]
async fn the_api_server_itself_refuses_changing_a_users_type() {
    let (_, client) = env().await;
    let ns = namespace(&client).await;
    let users: Api<User> = Api::namespaced(client.clone(), &ns);
    users
        .create(&PostParams::default(), &user("alice", "alice@example.com"))
        .await
        .unwrap();
    let service = serde_json::json!({"spec": {"type": "Service"}});
    let (code, message) = refusal(
        users
            .patch("alice", &PatchParams::default(), &Patch::Merge(&service))
            .await,
    );
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("spec.type") && message.contains("cannot change"),
        "{message}"
    );
    // Writing the default out loud is no change.
    let person = serde_json::json!({"spec": {"type": "Person", "fullName": "Alice B"}});
    users
        .patch("alice", &PatchParams::default(), &Patch::Merge(&person))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_api_server_itself_bounds_key_rotation_and_grace_periods() {
    let (_, client) = env().await;
    let ns = namespace(&client).await;
    let api = dynamic::<User>(&client, Some(&ns));
    let with_key = |name: &str, key: serde_json::Value| {
        object(serde_json::json!({
            "apiVersion": "usher.dev/v1alpha1", "kind": "User",
            "metadata": {"name": name},
            "spec": {"login": format!("{name}@example.com"), "fullName": "K", "profile": "analyst",
                     "apiKey": key}
        }))
    };
    for (key, field, says) in [
        (
            serde_json::json!({"enabled": true, "rotateEvery": "1s"}),
            "spec.apiKey.rotateEvery",
            "at least 1h",
        ),
        (
            serde_json::json!({"enabled": true, "rotateEvery": "59m59s"}),
            "spec.apiKey.rotateEvery",
            "at least 1h",
        ),
        (
            serde_json::json!({"enabled": true, "rotateEvery": "3599000ms"}),
            "spec.apiKey.rotateEvery",
            "at least 1h",
        ),
        (
            serde_json::json!({"enabled": true, "gracePeriod": "24h1s"}),
            "spec.apiKey.gracePeriod",
            "at most 24h",
        ),
        (
            serde_json::json!({"enabled": true, "gracePeriod": "2d"}),
            "spec.apiKey.gracePeriod",
            "at most 24h",
        ),
        (
            serde_json::json!({"enabled": true, "rotateEvery": "2h", "gracePeriod": "2h"}),
            "spec.apiKey.gracePeriod",
            "shorter than spec.apiKey.rotateEvery",
        ),
    ] {
        let name = unique_name("k");
        let (code, message) = refusal(
            api.create(&PostParams::default(), &with_key(&name, key.clone()))
                .await,
        );
        assert_eq!(code, 422, "{key}: {message}");
        assert!(
            message.contains(field) && message.contains(says),
            "{key}: {message}"
        );
    }
    // The bounds themselves, and every unit, pass.
    for key in [
        serde_json::json!({"enabled": true, "rotateEvery": "1h"}),
        serde_json::json!({"enabled": true, "rotateEvery": "60m"}),
        serde_json::json!({"enabled": true, "rotateEvery": "3600000ms"}),
        serde_json::json!({"enabled": true, "rotateEvery": "30d", "gracePeriod": "24h"}),
        serde_json::json!({"enabled": true, "rotateEvery": "1h30m", "gracePeriod": "1h29m59s"}),
        serde_json::json!({"enabled": true, "rotateEvery": "1d", "gracePeriod": "500ms"}),
        serde_json::json!({"enabled": true, "gracePeriod": "0s"}),
    ] {
        let name = unique_name("k");
        api.create(&PostParams::default(), &with_key(&name, key.clone()))
            .await
            .unwrap_or_else(|e| panic!("{key} refused: {e}"));
    }
}

#[tokio::test]
async fn the_api_server_itself_refuses_malformed_oidc_clients_naming_the_fix() {
    let (_, client) = env().await;
    let ns = namespace(&client).await;
    let api = dynamic::<usher_crds::OIDCClient>(&client, Some(&ns));
    let with_spec = |name: &str, spec: serde_json::Value| {
        object(serde_json::json!({
            "apiVersion": "usher.dev/v1alpha1", "kind": "OIDCClient",
            "metadata": {"name": name}, "spec": spec
        }))
    };
    for (spec, field, says) in [
        (
            serde_json::json!({"redirectURIs": ["http://app.example.com/cb"]}),
            "spec.redirectURIs",
            "https:// URL",
        ),
        (
            serde_json::json!({"redirectURIs": ["http://127.0.0.1:8080/cb"]}),
            "spec.redirectURIs",
            "only for a public client",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://app.example.com/cb#frag"]}),
            "spec.redirectURIs",
            "without a fragment",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://app.example.com/cb"], "public": true,
                               "postLogoutRedirectURIs": ["http://evil.test/"]}),
            "spec.postLogoutRedirectURIs",
            "https:// URL",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://a.example.com/"], "public": true, "requirePKCE": false}),
            "spec.requirePKCE",
            "always uses PKCE",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://a.example.com/"], "accessTokenLifetime": "2h"}),
            "spec.accessTokenLifetime",
            "from 1m to 1h",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://a.example.com/"], "accessTokenLifetime": "59s"}),
            "spec.accessTokenLifetime",
            "from 1m to 1h",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://a.example.com/"], "organisations": ["*", "acme"]}),
            "spec.organisations",
            "[\"*\"]",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://a.example.com/"], "backchannelLogoutURI": "http://app.example.com/bc"}),
            "spec.backchannelLogoutURI",
            "https:// URL",
        ),
        (
            serde_json::json!({"redirectURIs": ["https://a.example.com/"], "idTokenSigningAlg": "HS256"}),
            "spec.idTokenSigningAlg",
            "Unsupported value",
        ),
    ] {
        let name = unique_name("c");
        let (code, message) = refusal(
            api.create(&PostParams::default(), &with_spec(&name, spec.clone()))
                .await,
        );
        assert_eq!(code, 422, "{spec}: {message}");
        assert!(
            message.contains(field) && message.contains(says),
            "{spec}: {message}"
        );
    }
    for spec in [
        serde_json::json!({"redirectURIs": ["https://app.example.com/oauth2/callback?x=1"]}),
        serde_json::json!({"redirectURIs": ["http://localhost:31337/cb", "http://[::1]/cb", "http://127.0.0.1/"], "public": true}),
        serde_json::json!({"redirectURIs": ["https://a.example.com/"], "accessTokenLifetime": "1h", "idTokenSigningAlg": "ES256",
                           "backchannelLogoutURI": "http://127.0.0.1:9000/bc", "organisations": ["*"]}),
    ] {
        let name = unique_name("c");
        api.create(&PostParams::default(), &with_spec(&name, spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("{spec} refused: {e}"));
    }
    // A confidential client stays one.
    let name = unique_name("c");
    api.create(
        &PostParams::default(),
        &with_spec(
            &name,
            serde_json::json!({"redirectURIs": ["https://a.example.com/"]}),
        ),
    )
    .await
    .unwrap();
    let (code, message) = refusal(
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"public": true, "redirectURIs": ["https://a.example.com/"]}})),
        )
        .await,
    );
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.public cannot change"), "{message}");
}
