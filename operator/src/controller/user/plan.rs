//! The User reconcile's decisions, pure: what a User is ([`validate`]) and what to do about it
//! ([`plan`]: a [`Plan`] value that says what to write). Every decision here is a plain
//! `#[test]` away; `apply` carries a plan out and `status` says what the User's status is then.

use std::sync::Arc;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::ResourceExt;
use usher_crds::{
    ANNOTATION_KILL_SESSIONS, ANNOTATION_RENEW_API_KEY, ANNOTATION_RESEND_INVITATION,
    ANNOTATION_RESET_PASSWORD, ObservedActions, Organisation, Profile, User, UserPhase,
    login::canonical_login,
    rules::{self, Violation},
};

use crate::{
    account::{Account, PendingInvitation, account_id},
    apikey::delivery::{self, rotation_due},
    reason::Reason,
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
    /// The reason of its Warning Event and `Stalled` condition.
    pub fn reason(self) -> Reason {
        match self {
            FailureReason::InvalidLogin => Reason::InvalidLogin,
            FailureReason::NoOrganisation => Reason::NoOrganisation,
            FailureReason::UnknownProfile => Reason::UnknownProfile,
            FailureReason::DuplicateLogin => Reason::DuplicateLogin,
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

impl Failure {
    /// The failure of a rule broken, rendered as the webhook and the admin API render it.
    pub fn of(reason: FailureReason, violation: Violation) -> Failure {
        Failure {
            reason,
            message: violation.to_string(),
        }
    }
}

/// What a valid User resolves to.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The canonical login.
    pub login: String,
    /// The organisation owning the User's namespace.
    pub organisation: Arc<Organisation>,
}

/// Checks a User against the cluster's Organisations and Profiles and the Users of its
/// namespace. Each failure is a rule of `usher_crds::rules` broken, in its words.
pub fn validate(
    user: &User,
    organisations: &[Arc<Organisation>],
    profiles: &[Arc<Profile>],
    same_namespace: &[Arc<User>],
) -> Result<Valid, Failure> {
    let ns = user.namespace().unwrap_or_default();
    let login = rules::check_login(&user.spec.login)
        .map_err(|e| Failure::of(FailureReason::InvalidLogin, Violation::Login(e)))?;
    let organisation = rules::organisation_for(&ns, organisations)
        .map_err(|v| Failure::of(FailureReason::NoOrganisation, v))?
        .clone();
    rules::check_profile(&user.spec.profile, profiles)
        .map_err(|v| Failure::of(FailureReason::UnknownProfile, v))?;
    if let Some(first) = rules::duplicate_of(user, same_namespace) {
        return Err(Failure::of(
            FailureReason::DuplicateLogin,
            Violation::LoginTaken {
                login: login.clone(),
                holder: first.name_any(),
            },
        ));
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
        (ANNOTATION_RESET_PASSWORD, &observed.reset_password),
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

/// The account a deleted `user`'s membership is taken out of: the one its status recorded (the
/// controller wrote it), not the one of `spec.login`, which may still be edited while the User
/// waits on its finalizer. Only a User that never had a status written falls back to its login.
pub fn account_to_leave(user: &User) -> Option<String> {
    user.status
        .as_ref()
        .and_then(|s| s.account_id.clone())
        .or_else(|| {
            canonical_login(&user.spec.login)
                .ok()
                .map(|l| account_id(&l))
        })
}

/// Every account a reconcile of `user` may touch, in the one global order every reconcile takes
/// their locks in (sorted, no repeats): the account of its login (`account`) and, when its login
/// changed, the account it leaves. Two Users swapping logins then wait for each other's locks in
/// the same order instead of each holding the one the other waits for.
pub fn accounts_to_lock(user: &User, account: &str) -> Vec<String> {
    let mut ids = vec![account.to_owned()];
    ids.extend(user.status.as_ref().and_then(|s| s.account_id.clone()));
    ids.sort();
    ids.dedup();
    ids
}

/// True when the key must be looked after: one is wanted, or one was recorded before (in the
/// account or, from before keys lived there, in the status).
pub fn key_in_play(user: &User, account: &Account) -> bool {
    user.api_key_enabled()
        || account.api_key(user).is_some()
        || user.status.as_ref().is_some_and(|s| s.api_key.is_some())
}

/// The Secret name a key was last delivered in, when it differs from the one the spec names
/// now: that Secret is left over and goes.
pub fn stale_secret_name(user: &User, account: &Account) -> Option<String> {
    let was = account
        .api_key(user)
        .map(|k| k.secret_name.clone())
        .or_else(|| {
            user.status
                .as_ref()
                .and_then(|s| s.api_key.as_ref())
                .and_then(|k| k.secret_name.clone())
        })?;
    (was != user.api_key_secret_name()).then_some(was)
}

/// What the plan is made from, besides the User: what observe read for it.
pub struct Observed {
    /// The account of the User's login (created if it was missing).
    pub account: Account,
    /// The account this membership belonged to before its login changed, and whether another
    /// live membership still belongs to it.
    pub previous: Option<(String, bool)>,
    /// The Secret named by `spec.apiKey.secretName`, when [`key_in_play`] and it exists.
    pub key_secret: Option<Secret>,
    /// The Secret the key was delivered in before `secretName` changed, when it exists.
    pub stale_secret: Option<Secret>,
    /// The key recorded for this membership opens with the current seal key (false when none
    /// is recorded, or when `usher-keys` was made anew and it no longer does).
    pub key_opens: bool,
    /// An invitation this replica emailed for the account but could not record (the API server
    /// refused the write), while its link is still valid.
    pub emailed_unrecorded: Option<PendingInvitation>,
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
    pub fn event(self) -> (Reason, &'static str) {
        match self {
            Invite::Resend => (Reason::InvitationResent, "sent again"),
            Invite::First | Invite::Reissue => (Reason::Invited, "sent"),
        }
    }
}

/// Why a new key is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWrite {
    /// The first key of the membership.
    Issue,
    /// `usher.dev/renew-api-key` asked for a new key.
    Renew,
    /// `spec.apiKey.rotateEvery` is due.
    Rotate,
    /// The recorded key no longer opens (`usher-keys` was made anew), so it cannot be delivered
    /// again: a new one replaces it.
    Reseal,
}

/// What to do about the API key. The key lives in the account; its Secret only delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlan {
    /// No key wanted, none recorded, no Secret of ours.
    Nothing,
    /// The key was disabled: take it out of the account (it stops at once) and delete our
    /// Secret.
    Revoke {
        /// The account records a key.
        recorded: bool,
        /// Our Secret still exists.
        delivered: bool,
    },
    /// A Secret of that name exists and is not this User's: it is never overwritten.
    Taken,
    /// The recorded key stays; its Secret is written again when it does not deliver it
    /// (missing, overwritten, changed).
    Keep {
        /// The Secret must be written.
        deliver: bool,
        /// The account records another Secret name (`secretName` changed): record this one.
        record_secret_name: bool,
    },
    /// Record a new key in the account in place of the one with hash `replacing`, then deliver
    /// it.
    Write {
        /// Why.
        why: KeyWrite,
        /// The hash of the key replaced (`None` for the first).
        replacing: Option<String>,
    },
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
    /// Record this invitation, emailed already, instead of emailing another: the person holds
    /// its link, and a second email would make the first link fail.
    pub record_emailed: Option<PendingInvitation>,
    /// Issue and email a password reset link, and who asked.
    pub reset: Option<ResetBy>,
    /// A reset link is asked for but three went in the last hour: when the next may go.
    pub reset_wait: Option<Timestamp>,
    /// Email the person that this organisation added their login (linked to their active
    /// account, with no invitation).
    pub notify_added: bool,
    /// Email the person that sign-in with a factor stopped after too many failures in a row
    /// (the account says so and nobody has told them yet).
    pub notify_locked: bool,
    /// The API key.
    pub api_key: KeyPlan,
    /// A Secret the key was delivered in before `secretName` changed: delete it.
    pub remove_stale_secret: bool,
    /// The actions to record as done once the plan is carried out.
    pub observed: ObservedActions,
    /// The actions to record if the invitation email fails (the resend is not done yet).
    pub observed_if_mail_fails: ObservedActions,
}

/// Who asked for a password reset link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetBy {
    /// This User's `usher.dev/reset-password` annotation (an admin, `usher account`): a link
    /// goes out whatever the account says.
    Annotation,
    /// The account (the person on `/reset`, or the platform operator): a link goes out only
    /// while the request is still unanswered, so of the login's memberships only one sends it.
    Request,
}

/// Decides what to do for a `valid` `user` given what was `observed`.
pub fn plan(user: &User, valid: &Valid, observed: &Observed) -> Plan {
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
    let reset = new_action(
        user,
        ANNOTATION_RESET_PASSWORD,
        before.reset_password.as_ref(),
    );

    // A service user is never invited (another, personal membership of its login may be).
    let invite = if account.is_activated() || user.is_service() {
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

    // An invited account has its invitation; a locked membership cannot sign in (another
    // membership of the login sends a link the person asked for).
    let reset_by = if !account.is_activated() || user.spec.locked || user.is_service() {
        None
    } else if reset.is_some() {
        Some(ResetBy::Annotation)
    } else {
        account.reset.wanted().then_some(ResetBy::Request)
    };
    // At most three links an hour to one account, whoever asks: a fourth waits (the
    // annotation stays unanswered, the request recorded) until the hour of the first is over.
    let reset_wait = reset_by.and_then(|_| account.reset.next_send(observed.now));
    let reset_by = reset_by.filter(|_| reset_wait.is_none());

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
    if let Some(v) = reset.as_ref().filter(|_| reset_wait.is_none()) {
        done.reset_password = Some(v.clone());
    }
    Plan {
        leave: observed
            .previous
            .clone()
            .filter(|(id, _)| *id != account.id)
            .map(|(id, shared)| (id, !shared)),
        kill_sessions: kill.is_some(),
        invite,
        reset: reset_by,
        reset_wait,
        record_emailed: invite.and(observed.emailed_unrecorded.clone()),
        // The first provisioning of a User whose login already has an active account: the
        // person is told, so no organisation adds them unknown to them.
        notify_added: account.is_activated() && !user.is_service() && !provisioned(user),
        // Whichever membership of the login reconciles first tells the person; the others
        // find it told (the account records it).
        notify_locked: account.guesses.notice_due() && !user.is_service(),
        api_key: key_plan(
            user,
            &observed.account,
            &valid.organisation.name_any(),
            observed.key_secret.as_ref(),
            observed.key_opens,
            renew.is_some(),
            observed.now,
        ),
        remove_stale_secret: observed
            .stale_secret
            .as_ref()
            .is_some_and(|s| delivery::is_ours(s, user)),
        observed: done,
        observed_if_mail_fails,
    }
}

/// True once the status records the User as provisioned (invited, active or locked).
fn provisioned(user: &User) -> bool {
    matches!(
        user.status.as_ref().and_then(|s| s.phase.as_ref()),
        Some(UserPhase::Invited | UserPhase::Active | UserPhase::Locked)
    )
}

/// Keeps the key as the spec says: issued when enabled, renewed on request or when
/// `rotateEvery` is due, taken out of the account when disabled; and its Secret delivering it.
fn key_plan(
    user: &User,
    account: &Account,
    organisation: &str,
    secret: Option<&Secret>,
    key_opens: bool,
    renew: bool,
    now: Timestamp,
) -> KeyPlan {
    if !key_in_play(user, account) {
        return KeyPlan::Nothing;
    }
    let record = account.api_key(user);
    let ours = secret.filter(|s| delivery::is_ours(s, user));
    let Some(spec) = user.spec.api_key.as_ref().filter(|k| k.enabled) else {
        return match (record.is_some(), ours.is_some()) {
            (false, false) => KeyPlan::Nothing,
            (recorded, delivered) => KeyPlan::Revoke {
                recorded,
                delivered,
            },
        };
    };
    if secret.is_some() && ours.is_none() {
        return KeyPlan::Taken;
    }
    let Some(record) = record else {
        return KeyPlan::Write {
            why: KeyWrite::Issue,
            replacing: None,
        };
    };
    let replacing = Some(record.hash.clone());
    if renew {
        return KeyPlan::Write {
            why: KeyWrite::Renew,
            replacing,
        };
    }
    if rotation_due(
        Some(record.issued_at),
        spec.rotate_every.map(|d| d.get()),
        now,
    ) {
        return KeyPlan::Write {
            why: KeyWrite::Rotate,
            replacing,
        };
    }
    let deliver = !ours.is_some_and(|s| delivery::delivers(s, user, organisation, record));
    if deliver && !key_opens {
        return KeyPlan::Write {
            why: KeyWrite::Reseal,
            replacing,
        };
    }
    KeyPlan::Keep {
        deliver,
        record_secret_name: record.secret_name != user.api_key_secret_name(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use usher_crds::{ApiKeySpec, OrganisationSpec, UserSpec};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use usher_crds::{ApiKeyStatus, UserStatus};

    use super::*;
    use crate::{
        account::PendingInvitation,
        apikey::{
            ApiKey,
            delivery::{digest, secret},
            renew::{NewKey, renew},
        },
        controller::{status::condition, user::status::failed_status},
        keys::Keys,
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

    #[test]
    fn two_users_swapping_logins_lock_the_same_accounts_in_the_same_order() {
        let with_account = |mut u: User, id: &str| {
            u.status = Some(UserStatus {
                account_id: Some(id.into()),
                ..Default::default()
            });
            u
        };
        let (a, b) = (
            account_id("alice@example.com"),
            account_id("bob@example.com"),
        );
        // u1 was alice and becomes bob; u2 was bob and becomes alice.
        let u1 = with_account(user("u1", "bob@example.com", NOW), &a);
        let u2 = with_account(user("u2", "alice@example.com", NOW), &b);
        let first = accounts_to_lock(&u1, &b);
        assert_eq!(first, accounts_to_lock(&u2, &a));
        assert_eq!(first.len(), 2);
        assert!(first[0] < first[1]);
        // An unchanged login locks its one account; a new User too.
        assert_eq!(
            accounts_to_lock(&with_account(alice(), &a), &a),
            vec![a.clone()]
        );
        assert_eq!(accounts_to_lock(&alice(), &a), vec![a]);
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

    fn profiles() -> Vec<Arc<Profile>> {
        vec![Arc::new(Profile::new(
            "analyst",
            usher_crds::ProfileSpec {
                description: None,
                permissions: vec!["manageCase".into()],
            },
        ))]
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
            stale_secret: None,
            key_opens: true,
            emailed_unrecorded: None,
            now: ts(NOW),
        }
    }

    fn valid() -> Valid {
        Valid {
            login: "alice@example.com".into(),
            organisation: orgs()[0].clone(),
        }
    }

    /// The plan for `u` in organisation acme.
    fn plan(u: &User, o: &Observed) -> Plan {
        super::plan(u, &valid(), o)
    }

    /// An activated account recording a key for `u` issued at `issued_at`, and the Secret
    /// delivering it.
    fn with_recorded_key(u: &User, issued_at: &str) -> (Observed, ApiKey, Secret) {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let mut account = activated(&u.spec.login);
        let new = NewKey::generate(&keys, &account.id, u).unwrap();
        renew(&mut account, u, &new, None, ts(issued_at));
        let mut s = secret(u, "acme", &new.key, ts(issued_at));
        s.metadata.resource_version = Some("7".into());
        let mut o = observed(account);
        o.key_secret = Some(digest(s.clone()));
        (o, new.key, s)
    }

    #[test]
    fn a_new_login_is_invited() {
        let u = alice();
        let p = plan(&u, &observed(Account::new("alice@example.com")));
        assert_eq!(p.invite, Some(Invite::First));
        assert_eq!(p.invite.unwrap().event().0, Reason::Invited);
        assert!(!p.kill_sessions && p.leave.is_none());
        assert_eq!(p.api_key, KeyPlan::Nothing);
    }

    #[test]
    fn a_link_emailed_but_not_recorded_is_recorded_not_emailed_again() {
        let u = alice();
        let emailed = PendingInvitation {
            token_hash: "ab".repeat(32),
            expires_at: ts("2026-11-28T12:00:00Z"),
            sent_at: Some(ts(NOW)),
            issued_by: "acme/alice".into(),
        };
        let mut o = observed(Account::new("alice@example.com"));
        o.emailed_unrecorded = Some(emailed.clone());
        let p = plan(&u, &o);
        assert_eq!(p.invite, Some(Invite::First));
        assert_eq!(p.record_emailed, Some(emailed.clone()));
        // Nothing to invite (activated meanwhile): nothing to record either.
        let mut active = observed(activated("alice@example.com"));
        active.emailed_unrecorded = Some(emailed);
        let p = plan(&u, &active);
        assert_eq!((p.invite, p.record_emailed), (None, None));
        // Nothing emailed: a new link is emailed.
        assert_eq!(
            plan(&u, &observed(Account::new("alice@example.com"))).record_emailed,
            None
        );
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
    fn a_stopped_sign_in_is_told_until_the_account_records_it() {
        let mut account = activated("alice@example.com");
        assert!(!plan(&alice(), &observed(account.clone())).notify_locked);
        account.guesses.code = crate::account::guesses::LIMIT;
        account.guesses.locked_at = Some(ts(NOW));
        assert!(plan(&alice(), &observed(account.clone())).notify_locked);
        account.guesses.notice_sent_at = Some(ts(NOW));
        assert!(!plan(&alice(), &observed(account)).notify_locked);
    }

    #[test]
    fn a_login_linked_to_an_active_account_is_told_once_and_an_invited_one_never() {
        // First provisioning, account active: the person learns of the organisation.
        let p = plan(&alice(), &observed(activated("alice@example.com")));
        assert!(p.notify_added);
        // Provisioned already (the notice went, or the person was invited here): never again.
        for phase in [UserPhase::Active, UserPhase::Invited, UserPhase::Locked] {
            let mut u = alice();
            u.status = Some(UserStatus {
                phase: Some(phase),
                ..Default::default()
            });
            assert!(!plan(&u, &observed(activated("alice@example.com"))).notify_added);
        }
        // An invitation is how a new login learns; a service user is nobody to tell.
        assert!(!plan(&alice(), &observed(invited("alice@example.com", true))).notify_added);
        let mut robot = alice();
        robot.spec.user_type = usher_crds::UserType::Service;
        assert!(!plan(&robot, &observed(activated("alice@example.com"))).notify_added);
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
        assert_eq!(p.invite.unwrap().event().0, Reason::InvitationResent);
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
    fn a_service_user_is_never_invited_nor_sent_a_reset_link() {
        let mut u = annotated(alice(), ANNOTATION_RESET_PASSWORD, "r1");
        u.spec.user_type = usher_crds::UserType::Service;
        assert_eq!(
            plan(&u, &observed(Account::new("alice@example.com"))).invite,
            None
        );
        assert_eq!(
            plan(&u, &observed(activated("alice@example.com"))).reset,
            None
        );
        // The same login as a person is invited as usual.
        assert_eq!(
            plan(&alice(), &observed(Account::new("alice@example.com"))).invite,
            Some(Invite::First)
        );
    }

    #[test]
    fn a_fourth_reset_link_in_an_hour_waits_whoever_asks() {
        let mut account = activated("alice@example.com");
        for minutes_ago in [50, 30, 10] {
            let at = ts(NOW)
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_mins(minutes_ago))
                .unwrap();
            account.reset.record_sent(at);
        }
        // An admin's action: held, and left unanswered so it goes out later.
        let u = annotated(alice(), ANNOTATION_RESET_PASSWORD, "r4");
        let p = plan(&u, &observed(account.clone()));
        assert_eq!(p.reset, None);
        assert_eq!(
            p.observed.reset_password, None,
            "the action is not consumed"
        );
        let due = ts(NOW)
            .checked_add(k8s_openapi::jiff::SignedDuration::from_mins(10))
            .unwrap();
        assert_eq!(p.reset_wait, Some(due));
        // The person's request: held likewise.
        account.reset.requested_at = Some(ts(NOW));
        let p = plan(&alice(), &observed(account));
        assert_eq!((p.reset, p.reset_wait), (None, Some(due)));
    }

    #[test]
    fn a_reset_link_goes_to_an_active_account_once_per_request() {
        let u = annotated(alice(), ANNOTATION_RESET_PASSWORD, "r1");
        let p = plan(&u, &observed(activated("alice@example.com")));
        assert_eq!(p.reset, Some(ResetBy::Annotation));
        assert_eq!(p.observed.reset_password.as_deref(), Some("r1"));
        // An invited account gets none: it has its invitation.
        assert_eq!(
            plan(&u, &observed(invited("alice@example.com", true))).reset,
            None
        );
        // The person's own request (in the account) is sent once.
        let mut account = activated("alice@example.com");
        account.reset.requested_at = Some(ts(NOW));
        assert_eq!(
            plan(&alice(), &observed(account.clone())).reset,
            Some(ResetBy::Request)
        );
        account.reset.sent_at = Some(ts("2026-11-27T12:00:01Z"));
        assert_eq!(plan(&alice(), &observed(account.clone())).reset, None);
        // Not through a locked membership.
        let mut locked = annotated(alice(), ANNOTATION_RESET_PASSWORD, "r2");
        locked.spec.locked = true;
        assert_eq!(
            plan(&locked, &observed(activated("alice@example.com"))).reset,
            None
        );
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
    fn a_deleted_user_leaves_the_account_its_status_recorded_whatever_its_login_says_now() {
        let mut me = alice();
        assert_eq!(
            account_to_leave(&me),
            Some(account_id("alice@example.com")),
            "nothing recorded yet: its login's"
        );
        me.status = Some(UserStatus {
            account_id: Some(account_id("alice@example.com")),
            ..Default::default()
        });
        me.spec.login = "bob@example.com".into();
        assert_eq!(account_to_leave(&me), Some(account_id("alice@example.com")));
        me.status = None;
        me.spec.login = "not a login".into();
        assert_eq!(account_to_leave(&me), None);
    }

    #[test]
    fn enabling_a_key_issues_one_into_the_account() {
        let u = with_key(alice(), enabled());
        let p = plan(&u, &observed(activated("alice@example.com")));
        assert_eq!(
            p.api_key,
            KeyPlan::Write {
                why: KeyWrite::Issue,
                replacing: None
            }
        );
    }

    #[test]
    fn a_recorded_key_stays_and_its_secret_is_left_alone_while_it_delivers_it() {
        let u = with_key(alice(), enabled());
        let (o, key, _) = with_recorded_key(&u, NOW);
        assert_eq!(
            plan(&u, &o).api_key,
            KeyPlan::Keep {
                deliver: false,
                record_secret_name: false
            }
        );
        let record = o.account.api_key(&u).unwrap();
        assert_eq!(crate::apikey::fingerprint(&record.hash), key.fingerprint());
    }

    #[test]
    fn an_overwritten_or_missing_secret_is_delivered_again_from_the_account() {
        let u = with_key(alice(), enabled());
        let (mut o, _, s) = with_recorded_key(&u, NOW);
        let forged = ApiKey::generate().unwrap();
        let mut overwritten = s.clone();
        overwritten.data = secret(&u, "acme", &forged, ts(NOW)).data;
        o.key_secret = Some(digest(overwritten));
        assert_eq!(
            plan(&u, &o).api_key,
            KeyPlan::Keep {
                deliver: true,
                record_secret_name: false
            }
        );
        o.key_secret = None;
        assert_eq!(
            plan(&u, &o).api_key,
            KeyPlan::Keep {
                deliver: true,
                record_secret_name: false
            }
        );
    }

    #[test]
    fn a_key_rotates_when_due() {
        let mut spec = enabled();
        spec.rotate_every = Some("1h".parse().unwrap());
        let u = with_key(alice(), spec);
        let (o, _, _) = with_recorded_key(&u, "2026-11-27T11:30:00Z");
        assert_eq!(
            plan(&u, &o).api_key,
            KeyPlan::Keep {
                deliver: false,
                record_secret_name: false
            }
        );
        let (o, key, _) = with_recorded_key(&u, "2026-11-27T11:00:00Z");
        assert_eq!(
            plan(&u, &o).api_key,
            KeyPlan::Write {
                why: KeyWrite::Rotate,
                replacing: Some(key.hash())
            }
        );
    }

    #[test]
    fn renew_api_key_replaces_the_recorded_key_once_per_value() {
        let u = annotated(with_key(alice(), enabled()), ANNOTATION_RENEW_API_KEY, "7");
        let (o, key, _) = with_recorded_key(&u, NOW);
        let p = plan(&u, &o);
        assert_eq!(
            p.api_key,
            KeyPlan::Write {
                why: KeyWrite::Renew,
                replacing: Some(key.hash())
            }
        );
        assert_eq!(p.observed.renew_api_key.as_deref(), Some("7"));
    }

    #[test]
    fn a_disabled_key_leaves_the_account_and_its_secret_goes() {
        let u = with_key(alice(), enabled());
        let (mut o, _, _) = with_recorded_key(&u, NOW);
        let mut disabled = u.clone();
        disabled.spec.api_key = Some(ApiKeySpec::default());
        assert_eq!(
            plan(&disabled, &o).api_key,
            KeyPlan::Revoke {
                recorded: true,
                delivered: true
            }
        );
        o.key_secret = None;
        assert_eq!(
            plan(&disabled, &o).api_key,
            KeyPlan::Revoke {
                recorded: true,
                delivered: false
            }
        );
        // No record, but a status from before keys lived in the account: the Secret goes.
        let mut legacy = disabled.clone();
        legacy.status = Some(UserStatus {
            api_key: Some(ApiKeyStatus::default()),
            ..Default::default()
        });
        let (_, _, s) = with_recorded_key(&u, NOW);
        let mut o = observed(activated("alice@example.com"));
        o.key_secret = Some(digest(s));
        assert_eq!(
            plan(&legacy, &o).api_key,
            KeyPlan::Revoke {
                recorded: false,
                delivered: true
            }
        );
        // No key wanted and none recorded: the Secret is not even looked at.
        assert!(!key_in_play(&alice(), &activated("alice@example.com")));
    }

    #[test]
    fn a_foreign_secret_is_never_taken_over() {
        let u = with_key(alice(), enabled());
        let (mut o, _, mut s) = with_recorded_key(&u, NOW);
        s.metadata.owner_references = None;
        o.key_secret = Some(digest(s));
        assert_eq!(plan(&u, &o).api_key, KeyPlan::Taken);
    }

    #[test]
    fn a_renamed_secret_gets_the_key_and_the_old_one_goes() {
        let u = with_key(alice(), enabled());
        let (mut o, _, old) = with_recorded_key(&u, NOW);
        let mut moved = u.clone();
        moved.spec.api_key.as_mut().unwrap().secret_name = Some("elsewhere".into());
        assert_eq!(
            stale_secret_name(&moved, &o.account).as_deref(),
            Some("alice-api-key")
        );
        o.key_secret = None;
        o.stale_secret = Some(old);
        let p = plan(&moved, &o);
        assert!(p.remove_stale_secret);
        // The account is told where the key lives now, and the new Secret gets it.
        assert_eq!(
            p.api_key,
            KeyPlan::Keep {
                deliver: true,
                record_secret_name: true
            }
        );
        assert_eq!(stale_secret_name(&u, &o.account), None);
    }

    #[test]
    fn a_key_that_no_longer_opens_is_replaced_when_it_must_be_delivered_again() {
        // usher-keys was made anew: the sealed key in the account cannot be delivered again.
        let u = with_key(alice(), enabled());
        let (mut o, key, _) = with_recorded_key(&u, NOW);
        o.key_opens = false;
        // Its Secret still delivers it: nothing to do, the key keeps working.
        assert_eq!(
            plan(&u, &o).api_key,
            KeyPlan::Keep {
                deliver: false,
                record_secret_name: false
            }
        );
        // The Secret is gone: a new key replaces the one that cannot be opened.
        o.key_secret = None;
        assert_eq!(
            plan(&u, &o).api_key,
            KeyPlan::Write {
                why: KeyWrite::Reseal,
                replacing: Some(key.hash())
            }
        );
    }

    #[test]
    fn validation_names_each_failure_and_its_fix() {
        let alice = alice();
        assert!(validate(&alice, &orgs(), &profiles(), &[]).is_ok());

        let upper = user("a2", "Alice@Example.com", "2026-11-27T10:00:00Z");
        let f = validate(&upper, &orgs(), &profiles(), &[]).unwrap_err();
        assert_eq!(f.reason, FailureReason::InvalidLogin);
        assert!(f.message.contains("\"alice@example.com\""), "{}", f.message);
        assert!(!f.reason.may_be_stale());

        let f = validate(&alice, &[], &profiles(), &[]).unwrap_err();
        assert_eq!(f.reason, FailureReason::NoOrganisation);
        assert!(f.message.contains("spec.namespace: acme"), "{}", f.message);
        assert!(f.reason.may_be_stale());
    }

    #[test]
    fn an_unknown_profile_fails_naming_the_fix_and_is_checked_on_fresh_data() {
        let f = validate(&alice(), &orgs(), &[], &[]).unwrap_err();
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
        assert!(validate(&old, &orgs(), &profiles(), &both).is_ok());
        let f = validate(&new, &orgs(), &profiles(), &both).unwrap_err();
        assert_eq!(f.reason, FailureReason::DuplicateLogin);
        assert!(f.message.contains("\"first\""), "{}", f.message);
    }
}
