//! `Organisation`: a tenant of the platform, owning one namespace of Users and API-key Secrets.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::Duration;

/// An organisation (tenant). Its Users and API-key Secrets live in one namespace, which the
/// controller creates if missing and labels `usher.dev/organisation=<name>`. A namespace belongs
/// to at most one organisation.
// Each `printcolumn(...)` repeats `type_ = "string"`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "usher.dev",
    version = "v1alpha1",
    kind = "Organisation",
    plural = "organisations",
    shortname = "org",
    category = "usher",
    status = "OrganisationStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An organisation (tenant) whose Users live in one namespace.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.members"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = organisation_spec_rules)]
pub struct OrganisationSpec {
    /// The name people see: in invitation emails, the organisation switcher and page headers.
    #[schemars(length(min = 1, max = 256))]
    pub display_name: String,

    /// What this organisation is, for administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// The namespace holding this organisation's Users and API-key Secrets. Defaults to the
    /// organisation's `metadata.name`. Must not be a system namespace or one another organisation
    /// holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,

    /// Multi-factor authentication policy for members of this organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaPolicy>,

    /// Who edits this organisation's Users: `Any` (kubectl, GitOps and the admin API and pages)
    /// or `GitOps` (Users come from Git only: the admin API and pages refuse to create, edit,
    /// lock or give keys to Users, so that Argo CD or Flux never silently reverts them; one-shot
    /// actions such as Kill Session and Reset password still work). Defaults to `Any`.
    #[serde(default, skip_serializing_if = "UserManagement::is_any")]
    pub user_management: UserManagement,
}

/// The API server's own rules for an Organisation's spec (see [`crate::cel`]).
/// (`self == oldSelf` sits on the field itself: compared from the spec, a nullable string costs
/// the API server's estimator as if it were unbounded.)
fn organisation_spec_rules(schema: &mut schemars::Schema) {
    use crate::cel::{Rule, add, add_to_property};
    const MESSAGE: &str = "spec.namespace cannot change once set: the organisation's Users and API-key Secrets live there; create a new Organisation for another namespace";
    add_to_property(
        schema,
        "namespace",
        [Rule::new("self == oldSelf", MESSAGE).forbidden()],
    );
    add(
        schema,
        [
            Rule::new("!has(oldSelf.namespace) || has(self.namespace)", MESSAGE)
                .at(".namespace")
                .forbidden(),
        ],
    );
}

/// Who edits an organisation's Users.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UserManagement {
    /// kubectl, GitOps and the admin API all edit Users.
    #[default]
    Any,
    /// Users are managed in Git: the admin API and pages make no changes to them.
    GitOps,
}

impl UserManagement {
    /// True for the default, `Any`.
    pub fn is_any(&self) -> bool {
        *self == UserManagement::Any
    }
}

/// Multi-factor authentication policy of an organisation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaPolicy {
    /// When true, members must enroll a second factor (TOTP or a passkey); after the grace
    /// period an un-enrolled member is sent to enrolment before anything else. Defaults to
    /// false.
    #[serde(default)]
    pub required: bool,

    /// How long after a member's activation they may still sign in without a second factor when `required`
    /// is true, such as `72h` or `7d`. Unset means no grace: enrolment is asked at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
}

/// What the controller observed about an Organisation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganisationStatus {
    /// The namespace this organisation holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// How many Users (memberships) the organisation has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `int32` (an OpenAPI format the API server knows; it warns about `uint32`), never negative.
    #[schemars(extend("format" = "int32"))]
    pub members: Option<u32>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions, one per `type`: `Ready` (true when the namespace is held and
    /// labelled), `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl Organisation {
    /// The namespace this organisation's Users live in: `spec.namespace`, else the name.
    pub fn namespace_name(&self) -> String {
        self.spec
            .namespace
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }

    /// True when the organisation's Users are managed in Git only.
    pub fn managed_in_git(&self) -> bool {
        self.spec.user_management == UserManagement::GitOps
    }

    /// True when members must use TOTP.
    pub fn requires_mfa(&self) -> bool {
        self.spec.mfa.as_ref().is_some_and(|m| m.required)
    }
}
