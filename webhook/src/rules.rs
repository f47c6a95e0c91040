//! The admission rules, pure: a request and a [`Lookup`] of the cluster's Usher objects in, a
//! [`Decision`] out. Messages name the field, the value and the fix.

use std::sync::Arc;

use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, Operation},
};
use usher_crds::{
    OIDCClient, Organisation, Profile, User,
    permission::validate_permission,
    rules::{self, Violation},
};

/// Namespaces an Organisation may never hold (besides the operator's own).
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The cluster's Usher objects, as the rules need them. Implemented by the watch caches and by a
/// [`Snapshot`] listed from the API server. Users are many, so they are searched in place rather
/// than copied out: a review of a User touches one match, not every User.
pub trait Lookup {
    /// Every Organisation (tens).
    fn organisations(&self) -> Vec<Arc<Organisation>>;
    /// Every Profile (a handful).
    fn profiles(&self) -> Vec<Arc<Profile>>;
    /// The first User matching `predicate`.
    fn find_user(&self, predicate: &dyn Fn(&User) -> bool) -> Option<Arc<User>>;
    /// Every User matching `predicate`.
    fn users_where(&self, predicate: &dyn Fn(&User) -> bool) -> Vec<Arc<User>>;
}

/// Objects listed at one moment (the fallback while caches sync, and unit tests).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every Organisation.
    pub organisations: Vec<Arc<Organisation>>,
    /// Every Profile.
    pub profiles: Vec<Arc<Profile>>,
    /// Every User.
    pub users: Vec<Arc<User>>,
}

impl Lookup for Snapshot {
    fn organisations(&self) -> Vec<Arc<Organisation>> {
        self.organisations.clone()
    }
    fn profiles(&self) -> Vec<Arc<Profile>> {
        self.profiles.clone()
    }
    fn find_user(&self, predicate: &dyn Fn(&User) -> bool) -> Option<Arc<User>> {
        self.users.iter().find(|u| predicate(u)).cloned()
    }
    fn users_where(&self, predicate: &dyn Fn(&User) -> bool) -> Vec<Arc<User>> {
        self.users
            .iter()
            .filter(|u| predicate(u))
            .cloned()
            .collect()
    }
}

/// True when `user` is a live membership of `namespace`'s organisation.
fn live_in(user: &User, namespace: &str) -> bool {
    user.metadata.namespace.as_deref() == Some(namespace) && rules::is_live(user)
}

/// Settings the rules depend on.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operator's namespace; never an organisation's.
    pub operator_namespace: String,
    /// The namespace of the account Secrets, when it is not the operator's; never an
    /// organisation's either (the controller would deliver keys there and bind itself in it).
    pub accounts_namespace: Option<String>,
}

/// The webhook's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Admit the request.
    Allow,
    /// Refuse it: the rule broken, whose text is the message for the person who sent it.
    Deny(Violation),
}

/// The kinds of object this webhook reviews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `usher.dev/v1alpha1` Organisation.
    Organisation,
    /// `usher.dev/v1alpha1` Profile.
    Profile,
    /// `usher.dev/v1alpha1` User.
    User,
    /// `usher.dev/v1alpha1` OIDCClient.
    OIDCClient,
}

impl Kind {
    /// The kind of a request, when it is one this webhook reviews.
    pub fn of(req: &AdmissionRequest<DynamicObject>) -> Option<Kind> {
        if req.kind.group != usher_crds::GROUP {
            return None;
        }
        match req.kind.kind.as_str() {
            "Organisation" => Some(Kind::Organisation),
            "Profile" => Some(Kind::Profile),
            "User" => Some(Kind::User),
            "OIDCClient" => Some(Kind::OIDCClient),
            _ => None,
        }
    }

    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Organisation => "Organisation",
            Kind::Profile => "Profile",
            Kind::User => "User",
            Kind::OIDCClient => "OIDCClient",
        }
    }
}

/// Reviews one request.
pub fn review(
    req: &AdmissionRequest<DynamicObject>,
    cluster: &impl Lookup,
    config: &Config,
) -> Decision {
    let Some(kind) = Kind::of(req) else {
        // Registered only for Usher kinds; anything else is not ours to judge.
        return Decision::Allow;
    };
    let result = match (kind, &req.operation) {
        (Kind::User, Operation::Create | Operation::Update) => {
            parse::<User>(req.object.as_ref(), "User").and_then(|new| {
                let old = parse_opt::<User>(req.old_object.as_ref());
                user(
                    &new,
                    old.as_ref(),
                    req.namespace.as_deref().unwrap_or(""),
                    cluster,
                )
            })
        }
        (Kind::Organisation, Operation::Create | Operation::Update) => {
            parse::<Organisation>(req.object.as_ref(), "Organisation").and_then(|new| {
                let old = parse_opt::<Organisation>(req.old_object.as_ref());
                organisation(&new, old.as_ref(), cluster, config)
            })
        }
        (Kind::Profile, Operation::Create | Operation::Update) => {
            parse::<Profile>(req.object.as_ref(), "Profile").and_then(|p| profile(&p))
        }
        (Kind::Profile, Operation::Delete) => profile_delete(&req.name, cluster),
        (Kind::Organisation, Operation::Delete) => {
            let org = parse_opt::<Organisation>(req.old_object.as_ref());
            organisation_delete(&req.name, org.as_ref(), cluster)
        }
        (Kind::OIDCClient, Operation::Create | Operation::Update) => {
            parse::<OIDCClient>(req.object.as_ref(), "OIDCClient").and_then(|c| {
                let namespace = req.namespace.as_deref().unwrap_or("");
                let orgs = cluster.organisations();
                let org = rules::organisation_of(namespace, orgs.iter().map(|o| o.as_ref()))
                    .and_then(|o| o.metadata.name.clone());
                rules::client_placement(
                    namespace,
                    &config.operator_namespace,
                    org.as_deref(),
                    &c.spec.organisations,
                )
            })
        }
        (Kind::User | Kind::OIDCClient, Operation::Delete) | (_, Operation::Connect) => Ok(()),
    };
    match result {
        Ok(()) => Decision::Allow,
        Err(violation) => Decision::Deny(violation),
    }
}

/// True when a stale cache could wrongly *admit* this request: a User CREATE, or an UPDATE that
/// changes the login (a duplicate created a moment ago may not be cached yet). Such requests are
/// decided on a fresh List of the User's namespace.
pub fn needs_fresh_view(req: &AdmissionRequest<DynamicObject>) -> bool {
    if Kind::of(req) != Some(Kind::User) {
        return false;
    }
    match req.operation {
        Operation::Create => true,
        Operation::Update => {
            let login = |o: Option<&DynamicObject>| {
                o.and_then(|o| {
                    o.data
                        .get("spec")?
                        .get("login")?
                        .as_str()
                        .map(str::to_owned)
                })
            };
            login(req.object.as_ref()) != login(req.old_object.as_ref())
        }
        Operation::Delete | Operation::Connect => false,
    }
}

type Verdict = Result<(), Violation>;

fn parse<K: kube::Resource + serde::de::DeserializeOwned>(
    obj: Option<&DynamicObject>,
    kind: &str,
) -> Result<K, Violation> {
    let obj =
        obj.ok_or_else(|| Violation::Unreadable(format!("the request carries no {kind} object")))?;
    obj.clone()
        .try_parse::<K>()
        .map_err(|e| Violation::Unreadable(format!("the {kind} cannot be read: {e}")))
}

fn parse_opt<K: kube::Resource + serde::de::DeserializeOwned>(
    obj: Option<&DynamicObject>,
) -> Option<K> {
    obj.and_then(|o| o.clone().try_parse::<K>().ok())
}

fn being_deleted(meta: &kube::api::ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

fn user(new: &User, old: Option<&User>, namespace: &str, cluster: &impl Lookup) -> Verdict {
    // Finalizer removal and other writes during deletion must always go through.
    if being_deleted(&new.metadata) {
        return Ok(());
    }
    let login_changed = old.is_none_or(|o| o.spec.login != new.spec.login);
    let profile_changed = old.is_none_or(|o| o.spec.profile != new.spec.profile);

    if login_changed {
        rules::check_login(&new.spec.login)?;
    }
    if old.is_none() {
        // The shared rule: an Organisation being deleted holds no namespace any more.
        rules::organisation_for(namespace, &cluster.organisations())?;
    }
    if profile_changed {
        rules::check_profile(&new.spec.profile, &cluster.profiles())?;
    }
    if login_changed {
        let name = new.metadata.name.as_deref().unwrap_or_default();
        if let Some(other) = cluster
            .find_user(&|u| rules::login_holder(&new.spec.login, namespace, name, [u]).is_some())
        {
            return Err(Violation::LoginTaken {
                login: new.spec.login.clone(),
                holder: other.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
    Ok(())
}

fn organisation(
    new: &Organisation,
    old: Option<&Organisation>,
    cluster: &impl Lookup,
    config: &Config,
) -> Verdict {
    if being_deleted(&new.metadata) {
        return Ok(());
    }
    let name = new.metadata.name.as_deref().unwrap_or_default();
    let ns = new.namespace_name();
    let defaulted = new.spec.namespace.is_none();
    if SYSTEM_NAMESPACES.contains(&ns.as_str())
        || ns.starts_with("kube-")
        || ns == config.operator_namespace
        || config.accounts_namespace.as_deref() == Some(ns.as_str())
    {
        return Err(Violation::SystemNamespace {
            defaulted,
            suggestion: if name == ns {
                format!("{name}-users")
            } else {
                name.to_owned()
            },
            namespace: ns,
        });
    }
    if let Some(other) = cluster
        .organisations()
        .iter()
        .find(|o| o.metadata.name.as_deref() != Some(name) && o.namespace_name() == ns)
    {
        return Err(Violation::NamespaceTaken {
            defaulted,
            namespace: ns,
            owner: other.metadata.name.clone().unwrap_or_default(),
        });
    }
    if let Some(old) = old {
        let old_ns = old.namespace_name();
        let members = cluster.users_where(&|u| live_in(u, &old_ns)).len();
        if old_ns != ns && members > 0 {
            return Err(Violation::NamespaceInUse {
                from: old_ns,
                to: ns,
                members,
            });
        }
    }
    Ok(())
}

fn profile(p: &Profile) -> Verdict {
    for (index, name) in p.spec.permissions.iter().enumerate() {
        validate_permission(name).map_err(|e| Violation::InvalidPermission {
            index,
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

fn profile_delete(name: &str, cluster: &impl Lookup) -> Verdict {
    let users: Vec<String> = cluster
        .users_where(&|u| u.spec.profile == name && rules::is_live(u))
        .iter()
        .map(|u| {
            format!(
                "{}/{}",
                u.metadata.namespace.as_deref().unwrap_or_default(),
                u.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(Violation::ProfileInUse {
        profile: name.to_owned(),
        users,
    })
}

fn organisation_delete(name: &str, org: Option<&Organisation>, cluster: &impl Lookup) -> Verdict {
    let ns = org.map_or_else(|| name.to_owned(), Organisation::namespace_name);
    let users: Vec<String> = cluster
        .users_where(&|u| live_in(u, &ns))
        .iter()
        .filter_map(|u| u.metadata.name.clone())
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(Violation::OrganisationHasUsers {
        organisation: name.to_owned(),
        namespace: ns,
        users,
    })
}

#[cfg(test)]
mod tests {
    use kube::core::admission::AdmissionReview;
    use serde_json::{Value, json};

    use super::*;
    use usher_testkit::admission::{organisation, profile, review_json, user, user_json};

    fn cluster() -> Snapshot {
        Snapshot {
            organisations: vec![
                organisation("acme", None),
                organisation("beta", Some("beta-users")),
            ],
            profiles: vec![
                profile("analyst", &["manageCase"]),
                profile("org-admin", &["manageUser"]),
            ],
            users: vec![
                user("acme", "alice", "alice@example.com", "analyst"),
                user("beta-users", "alice", "alice@example.com", "org-admin"),
            ],
        }
    }

    fn config() -> Config {
        Config {
            operator_namespace: "usher-system".into(),
            accounts_namespace: Some("usher-system-accounts".into()),
        }
    }

    fn decide(review: Value) -> Decision {
        decide_with(review, &cluster())
    }

    fn decide_with(review: Value, cluster: &Snapshot) -> Decision {
        review_with(serde_json::from_value(review).unwrap(), cluster)
    }

    fn review_with(ar: AdmissionReview<DynamicObject>, cluster: &Snapshot) -> Decision {
        let req: AdmissionRequest<DynamicObject> = ar.try_into().unwrap();
        review(&req, cluster, &config())
    }

    fn create_user(ns: &str, name: &str, login: &str, profile: &str) -> Decision {
        let obj = user_json(ns, name, login, profile);
        decide(review_json(
            "CREATE",
            "User",
            Some(ns),
            name,
            Some(obj),
            None,
        ))
    }

    fn denied(d: Decision) -> String {
        match d {
            Decision::Deny(v) => v.to_string(),
            Decision::Allow => panic!("expected a refusal"),
        }
    }

    #[test]
    fn a_valid_user_in_an_organisation_namespace_is_allowed() {
        assert_eq!(
            create_user("acme", "bob", "bob@example.com", "analyst"),
            Decision::Allow
        );
        // The same login in another organisation links accounts: allowed.
        assert_eq!(
            create_user("beta-users", "bob", "bob@example.com", "analyst"),
            Decision::Allow
        );
    }

    #[test]
    fn a_non_canonical_login_is_refused_with_the_canonical_form() {
        let m = denied(create_user("acme", "bob", "Bob@Example.COM", "analyst"));
        assert!(
            m.contains("spec.login") && m.contains("use \"bob@example.com\""),
            "{m}"
        );
        let m = denied(create_user("acme", "bob", "bob@bücher.de", "analyst"));
        assert!(m.contains("use \"bob@xn--bcher-kva.de\""), "{m}");
    }

    #[test]
    fn an_unusable_login_is_refused_with_the_reason_and_no_invisible_characters() {
        let m = denied(create_user("acme", "bob", "bob＠example.com", "analyst"));
        assert!(m.contains("ASCII @"), "{m}");
        let m = denied(create_user(
            "acme",
            "bob",
            "b\u{202E}ob@example.com",
            "analyst",
        ));
        assert!(m.contains("U+202E") && !m.contains('\u{202E}'), "{m}");
        let m = denied(create_user(
            "acme",
            "bob",
            "\u{430}lice@example.com",
            "analyst",
        ));
        assert!(m.contains("different scripts"), "{m}");
    }

    #[test]
    fn a_login_already_used_in_the_same_organisation_is_refused() {
        let m = denied(create_user(
            "acme",
            "alice2",
            "alice@example.com",
            "analyst",
        ));
        assert!(m.contains("already used by User \"alice\""), "{m}");
        // Re-submitting the same User (e.g. kubectl apply) is not a duplicate of itself.
        let obj = user_json("acme", "alice", "alice@example.com", "org-admin");
        let old = user_json("acme", "alice", "alice@example.com", "analyst");
        assert_eq!(
            decide(review_json(
                "UPDATE",
                "User",
                Some("acme"),
                "alice",
                Some(obj),
                Some(old)
            )),
            Decision::Allow
        );
    }

    #[test]
    fn an_unknown_profile_is_refused_naming_the_existing_ones() {
        let m = denied(create_user("acme", "bob", "bob@example.com", "superuser"));
        assert!(m.contains("\"superuser\" does not exist"), "{m}");
        assert!(m.contains("analyst, org-admin"), "{m}");
        let empty = Snapshot {
            organisations: vec![organisation("acme", None)],
            ..Default::default()
        };
        let obj = user_json("acme", "bob", "bob@example.com", "analyst");
        let m = denied(decide_with(
            review_json("CREATE", "User", Some("acme"), "bob", Some(obj), None),
            &empty,
        ));
        assert!(m.contains("no Profile exists yet"), "{m}");
    }

    #[test]
    fn a_user_outside_every_organisation_namespace_is_refused() {
        let m = denied(create_user("default", "bob", "bob@example.com", "analyst"));
        assert!(
            m.contains("namespace \"default\" belongs to no Organisation"),
            "{m}"
        );
        // Other organisations' namespaces are not named to whoever asked.
        assert!(!m.contains("acme") && !m.contains("beta-users"), "{m}");
        assert!(m.contains("spec.namespace: default"), "{m}");
    }

    #[test]
    fn an_organisation_being_deleted_holds_no_namespace_for_new_users() {
        // As the controller and the auth server see it (usher_crds::rules::organisation_of): a
        // User created in the namespace of an Organisation on its way out would never become a
        // membership, so it is refused.
        let mut cluster = cluster();
        let mut going = (*organisation("acme", None)).clone();
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-03T10:00:00Z".parse().unwrap(),
            ));
        cluster.organisations[0] = Arc::new(going);
        let d = review_with(
            serde_json::from_value(review_json(
                "CREATE",
                "User",
                Some("acme"),
                "bob",
                Some(user_json("acme", "bob", "bob@example.com", "analyst")),
                None,
            ))
            .unwrap(),
            &cluster,
        );
        let Decision::Deny(v) = d else {
            panic!("a User in a namespace whose Organisation is being deleted was admitted");
        };
        assert_eq!(v.reason(), "NoOrganisation");
        assert_eq!(v.field().as_deref(), Some("metadata.namespace"));
        let m = v.to_string();
        assert!(!m.contains("beta-users"), "{m}");
    }

    #[test]
    fn updates_only_check_what_changed_and_deletion_is_never_blocked() {
        // Profile removed behind the webhook's back: an unrelated update (finalizer, annotation)
        // still goes through; a profile change to a missing profile does not.
        let mut cluster = cluster();
        cluster
            .profiles
            .retain(|p| p.metadata.name.as_deref() != Some("analyst"));
        let mut obj = user_json("acme", "alice", "alice@example.com", "analyst");
        obj["metadata"]["finalizers"] = json!(["usher.dev/membership"]);
        let old = user_json("acme", "alice", "alice@example.com", "analyst");
        let update = |new: &Value| {
            let review = review_json(
                "UPDATE",
                "User",
                Some("acme"),
                "alice",
                Some(new.clone()),
                Some(old.clone()),
            );
            decide_with(review, &cluster)
        };
        assert_eq!(update(&obj), Decision::Allow);

        let mut moved = obj.clone();
        moved["spec"]["profile"] = json!("ghost");
        assert!(denied(update(&moved)).contains("\"ghost\" does not exist"));

        moved["metadata"]["deletionTimestamp"] = json!("2026-11-27T10:00:00Z");
        assert_eq!(update(&moved), Decision::Allow);
    }

    fn org_json(name: &str, namespace: Option<&str>) -> Value {
        let mut spec = json!({"displayName": name.to_uppercase()});
        if let Some(ns) = namespace {
            spec["namespace"] = json!(ns);
        }
        json!({"apiVersion": "usher.dev/v1alpha1", "kind": "Organisation",
               "metadata": {"name": name}, "spec": spec})
    }

    fn create_org(name: &str, namespace: Option<&str>) -> Decision {
        decide(review_json(
            "CREATE",
            "Organisation",
            None,
            name,
            Some(org_json(name, namespace)),
            None,
        ))
    }

    #[test]
    fn an_organisation_needs_a_namespace_of_its_own() {
        assert_eq!(create_org("gamma", None), Decision::Allow);
        let m = denied(create_org("gamma", Some("beta-users")));
        assert!(
            m.contains("already belongs to Organisation \"beta\""),
            "{m}"
        );
        let m = denied(create_org("gamma", Some("kube-system")));
        assert!(
            m.contains("system namespace") && m.contains("\"gamma\""),
            "{m}"
        );
        let m = denied(create_org("default", None));
        assert!(
            m.contains("defaulted from metadata.name") && m.contains("\"default-users\""),
            "{m}"
        );
        let m = denied(create_org("gamma", Some("usher-system")));
        assert!(m.contains("system namespace"), "{m}");
        let m = denied(create_org("gamma", Some("usher-system-accounts")));
        assert!(m.contains("system namespace"), "{m}");
        let m = denied(create_org("gamma", Some("kube-flannel")));
        assert!(m.contains("system namespace"), "{m}");
        // Re-applying an organisation is not a clash with itself.
        let obj = org_json("beta", Some("beta-users"));
        assert_eq!(
            decide(review_json(
                "UPDATE",
                "Organisation",
                None,
                "beta",
                Some(obj.clone()),
                Some(obj)
            )),
            Decision::Allow
        );
    }

    #[test]
    fn an_organisation_with_users_cannot_move_namespace_or_be_deleted() {
        let old = org_json("beta", Some("beta-users"));
        let new = org_json("beta", Some("beta-elsewhere"));
        let m = denied(decide(review_json(
            "UPDATE",
            "Organisation",
            None,
            "beta",
            Some(new),
            Some(old.clone()),
        )));
        assert!(
            m.contains("cannot change from \"beta-users\"") && m.contains("1 User(s)"),
            "{m}"
        );

        let m = denied(decide(review_json(
            "DELETE",
            "Organisation",
            None,
            "beta",
            None,
            Some(old),
        )));
        assert!(
            m.contains("still has 1 User(s) in namespace \"beta-users\": alice"),
            "{m}"
        );
        assert!(
            m.contains("kubectl delete users --all -n beta-users"),
            "{m}"
        );
        let empty = org_json("gamma", None);
        assert_eq!(
            decide(review_json(
                "DELETE",
                "Organisation",
                None,
                "gamma",
                None,
                Some(empty)
            )),
            Decision::Allow
        );
    }

    #[test]
    fn a_profile_in_use_cannot_be_deleted_and_names_its_users() {
        let m = denied(decide(review_json(
            "DELETE", "Profile", None, "analyst", None, None,
        )));
        assert!(m.contains("still used by 1 User(s): acme/alice"), "{m}");
        assert_eq!(
            decide(review_json(
                "DELETE",
                "Profile",
                None,
                "read-only",
                None,
                None
            )),
            Decision::Allow
        );
    }

    #[test]
    fn malformed_permission_names_are_refused_with_their_index() {
        let obj = json!({"apiVersion": "usher.dev/v1alpha1", "kind": "Profile",
            "metadata": {"name": "p"}, "spec": {"permissions": ["manageCase", "manage user"]}});
        let m = denied(decide(review_json(
            "CREATE",
            "Profile",
            None,
            "p",
            Some(obj),
            None,
        )));
        assert!(
            m.contains("spec.permissions[1]") && m.contains("must start with a letter"),
            "{m}"
        );
    }

    #[test]
    fn only_user_creates_and_login_changes_need_a_fresh_view() {
        let parse = |v: Value| -> AdmissionRequest<DynamicObject> {
            serde_json::from_value::<AdmissionReview<DynamicObject>>(v)
                .unwrap()
                .try_into()
                .unwrap()
        };
        let a = user_json("acme", "a", "a@example.com", "analyst");
        let renamed = user_json("acme", "a", "b@example.com", "analyst");
        let reprofiled = user_json("acme", "a", "a@example.com", "org-admin");
        let cases = [
            (
                review_json("CREATE", "User", Some("acme"), "a", Some(a.clone()), None),
                true,
            ),
            (
                review_json(
                    "UPDATE",
                    "User",
                    Some("acme"),
                    "a",
                    Some(renamed),
                    Some(a.clone()),
                ),
                true,
            ),
            (
                review_json(
                    "UPDATE",
                    "User",
                    Some("acme"),
                    "a",
                    Some(reprofiled),
                    Some(a.clone()),
                ),
                false,
            ),
            (
                review_json("DELETE", "User", Some("acme"), "a", None, Some(a)),
                false,
            ),
            (
                review_json("CREATE", "Profile", None, "p", None, None),
                false,
            ),
        ];
        for (review, want) in cases {
            let req = parse(review);
            assert_eq!(
                needs_fresh_view(&req),
                want,
                "{:?} {:?}",
                req.operation,
                req.kind.kind
            );
        }
    }

    #[test]
    fn long_lists_are_cut_short() {
        let names: Vec<String> = (0..9).map(|i| format!("u{i}")).collect();
        assert_eq!(rules::list(&names), "u0, u1, u2, u3, u4 and 4 more");
    }

    #[test]
    fn unreadable_objects_are_refused_with_a_reason_not_a_crash() {
        let obj = json!({"apiVersion": "usher.dev/v1alpha1", "kind": "User",
            "metadata": {"name": "x", "namespace": "acme"}, "spec": {"login": 42}});
        let m = denied(decide(review_json(
            "CREATE",
            "User",
            Some("acme"),
            "x",
            Some(obj),
            None,
        )));
        assert!(m.contains("the User cannot be read"), "{m}");
        let m = denied(decide(review_json(
            "CREATE",
            "User",
            Some("acme"),
            "x",
            None,
            None,
        )));
        assert!(m.contains("carries no User"), "{m}");
    }

    #[test]
    fn an_oidc_client_serves_its_organisation_or_the_ones_the_operator_namespace_lists() {
        let client = |ns: &str, orgs: Value| {
            let obj = json!({"apiVersion": "usher.dev/v1alpha1", "kind": "OIDCClient",
                "metadata": {"name": "app", "namespace": ns},
                "spec": {"redirectURIs": ["https://a.example.com/cb"], "organisations": orgs}});
            decide(review_json(
                "CREATE",
                "OIDCClient",
                Some(ns),
                "app",
                Some(obj),
                None,
            ))
        };
        assert_eq!(client("acme", json!([])), Decision::Allow);
        assert_eq!(client("usher-system", json!(["*"])), Decision::Allow);
        let reason = |d: Decision| match d {
            Decision::Deny(v) => v.reason(),
            Decision::Allow => "allowed",
        };
        assert_eq!(
            reason(client("acme", json!(["beta"]))),
            "ClientListsOrganisations"
        );
        assert_eq!(
            reason(client("usher-system", json!([]))),
            "ClientServesNobody"
        );
        assert_eq!(
            reason(client("default", json!(["acme"]))),
            "ClientNamespace"
        );
    }
}
