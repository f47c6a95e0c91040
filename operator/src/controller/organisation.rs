//! Organisation reconcile: hold and label the namespace, count members, report `Ready`.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use usher_crds::{LABEL_ORGANISATION, Organisation, rules};

use super::{
    context::{Context, MANAGER},
    error::Error,
    grant,
    status::{Progress, apply_status, set_progress},
};
use crate::{
    reason::{ConditionType, Reason},
    runtime::clock::now,
};

/// What the namespace looks like to the organisation (pure input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceState {
    /// No such namespace yet.
    Missing,
    /// It exists; the organisation label's value, if any.
    Exists(Option<String>),
}

/// What to do about the namespace (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespacePlan {
    /// Create it (labelled), or label it: apply our label with server-side apply.
    Apply,
    /// Nothing to do.
    Keep,
    /// Another organisation holds it.
    Taken(String),
}

/// Decides what to do with the namespace (pure).
pub fn plan(org: &str, state: &NamespaceState) -> NamespacePlan {
    match state {
        NamespaceState::Missing | NamespaceState::Exists(None) => NamespacePlan::Apply,
        NamespaceState::Exists(Some(owner)) if owner == org => NamespacePlan::Keep,
        NamespaceState::Exists(Some(owner)) => NamespacePlan::Taken(owner.clone()),
    }
}

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(org: Arc<Organisation>, ctx: Arc<Context>) -> Result<Action, Error> {
    apply(&org, &ctx).await
}

async fn apply(org: &Organisation, ctx: &Context) -> Result<Action, Error> {
    let name = org.name_any();
    let ns_name = org.namespace_name();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let state = match namespaces.get_opt(&ns_name).await? {
        None => NamespaceState::Missing,
        Some(ns) => NamespaceState::Exists(ns.labels().get(LABEL_ORGANISATION).cloned()),
    };
    let mut status = org.status.clone().unwrap_or_default();
    let generation = org.metadata.generation;
    let now = now();
    match plan(&name, &state) {
        NamespacePlan::Taken(owner) => {
            let message = format!(
                "namespace {ns_name:?} belongs to Organisation {owner:?}; set spec.namespace to another namespace"
            );
            let news = !status.conditions.iter().any(|c| {
                c.type_ == ConditionType::Stalled.as_str()
                    && c.reason == Reason::NamespaceTaken.as_str()
            });
            if news {
                ctx.warning(org, Reason::NamespaceTaken, message.clone())
                    .await;
            }
            set_progress(
                &mut status.conditions,
                &Progress::Stalled(Reason::NamespaceTaken, message),
                generation,
                now,
            );
            status.namespace = None;
        }
        plan => {
            if plan == NamespacePlan::Apply {
                // Only the label is ours: server-side apply leaves other fields and labels alone.
                let value = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns_name, "labels": {LABEL_ORGANISATION: name}},
                });
                namespaces
                    .patch(
                        &ns_name,
                        &PatchParams::apply(MANAGER).force(),
                        &Patch::Apply(&value),
                    )
                    .await?;
                if state == NamespaceState::Missing {
                    ctx.event(
                        org,
                        Reason::NamespaceCreated,
                        format!("created namespace {ns_name}"),
                    )
                    .await;
                }
            }
            // The controller reaches the key Secrets there (a RoleBinding of its own), and
            // watches those it delivered.
            if let Some(grant) = &ctx.grant
                && grant::ensure(&ctx.client, grant, &ns_name, MANAGER).await?
            {
                tracing::info!(namespace = %ns_name, role = %grant.role, "bound the Secrets role");
            }
            ctx.key_secrets.watch(&ns_name);
            ctx.client_secrets.watch(&ns_name);
            set_progress(
                &mut status.conditions,
                &Progress::Ready(
                    Reason::NamespaceHeld,
                    format!("Users of this organisation live in namespace {ns_name}"),
                ),
                generation,
                now,
            );
            status.namespace = Some(ns_name.clone());
        }
    }
    // Namespaces no Organisation holds any more are watched no longer (the operator namespace
    // is, for its clients).
    let mut held: std::collections::HashSet<String> = ctx
        .organisations
        .state()
        .iter()
        .map(|o| o.namespace_name())
        .collect();
    ctx.key_secrets.keep_only(&held);
    held.insert(ctx.settings.operator_namespace.clone());
    ctx.client_secrets.keep_only(&held);
    if let Some(users) = ctx.counted_users() {
        let members = users
            .state_filter(|u| {
                u.namespace().as_deref() == Some(ns_name.as_str()) && rules::is_live(u)
            })
            .len();
        status.members = Some(u32::try_from(members).unwrap_or(u32::MAX));
    }
    status.observed_generation = generation;
    apply_status(
        &Api::all(ctx.client.clone()),
        org,
        org.status.as_ref(),
        &status,
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_created_labelled_kept_or_refused() {
        assert_eq!(plan("acme", &NamespaceState::Missing), NamespacePlan::Apply);
        assert_eq!(
            plan("acme", &NamespaceState::Exists(None)),
            NamespacePlan::Apply
        );
        assert_eq!(
            plan("acme", &NamespaceState::Exists(Some("acme".into()))),
            NamespacePlan::Keep
        );
        assert_eq!(
            plan("acme", &NamespaceState::Exists(Some("globex".into()))),
            NamespacePlan::Taken("globex".into())
        );
    }
}
