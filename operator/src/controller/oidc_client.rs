//! OIDCClient reconcile: give it its client id, record its secret's hash in the operator
//! namespace (the record is what authenticates), deliver the credentials in the Secret beside
//! it (written again when someone changes it), renew on `usher.dev/renew-client-secret`, report
//! `Ready`. Its finalizer removes the record, so a deleted client authenticates no more.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::PostParams,
    runtime::{controller::Action, finalizer},
};
use usher_crds::{
    ANNOTATION_RENEW_CLIENT_SECRET, OIDCClient, OIDCClientStatus, oidc_client, rules,
};

use super::{
    context::Context,
    error::Error,
    status::{Progress, apply_status, set_progress},
};
use crate::{
    oidc::{
        client_record::{self, ClientRecord},
        delivery,
    },
    reason::Reason,
    runtime::{api::delete_if_present, clock::now},
};

/// The finalizer that removes the client's record.
pub const FINALIZER: &str = "usher.dev/oidc-client";

/// Where a client can serve from, or what to fix (pure): THE rule the webhook applies too.
pub fn placement(
    namespace: &str,
    operator_namespace: &str,
    organisation_of_namespace: Option<&str>,
    listed: &[String],
) -> Result<(), String> {
    rules::client_placement(
        namespace,
        operator_namespace,
        organisation_of_namespace,
        listed,
    )
    .map_err(|v| v.to_string())
}

/// What to do with a client's record (pure): keep it, or make a new one (a first secret, a
/// renewal, or a client deleted and made again under the same name).
pub fn record_due(client: &OIDCClient, record: Option<&ClientRecord>) -> Option<&'static str> {
    let renewal = client.annotations().get(ANNOTATION_RENEW_CLIENT_SECRET);
    match record {
        None => Some("issued"),
        Some(r) if Some(r.client_uid.as_str()) != client.uid().as_deref() => Some("issued"),
        Some(r) if r.secret_hash.is_some() == client.spec.public => Some("issued"),
        Some(r) if renewal.is_some() && renewal != r.renewal.as_ref() => Some("renewed"),
        Some(_) => None,
    }
}

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(client: Arc<OIDCClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = client.namespace().unwrap_or_default();
    let api: Api<OIDCClient> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, client, |event| async {
        match event {
            finalizer::Event::Apply(c) => apply(&c, &ctx).await,
            finalizer::Event::Cleanup(c) => cleanup(&c, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

async fn cleanup(client: &OIDCClient, ctx: &Context) -> Result<Action, Error> {
    let id = oidc_client::client_id(&client.namespace().unwrap_or_default(), &client.name_any());
    let records: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    delete_if_present(&records, &client_record::record_name(&id)).await?;
    Ok(Action::await_change())
}

async fn apply(client: &OIDCClient, ctx: &Context) -> Result<Action, Error> {
    let ns = client.namespace().unwrap_or_default();
    let id = oidc_client::client_id(&ns, &client.name_any());
    let generation = client.metadata.generation;
    let mut status = client.status.clone().unwrap_or_default();
    status.client_id = Some(id.clone());
    status.observed_generation = generation;
    let orgs = ctx.organisations.state();
    let org = rules::organisation_of(&ns, orgs.iter().map(|o| o.as_ref())).map(|o| o.name_any());
    let progress = match placement(
        &ns,
        &ctx.settings.operator_namespace,
        org.as_deref(),
        &client.spec.organisations,
    ) {
        Err(message) => stalled(client, ctx, &status, Reason::ClientMisplaced, message).await,
        Ok(()) => deliver(client, ctx, &id, &status).await?,
    };
    set_progress(&mut status.conditions, &progress, generation, now());
    write_status(client, ctx, &status).await?;
    Ok(Action::requeue(std::time::Duration::from_secs(3600)))
}

/// A Warning Event the first time this reason stalls the client, and the progress to report.
async fn stalled(
    client: &OIDCClient,
    ctx: &Context,
    status: &OIDCClientStatus,
    reason: Reason,
    message: String,
) -> Progress {
    let news = !status
        .conditions
        .iter()
        .any(|c| c.type_ == "Stalled" && c.reason == reason.as_str() && c.message == message);
    if news {
        ctx.warning(client, reason, message.clone()).await;
    }
    Progress::Stalled(reason, message)
}

async fn deliver(
    client: &OIDCClient,
    ctx: &Context,
    id: &str,
    status: &OIDCClientStatus,
) -> Result<Progress, Error> {
    let ns = client.namespace().unwrap_or_default();
    let records: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let name = client_record::record_name(id);
    let stored = records.get_opt(&name).await?;
    let mut record = stored.as_ref().and_then(ClientRecord::from_secret);
    if let Some(what) = record_due(client, record.as_ref()) {
        let secret = if client.spec.public {
            None
        } else {
            Some(client_record::new_secret()?)
        };
        let fresh = ClientRecord {
            client_id: id.to_owned(),
            client_uid: client.uid().unwrap_or_default(),
            secret_hash: secret.as_deref().map(client_record::hash_secret),
            sealed_secret: secret
                .as_deref()
                .map(|s| ctx.keys.seal.seal_client_secret(id, s))
                .transpose()?,
            renewal: client
                .annotations()
                .get(ANNOTATION_RENEW_CLIENT_SECRET)
                .cloned(),
        };
        let mut written = fresh.to_secret(&ctx.settings.namespace);
        match &stored {
            Some(s) => {
                written.metadata.resource_version = s.resource_version();
                records
                    .replace(&name, &PostParams::default(), &written)
                    .await?;
            }
            None => {
                records.create(&PostParams::default(), &written).await?;
            }
        }
        let (reason, note) = match (what, client.spec.public) {
            (_, true) => (
                Reason::ClientRegistered,
                format!("client id {id} (a public client: no secret)"),
            ),
            ("renewed", false) => (
                Reason::ClientSecretRenewed,
                format!(
                    "a new client secret for {id} is in Secret {}; the previous one no longer authenticates",
                    client.secret_name()
                ),
            ),
            _ => (
                Reason::ClientRegistered,
                format!(
                    "client id {id}; its secret is in Secret {}",
                    client.secret_name()
                ),
            ),
        };
        if reason == Reason::ClientSecretRenewed {
            ctx.audit_client(
                crate::audit::Action::OidcSecretRenewed,
                client,
                crate::audit::Outcome::Success,
                None,
            );
        }
        ctx.event(client, reason, note).await;
        record = Some(fresh);
    }
    let record = record.unwrap_or_default();
    let plain = match &record.sealed_secret {
        Some(sealed) => Some(ctx.keys.seal.open_client_secret(id, sealed).ok_or_else(|| {
            Error::Damaged(format!(
                "the recorded secret of client {id} does not open with usher-keys: annotate the OIDCClient with {ANNOTATION_RENEW_CLIENT_SECRET} to issue a new one"
            ))
        })?),
        None => None,
    };
    let wanted = delivery::secret(client, id, &ctx.settings.public_url, plain.as_deref());
    let secret_name = client.secret_name();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = match ctx.client_secrets.get(&ns, &secret_name) {
        Some(s) => Some(s),
        None => secrets
            .get_opt(&secret_name)
            .await?
            .map(|s| Arc::new(delivery::digest(s))),
    };
    match existing {
        Some(e) if !delivery::is_ours(&e, client) => {
            let message = format!(
                "Secret {secret_name} exists and was not made by Usher for this client: delete it, or set spec.secretName to another name"
            );
            return Ok(stalled(client, ctx, status, Reason::ClientSecretTaken, message).await);
        }
        Some(e) if delivery::delivers(&e, &wanted, client) => {}
        Some(e) => {
            let mut w = wanted.clone();
            w.metadata.resource_version = e.resource_version();
            let written = secrets
                .replace(&secret_name, &PostParams::default(), &w)
                .await?;
            ctx.client_secrets.apply_own_write(written);
            ctx.event(
                client,
                Reason::ClientSecretRepaired,
                format!("Secret {secret_name} was changed; it holds the client's credentials again (a secret written into it authenticates nothing)"),
            )
            .await;
        }
        None => {
            let written = secrets.create(&PostParams::default(), &wanted).await?;
            ctx.client_secrets.apply_own_write(written);
        }
    }
    Ok(Progress::Ready(
        Reason::ClientReady,
        format!("client id {id}; credentials in Secret {secret_name}"),
    ))
}

async fn write_status(
    client: &OIDCClient,
    ctx: &Context,
    status: &OIDCClientStatus,
) -> Result<(), Error> {
    let api: Api<OIDCClient> =
        Api::namespaced(ctx.client.clone(), &client.namespace().unwrap_or_default());
    apply_status(&api, client, client.status.as_ref(), status).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_crds::OIDCClientSpec;

    #[test]
    fn a_client_lives_in_an_organisation_namespace_or_lists_what_it_serves() {
        let none: Vec<String> = vec![];
        let acme = vec!["acme".to_owned()];
        assert!(placement("acme", "usher-system", Some("acme"), &none).is_ok());
        assert!(placement("usher-system", "usher-system", None, &acme).is_ok());
        let e = placement("acme", "usher-system", Some("acme"), &acme).unwrap_err();
        assert!(e.contains("remove spec.organisations"), "{e}");
        let e = placement("usher-system", "usher-system", None, &none).unwrap_err();
        assert!(e.contains("list them by name"), "{e}");
        let e = placement("default", "usher-system", None, &acme).unwrap_err();
        assert!(e.contains("belongs to no Organisation"), "{e}");
    }

    #[test]
    fn a_record_is_made_once_and_again_on_renewal_or_a_new_client() {
        let mut c = OIDCClient::new("grafana", OIDCClientSpec::default());
        c.metadata.uid = Some("uid-1".into());
        assert_eq!(record_due(&c, None), Some("issued"));
        let r = ClientRecord {
            client_id: "acme.grafana".into(),
            client_uid: "uid-1".into(),
            secret_hash: Some("h".into()),
            sealed_secret: Some("s".into()),
            renewal: None,
        };
        assert_eq!(record_due(&c, Some(&r)), None);
        c.metadata.annotations =
            Some([(ANNOTATION_RENEW_CLIENT_SECRET.to_owned(), "1".to_owned())].into());
        assert_eq!(record_due(&c, Some(&r)), Some("renewed"));
        let renewed = ClientRecord {
            renewal: Some("1".into()),
            ..r.clone()
        };
        assert_eq!(record_due(&c, Some(&renewed)), None);
        c.metadata.uid = Some("uid-2".into());
        assert_eq!(record_due(&c, Some(&renewed)), Some("issued"));
    }
}
