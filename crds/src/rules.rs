//! The rules about Users, Organisations and Profiles, decided once here and called by the
//! admission webhook, the controller and the auth server, so the three never disagree:
//!
//! - [`check_login`]: a login must be in canonical form (the message shows that form);
//! - [`is_live`]: a User being deleted is no longer a membership;
//! - [`duplicate_of`]: of two live Users of one organisation sharing a login, the older counts
//!   and the newer is a duplicate (the webhook refuses the second; where one exists anyway, made
//!   while the webhook was away, the controller marks it not Ready and the auth server ignores
//!   it);
//! - [`login_holder`]: the User that already holds a login in a namespace (admission and the
//!   admin API refuse a second one);
//! - [`organisation_of`]: the Organisation holding a namespace;
//! - [`profile_exists`];
//! - [`Violation`]: every rule a resource can break, with the offending values, rendered into the
//!   message that names the field and the fix (the webhook's refusals, the admin API's answers).

use std::borrow::Borrow;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::{
    Organisation, Profile, User,
    login::{LoginError, canonical_login},
};

/// A login that is not usable as it stands, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginRuleError {
    /// Usable, but not in canonical form.
    #[error("spec.login {given:?} is not in canonical form; use {canonical:?}")]
    NotCanonical {
        /// The login as given.
        given: String,
        /// The form to use.
        canonical: String,
    },
    /// Not usable at all. The value is not echoed when it has invisible characters or is huge.
    #[error("spec.login{}: {reason}", shown.as_ref().map(|s| format!(" {s:?}")).unwrap_or_default())]
    Unusable {
        /// The login as given, when it is safe to show.
        shown: Option<String>,
        /// Why.
        reason: LoginError,
    },
}

/// How many names a message lists before it says "and N more".
const LIST_AT_MOST: usize = 5;

/// `a, b, c` or `a, b, c, d, e and 3 more`, sorted.
pub fn list(items: &[String]) -> String {
    let mut items: Vec<&str> = items.iter().map(String::as_str).collect();
    items.sort_unstable();
    items.dedup();
    let shown = items
        .iter()
        .take(LIST_AT_MOST)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_AT_MOST {
        format!("{shown} and {} more", items.len() - LIST_AT_MOST)
    } else {
        shown
    }
}

/// A rule a User, Organisation or Profile breaks: what was given, and (in its text) the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The request's object cannot be read as the kind it claims.
    Unreadable(String),
    /// `spec.login` is unusable or not canonical.
    Login(LoginRuleError),
    /// A User's namespace belongs to no Organisation. (It names no other organisation's
    /// namespace: a tenant learns nothing of the others from a refusal.)
    NoOrganisation {
        /// The User's namespace.
        namespace: String,
    },
    /// `spec.profile` names no Profile.
    UnknownProfile {
        /// The profile named.
        profile: String,
        /// The Profiles that exist.
        existing: Vec<String>,
    },
    /// Another live User of the organisation holds the login.
    LoginTaken {
        /// The login.
        login: String,
        /// The User holding it.
        holder: String,
    },
    /// An Organisation's namespace is a system one.
    SystemNamespace {
        /// True when `spec.namespace` is unset (it defaults to the name).
        defaulted: bool,
        /// The namespace.
        namespace: String,
        /// A namespace to use instead.
        suggestion: String,
    },
    /// Another Organisation holds the namespace.
    NamespaceTaken {
        /// True when `spec.namespace` is unset.
        defaulted: bool,
        /// The namespace.
        namespace: String,
        /// The Organisation holding it.
        owner: String,
    },
    /// An Organisation's namespace changes while Users live in the old one.
    NamespaceInUse {
        /// The namespace it holds.
        from: String,
        /// The namespace asked for.
        to: String,
        /// Its live Users there.
        members: usize,
    },
    /// A permission name is not valid.
    InvalidPermission {
        /// Its index in `spec.permissions`.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A Profile to delete is still used.
    ProfileInUse {
        /// The Profile.
        profile: String,
        /// `namespace/name` of the Users with it.
        users: Vec<String>,
    },
    /// An OIDCClient in an organisation's namespace lists organisations: it serves its own.
    ClientListsOrganisations {
        /// The organisation whose namespace it is in.
        organisation: String,
    },
    /// An OIDCClient in the operator namespace lists no organisation to serve.
    ClientServesNobody,
    /// An OIDCClient in a namespace that is neither an organisation's nor the operator's.
    ClientNamespace {
        /// Its namespace.
        namespace: String,
    },
    /// An Organisation to delete still has Users.
    OrganisationHasUsers {
        /// The Organisation.
        organisation: String,
        /// Its namespace.
        namespace: String,
        /// Its Users' names.
        users: Vec<String>,
    },
}

impl Violation {
    /// A stable, CamelCase name of the rule (the cause's reason in a refusal).
    pub fn reason(&self) -> &'static str {
        match self {
            Violation::Unreadable(_) => "Unreadable",
            Violation::Login(_) => "InvalidLogin",
            Violation::NoOrganisation { .. } => "NoOrganisation",
            Violation::UnknownProfile { .. } => "UnknownProfile",
            Violation::LoginTaken { .. } => "LoginTaken",
            Violation::SystemNamespace { .. } => "SystemNamespace",
            Violation::NamespaceTaken { .. } => "NamespaceTaken",
            Violation::NamespaceInUse { .. } => "NamespaceInUse",
            Violation::InvalidPermission { .. } => "InvalidPermission",
            Violation::ProfileInUse { .. } => "ProfileInUse",
            Violation::OrganisationHasUsers { .. } => "OrganisationHasUsers",
            Violation::ClientListsOrganisations { .. } => "ClientListsOrganisations",
            Violation::ClientServesNobody => "ClientServesNobody",
            Violation::ClientNamespace { .. } => "ClientNamespace",
        }
    }

    /// The field to fix, as a JSON path from the object's root, when there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            Violation::Unreadable(_)
            | Violation::ProfileInUse { .. }
            | Violation::OrganisationHasUsers { .. } => None,
            Violation::Login(_) | Violation::LoginTaken { .. } => Some("spec.login".into()),
            Violation::NoOrganisation { .. } | Violation::ClientNamespace { .. } => {
                Some("metadata.namespace".into())
            }
            Violation::ClientListsOrganisations { .. } | Violation::ClientServesNobody => {
                Some("spec.organisations".into())
            }
            Violation::UnknownProfile { .. } => Some("spec.profile".into()),
            Violation::SystemNamespace { .. }
            | Violation::NamespaceTaken { .. }
            | Violation::NamespaceInUse { .. } => Some("spec.namespace".into()),
            Violation::InvalidPermission { index, .. } => {
                Some(format!("spec.permissions[{index}]"))
            }
        }
    }
}

fn namespace_field(defaulted: bool) -> &'static str {
    if defaulted {
        "spec.namespace (defaulted from metadata.name)"
    } else {
        "spec.namespace"
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Unreadable(why) => f.write_str(why),
            Violation::Login(e) => write!(f, "{e}"),
            Violation::NoOrganisation { namespace } => write!(
                f,
                "namespace {namespace:?} belongs to no Organisation: create Users in your organisation's namespace, or create an Organisation with spec.namespace: {namespace}"
            ),
            Violation::UnknownProfile { profile, existing } if existing.is_empty() => write!(
                f,
                "spec.profile: Profile {profile:?} does not exist, and no Profile exists yet; create it first (kubectl get profiles)"
            ),
            Violation::UnknownProfile { profile, existing } => write!(
                f,
                "spec.profile: Profile {profile:?} does not exist; use one of: {}",
                list(existing)
            ),
            Violation::LoginTaken { login, holder } => write!(
                f,
                "spec.login: {login:?} is already used by User {holder:?} in this organisation; edit that User instead (a login has one membership per organisation)"
            ),
            Violation::SystemNamespace {
                defaulted,
                namespace,
                suggestion,
            } => write!(
                f,
                "{}: {namespace:?} is a system namespace and cannot hold an organisation's Users; set spec.namespace to a namespace of its own, such as {suggestion:?}",
                namespace_field(*defaulted)
            ),
            Violation::NamespaceTaken {
                defaulted,
                namespace,
                owner,
            } => write!(
                f,
                "{}: namespace {namespace:?} already belongs to Organisation {owner:?}; a namespace belongs to one organisation, so set spec.namespace to another",
                namespace_field(*defaulted)
            ),
            Violation::NamespaceInUse { from, to, members } => write!(
                f,
                "spec.namespace cannot change from {from:?} to {to:?} while the organisation has {members} User(s) there; delete or move them first"
            ),
            Violation::InvalidPermission { index, reason } => {
                write!(f, "spec.permissions[{index}]: {reason}")
            }
            Violation::ProfileInUse { profile, users } => write!(
                f,
                "Profile {profile:?} is still used by {} User(s): {}; give them another profile (spec.profile) first",
                users.len(),
                list(users)
            ),
            Violation::ClientListsOrganisations { organisation } => write!(
                f,
                "spec.organisations is only for clients in Usher's operator namespace: this client serves organisation {organisation:?}, whose namespace it is in; remove spec.organisations"
            ),
            Violation::ClientServesNobody => f.write_str(
                "a client in Usher's operator namespace serves the organisations listed in spec.organisations: list them by name, or [\"*\"] for every organisation",
            ),
            Violation::ClientNamespace { namespace } => write!(
                f,
                "namespace {namespace:?} belongs to no Organisation: create the OIDCClient in an organisation's namespace (it serves that organisation), or in Usher's operator namespace with spec.organisations"
            ),
            Violation::OrganisationHasUsers {
                organisation,
                namespace,
                users,
            } => write!(
                f,
                "Organisation {organisation:?} still has {} User(s) in namespace {namespace:?}: {}; delete them first (kubectl delete users --all -n {namespace})",
                users.len(),
                list(users)
            ),
        }
    }
}

impl std::error::Error for Violation {}

impl From<LoginRuleError> for Violation {
    fn from(e: LoginRuleError) -> Violation {
        Violation::Login(e)
    }
}

/// The canonical login, when `login` is already in that form; else what to fix.
pub fn check_login(login: &str) -> Result<String, LoginRuleError> {
    match canonical_login(login) {
        Ok(canonical) if canonical == login => Ok(canonical),
        Ok(canonical) => Err(LoginRuleError::NotCanonical {
            given: login.to_owned(),
            canonical,
        }),
        Err(reason) => Err(LoginRuleError::Unusable {
            shown: (!matches!(reason, LoginError::Invisible(_) | LoginError::TooLong(_)))
                .then(|| login.to_owned()),
            reason,
        }),
    }
}

/// True while `user` is a membership: it is not being deleted.
pub fn is_live(user: &User) -> bool {
    user.metadata.deletion_timestamp.is_none()
}

/// Memberships sharing a login in one organisation are ranked by age, then name: the first counts.
fn rank(user: &User) -> (Option<Timestamp>, String) {
    (user.creation_timestamp().map(|t| t.0), user.name_any())
}

/// The live User of `user`'s namespace that shares its login and ranks before it, if any: then
/// `user` is a duplicate of that one and does not count. `users` may hold any Users (others are
/// skipped) and `user` itself.
pub fn duplicate_of<'a, U: Borrow<User> + 'a>(
    user: &User,
    users: impl IntoIterator<Item = &'a U>,
) -> Option<&'a U> {
    users
        .into_iter()
        .filter(|u| {
            let u: &User = (*u).borrow();
            u.metadata.namespace == user.metadata.namespace
                && u.spec.login == user.spec.login
                && u.uid() != user.uid()
                && is_live(u)
                && rank(u) < rank(user)
        })
        .min_by_key(|u| rank((*u).borrow()))
}

/// The live User of `namespace`, other than the one named `name`, that holds `login`: a login has
/// one membership per organisation, so a second one is refused.
pub fn login_holder<'a, U: Borrow<User> + 'a>(
    login: &str,
    namespace: &str,
    name: &str,
    users: impl IntoIterator<Item = &'a U>,
) -> Option<&'a U> {
    users.into_iter().find(|u| {
        let u: &User = (*u).borrow();
        u.metadata.namespace.as_deref() == Some(namespace)
            && u.spec.login == login
            && u.metadata.name.as_deref() != Some(name)
            && is_live(u)
    })
}

/// As [`organisation_of`], or the violation naming the namespaces organisations hold.
pub fn organisation_for<'a, O: Borrow<Organisation>>(
    namespace: &str,
    organisations: &'a [O],
) -> Result<&'a O, Violation> {
    organisation_of(namespace, organisations).ok_or_else(|| Violation::NoOrganisation {
        namespace: namespace.to_owned(),
    })
}

/// Ok when an OIDCClient in `namespace` listing `listed` is where it can serve: in an
/// organisation's namespace (`organisation`, which holds it) listing nothing, or in the operator
/// namespace listing what it serves.
pub fn client_placement(
    namespace: &str,
    operator_namespace: &str,
    organisation: Option<&str>,
    listed: &[String],
) -> Result<(), Violation> {
    match organisation {
        Some(org) if !listed.is_empty() => Err(Violation::ClientListsOrganisations {
            organisation: org.to_owned(),
        }),
        Some(_) => Ok(()),
        None if namespace == operator_namespace && listed.is_empty() => {
            Err(Violation::ClientServesNobody)
        }
        None if namespace == operator_namespace => Ok(()),
        None => Err(Violation::ClientNamespace {
            namespace: namespace.to_owned(),
        }),
    }
}

/// Ok when Profile `name` exists, or the violation naming the Profiles that do.
pub fn check_profile<P: Borrow<Profile>>(name: &str, profiles: &[P]) -> Result<(), Violation> {
    if profile_exists(name, profiles) {
        return Ok(());
    }
    Err(Violation::UnknownProfile {
        profile: name.to_owned(),
        existing: profiles
            .iter()
            .filter_map(|p| p.borrow().metadata.name.clone())
            .collect(),
    })
}

/// The Organisation holding `namespace`: one not being deleted that claims it, the oldest when
/// several do (the webhook refuses that; this covers objects made while it was away).
pub fn organisation_of<'a, O: Borrow<Organisation> + 'a>(
    namespace: &str,
    organisations: impl IntoIterator<Item = &'a O>,
) -> Option<&'a O> {
    organisations
        .into_iter()
        .filter(|o| {
            let o: &Organisation = (*o).borrow();
            o.metadata.deletion_timestamp.is_none() && o.namespace_name() == namespace
        })
        .min_by_key(|o| {
            let o: &Organisation = (*o).borrow();
            (o.creation_timestamp().map(|t| t.0), o.name_any())
        })
}

/// True when a Profile named `name` is among `profiles`.
pub fn profile_exists<'a, P: Borrow<Profile> + 'a>(
    name: &str,
    profiles: impl IntoIterator<Item = &'a P>,
) -> bool {
    profiles
        .into_iter()
        .any(|p| p.borrow().metadata.name.as_deref() == Some(name))
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::{OrganisationSpec, UserSpec};

    fn user(ns: &str, name: &str, login: &str, created: &str) -> User {
        let mut u = User::new(
            name,
            UserSpec {
                login: login.into(),
                full_name: "P".into(),
                profile: "analyst".into(),
                ..Default::default()
            },
        );
        u.metadata.namespace = Some(ns.into());
        u.metadata.uid = Some(format!("uid-{ns}-{name}"));
        u.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        u
    }

    #[test]
    fn a_login_must_be_canonical_and_the_message_shows_the_form_to_use() {
        assert_eq!(
            check_login("alice@example.com").unwrap(),
            "alice@example.com"
        );
        let e = check_login("Alice@Example.COM").unwrap_err().to_string();
        assert_eq!(
            e,
            r#"spec.login "Alice@Example.COM" is not in canonical form; use "alice@example.com""#
        );
        let e = check_login("b\u{202E}ob@example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("U+202E") && !e.contains('\u{202E}'), "{e}");
        let e = check_login("bob＠example.com").unwrap_err().to_string();
        assert!(
            e.contains("ASCII @") && e.contains("bob＠example.com"),
            "{e}"
        );
    }

    #[test]
    fn of_two_users_sharing_a_login_in_one_organisation_the_older_counts() {
        let old = user("acme", "zed", "bob@example.com", "2026-11-27T10:00:00Z");
        let new = user("acme", "amy", "bob@example.com", "2026-11-27T11:00:00Z");
        let elsewhere = user("globex", "bob", "bob@example.com", "2026-11-27T09:00:00Z");
        let all = [old.clone(), new.clone(), elsewhere.clone()];
        assert!(duplicate_of(&old, &all).is_none());
        assert_eq!(duplicate_of(&new, &all).unwrap().name_any(), "zed");
        assert!(duplicate_of(&elsewhere, &all).is_none());
        // Created in the same second: the name decides, the same way everywhere.
        let twin = user("acme", "aaa", "bob@example.com", "2026-11-27T10:00:00Z");
        assert_eq!(
            duplicate_of(&old, &[old.clone(), twin.clone()])
                .unwrap()
                .name_any(),
            "aaa"
        );
        // An older one being deleted no longer counts.
        let mut going = old.clone();
        going.metadata.deletion_timestamp = Some(Time("2026-11-27T12:00:00Z".parse().unwrap()));
        assert!(duplicate_of(&new, &[going.clone(), new.clone()]).is_none());
        assert!(!is_live(&going));
    }

    #[test]
    fn a_login_is_held_once_per_namespace_and_never_by_the_user_itself() {
        let alice = user("acme", "alice", "alice@example.com", "2026-11-27T10:00:00Z");
        let all = [alice.clone()];
        assert!(login_holder("alice@example.com", "acme", "alice", &all).is_none());
        assert_eq!(
            login_holder("alice@example.com", "acme", "alice2", &all)
                .unwrap()
                .name_any(),
            "alice"
        );
        assert!(login_holder("alice@example.com", "globex", "alice2", &all).is_none());
    }

    #[test]
    fn a_namespace_belongs_to_its_oldest_live_claimant() {
        let org = |name: &str, ns: &str, created: &str| {
            let mut o = Organisation::new(
                name,
                OrganisationSpec {
                    display_name: name.into(),
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
            );
            o.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
            o
        };
        let a = org("a", "shared", "2026-11-27T10:00:00Z");
        let b = org("b", "shared", "2026-11-27T09:00:00Z");
        assert_eq!(
            organisation_of("shared", &[a.clone(), b.clone()])
                .unwrap()
                .name_any(),
            "b"
        );
        assert!(organisation_of("other", &[a, b]).is_none());
        let profiles = [Profile::new(
            "analyst",
            crate::ProfileSpec {
                description: None,
                permissions: vec![],
            },
        )];
        assert!(profile_exists("analyst", &profiles));
        assert!(!profile_exists("admin", &profiles));
    }

    #[test]
    fn a_refusal_names_no_other_organisations_namespace() {
        // A tenant learns nothing of other organisations from a refusal of their own User.
        let mut globex = crate::Organisation::new(
            "globex",
            crate::OrganisationSpec {
                display_name: "Globex".into(),
                namespace: Some("globex-users".into()),
                ..Default::default()
            },
        );
        globex.metadata.creation_timestamp = None;
        let refused = organisation_for("nowhere", &[globex])
            .unwrap_err()
            .to_string();
        assert!(refused.contains("\"nowhere\""), "{refused}");
        assert!(!refused.contains("globex"), "{refused}");
    }
}
