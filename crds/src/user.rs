//! `User`: one membership of a platform account in one organisation.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::Duration;

/// A person's membership of one organisation. It lives in the organisation's namespace. Several
/// Users with the same login (in different organisations) share one platform account: one
/// password, one TOTP enrolment, one invitation.
// Each `printcolumn(...)` repeats `type_ = "string"`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "usher.dev",
    version = "v1alpha1",
    kind = "User",
    plural = "users",
    shortname = "usr",
    category = "usher",
    namespaced,
    status = "UserStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A person's membership of one organisation; Users with the same login share one account.",
    printcolumn(name = "Login", type_ = "string", json_path = ".spec.login"),
    printcolumn(name = "Profile", type_ = "string", json_path = ".spec.profile"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "MFA", type_ = "boolean", json_path = ".status.mfaEnrolled"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = user_spec_rules)]
pub struct UserSpec {
    /// The person's email address, which is also their login, in canonical form: lowercase,
    /// Unicode NFC, the domain in IDNA ASCII form (`alice@xn--bcher-kva.de`), at most 254
    /// characters. The admission webhook refuses other forms and shows the canonical one.
    #[schemars(
        length(min = 3, max = 254),
        regex(pattern = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")
    )]
    pub login: String,

    /// The person's name as this organisation shows it.
    #[schemars(length(min = 1, max = 256))]
    pub full_name: String,

    /// The name of the Profile (permission set) this membership has.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub profile: String,

    /// When true this membership cannot authenticate: no login into this organisation, and its
    /// API key is refused. Existing sessions stay valid until they expire or are killed.
    #[serde(default)]
    pub locked: bool,

    /// An API key for applications acting as this membership, written to a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeySpec>,

    /// `Person` (default): invited by email, signs in with a password (and TOTP). `Service`:
    /// an application (TheHive's service accounts): no invitation, no password, no web sign-in;
    /// it authenticates only with its API key.
    #[serde(default, rename = "type", skip_serializing_if = "UserType::is_person")]
    pub user_type: UserType,
}

/// What a membership is for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UserType {
    /// A person: invitation, password, TOTP, sessions.
    #[default]
    Person,
    /// An application: API key only.
    Service,
}

impl UserType {
    /// True for the default, `Person`.
    pub fn is_person(&self) -> bool {
        *self == UserType::Person
    }
}

/// The API server's own rules for a User's spec (see [`crate::cel`]).
fn user_spec_rules(schema: &mut schemars::Schema) {
    crate::cel::add(
        schema,
        [crate::cel::Rule::new(
            "(has(self.type) ? self.type : 'Person') == (has(oldSelf.type) ? oldSelf.type : 'Person')",
            "spec.type cannot change: a Person signs in with a password, a Service only with its API key; delete this User and create one of the other type",
        )
        .at(".type")
        .forbidden()],
    );
}

/// The shortest `spec.apiKey.rotateEvery`: each renewal writes the account and the Secret and
/// empties every tenant's forward-auth cache.
pub const MIN_ROTATION: std::time::Duration = std::time::Duration::from_secs(3600);
/// The longest `spec.apiKey.gracePeriod`: an old key works at most this long after a renewal.
pub const MAX_GRACE_PERIOD: std::time::Duration = std::time::Duration::from_secs(86_400);

/// The API server's own rules for `spec.apiKey` (see [`crate::cel`]).
fn api_key_spec_rules(schema: &mut schemars::Schema) {
    use crate::cel::{Rule, add, add_to_property, duration_millis};
    add_to_property(
        schema,
        "rotateEvery",
        [Rule::new(
            format!(
                "{} >= {}",
                duration_millis("self"),
                MIN_ROTATION.as_millis()
            ),
            "spec.apiKey.rotateEvery must be at least 1h (each renewal writes the account and empties the forward-auth cache); use a value such as 720h or 30d, or leave it unset to renew only on request",
        )],
    );
    add_to_property(
        schema,
        "gracePeriod",
        [Rule::new(
            format!(
                "{} <= {}",
                duration_millis("self"),
                MAX_GRACE_PERIOD.as_millis()
            ),
            "spec.apiKey.gracePeriod must be at most 24h: the previous key keeps working that long after a renewal",
        )],
    );
    add(
        schema,
        [Rule::new(
            format!(
                "!has(self.rotateEvery) || !has(self.gracePeriod) || {} < {}",
                duration_millis("self.gracePeriod"),
                duration_millis("self.rotateEvery")
            ),
            "spec.apiKey.gracePeriod must be shorter than spec.apiKey.rotateEvery, or two old keys would work at once",
        )
        .at(".gracePeriod")],
    );
}

/// API key settings of a membership.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = api_key_spec_rules)]
pub struct ApiKeySpec {
    /// When true the controller keeps a key in the Secret `secretName` (data key `api-key`);
    /// when false the Secret is deleted and the key stops working.
    #[serde(default)]
    pub enabled: bool,

    /// The Secret holding the key, in the User's namespace. Defaults to `<user>-api-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Renew the key on this schedule, such as `720h` or `30d`. Unset: renew only on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_every: Option<Duration>,

    /// How long the previous key keeps working after a renewal. Defaults to `0s`: it stops at
    /// once. A positive value suits apps that reload mounted Secrets slowly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
}

/// Where a membership stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum UserPhase {
    /// Not yet provisioned (account or invitation pending).
    Pending,
    /// Invitation sent; the account cannot log in until the link sets a password.
    Invited,
    /// The account has a password and the membership can authenticate.
    Active,
    /// `spec.locked` is true.
    Locked,
    /// The User cannot be provisioned; the `Ready` condition says why and what to fix.
    Failed,
}

/// The invitation currently valid for the account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationStatus {
    /// When the invitation email was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Time>,
    /// When the invitation link stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// The API key currently issued. The key itself never appears here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyStatus {
    /// The Secret holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// When the current key was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,
    /// A short, non-invertible fingerprint of the current key (from its SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// The last value of each one-shot action annotation that was carried out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedActions {
    /// Last processed value of `usher.dev/kill-sessions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_sessions: Option<String>,
    /// Last processed value of `usher.dev/renew-api-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_api_key: Option<String>,
    /// Last processed value of `usher.dev/resend-invitation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_invitation: Option<String>,
    /// Last processed value of `usher.dev/reset-password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_password: Option<String>,
}

/// What the controller observed about a User.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// Pending, Invited, Active, Locked or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<UserPhase>,

    /// The platform account this membership belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,

    /// The invitation currently valid for the account, while it is not yet activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<InvitationStatus>,

    /// When the account's password was first set through the invitation link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,

    /// Whether the account has confirmed a TOTP enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_enrolled: Option<bool>,

    /// The API key currently issued, when `spec.apiKey.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyStatus>,

    /// Sessions acting in this organisation that started before this time are invalid (Kill
    /// Session here, or an account-wide sign-out such as a password change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_revoked_at: Option<Time>,

    /// One-shot action annotations already carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_actions: Option<ObservedActions>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions, one per `type`: `Ready` (Usher did all it can: the User is Invited,
    /// Active or Locked), `Reconciling` (work under way), `Stalled` (it cannot go on until
    /// something is fixed; the message says what), `InvitationSent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl User {
    /// True for a `Service` membership: API key only, never a sign-in.
    pub fn is_service(&self) -> bool {
        self.spec.user_type == UserType::Service
    }

    /// True when `spec.apiKey.enabled`.
    pub fn api_key_enabled(&self) -> bool {
        self.spec.api_key.as_ref().is_some_and(|k| k.enabled)
    }

    /// The Secret name of this User's API key: `spec.apiKey.secretName`, else `<name>-api-key`.
    pub fn api_key_secret_name(&self) -> String {
        self.spec
            .api_key
            .as_ref()
            .and_then(|k| k.secret_name.clone())
            .unwrap_or_else(|| format!("{}-api-key", self.metadata.name.as_deref().unwrap_or("")))
    }

    /// The value of a one-shot action annotation, if set.
    pub fn action(&self, annotation: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a: &BTreeMap<String, String>| a.get(annotation))
            .map(String::as_str)
    }
}
