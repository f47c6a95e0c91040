//! Builders of AdmissionReviews and Usher objects, shaped as the API server sends them; shared by
//! the webhook's unit tests, its end-to-end tests and its benchmark.

use std::sync::Arc;

use serde_json::{Value, json};
use usher_crds::{Organisation, OrganisationSpec, Profile, ProfileSpec, User, UserSpec};

/// An `admission.k8s.io/v1` AdmissionReview as JSON.
pub fn review_json(
    operation: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    object: Option<Value>,
    old_object: Option<Value>,
) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7f0b2c1e-0000-4000-8000-000000000001",
            "kind": {"group": "usher.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "usher.dev", "version": "v1alpha1", "resource": format!("{}s", kind.to_lowercase())},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": object,
            "oldObject": old_object,
            "dryRun": false
        }
    })
}

/// A User in `namespace` as JSON.
pub fn user_json(namespace: &str, name: &str, login: &str, profile: &str) -> Value {
    json!({
        "apiVersion": "usher.dev/v1alpha1", "kind": "User",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"login": login, "fullName": "Test Person", "profile": profile}
    })
}

/// A typed User.
pub fn user(namespace: &str, name: &str, login: &str, profile: &str) -> Arc<User> {
    let mut u = User::new(
        name,
        UserSpec {
            login: login.into(),
            full_name: "Test Person".into(),
            profile: profile.into(),
            ..Default::default()
        },
    );
    u.metadata.namespace = Some(namespace.into());
    Arc::new(u)
}

/// A typed Organisation holding `namespace` (None: its own name).
pub fn organisation(name: &str, namespace: Option<&str>) -> Arc<Organisation> {
    Arc::new(Organisation::new(
        name,
        OrganisationSpec {
            display_name: name.to_uppercase(),
            namespace: namespace.map(Into::into),
            ..Default::default()
        },
    ))
}

/// A typed Profile.
pub fn profile(name: &str, permissions: &[&str]) -> Arc<Profile> {
    Arc::new(Profile::new(
        name,
        ProfileSpec {
            description: None,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        },
    ))
}
