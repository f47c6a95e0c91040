//! The audit record (pure; DESIGN.md, "Audit trail"): one JSON object per security-relevant
//! action, version `v1`. Its fields name who, on whom, in which organisation, from where, and
//! how it went; they never hold a password, code, token, key, link, hash or session id (the
//! types below have no field that could).

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// The schema version every record carries (`"audit": "v1"`).
pub const VERSION: &str = "v1";

macro_rules! actions {
    ($($(#[$m:meta])* $variant:ident => $name:literal,)*) => {
        /// What happened, by its stable dotted name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action { $($(#[$m])* $variant,)* }

        impl Action {
            /// Every action, in the order DESIGN.md lists them.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The stable name (`login.succeeded` …).
            pub const fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }
        }
    };
}

actions! {
    /// A sign-in completed (password and, when enrolled, the second factor; or a passkey).
    LoginSucceeded => "login.succeeded",
    /// A sign-in was refused: a wrong password, code or passkey, or a held account.
    LoginFailed => "login.failed",
    /// A sign-in was refused before any check: too many attempts.
    LoginThrottled => "login.throttled",
    /// TOTP enrolment confirmed.
    MfaEnrolled => "mfa.enrolled",
    /// TOTP turned off by the person.
    MfaRemoved => "mfa.removed",
    /// The platform operator removed TOTP and passkeys.
    MfaReset => "mfa.reset",
    /// A passkey added.
    PasskeyAdded => "passkey.added",
    /// A passkey removed.
    PasskeyRemoved => "passkey.removed",
    /// The person changed their password.
    PasswordChanged => "password.changed",
    /// A password reset link was asked for.
    PasswordResetRequested => "password.reset.requested",
    /// A password reset link set a new password.
    PasswordResetCompleted => "password.reset.completed",
    /// An invitation email went out.
    InvitationSent => "invitation.sent",
    /// An invitation link set the first password.
    InvitationAccepted => "invitation.accepted",
    /// A session moved to another organisation.
    OrganisationSwitched => "organisation.switched",
    /// A person ended a session of theirs (sign-out, sign out everywhere, one session).
    SessionEnded => "session.ended",
    /// Someone else ended sessions: an admin's Kill Session, the annotation, the operator.
    SessionKilled => "session.killed",
    /// A User was made.
    UserCreated => "user.created",
    /// A User's spec changed.
    UserUpdated => "user.updated",
    /// A membership was locked.
    UserLocked => "user.locked",
    /// A membership was unlocked (or an account's soft lock lifted).
    UserUnlocked => "user.unlocked",
    /// A User was removed.
    UserRemoved => "user.removed",
    /// An API key was issued.
    ApikeyCreated => "apikey.created",
    /// An API key was renewed or rotated.
    ApikeyRenewed => "apikey.renewed",
    /// An OIDC client's secret was renewed.
    OidcSecretRenewed => "oidc.secret.renewed",
    /// Tokens were issued to an app (a code redeemed).
    OidcTokenIssued => "oidc.token.issued",
    /// A refresh token was used again: its session ended.
    OidcRefreshReused => "oidc.refresh.reused",
    /// A back-channel logout token was delivered.
    OidcLogoutSent => "oidc.logout.sent",
    /// A back-channel logout could not be delivered (kept and retried, or given up).
    OidcLogoutFailed => "oidc.logout.failed",
}

/// How the actor acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Via {
    /// A session cookie (or a sign-in in progress).
    Session,
    /// An API key.
    ApiKey,
    /// An OpenID Connect access token, or an app (client).
    Oidc,
    /// A change made with kubectl or GitOps, acted on by the controller.
    Kubernetes,
    /// `usher account …`.
    Operator,
}

/// How it went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused: not allowed, or wrong credentials.
    Denied,
    /// Could not be done.
    Failed,
}

/// Who acted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// The account acting (`sub` of its tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Its login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The organisation it acts in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// How.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// Who, when no account: the field manager of a Kubernetes change, a client id, the
    /// operator's user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// On whom or what.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// `User`, `Account`, `OIDCClient`, `Session`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Its namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The account it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// That account's login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

/// Where the request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// The client's address (behind trusted proxies, the one they name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its user agent, cut to 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Always [`VERSION`].
    pub audit: &'static str,
    /// When (RFC 3339).
    pub time: Timestamp,
    /// Unique.
    pub id: String,
    /// The request it belongs to (`X-Request-Id` when the ingress sent one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What.
    #[serde(serialize_with = "action_name")]
    pub action: Action,
    /// Who.
    pub actor: Actor,
    /// On whom.
    pub target: Target,
    /// The organisation concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// How it went.
    pub outcome: Outcome,
    /// The error code, when not a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From where.
    pub client: ClientInfo,
}

fn action_name<S: serde::Serializer>(a: &Action, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

impl Record {
    /// A record of `action` with `outcome` at `time`, with id `id`; the rest is added with the
    /// builder methods.
    pub fn new(action: Action, outcome: Outcome, time: Timestamp, id: String) -> Record {
        Record {
            audit: VERSION,
            time,
            id,
            request_id: None,
            action,
            actor: Actor::default(),
            target: Target::default(),
            organisation: None,
            outcome,
            reason: None,
            client: ClientInfo::default(),
        }
    }

    /// Who acted.
    pub fn by(mut self, actor: Actor) -> Record {
        self.actor = actor;
        self
    }

    /// On whom.
    pub fn on(mut self, target: Target) -> Record {
        self.target = target;
        self
    }

    /// In which organisation.
    pub fn in_organisation(mut self, org: impl Into<String>) -> Record {
        self.organisation = Some(org.into()).filter(|o: &String| !o.is_empty());
        self
    }

    /// Why not (an error code).
    pub fn because(mut self, reason: impl Into<String>) -> Record {
        self.reason = Some(reason.into());
        self
    }

    /// From where.
    pub fn from(mut self, client: ClientInfo, request_id: Option<String>) -> Record {
        self.client = client;
        self.request_id = request_id;
        self
    }
}

/// A request id as given by a client or an ingress: kept when it is short and plain
/// (`[A-Za-z0-9._-]`, at most 128), else `None`.
pub fn request_id(given: &str) -> Option<String> {
    (!given.is_empty()
        && given.len() <= 128
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    .then(|| given.to_owned())
}

/// A user agent as recorded: control characters out, at most 200 characters.
pub fn user_agent(ua: &str) -> String {
    ua.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_action_has_its_dotted_name_once() {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), 28);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(names.iter().all(|n| n.contains('.')));
    }

    #[test]
    fn a_record_is_one_json_object_with_the_contracts_fields() {
        let r = Record::new(
            Action::UserLocked,
            Outcome::Denied,
            Timestamp::from_second(1_800_000_000).unwrap(),
            "id-1".into(),
        )
        .by(Actor {
            account_id: Some("a1".into()),
            login: Some("admin@example.com".into()),
            organisation: Some("acme".into()),
            via: Some(Via::ApiKey),
            name: None,
        })
        .on(Target {
            kind: Some("User"),
            namespace: Some("acme-users".into()),
            name: Some("carol".into()),
            ..Default::default()
        })
        .in_organisation("acme")
        .because("permission_denied")
        .from(
            ClientInfo {
                address: Some("10.0.0.1".into()),
                user_agent: Some(user_agent("curl/8\n")),
            },
            request_id("req-1"),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["audit"], "v1");
        assert_eq!(v["action"], "user.locked");
        assert_eq!(v["actor"]["via"], "apiKey");
        assert_eq!(v["target"]["kind"], "User");
        assert_eq!(v["outcome"], "denied");
        assert_eq!(v["reason"], "permission_denied");
        assert_eq!(v["client"]["userAgent"], "curl/8");
        assert_eq!(v["requestId"], "req-1");
        assert_eq!(v["time"], "2027-01-15T08:00:00Z");
        assert_eq!(request_id("a b"), None);
        assert_eq!(request_id(&"x".repeat(129)), None);
    }
}
