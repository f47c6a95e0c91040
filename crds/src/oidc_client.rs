//! `OIDCClient`: an app that signs people in with Usher over OpenID Connect (DESIGN.md, "OpenID
//! Connect provider"). In an organisation's namespace it serves that organisation; in the
//! operator namespace it serves `spec.organisations`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::Duration;

/// The shortest `spec.accessTokenLifetime`.
pub const MIN_ACCESS_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);
/// The longest `spec.accessTokenLifetime`: the previous signing key stays published this long
/// (and a little more) after a rotation.
pub const MAX_ACCESS_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);
/// `spec.accessTokenLifetime` when unset.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// An app that signs people in with Usher (OpenID Connect, authorization code with PKCE).
// Each `printcolumn(...)` repeats `type_ = "string"`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "usher.dev",
    version = "v1alpha1",
    kind = "OIDCClient",
    plural = "oidcclients",
    shortname = "oidc",
    category = "usher",
    namespaced,
    status = "OIDCClientStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An app that signs people in with Usher over OpenID Connect.",
    printcolumn(name = "Client ID", type_ = "string", json_path = ".status.clientID"),
    printcolumn(name = "Public", type_ = "boolean", json_path = ".spec.public"),
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
#[schemars(transform = client_spec_rules)]
pub struct OIDCClientSpec {
    /// The app's name as people see it (the organisation chooser names it). Defaults to
    /// `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub display_name: Option<String>,

    /// Where the browser may be sent back with a code: each matched exactly. `https://`, or,
    /// for a public client, `http://` on a loopback host (`localhost`, `127.0.0.1`, `[::1]`)
    /// with any port (RFC 8252). No fragment.
    #[serde(rename = "redirectURIs")]
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 2048)))]
    pub redirect_uris: Vec<String>,

    /// Where the browser may be sent after signing out through `/oauth2/logout` (the same
    /// rules as `redirectURIs`).
    #[serde(
        rename = "postLogoutRedirectURIs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 32), inner(length(min = 1, max = 2048)))]
    pub post_logout_redirect_uris: Vec<String>,

    /// A client that keeps no secret (a single-page or native app): it sends only its client
    /// id, and PKCE is always required. Defaults to false (a confidential client, given a
    /// secret). Cannot change.
    #[serde(default)]
    pub public: bool,

    /// The Secret beside this resource that receives `client-id`, `client-secret` (confidential
    /// clients) and `issuer`. Defaults to `<metadata.name>-oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Only in the operator namespace: the organisations this client serves, by name, or
    /// `["*"]` for all. In an organisation's namespace the client serves that organisation and
    /// this stays empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub organisations: Vec<String>,

    /// Where Usher posts a signed `logout_token` when a session this client got tokens from
    /// ends (OpenID Connect Back-Channel Logout 1.0). `https://`, or `http://` on a loopback host.
    #[serde(
        rename = "backchannelLogoutURI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 2048))]
    pub backchannel_logout_uri: Option<String>,

    /// How ID tokens are signed: `RS256` (the default) or `ES256`.
    #[serde(default, skip_serializing_if = "SigningAlg::is_default")]
    pub id_token_signing_alg: SigningAlg,

    /// How long an access token (and an ID token) is valid, from 1m to 1h. Defaults to 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime: Option<Duration>,

    /// Permissions a member's profile must grant: a member whose profile lacks one is refused
    /// (`access_denied`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9:._-]{0,63}$"))
    )]
    pub required_permissions: Vec<String>,

    /// When true, only a sign-in with a second factor (a TOTP code or a passkey) reaches this
    /// app; a person without one is refused (`access_denied`) and told to enroll.
    #[serde(rename = "requireMFA", default)]
    pub require_mfa: bool,

    /// Whether a confidential client must send a PKCE challenge (S256). Defaults to true; a
    /// public client always must.
    #[serde(
        rename = "requirePKCE",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub require_pkce: Option<bool>,
}

/// How ID tokens are signed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (every client supports it).
    #[default]
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

impl SigningAlg {
    /// True for `RS256`.
    pub fn is_default(&self) -> bool {
        *self == SigningAlg::RS256
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
        }
    }
}

/// What the controller observed about an OIDCClient.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OIDCClientStatus {
    /// The `client_id` apps send: `<namespace>.<name>`, stable and URL-safe.
    #[serde(rename = "clientID", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// kstatus conditions, one per `type`: `Ready` is true when the client can sign people in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The loopback redirect URIs RFC 8252 allows over http (any port).
const LOOPBACK_HTTP: &str = r"^http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?(/[^#]*)?$";

/// The API server's own rules for an OIDCClient's spec (see [`crate::cel`]).
fn client_spec_rules(schema: &mut schemars::Schema) {
    use crate::cel::{Rule, add, add_to_property, duration_millis};
    let https = r"^https://[^/?#@\s]+(/[^#\s]*)?$";
    add(
        schema,
        [
            Rule::new(
                format!(
                    "self.redirectURIs.all(u, u.matches(r'{https}') || (self.public && u.matches(r'{LOOPBACK_HTTP}')))"
                ),
                "each of spec.redirectURIs must be an https:// URL without a fragment; http:// is allowed only on a loopback host (localhost, 127.0.0.1, [::1]) and only for a public client (spec.public: true)",
            )
            .at(".redirectURIs"),
            Rule::new(
                format!(
                    "!has(self.postLogoutRedirectURIs) || self.postLogoutRedirectURIs.all(u, u.matches(r'{https}') || (self.public && u.matches(r'{LOOPBACK_HTTP}')))"
                ),
                "each of spec.postLogoutRedirectURIs must be an https:// URL without a fragment; http:// is allowed only on a loopback host and only for a public client",
            )
            .at(".postLogoutRedirectURIs"),
            Rule::new(
                format!(
                    "!has(self.backchannelLogoutURI) || self.backchannelLogoutURI.matches(r'{https}') || self.backchannelLogoutURI.matches(r'{LOOPBACK_HTTP}')"
                ),
                "spec.backchannelLogoutURI must be an https:// URL (or http:// on a loopback host) without a fragment",
            )
            .at(".backchannelLogoutURI"),
            Rule::new(
                "!self.public || !has(self.requirePKCE) || self.requirePKCE",
                "a public client always uses PKCE: remove spec.requirePKCE or set it to true",
            )
            .at(".requirePKCE"),
            Rule::new(
                "self.public == oldSelf.public",
                "spec.public cannot change: a confidential client has a secret its app keeps; create another OIDCClient instead",
            )
            .at(".public")
            .forbidden(),
            Rule::new(
                "!has(self.organisations) || !self.organisations.exists(o, o == '*') || self.organisations.size() == 1",
                "spec.organisations is either [\"*\"] (every organisation) or a list of names, not both",
            )
            .at(".organisations"),
        ],
    );
    add_to_property(
        schema,
        "accessTokenLifetime",
        [Rule::new(
            format!(
                "{ms} >= {min} && {ms} <= {max}",
                ms = duration_millis("self"),
                min = MIN_ACCESS_TOKEN_LIFETIME.as_millis(),
                max = MAX_ACCESS_TOKEN_LIFETIME.as_millis()
            ),
            "spec.accessTokenLifetime must be from 1m to 1h (such as 5m or 15m): apps refresh their tokens instead of holding long-lived ones",
        )],
    );
}

impl OIDCClient {
    /// The Secret that delivers the client's credentials.
    pub fn secret_name(&self) -> String {
        self.spec.secret_name.clone().unwrap_or_else(|| {
            format!("{}-oidc", self.metadata.name.as_deref().unwrap_or_default())
        })
    }

    /// The name people see.
    pub fn display_name(&self) -> &str {
        self.spec
            .display_name
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// True when the token request must carry a PKCE verifier.
    pub fn requires_pkce(&self) -> bool {
        self.spec.public || self.spec.require_pkce.unwrap_or(true)
    }

    /// How long its access and ID tokens live.
    pub fn access_token_lifetime(&self) -> std::time::Duration {
        self.spec
            .access_token_lifetime
            .map(|d| d.get())
            .unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME)
            .clamp(MIN_ACCESS_TOKEN_LIFETIME, MAX_ACCESS_TOKEN_LIFETIME)
    }
}

/// The `client_id` of the OIDCClient `name` in `namespace`: `<namespace>.<name>` (a namespace
/// has no dot, so the first dot splits it back).
pub fn client_id(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// The namespace and name a `client_id` names, if it has the shape of one.
pub fn parse_client_id(id: &str) -> Option<(&str, &str)> {
    let (ns, name) = id.split_once('.')?;
    (!ns.is_empty() && !name.is_empty() && id.len() <= 320).then_some((ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_splits_back_into_namespace_and_name() {
        let id = client_id("acme", "grafana.internal");
        assert_eq!(id, "acme.grafana.internal");
        assert_eq!(parse_client_id(&id), Some(("acme", "grafana.internal")));
        assert_eq!(parse_client_id("acme"), None);
        assert_eq!(parse_client_id(".x"), None);
        assert_eq!(parse_client_id("x."), None);
    }
}
