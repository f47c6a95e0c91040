//! The chart's RBAC with a real controller: the rules `helm template` renders, applied to a real
//! kube-apiserver, and `usher controller` run as the chart's ServiceAccount (its kubeconfig
//! impersonates it), so it has those rights and no others. It must do its whole job (accounts,
//! the namespace, the key Secret, their repair) and reach no Secret outside Usher's namespaces.

use std::{process::Command, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use usher_crds::{User, UserPhase};
use usher_testkit::{Envtest, Process, SmtpSink};

use super::chart::{MINIMAL, chart, helm, kubectl, values_file};
use crate::common::*;

const CONTROLLER: &str = "system:serviceaccount:usher-system:usher-controller";

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

/// `kubectl auth can-i <verb> <resource> -n <ns>` as the controller's ServiceAccount.
fn controller_can(env: &Envtest, verb: &str, resource: &str, ns: &str) -> bool {
    let r = kubectl(
        env,
        &[
            "auth", "can-i", verb, resource, "-n", ns, "--as", CONTROLLER,
        ],
    );
    r.out.trim() == "yes"
}

#[tokio::test]
async fn the_controller_does_its_job_under_the_charts_rbac_and_reads_no_other_secret() {
    let env = &own_cluster().await;
    let client = setup(env).await;
    let f = values_file(&rendered(&[
        "templates/serviceaccount.yaml",
        "templates/rbac.yaml",
    ]));
    let r = kubectl(env, &["apply", "-f", f.path().to_str().unwrap()]);
    assert!(r.ok, "{}", r.err);

    // The attack: with the controller's token, read the Secrets of any namespace. Before, a
    // ClusterRole gave it every Secret in the cluster.
    for ns in ["kube-system", "default"] {
        for verb in ["list", "get", "watch", "create", "delete"] {
            assert!(
                !controller_can(env, verb, "secrets", ns),
                "the controller may {verb} Secrets in {ns}"
            );
        }
    }
    assert!(controller_can(env, "list", "secrets", OPERATOR_NS));

    // The controller as the chart runs it, with the chart's ClusterRole to bind.
    let deployment = rendered(&["templates/controller.yaml"]);
    let role = deployment
        .lines()
        .find_map(|l| {
            let rest = l.split_once("name: USHER_SECRETS_ROLE, value: ")?.1;
            Some(
                rest.trim_end_matches('}')
                    .trim()
                    .trim_matches('"')
                    .to_owned(),
            )
        })
        .expect("the chart names the role the controller binds");
    let kubeconfig = env
        .kubeconfig_as(
            CONTROLLER,
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:usher-system",
            ],
        )
        .unwrap();
    let smtp = SmtpSink::start().await.unwrap();
    let _controller = Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_usher"))
            .arg("controller")
            .env("KUBECONFIG", &kubeconfig)
            .env("USHER_SMTP_URL", smtp.url())
            .env("USHER_PUBLIC_URL", PUBLIC_URL)
            .env("USHER_NAMESPACE", OPERATOR_NS)
            .env("USHER_SECRETS_ROLE", &role)
            .env(
                "USHER_PROBE_LISTEN",
                format!("127.0.0.1:{}", usher_testkit::free_port().unwrap()),
            )
            .env("RUST_LOG", "info,kube=warn"),
        &log_path("usher-controller-rbac"),
        None,
    )
    .unwrap();

    let p = profile(&client, &[]).await;
    let org = organisation(&client).await;
    let ns = wait_ns(&client, &org).await;
    let keyed_login = login("keyed");
    let mut keyed = user("keyed", &keyed_login, &p);
    keyed.spec.api_key = Some(usher_crds::ApiKeySpec {
        enabled: true,
        ..Default::default()
    });
    let secret_name = keyed.api_key_secret_name();
    Api::<User>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &keyed)
        .await
        .unwrap();
    wait_phase(&client, &ns, "keyed", UserPhase::Invited).await;
    // The account in its namespace, with the invitation it sent.
    let account = account(&client, &keyed_login).await.unwrap();
    assert!(account.invitation.is_some(), "{account:?}");
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    eventually("the key delivered", Duration::from_secs(20), || async {
        secrets.get_opt(&secret_name).await.unwrap()
    })
    .await;
    // It reaches the organisation's namespace through its own RoleBinding, and no further.
    assert!(controller_can(env, "list", "secrets", &ns));
    assert!(!controller_can(env, "list", "secrets", "kube-system"));

    // It watches what it delivered there: a deleted key Secret comes back.
    secrets
        .delete(&secret_name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the key Secret repaired",
        Duration::from_secs(20),
        || async { secrets.get_opt(&secret_name).await.unwrap() },
    )
    .await;
}
