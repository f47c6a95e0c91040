//! The User reconcile's decisions, pure: what a User is ([`validate`]) and what to do about it
//! ([`plan`]: a [`Plan`] value that says what to write). Every decision here is a plain
//! `#[test]` away; `apply` carries a plan out and `status` says what the User's status is then.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::ResourceExt;
use usher_crds::{
    ANNOTATION_KILL_SESSIONS, ANNOTATION_RENEW_API_KEY, ANNOTATION_RESEND_INVITATION, ApiKeyStatus,
    ObservedActions, Organisation, User, login::canonical_login, rules,
};

use crate::{
    account::{Account, account_id},
    apikey::{
        ApiKey,
        secret::{Issued, rotation_due},
    },
};

/// Why a User cannot be provisioned: the `Ready` condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// `spec.login` is not a canonical login.
    InvalidLogin,
    /// The User's namespace belongs to no Organisation.
    NoOrganisation,
    /// `spec.profile` names no Profile.
    UnknownProfile,
    /// An older User of the same organisation has the same login.
    DuplicateLogin,
}

impl FailureReason {
    /// The condition reason (CamelCase).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::InvalidLogin => "InvalidLogin",
            FailureReason::NoOrganisation => "NoOrganisation",
            FailureReason::UnknownProfile => "UnknownProfile",
            FailureReason::DuplicateLogin => "DuplicateLogin",
        }
    }

    /// True when fresher data could make it go away: the caches may not yet hold an
    /// Organisation or Profile created a moment before the User (one `kubectl apply` of all
    /// three).
    pub fn may_be_stale(self) -> bool {
        matches!(
            self,
            FailureReason::NoOrganisation | FailureReason::UnknownProfile
        )
    }
}

/// Why a User cannot be provisioned, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `Ready` condition's reason.
    pub reason: FailureReason,
    /// What is wrong and what to do.
    pub message: String,
}

/// What a valid User resolves to.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The canonical login.
    pub login: String,
    /// The organisation owning the User's namespace.
    pub organisation: Arc<Organisation>,
}

/// Checks a User against the cluster's Organisations, Profiles and the Users of its namespace.
pub fn validate(
    user: &User,
    organisations: &[Arc<Organisation>],
    profile_exists: bool,
    same_namespace: &[Arc<User>],
) -> Result<Valid, Failure> {
    let ns = user.namespace().unwrap_or_default();
    let login = rules::check_login(&user.spec.login).map_err(|e| Failure {
        reason: FailureReason::InvalidLogin,
        message: e.to_string(),
    })?;
    let organisation = rules::organisation_of(&ns, organisations)
        .cloned()
        .ok_or_else(|| Failure {
            reason: FailureReason::NoOrganisation,
            message: format!(
                "namespace {ns:?} belongs to no Organisation; create one with spec.namespace: {ns} or move the User"
            ),
        })?;
    if !profile_exists {
        return Err(Failure {
            reason: FailureReason::UnknownProfile,
            message: format!(
                "Profile {:?} does not exist; create it or set spec.profile to an existing one (kubectl get profiles)",
                user.spec.profile
            ),
        });
    }
    if let Some(first) = rules::duplicate_of(user, same_namespace) {
        return Err(Failure {
            reason: FailureReason::DuplicateLogin,
            message: format!(
                "User {:?} of this organisation already has this login; delete this User or change its login",
                first.name_any()
            ),
        });
    }
    Ok(Valid {
        login,
        organisation,
    })
}

/// True when a one-shot action annotation differs from what the status says was done: the User
/// must then be read live before acting, so an action is never repeated.
pub fn has_pending_action(user: &User) -> bool {
    let observed = observed_actions(user);
    [
        (ANNOTATION_KILL_SESSIONS, &observed.kill_sessions),
        (ANNOTATION_RESEND_INVITATION, &observed.resend_invitation),
        (ANNOTATION_RENEW_API_KEY, &observed.renew_api_key),
    ]
    .iter()
    .any(|(annotation, seen)| {
        user.action(annotation)
            .is_some_and(|v| seen.as_deref() != Some(v))
    })
}

fn observed_actions(user: &User) -> ObservedActions {
    user.status
        .as_ref()
        .and_then(|s| s.observed_actions.clone())
        .unwrap_or_default()
}

/// The value of `annotation` when it is new: set, and not the one last carried out.
fn new_action(user: &User, annotation: &str, seen: Option<&String>) -> Option<String> {
    user.action(annotation)
        .filter(|v| seen.map(String::as_str) != Some(*v))
        .map(str::to_owned)
}

/// True when no live User other than `user` belongs to account `id`: the account goes when this
/// membership leaves it.
pub fn last_member(user: &User, id: &str, users: &[Arc<User>]) -> bool {
    !users.iter().any(|u| {
        u.uid() != user.uid()
            && rules::is_live(u)
            && canonical_login(&u.spec.login).is_ok_and(|l| account_id(&l) == id)
    })
}

/// True when the key Secret must be read: a key is wanted, or one was issued before.
pub fn key_in_play(user: &User) -> bool {
    user.api_key_enabled() || user.status.as_ref().is_some_and(|s| s.api_key.is_some())
}

/// What the plan is made from: the User (read live when an action was pending), what it
/// resolved to, and what observe read for it.
pub struct Observed {
    /// The account of the User's login (created if it was missing).
    pub account: Account,
    /// The account this membership belonged to before its login changed, and whether another
    /// live membership still belongs to it.
    pub previous: Option<(String, bool)>,
    /// The API-key Secret, when [`key_in_play`] and it exists.
    pub key_secret: Option<Secret>,
    /// The time of this reconcile.
    pub now: Timestamp,
}

/// Why an invitation is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invite {
    /// The account has never had one.
    First,
    /// One was issued but never recorded as sent: after a crash or a mail outage the token is
    /// lost, so a new one replaces it.
    Reissue,
    /// `usher.dev/resend-invitation` asked for a new link.
    Resend,
}

impl Invite {
    /// The Event reason and the verb of its note.
    pub fn event(self) -> (&'static str, &'static str) {
        match self {
            Invite::Resend => ("InvitationResent", "sent again"),
            Invite::First | Invite::Reissue => ("Invited", "sent"),
        }
    }
}

/// Why a new key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWrite {
    /// The first key (or the Secret holds none that parses).
    Issue,
    /// `usher.dev/renew-api-key` asked for a new key.
    Renew,
    /// `spec.apiKey.rotateEvery` is due.
    Rotate,
}

/// What to do about the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlan {
    /// No key wanted, and no Secret of ours to remove.
    Nothing,
    /// The key was disabled: delete our Secret, the key stops working.
    Revoke,
    /// A Secret of that name exists and is not this User's: it is never overwritten.
    Taken,
    /// The current key stays.
    Keep {
        /// The key in the Secret.
        key: ApiKey,
        /// When it was issued.
        issued_at: Timestamp,
    },
    /// Write a new key into the Secret.
    Write(KeyWrite),
}

/// What one reconcile of a valid User writes, in this order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The account to leave (its login changed), and whether to delete it (no other live
    /// membership has it).
    pub leave: Option<(String, bool)>,
    /// Kill Session: revoke the account's sessions.
    pub kill_sessions: bool,
    /// Issue and email a new invitation.
    pub invite: Option<Invite>,
    /// The API key.
    pub api_key: KeyPlan,
    /// The actions to record as done once the plan is carried out.
    pub observed: ObservedActions,
    /// The actions to record if the invitation email fails (the resend is not done yet).
    pub observed_if_mail_fails: ObservedActions,
}

/// Decides what to do for a valid `user` given what was `observed`.
pub fn plan(user: &User, observed: &Observed) -> Plan {
    let account = &observed.account;
    let before = observed_actions(user);
    let kill = new_action(
        user,
        ANNOTATION_KILL_SESSIONS,
        before.kill_sessions.as_ref(),
    );
    let resend = new_action(
        user,
        ANNOTATION_RESEND_INVITATION,
        before.resend_invitation.as_ref(),
    );
    let renew = new_action(
        user,
        ANNOTATION_RENEW_API_KEY,
        before.renew_api_key.as_ref(),
    );

    let invite = if account.is_activated() {
        None
    } else if resend.is_some() {
        Some(Invite::Resend)
    } else {
        match &account.invitation {
            None => Some(Invite::First),
            Some(i) if i.sent_at.is_none() => Some(Invite::Reissue),
            Some(_) => None,
        }
    };

    let mut observed_if_mail_fails = before.clone();
    if let Some(v) = &kill {
        observed_if_mail_fails.kill_sessions = Some(v.clone());
    }
    let mut done = observed_if_mail_fails.clone();
    if let Some(v) = &resend {
        done.resend_invitation = Some(v.clone());
    }
    if let Some(v) = &renew {
        done.renew_api_key = Some(v.clone());
    }
    Plan {
        leave: observed
            .previous
            .clone()
            .filter(|(id, _)| *id != account.id)
            .map(|(id, shared)| (id, !shared)),
        kill_sessions: kill.is_some(),
        invite,
        api_key: key_plan(
            user,
            observed.key_secret.as_ref(),
            renew.is_some(),
            observed.now,
        ),
        observed: done,
        observed_if_mail_fails,
    }
}

/// Keeps the key as the spec says: issued when enabled, renewed on request or when
/// `rotateEvery` is due, deleted when disabled.
fn key_plan(user: &User, secret: Option<&Secret>, renew: bool, now: Timestamp) -> KeyPlan {
    if !key_in_play(user) {
        return KeyPlan::Nothing;
    }
    let issued = secret.map(|s| Issued::read(s, user));
    let Some(spec) = user.spec.api_key.as_ref().filter(|k| k.enabled) else {
        return if issued.is_some_and(|i| i.ours) {
            KeyPlan::Revoke
        } else {
            KeyPlan::Nothing
        };
    };
    if issued.as_ref().is_some_and(|i| !i.ours) {
        return KeyPlan::Taken;
    }
    let current = issued.and_then(|i| i.key.zip(i.issued_at));
    match current {
        None => KeyPlan::Write(KeyWrite::Issue),
        Some(_) if renew => KeyPlan::Write(KeyWrite::Renew),
        Some((_, at)) if rotation_due(Some(at), spec.rotate_every.map(|d| d.get()), now) => {
            KeyPlan::Write(KeyWrite::Rotate)
        }
        Some((key, issued_at)) => KeyPlan::Keep { key, issued_at },
    }
}

/// The status of a key issued at `issued_at`, and how long until its rotation is due.
pub fn key_status(
    user: &User,
    key: &ApiKey,
    issued_at: Timestamp,
    now: Timestamp,
) -> (ApiKeyStatus, Option<Duration>) {
    let every = user
        .spec
        .api_key
        .as_ref()
        .and_then(|k| k.rotate_every)
        .map(|d| d.get());
    let next = every.map(|every| {
        let due_at = issued_at
            .as_second()
            .saturating_add(i64::try_from(every.as_secs()).unwrap_or(i64::MAX));
        Duration::from_secs(
            u64::try_from(due_at.saturating_sub(now.as_second()))
                .unwrap_or(0)
                .max(1),
        )
    });
    (
        ApiKeyStatus {
            secret_name: Some(user.api_key_secret_name()),
            issued_at: Some(Time(issued_at)),
            fingerprint: Some(key.fingerprint()),
        },
        next,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use usher_crds::{ApiKeySpec, OrganisationSpec, UserSpec};

    use super::*;
    use usher_crds::{UserPhase, UserStatus};

    use crate::{
        account::PendingInvitation,
        apikey::secret::secret,
        controller::{status::condition, user::status::failed_status},
    };

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-11-27T12:00:00Z";

    fn user(name: &str, login: &str, created: &str) -> User {
        let mut u = User::new(
            name,
            UserSpec {
                login: login.into(),
                full_name: "P".into(),
                profile: "analyst".into(),
                ..Default::default()
            },
        );
        u.metadata.namespace = Some("acme".into());
        u.metadata.uid = Some(format!("uid-{name}"));
        u.metadata.creation_timestamp = Some(Time(ts(created)));
        u.metadata.generation = Some(1);
        u
    }

    fn alice() -> User {
        user("alice", "alice@example.com", "2026-11-27T10:00:00Z")
    }

    fn annotated(mut u: User, annotation: &str, value: &str) -> User {
        u.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(annotation.into(), value.into());
        u
    }

    fn with_key(mut u: User, spec: ApiKeySpec) -> User {
        u.spec.api_key = Some(spec);
        u
    }

    fn enabled() -> ApiKeySpec {
        ApiKeySpec {
            enabled: true,
            ..Default::default()
        }
    }

    fn orgs() -> Vec<Arc<Organisation>> {
        vec![Arc::new(Organisation::new(
            "acme",
            OrganisationSpec {
                display_name: "ACME".into(),
                ..Default::default()
            },
        ))]
    }

    fn activated(login: &str) -> Account {
        let mut a = Account::new(login);
        a.password_hash = Some("$argon2id$x".into());
        a.activated_at = Some(ts(NOW));
        a
    }

    fn invited(login: &str, sent: bool) -> Account {
        let mut a = Account::new(login);
        a.invitation = Some(PendingInvitation {
            token_hash: "h".into(),
            expires_at: ts("2026-11-28T12:00:00Z"),
            sent_at: sent.then(|| ts(NOW)),
            issued_by: "acme/alice".into(),
        });
        a
    }

    fn observed(account: Account) -> Observed {
        Observed {
            account,
            previous: None,
            key_secret: None,
            now: ts(NOW),
        }
    }

    fn key_secret(u: &User, issued_at: &str) -> (ApiKey, Secret) {
        let key = ApiKey::generate().unwrap();
        let s = secret(u, "acme", &key, ts(issued_at), None, Some("7".into()));
        (key, s)
    }

    #[test]
    fn a_new_login_is_invited() {
        let u = alice();
        let p = plan(&u, &observed(Account::new("alice@example.com")));
        assert_eq!(p.invite, Some(Invite::First));
        assert_eq!(p.invite.unwrap().event().0, "Invited");
        assert!(!p.kill_sessions && p.leave.is_none());
        assert_eq!(p.api_key, KeyPlan::Nothing);
    }

    #[test]
    fn a_login_with_an_account_is_linked_without_a_new_invitation() {
        let u = alice();
        // Active already, or invited by its first membership: no second email.
        for account in [
            activated("alice@example.com"),
            invited("alice@example.com", true),
        ] {
            let p = plan(&u, &observed(account));
            assert_eq!(p.invite, None);
            assert_eq!(p.observed, ObservedActions::default());
        }
    }

    #[test]
    fn an_invitation_issued_but_never_sent_is_issued_again() {
        let p = plan(&alice(), &observed(invited("alice@example.com", false)));
        assert_eq!(p.invite, Some(Invite::Reissue));
    }

    #[test]
    fn resend_sends_a_new_link_once_per_value() {
        let u = annotated(alice(), ANNOTATION_RESEND_INVITATION, "1");
        let p = plan(&u, &observed(invited("alice@example.com", true)));
        assert_eq!(p.invite, Some(Invite::Resend));
        assert_eq!(p.invite.unwrap().event().0, "InvitationResent");
        assert_eq!(p.observed.resend_invitation.as_deref(), Some("1"));
        assert_eq!(p.observed_if_mail_fails.resend_invitation, None);
        // Carried out: the same value again does nothing.
        let mut done = u.clone();
        done.status = Some(UserStatus {
            observed_actions: Some(p.observed.clone()),
            ..Default::default()
        });
        assert!(!has_pending_action(&done));
        assert!(has_pending_action(&u));
        assert_eq!(
            plan(&done, &observed(invited("alice@example.com", true))).invite,
            None
        );
        // An active account needs no invitation; the request is still recorded as seen.
        let p = plan(&u, &observed(activated("alice@example.com")));
        assert_eq!(p.invite, None);
        assert_eq!(p.observed.resend_invitation.as_deref(), Some("1"));
    }

    #[test]
    fn kill_sessions_revokes_once_per_value() {
        let u = annotated(alice(), ANNOTATION_KILL_SESSIONS, "42");
        let p = plan(&u, &observed(activated("alice@example.com")));
        assert!(p.kill_sessions);
        assert_eq!(p.observed.kill_sessions.as_deref(), Some("42"));
        assert_eq!(
            p.observed_if_mail_fails.kill_sessions.as_deref(),
            Some("42")
        );
        let mut done = u.clone();
        done.status = Some(UserStatus {
            observed_actions: Some(p.observed),
            ..Default::default()
        });
        assert!(!plan(&done, &observed(activated("alice@example.com"))).kill_sessions);
    }

    #[test]
    fn a_changed_login_moves_the_membership_and_deletes_an_account_left_empty() {
        let u = alice();
        let mut o = observed(activated("alice@example.com"));
        o.previous = Some((account_id("old@example.com"), false));
        assert_eq!(
            plan(&u, &o).leave,
            Some((account_id("old@example.com"), true))
        );
        // Another membership still has the old login: the old account stays.
        o.previous = Some((account_id("old@example.com"), true));
        assert_eq!(
            plan(&u, &o).leave,
            Some((account_id("old@example.com"), false))
        );
        // Unchanged login: nothing to leave.
        o.previous = Some((account_id("alice@example.com"), false));
        assert_eq!(plan(&u, &o).leave, None);
    }

    #[test]
    fn an_account_is_left_for_good_only_by_its_last_live_member() {
        let me = alice();
        let id = account_id("alice@example.com");
        let other = Arc::new(user("alice2", "alice@example.com", NOW));
        assert!(last_member(&me, &id, &[Arc::new(me.clone())]));
        assert!(!last_member(&me, &id, std::slice::from_ref(&other)));
        let mut going = (*other).clone();
        going.metadata.deletion_timestamp = Some(Time(ts(NOW)));
        assert!(last_member(&me, &id, &[Arc::new(going)]));
    }

    #[test]
    fn enabling_a_key_issues_one() {
        let u = with_key(alice(), enabled());
        let p = plan(&u, &observed(activated("alice@example.com")));
        assert_eq!(p.api_key, KeyPlan::Write(KeyWrite::Issue));
    }

    #[test]
    fn a_key_is_kept_and_its_status_names_only_the_fingerprint() {
        let u = with_key(alice(), enabled());
        let (key, s) = key_secret(&u, NOW);
        let mut o = observed(activated("alice@example.com"));
        o.key_secret = Some(s);
        let KeyPlan::Keep {
            key: kept,
            issued_at,
        } = plan(&u, &o).api_key
        else {
            panic!("the key should stay");
        };
        assert_eq!(kept, key);
        let (status, next) = key_status(&u, &kept, issued_at, ts(NOW));
        assert_eq!(status.fingerprint, Some(key.fingerprint()));
        assert_eq!(status.secret_name.as_deref(), Some("alice-api-key"));
        assert_eq!(next, None);
        assert!(
            !serde_json::to_string(&status)
                .unwrap()
                .contains(key.expose())
        );
    }

    #[test]
    fn a_key_rotates_when_due_and_says_when_next() {
        let mut spec = enabled();
        spec.rotate_every = Some("1h".parse().unwrap());
        let u = with_key(alice(), spec);
        let mut o = observed(activated("alice@example.com"));
        let (key, s) = key_secret(&u, "2026-11-27T11:30:00Z");
        o.key_secret = Some(s);
        assert!(matches!(plan(&u, &o).api_key, KeyPlan::Keep { .. }));
        let (_, next) = key_status(&u, &key, ts("2026-11-27T11:30:00Z"), ts(NOW));
        assert_eq!(next, Some(Duration::from_secs(1800)));
        let (_, s) = key_secret(&u, "2026-11-27T11:00:00Z");
        o.key_secret = Some(s);
        assert_eq!(plan(&u, &o).api_key, KeyPlan::Write(KeyWrite::Rotate));
    }

    #[test]
    fn renew_api_key_writes_a_new_key_once_per_value() {
        let u = annotated(with_key(alice(), enabled()), ANNOTATION_RENEW_API_KEY, "7");
        let (_, s) = key_secret(&u, NOW);
        let mut o = observed(activated("alice@example.com"));
        o.key_secret = Some(s);
        let p = plan(&u, &o);
        assert_eq!(p.api_key, KeyPlan::Write(KeyWrite::Renew));
        assert_eq!(p.observed.renew_api_key.as_deref(), Some("7"));
    }

    #[test]
    fn a_disabled_key_is_revoked_and_a_foreign_secret_is_never_taken_over() {
        let u = with_key(alice(), enabled());
        let (_, s) = key_secret(&u, NOW);
        let mut disabled = u.clone();
        disabled.spec.api_key = Some(ApiKeySpec::default());
        // Its key was issued before: the status records it.
        disabled.status = Some(UserStatus {
            api_key: Some(ApiKeyStatus::default()),
            ..Default::default()
        });
        let mut o = observed(activated("alice@example.com"));
        o.key_secret = Some(s.clone());
        assert_eq!(plan(&disabled, &o).api_key, KeyPlan::Revoke);
        // Disabled and already gone: nothing to do.
        o.key_secret = None;
        assert_eq!(plan(&disabled, &o).api_key, KeyPlan::Nothing);
        // A Secret of that name that is not this User's.
        let mut foreign = s;
        foreign.metadata.labels = None;
        o.key_secret = Some(foreign);
        assert_eq!(plan(&u, &o).api_key, KeyPlan::Taken);
        // No key wanted and none recorded: the Secret is not even looked at.
        assert!(!key_in_play(&alice()));
    }

    #[test]
    fn validation_names_each_failure_and_its_fix() {
        let alice = alice();
        assert!(validate(&alice, &orgs(), true, &[]).is_ok());

        let upper = user("a2", "Alice@Example.com", "2026-11-27T10:00:00Z");
        let f = validate(&upper, &orgs(), true, &[]).unwrap_err();
        assert_eq!(f.reason, FailureReason::InvalidLogin);
        assert!(f.message.contains("\"alice@example.com\""), "{}", f.message);
        assert!(!f.reason.may_be_stale());

        let f = validate(&alice, &[], true, &[]).unwrap_err();
        assert_eq!(f.reason, FailureReason::NoOrganisation);
        assert!(f.message.contains("spec.namespace: acme"), "{}", f.message);
        assert!(f.reason.may_be_stale());
    }

    #[test]
    fn an_unknown_profile_fails_naming_the_fix_and_is_checked_on_fresh_data() {
        let f = validate(&alice(), &orgs(), false, &[]).unwrap_err();
        assert_eq!(f.reason, FailureReason::UnknownProfile);
        assert!(f.message.contains("kubectl get profiles"), "{}", f.message);
        assert!(f.reason.may_be_stale());
        let s = failed_status(&alice(), &f, ts(NOW));
        assert_eq!(s.phase, Some(UserPhase::Failed));
        let ready = condition(&s.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "UnknownProfile")
        );
    }

    #[test]
    fn of_two_memberships_with_one_login_in_one_organisation_the_older_wins() {
        let old = Arc::new(user("first", "bob@example.com", "2026-11-27T10:00:00Z"));
        let new = Arc::new(user("second", "bob@example.com", "2026-11-27T11:00:00Z"));
        let both = [old.clone(), new.clone()];
        assert!(validate(&old, &orgs(), true, &both).is_ok());
        let f = validate(&new, &orgs(), true, &both).unwrap_err();
        assert_eq!(f.reason, FailureReason::DuplicateLogin);
        assert!(f.message.contains("\"first\""), "{}", f.message);
    }
}
