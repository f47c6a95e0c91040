//! The chart's RBAC with the real processes: the rules `helm template` renders, applied to a
//! real kube-apiserver, and `usher controller` and `usher auth` each run as the chart's
//! ServiceAccount (the kubeconfig impersonates it), so they have those rights and no others.
//! They must do their whole job (moving the accounts of an earlier layout, accounts, the
//! namespace, the key Secret, its repair, answering a key) and reach no other Secret.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use usher_crds::{Organisation, User, UserPhase};
use usher_testkit::{Envtest, SmtpSink};

use super::chart::{MINIMAL, chart, helm, kubectl, values_file};
use crate::common::{auth::start_auth, *};

const CONTROLLER: &str = "system:serviceaccount:usher-system:usher-controller";
const AUTH: &str = "system:serviceaccount:usher-system:usher-auth";

/// The chart's objects in `templates` as rendered for release `usher` in `usher-system`.
fn rendered(templates: &[&str]) -> String {
    let values = values_file(MINIMAL);
    let chart = chart();
    let mut args = vec![
        "template",
        "usher",
        chart.to_str().unwrap(),
        "--namespace",
        OPERATOR_NS,
        "-f",
        values.path().to_str().unwrap(),
    ];
    for t in templates {
        args.extend(["--show-only", t]);
    }
    let r = helm(&args, None);
    assert!(r.ok, "{}", r.err);
    r.out
}

/// `kubectl auth can-i <verb> <resource> -n <ns> --as <who>`.
fn can(env: &Envtest, who: &str, verb: &str, resource: &str, ns: &str) -> bool {
    let r = kubectl(
        env,
        &["auth", "can-i", verb, resource, "-n", ns, "--as", who],
    );
    r.out.trim() == "yes"
}

/// The value the chart gives `name` in the container env of the rendered `template`.
fn chart_env(template: &str, name: &str) -> String {
    rendered(&[template])
        .lines()
        .find_map(|l| {
            let rest = l.split_once(&format!("name: {name}, value: "))?.1;
            Some(
                rest.trim_end_matches('}')
                    .trim()
                    .trim_matches('"')
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| panic!("the chart sets no {name} in {template}"))
}

/// The account Secret of `login` in `ns`.
async fn account_in(client: &kube::Client, ns: &str, login: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&usher_operator::secret_name(&usher_operator::account_id(
            login,
        )))
        .await
        .unwrap()
}

/// A key-enabled User `name` with login `login` and profile `profile`, created in `ns`.
async fn keyed_user(client: &kube::Client, ns: &str, name: &str, login: &str, profile: &str) {
    let mut u = user(name, login, profile);
    u.spec.api_key = Some(usher_crds::ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    Api::<User>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &u)
        .await
        .unwrap();
}

/// The key delivered to Secret `name` in `ns`, once it is there.
async fn delivered(secrets: &Api<Secret>, name: &str) -> Secret {
    eventually("the key delivered", Duration::from_secs(20), || async {
        secrets.get_opt(name).await.unwrap()
    })
    .await
}

/// An upgrade from the layout that kept the accounts in the release namespace, under the
/// chart's RBAC: the controller, run as its ServiceAccount, moves the accounts and keys into
/// the accounts namespace and does its whole job there and in the organisation's namespace;
/// the auth server, run as its own, answers from the moved accounts. Neither may read a Secret
/// anywhere else.
#[tokio::test]
async fn under_the_charts_rbac_the_controller_and_the_auth_server_do_their_job_and_read_no_other_secret()
 {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let smtp = SmtpSink::start().await.unwrap();

    // Before: a controller of the earlier layout keeps the accounts in the release namespace.
    let old = start_controller(env, &smtp.url(), "usher-controller-rbac-before");
    let p = profile(&client, &[]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let first = login("first");
    keyed_user(&client, &ns, "first", &first, &p).await;
    wait_phase(&client, &ns, "first", UserPhase::Invited).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let key_secret = delivered(&secrets, "first-api-key").await;
    assert!(account_in(&client, OPERATOR_NS, &first).await.is_some());
    drop(old);

    // The upgrade: the chart's namespaces, ServiceAccounts and rules.
    let f = values_file(&rendered(&[
        "templates/accounts.yaml",
        "templates/serviceaccount.yaml",
        "templates/rbac.yaml",
    ]));
    let r = kubectl(env, &["apply", "-f", f.path().to_str().unwrap()]);
    assert!(r.ok, "{}", r.err);
    let accounts_ns = chart_env("templates/controller.yaml", "USHER_ACCOUNTS_NAMESPACE");
    assert_eq!(
        accounts_ns,
        chart_env("templates/auth.yaml", "USHER_ACCOUNTS_NAMESPACE")
    );

    // The attacks: with the controller's token, read the Secrets of any namespace (a
    // ClusterRole gave it every Secret in the cluster); with the auth server's, read Helm's
    // release records and the webhook's TLS key in the release namespace (its Role was there).
    for ns in ["kube-system", "default"] {
        for verb in ["list", "get", "watch", "create", "delete"] {
            assert!(
                !can(env, CONTROLLER, verb, "secrets", ns),
                "the controller may {verb} Secrets in {ns}"
            );
        }
    }
    for verb in ["list", "get", "watch", "create", "update"] {
        assert!(
            !can(env, AUTH, verb, "secrets", OPERATOR_NS),
            "the auth server may {verb} Secrets in the release namespace"
        );
        assert!(can(env, AUTH, verb, "secrets", &accounts_ns));
    }

    // The controller as the chart runs it, with its own rights only.
    let as_controller = env
        .kubeconfig_as(
            CONTROLLER,
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:usher-system",
            ],
        )
        .unwrap();
    let secrets_role = chart_env("templates/controller.yaml", "USHER_SECRETS_ROLE");
    let _controller = start_controller_with(
        env,
        &smtp.url(),
        "usher-controller-rbac",
        usher_testkit::free_port().unwrap(),
        &[
            ("KUBECONFIG", as_controller.to_str().unwrap()),
            ("USHER_ACCOUNTS_NAMESPACE", &accounts_ns),
            ("USHER_SECRETS_ROLE", &secrets_role),
        ],
    );
    eventually(
        "the account moved into the accounts namespace",
        Duration::from_secs(30),
        || async {
            (account_in(&client, &accounts_ns, &first).await.is_some()
                && account_in(&client, OPERATOR_NS, &first).await.is_none())
            .then_some(())
        },
    )
    .await;
    let keys = Api::<Secret>::namespaced(client.clone(), OPERATOR_NS);
    assert!(keys.get_opt("usher-keys").await.unwrap().is_none());

    // A new member: account, invitation and key, through the rights the chart gives.
    let second = login("second");
    keyed_user(&client, &ns, "second", &second, &p).await;
    wait_phase(&client, &ns, "second", UserPhase::Invited).await;
    delivered(&secrets, "second-api-key").await;
    let account = account_in(&client, &accounts_ns, &second).await.unwrap();
    let account = usher_operator::Account::from_secret(&account).unwrap();
    assert!(account.invitation.is_some(), "{account:?}");
    // The first member's invitation is not sent again, nor its key renewed.
    assert_eq!(smtp.messages().unwrap().len(), 2);
    assert_eq!(
        secrets
            .get("first-api-key")
            .await
            .unwrap()
            .metadata
            .resource_version,
        key_secret.metadata.resource_version
    );
    // The organisation's namespace through the controller's own RoleBinding, no further.
    assert!(can(env, CONTROLLER, "list", "secrets", &ns));
    assert!(!can(env, CONTROLLER, "list", "secrets", "kube-system"));
    // The Organisation reconciled again (a new spec) rewrites no RoleBinding.
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &ns);
    let before = bindings
        .get(&secrets_role)
        .await
        .unwrap()
        .metadata
        .resource_version;
    let orgs = Api::<Organisation>::all(client.clone());
    let edited = orgs
        .patch(
            &org.name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"displayName": "Renamed"}})),
        )
        .await
        .unwrap();
    eventually(
        "the Organisation reconciled again",
        Duration::from_secs(20),
        || async {
            let o = orgs.get(&org.name).await.unwrap();
            (o.status?.observed_generation == edited.metadata.generation).then_some(())
        },
    )
    .await;
    assert_eq!(
        bindings
            .get(&secrets_role)
            .await
            .unwrap()
            .metadata
            .resource_version,
        before
    );

    // It watches what it delivered there: a deleted key Secret comes back.
    secrets
        .delete("second-api-key", &DeleteParams::default())
        .await
        .unwrap();
    delivered(&secrets, "second-api-key").await;

    // The auth server, as its ServiceAccount, opens the moved account with the moved keys.
    let as_auth = env
        .kubeconfig_as(
            AUTH,
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:usher-system",
            ],
        )
        .unwrap();
    let auth = start_auth(
        env,
        "auth-rbac",
        &[
            ("KUBECONFIG", as_auth.to_str().unwrap()),
            ("USHER_ACCOUNTS_NAMESPACE", &accounts_ns),
        ],
    )
    .await;
    let key = String::from_utf8(key_secret.data.unwrap()["api-key"].0.clone()).unwrap();
    let verified = auth
        .call(
            reqwest::Method::GET,
            "/api/v1/verify",
            None,
            None,
            Some(&key),
        )
        .await;
    assert_eq!(
        verified.status,
        reqwest::StatusCode::OK,
        "{}",
        verified.body
    );
    assert_eq!(
        verified.header("x-usher-login").as_deref(),
        Some(first.as_str())
    );
}
