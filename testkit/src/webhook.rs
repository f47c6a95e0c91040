//! Registering Usher's validating webhook by URL, as `usher dev` and the webhook tests do.

use anyhow::Result;
use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams},
};

/// Registers (server-side apply) the ValidatingWebhookConfiguration `usher` for Organisations,
/// Profiles and Users, calling `url` and trusting `ca_pem`; the settings of docs/webhook.md.
pub async fn register_webhook(client: &Client, url: &str, ca_pem: &str) -> Result<()> {
    let rule = RuleWithOperations {
        api_groups: Some(vec!["usher.dev".into()]),
        api_versions: Some(vec!["v1alpha1".into()]),
        operations: Some(vec!["CREATE".into(), "UPDATE".into(), "DELETE".into()]),
        resources: Some(vec![
            "organisations".into(),
            "profiles".into(),
            "users".into(),
            "oidcclients".into(),
        ]),
        scope: Some("*".into()),
    };
    let config = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some("usher".into()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "validate.usher.dev".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(5),
            match_policy: Some("Equivalent".into()),
            rules: Some(vec![rule]),
            client_config: WebhookClientConfig {
                url: Some(url.to_owned()),
                ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                service: None,
            },
            ..Default::default()
        }]),
    };
    let mut value = serde_json::to_value(&config)?;
    value["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    value["kind"] = "ValidatingWebhookConfiguration".into();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            "usher",
            &PatchParams::apply("usher-dev").force(),
            &Patch::Apply(&value),
        )
        .await?;
    Ok(())
}
