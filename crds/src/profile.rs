//! `Profile`: a named, cluster-wide permission set (TheHive's profiles).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A named permission set that Users reference by name, such as `admin`, `org-admin`, `analyst`
/// or `read-only`. Changing a profile's permissions takes effect on every member's next request.
// Each `printcolumn(...)` repeats `type_ = "string"`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "usher.dev",
    version = "v1alpha1",
    kind = "Profile",
    plural = "profiles",
    shortname = "prof",
    category = "usher",
    status = "ProfileStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A named permission set (like TheHive's profiles) that Users reference by name.",
    printcolumn(
        name = "Permissions",
        type_ = "string",
        json_path = ".spec.permissions"
    ),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.users"),
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
pub struct ProfileSpec {
    /// What this profile is for, shown to administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// The permissions this profile grants, such as `manageUser` or `manageCase`. Each name starts
    /// with a letter and uses letters, digits and `:._-` (at most 64 characters). Usher itself
    /// enforces `manageUser` for its Organisation > Users admin API; other names are for the
    /// applications behind Usher.
    #[serde(default)]
    #[schemars(
        length(max = 256),
        inner(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9:._-]{0,63}$"))
    )]
    pub permissions: Vec<String>,
}

/// What the controller observed about a Profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileStatus {
    /// How many Users (memberships, across all organisations) reference this profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `int32` (an OpenAPI format the API server knows; it warns about `uint32`), never negative.
    #[schemars(extend("format" = "int32"))]
    pub users: Option<u32>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions, one per `type`: `Ready` is true when the profile is valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl Profile {
    /// True when this profile grants `permission`.
    pub fn grants(&self, permission: &str) -> bool {
        self.spec.permissions.iter().any(|p| p == permission)
    }
}
