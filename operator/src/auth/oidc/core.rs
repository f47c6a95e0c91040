//! The protocol decisions of the OpenID Connect provider (pure, with the time passed in): is an
//! authorization request acceptable, which organisation it signs in to, what the tokens say.
//! The handlers (`handlers.rs`) read the request and the caches, call these, and write.

use serde::{Deserialize, Serialize};
use usher_crds::OIDCClient;

/// The scopes a client may ask for (besides `organisation:<name>`).
pub const SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "organisation",
    "groups",
    "offline_access",
];
/// How long a code lives.
pub const CODE_LIFETIME_S: i64 = 60;

/// `/oauth2/authorize`'s parameters.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub response_mode: Option<String>,
    /// An ID token this provider issued, naming who the app expects: a hint, never a proof
    /// (expired ones are accepted as hints, as OIDC Core allows).
    pub id_token_hint: Option<String>,
    /// The organisation the chooser picked.
    pub organisation: Option<String>,
    /// Set by Usher when it sent the browser to sign in for `prompt=login` or `max_age`: the
    /// sign-in must have happened at or after this (Unix ms).
    pub auth_after: Option<i64>,
}

/// Why an authorization request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown client or unregistered redirect URI: an error page, never a redirect.
    Page(String),
    /// Sent back to the (registered) redirect URI as RFC 6749 §4.1.2.1 says.
    Redirect {
        /// The registered URI.
        uri: String,
        /// `error`.
        error: &'static str,
        /// `error_description`.
        description: String,
        /// `state`, echoed.
        state: Option<String>,
    },
}

/// An acceptable authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Valid {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub challenge: Option<String>,
    pub prompt_none: bool,
    /// The sign-in must be at or after this (Unix ms): from `prompt=login`, `max_age`.
    pub fresh_after: Option<i64>,
    /// `prompt=login` or `max_age` asks for a sign-in after now: the handler sends the browser
    /// to sign in, then back with `auth_after`.
    pub wants_fresh_sign_in: bool,
    /// The organisation named by scope `organisation:<name>` or the chooser.
    pub organisation: Option<String>,
}

/// Checks an authorization request for `client` (the OIDCClient its `client_id` names, if it is
/// registered and ready) at `now_ms`.
pub fn authorize(
    p: &AuthorizeParams,
    client: Option<&OIDCClient>,
    now_ms: i64,
) -> Result<Valid, Refusal> {
    let Some(client) = client else {
        return Err(Refusal::Page(
            "This app is not registered with Usher (unknown client_id). Ask the platform team to declare it as an OIDCClient.".into(),
        ));
    };
    let redirect_uri = p.redirect_uri.clone().unwrap_or_default();
    if !client.spec.redirect_uris.contains(&redirect_uri) {
        return Err(Refusal::Page(
            "The app asked to send you to an address it has not registered (redirect_uri). Nothing was sent to it.".into(),
        ));
    }
    let refuse = |error: &'static str, description: &str| Refusal::Redirect {
        uri: redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: p.state.clone(),
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(refuse(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let scopes: Vec<String> = p
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(refuse("invalid_scope", "scope must include openid"));
    }
    let mut organisation = p.organisation.clone();
    let mut granted = Vec::new();
    for s in &scopes {
        if let Some(org) = s.strip_prefix("organisation:") {
            organisation.get_or_insert_with(|| org.to_owned());
        } else if SCOPES.contains(&s.as_str()) && !granted.contains(s) {
            granted.push(s.clone());
        }
    }
    match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(_), Some("S256")) => {}
        (Some(_), None | Some("plain")) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not supported)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, _) if client.requires_pkce() => {
            return Err(refuse(
                "invalid_request",
                "this client must send a PKCE code_challenge (S256)",
            ));
        }
        (None, _) => {}
    }
    if let Some(c) = &p.code_challenge
        && !(43..=128).contains(&c.len())
    {
        return Err(refuse(
            "invalid_request",
            "code_challenge must be 43 to 128 characters",
        ));
    }
    if p.nonce.as_ref().is_some_and(|n| n.len() > 512)
        || p.state.as_ref().is_some_and(|s| s.len() > 2048)
    {
        return Err(refuse("invalid_request", "state or nonce is too long"));
    }
    let prompts: Vec<&str> = p
        .prompt
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let prompt_none = prompts.contains(&"none");
    let prompt_login = prompts.contains(&"login");
    if prompt_none && prompts.len() > 1 {
        return Err(refuse(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match p.max_age.as_deref() {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| refuse("invalid_request", "max_age must be a number of seconds"))?,
        ),
    };
    // A fresh sign-in already happened for this request (Usher sent the browser to sign in and
    // back): `auth_after` says since when. Otherwise `prompt=login` wants one from now on, and
    // `max_age` one within its window.
    // An `auth_after` older than ten minutes (or from the future) is not Usher's own round trip:
    // ignored, so a crafted link cannot waive `prompt=login`.
    let auth_after = p
        .auth_after
        .filter(|after| (0..=600_000).contains(&now_ms.saturating_sub(*after)));
    let (fresh_after, wants_fresh_sign_in) = match auth_after {
        Some(after) => (Some(after), false),
        None if prompt_login => (Some(now_ms), true),
        None => (max_age.map(|s| now_ms - i64::from(s) * 1000), false),
    };
    Ok(Valid {
        client_id: p.client_id.clone().unwrap_or_default(),
        redirect_uri,
        scopes: granted,
        state: p.state.clone(),
        nonce: p.nonce.clone(),
        challenge: p.code_challenge.clone(),
        prompt_none,
        fresh_after,
        wants_fresh_sign_in,
        organisation,
    })
}

/// Which of the person's organisations (those the client serves) a request signs in to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// This one.
    One(String),
    /// Ask the person.
    Ask(Vec<String>),
    /// None: the person is not a member of one the client serves (or of the one named).
    Refused,
}

/// Picks the organisation: the one named (scope or chooser), else the only one, else ask.
pub fn choose(served: &[String], named: Option<&str>) -> Choice {
    match named {
        Some(n) if served.iter().any(|s| s == n) => Choice::One(n.to_owned()),
        Some(_) => Choice::Refused,
        None => match served {
            [] => Choice::Refused,
            [one] => Choice::One(one.clone()),
            many => Choice::Ask(many.to_vec()),
        },
    }
}

/// The access token's claims (RFC 9068), with Usher's own: the session and membership it came
/// from, so it ends with them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    pub auth_time: i64,
    /// The Usher session.
    pub sid: String,
    /// The grant.
    pub gid: String,
    /// The organisation it acts in.
    pub org: String,
    /// The account Secret's UID, the User's UID, and when the session began (ms).
    pub auid: String,
    pub muid: String,
    pub siat: i64,
}

/// The `amr` of a sign-in (RFC 8176): a passkey (`hwk` device-bound, `swk` synced; with user
/// verification, two factors alone), or a password with a TOTP code or without.
pub fn amr(mfa: bool, passkey: Option<&str>) -> Vec<String> {
    match passkey {
        Some(kind) => vec![kind.to_owned(), "mfa".into()],
        None if mfa => vec!["pwd".into(), "otp".into(), "mfa".into()],
        None => vec!["pwd".into()],
    }
}

/// What the ID token and userinfo say of a person in an organisation.
pub struct Person<'a> {
    pub login: &'a str,
    pub name: &'a str,
    pub organisation: &'a str,
    pub organisation_display_name: &'a str,
    pub profile: &'a str,
    pub permissions: Vec<String>,
}

/// The first of `client`'s required permissions that `permissions` lacks (such a member gets
/// `access_denied`, and a refresh is refused).
pub fn missing_permission<'c>(client: &'c OIDCClient, permissions: &[String]) -> Option<&'c str> {
    client
        .spec
        .required_permissions
        .iter()
        .find(|r| !permissions.contains(r))
        .map(String::as_str)
}

/// The identity claims `scopes` release: `email`, `name`, `preferred_username`; `organisation`
/// adds `org`, `org_display_name`, `profile`, `permissions`; `groups` adds `groups`.
pub fn person_claims(
    p: &Person<'_>,
    scopes: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut m = serde_json::Map::new();
    if has("email") || has("profile") {
        m.insert("email".into(), json!(p.login));
        m.insert("email_verified".into(), json!(true));
    }
    if has("profile") {
        m.insert("name".into(), json!(p.name));
        m.insert("preferred_username".into(), json!(p.login));
    }
    if has("organisation") {
        m.insert("org".into(), json!(p.organisation));
        m.insert(
            "org_display_name".into(),
            json!(p.organisation_display_name),
        );
        m.insert("profile".into(), json!(p.profile));
        m.insert("permissions".into(), json!(p.permissions));
    }
    if has("groups") {
        m.insert(
            "groups".into(),
            json!([p.organisation, format!("{}:{}", p.organisation, p.profile)]),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use usher_crds::OIDCClientSpec;

    fn client(public: bool) -> OIDCClient {
        OIDCClient::new(
            "app",
            OIDCClientSpec {
                redirect_uris: vec!["https://app.example.com/cb".into()],
                public,
                ..Default::default()
            },
        )
    }

    fn params() -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some("acme.app".into()),
            redirect_uri: Some("https://app.example.com/cb".into()),
            scope: Some("openid email organisation:acme".into()),
            state: Some("st".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        }
    }

    #[test]
    fn unknown_clients_and_redirect_uris_get_a_page_never_a_redirect() {
        assert!(matches!(
            authorize(&params(), None, 0),
            Err(Refusal::Page(_))
        ));
        let mut p = params();
        p.redirect_uri = Some("https://app.example.com/cb/../evil".into());
        assert!(matches!(
            authorize(&p, Some(&client(false)), 0),
            Err(Refusal::Page(_))
        ));
        p.redirect_uri = Some("https://APP.example.com/cb".into());
        assert!(matches!(
            authorize(&p, Some(&client(false)), 0),
            Err(Refusal::Page(_))
        ));
    }

    #[test]
    fn pkce_is_s256_only_and_required_by_default() {
        let c = client(false);
        let v = authorize(&params(), Some(&c), 0).unwrap();
        assert_eq!(v.organisation.as_deref(), Some("acme"));
        assert_eq!(v.scopes, ["openid", "email"]);
        let mut plain = params();
        plain.code_challenge_method = Some("plain".into());
        let e = authorize(&plain, Some(&c), 0).unwrap_err();
        assert!(
            matches!(e, Refusal::Redirect { error: "invalid_request", ref state, .. } if state.as_deref() == Some("st")),
            "{e:?}"
        );
        let mut none = params();
        none.code_challenge = None;
        assert!(matches!(
            authorize(&none, Some(&c), 0),
            Err(Refusal::Redirect {
                error: "invalid_request",
                ..
            })
        ));
        let mut optional = c.clone();
        optional.spec.require_pkce = Some(false);
        assert!(authorize(&none, Some(&optional), 0).is_ok());
        let mut no_openid = params();
        no_openid.scope = Some("email".into());
        assert!(matches!(
            authorize(&no_openid, Some(&c), 0),
            Err(Refusal::Redirect {
                error: "invalid_scope",
                ..
            })
        ));
    }

    #[test]
    fn prompt_login_and_max_age_ask_for_a_fresh_sign_in() {
        let c = client(false);
        let mut p = params();
        p.prompt = Some("login".into());
        let v = authorize(&p, Some(&c), 5_000).unwrap();
        assert!(v.wants_fresh_sign_in);
        assert_eq!(v.fresh_after, Some(5_000));
        p.auth_after = Some(5_000);
        assert!(!authorize(&p, Some(&c), 9_000).unwrap().wants_fresh_sign_in);
        // A crafted one (long ago) waives nothing.
        p.auth_after = Some(0);
        assert!(
            authorize(&p, Some(&c), 900_000)
                .unwrap()
                .wants_fresh_sign_in
        );
        let mut m = params();
        m.max_age = Some("2".into());
        assert_eq!(
            authorize(&m, Some(&c), 5_000).unwrap().fresh_after,
            Some(3_000)
        );
        let mut both = params();
        both.prompt = Some("none login".into());
        assert!(authorize(&both, Some(&c), 0).is_err());
    }

    #[test]
    fn the_organisation_is_named_the_only_one_or_asked() {
        let served = vec!["acme".to_owned(), "globex".to_owned()];
        assert_eq!(choose(&served, Some("acme")), Choice::One("acme".into()));
        assert_eq!(choose(&served, Some("initech")), Choice::Refused);
        assert_eq!(choose(&served, None), Choice::Ask(served.clone()));
        assert_eq!(choose(&served[..1], None), Choice::One("acme".into()));
        assert_eq!(choose(&[], None), Choice::Refused);
    }

    #[test]
    fn scopes_release_only_their_claims() {
        let perms = vec!["read".to_owned()];
        let p = Person {
            login: "a@x.com",
            name: "A",
            organisation: "acme",
            organisation_display_name: "ACME",
            profile: "analyst",
            permissions: perms,
        };
        let openid = person_claims(&p, &["openid".into()]);
        assert!(openid.is_empty());
        let all = person_claims(
            &p,
            &[
                "openid".into(),
                "profile".into(),
                "organisation".into(),
                "groups".into(),
            ],
        );
        assert_eq!(all["groups"], serde_json::json!(["acme", "acme:analyst"]));
        assert_eq!(all["permissions"], serde_json::json!(["read"]));
        assert_eq!(all["email_verified"], serde_json::json!(true));
    }
}
