//! The controller's access to the API-key Secrets of an organisation namespace: a RoleBinding
//! there of the ClusterRole `--secrets-role` (Secrets: read, write, delete) to the controller's
//! own identity, made by the Organisation's reconcile when it holds the namespace. The
//! controller has no cluster-wide rule on Secrets; it reaches those of the namespaces its
//! Organisations hold, and the accounts of its own namespace (a Role of the chart).
//!
//! Who the controller is comes from the API server (a SelfSubjectReview, which every
//! authenticated identity may make), so the binding names exactly the identity that reads.

use k8s_openapi::api::{
    authentication::v1::SelfSubjectReview,
    rbac::v1::{RoleBinding, RoleRef, Subject},
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};

use super::error::Error;

/// What the controller binds in each organisation namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    /// The ClusterRole bound (its name is also the RoleBinding's).
    pub role: String,
    /// The controller's identity.
    pub subject: Subject,
}

/// The RBAC subject of the username `name` as the API server reports it: a ServiceAccount for
/// `system:serviceaccount:<namespace>:<name>`, else a User.
pub fn subject_of(name: &str) -> Subject {
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, sa)) => Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(namespace.into()),
            api_group: None,
        },
        None => Subject {
            kind: "User".into(),
            name: name.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    }
}

/// Asks the API server who this client is, and makes the grant of ClusterRole `role` to it.
pub async fn for_self(client: &Client, role: &str) -> anyhow::Result<Grant> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let name = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .ok_or_else(|| anyhow::anyhow!("the API server did not say who this controller is"))?;
    Ok(Grant {
        role: role.to_owned(),
        subject: subject_of(&name),
    })
}

/// What to do about the RoleBinding of a namespace (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum BindingPlan {
    /// It grants what it should.
    Keep,
    /// Missing or granting someone else: apply it.
    Apply,
    /// It binds another role (a roleRef cannot change): delete it, then apply.
    Replace,
}

/// The RoleBinding `grant` wants in namespace `ns`.
pub fn desired(grant: &Grant, ns: &str) -> RoleBinding {
    RoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(grant.role.clone()),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: grant.role.clone(),
        },
        subjects: Some(vec![grant.subject.clone()]),
    }
}

/// Compares what exists with what `grant` wants (pure).
pub fn plan(grant: &Grant, existing: Option<&RoleBinding>) -> BindingPlan {
    let want = desired(grant, "");
    match existing {
        None => BindingPlan::Apply,
        Some(b) if b.role_ref != want.role_ref => BindingPlan::Replace,
        Some(b) if !same_subjects(b.subjects.as_deref(), want.subjects.as_deref()) => {
            BindingPlan::Apply
        }
        Some(_) => BindingPlan::Keep,
    }
}

/// The same subjects by kind, name and namespace (the API server may spell an empty apiGroup
/// either way).
fn same_subjects(a: Option<&[Subject]>, b: Option<&[Subject]>) -> bool {
    let key = |s: &Subject| (s.kind.clone(), s.name.clone(), s.namespace.clone());
    let keys = |v: Option<&[Subject]>| v.unwrap_or_default().iter().map(key).collect::<Vec<_>>();
    keys(a) == keys(b)
}

/// Makes sure the RoleBinding of `grant` exists in `ns`, written as field manager `manager`;
/// writes only when it is missing or differs. True when it wrote.
pub async fn ensure(
    client: &Client,
    grant: &Grant,
    ns: &str,
    manager: &str,
) -> Result<bool, Error> {
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let existing = api.get_opt(&grant.role).await?;
    match plan(grant, existing.as_ref()) {
        BindingPlan::Keep => return Ok(false),
        BindingPlan::Replace => {
            api.delete(&grant.role, &DeleteParams::default()).await?;
        }
        BindingPlan::Apply => {}
    }
    api.patch(
        &grant.role,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&desired(grant, ns)),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            role: "usher-controller-secrets".into(),
            subject: subject_of("system:serviceaccount:usher-system:usher-controller"),
        }
    }

    #[test]
    fn a_service_account_is_bound_as_one_and_anyone_else_as_a_user() {
        let sa = subject_of("system:serviceaccount:usher-system:usher-controller");
        assert_eq!(
            (sa.kind.as_str(), sa.name.as_str(), sa.namespace.as_deref()),
            ("ServiceAccount", "usher-controller", Some("usher-system"))
        );
        let user = subject_of("kubernetes-admin");
        assert_eq!((user.kind.as_str(), user.namespace), ("User", None));
    }

    #[test]
    fn a_binding_is_written_only_when_missing_or_different() {
        let g = grant();
        assert_eq!(plan(&g, None), BindingPlan::Apply);
        let ok = desired(&g, "acme");
        assert_eq!(plan(&g, Some(&ok)), BindingPlan::Keep);
        let mut other_subject = ok.clone();
        other_subject.subjects = Some(vec![subject_of("mallory")]);
        assert_eq!(plan(&g, Some(&other_subject)), BindingPlan::Apply);
        let mut other_role = ok;
        other_role.role_ref.name = "cluster-admin".into();
        assert_eq!(plan(&g, Some(&other_role)), BindingPlan::Replace);
    }
}
