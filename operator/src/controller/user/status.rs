//! The status a User should have, pure: after a plan was carried out ([`desired_status`]) or
//! when it cannot be provisioned ([`failed_status`]); the Event a phase change deserves; and when
//! to look at the User again.

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::ResourceExt;
use usher_crds::{
    ANNOTATION_RESEND_INVITATION, ApiKeyStatus, InvitationStatus, ObservedActions, User, UserPhase,
    UserStatus,
};

use super::plan::Failure;
use crate::{
    account::{Account, KeyRecord},
    controller::status::{Progress, set_condition, set_progress},
    reason::{ConditionType, Reason},
};

/// How often a settled User is looked at again.
pub const RESYNC: Duration = Duration::from_secs(3600);

/// The status of the key `record`, and how long until its rotation is due.
pub fn key_status(
    user: &User,
    record: &KeyRecord,
    now: Timestamp,
) -> (ApiKeyStatus, Option<Duration>) {
    let every = user
        .spec
        .api_key
        .as_ref()
        .and_then(|k| k.rotate_every)
        .map(|d| d.get());
    let next = every.map(|every| {
        let due_at = record
            .issued_at
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
            secret_name: Some(record.secret_name.clone()),
            issued_at: Some(Time(
                Timestamp::from_second(record.issued_at.as_second()).unwrap_or(record.issued_at),
            )),
            fingerprint: Some(crate::apikey::fingerprint(&record.hash)),
        },
        next,
    )
}

/// The status a User should have.
pub fn desired_status(
    user: &User,
    account: &Account,
    observed: &ObservedActions,
    api_key: Option<ApiKeyStatus>,
    mail_error: Option<&str>,
    now: Timestamp,
) -> UserStatus {
    let current = user.status.clone().unwrap_or_default();
    let generation = user.metadata.generation;
    let invitation = account
        .invitation
        .as_ref()
        .filter(|_| !account.is_activated());
    let sent = invitation.and_then(|i| i.sent_at);
    let phase = if user.spec.locked {
        UserPhase::Locked
    } else if account.is_activated() || user.is_service() {
        UserPhase::Active
    } else if sent.is_some() {
        UserPhase::Invited
    } else {
        UserPhase::Pending
    };
    let mut conds = current.conditions.clone();
    let expired = invitation.is_some_and(|i| i.expires_at <= now);
    let key_wanted = user.api_key_enabled() && api_key.is_none();
    let progress = match phase {
        UserPhase::Locked => Progress::Ready(
            Reason::Locked,
            "spec.locked is true: this membership cannot authenticate".to_owned(),
        ),
        UserPhase::Active if key_wanted => Progress::Reconciling(
            Reason::IssuingApiKey,
            "the API key is being issued".to_owned(),
        ),
        UserPhase::Active if user.is_service() => Progress::Ready(
            Reason::ServiceUser,
            "a service user: it authenticates with its API key only".to_owned(),
        ),
        UserPhase::Active => Progress::Ready(Reason::Active, "the account is active".to_owned()),
        UserPhase::Invited if expired => Progress::Stalled(
            Reason::InvitationExpired,
            format!(
                "the invitation expired; send a new one with kubectl annotate user {} -n {} {ANNOTATION_RESEND_INVITATION}=\"$(date +%s)\" --overwrite",
                user.name_any(),
                user.namespace().unwrap_or_default()
            ),
        ),
        UserPhase::Invited => Progress::Ready(
            Reason::Invited,
            format!(
                "the invitation went to {}; the account becomes active when its link sets a password",
                account.login
            ),
        ),
        _ => match mail_error {
            Some(err) => Progress::Reconciling(
                Reason::MailUnavailable,
                format!(
                    "the invitation email could not be sent ({err}); retrying. Check USHER_SMTP_URL and the mail server"
                ),
            ),
            None => Progress::Reconciling(
                Reason::Provisioning,
                "the invitation has not been sent yet".to_owned(),
            ),
        },
    };
    set_progress(&mut conds, &progress, generation, now);
    if let Some(err) = mail_error {
        set_condition(
            &mut conds,
            ConditionType::InvitationSent,
            false,
            Reason::MailUnavailable,
            format!("the invitation email could not be sent ({err}); retrying"),
            generation,
            now,
        );
    } else if let Some(inv) = invitation.filter(|i| i.sent_at.is_some()) {
        set_condition(
            &mut conds,
            ConditionType::InvitationSent,
            true,
            Reason::Sent,
            format!(
                "sent to {}; the link expires {}",
                account.login, inv.expires_at
            ),
            generation,
            now,
        );
    } else if account.is_activated() || user.is_service() {
        conds.retain(|c| c.type_ != ConditionType::InvitationSent.as_str());
    }
    UserStatus {
        phase: Some(phase),
        account_id: Some(account.id.clone()),
        invitation: invitation
            .filter(|i| i.sent_at.is_some())
            .map(|i| InvitationStatus {
                sent_at: i.sent_at.map(whole),
                expires_at: Some(whole(i.expires_at)),
            }),
        activated_at: account.activated_at.map(whole),
        mfa_enrolled: Some(account.mfa_enrolled()),
        api_key,
        // Whole seconds, as the API server keeps a Time (the account keeps milliseconds).
        sessions_revoked_at: account.sessions_revoked_for(user).map(whole),
        observed_actions: (observed != &ObservedActions::default()).then(|| observed.clone()),
        observed_generation: generation,
        conditions: conds,
    }
}

/// `t` in whole seconds, as the API server keeps a `Time`: a status built from an account that
/// keeps finer times equals the one read back, so an unchanged User is not written again.
fn whole(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// The status of a User that cannot be provisioned.
pub fn failed_status(user: &User, failure: &Failure, now: Timestamp) -> UserStatus {
    let mut status = user.status.clone().unwrap_or_default();
    status.phase = Some(UserPhase::Failed);
    status.observed_generation = user.metadata.generation;
    set_progress(
        &mut status.conditions,
        &Progress::Stalled(failure.reason.reason(), failure.message.clone()),
        user.metadata.generation,
        now,
    );
    status
}

/// The audit action of a change to `user` made with kubectl or GitOps that this reconcile acts
/// on (its status moves to the User's generation, and to `after`), unless the admin API
/// recorded that very change already (`usher.dev/audited-generation` names this generation).
pub fn kubernetes_change(user: &User, after: Option<UserPhase>) -> Option<crate::audit::Action> {
    use crate::audit::Action;
    let generation = user.metadata.generation.unwrap_or(0);
    if user
        .annotations()
        .get(usher_crds::ANNOTATION_AUDITED_GENERATION)
        .is_some_and(|g| *g == generation.to_string())
    {
        return None;
    }
    let status = user.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation);
    let before = status.and_then(|s| s.phase);
    match observed {
        None => Some(Action::UserCreated),
        Some(o) if o >= generation => None,
        Some(_) => Some(match (before, after) {
            (b, Some(UserPhase::Locked)) if b != Some(UserPhase::Locked) => Action::UserLocked,
            (Some(UserPhase::Locked), a) if a != Some(UserPhase::Locked) => Action::UserUnlocked,
            _ => Action::UserUpdated,
        }),
    }
}

/// The Event a phase change deserves: reason and note.
pub fn transition_event(
    before: Option<UserPhase>,
    after: Option<UserPhase>,
    login: &str,
) -> Option<(Reason, String)> {
    if before == after {
        return None;
    }
    match (before, after) {
        (Some(UserPhase::Invited | UserPhase::Pending), Some(UserPhase::Active)) => {
            Some((Reason::Activated, format!("{login} set a password")))
        }
        (_, Some(UserPhase::Locked)) => Some((
            Reason::Locked,
            "this membership cannot authenticate".to_owned(),
        )),
        (Some(UserPhase::Locked), _) => Some((
            Reason::Unlocked,
            "this membership can authenticate again".to_owned(),
        )),
        _ => None,
    }
}

/// When to look at the User again: just after its invitation expires (so the condition says
/// so), when its key's rotation is due (`key_due`), when a held-back reset link may go
/// (`reset_wait`), and at the latest after [`RESYNC`].
pub fn requeue_after(
    account: &Account,
    key_due: Option<Duration>,
    reset_wait: Option<Timestamp>,
    now: Timestamp,
) -> Duration {
    // Just after `at`.
    let until = |at: Timestamp| {
        Duration::from_secs(
            u64::try_from((at.as_second() - now.as_second()).max(1)).unwrap_or(1) + 1,
        )
    };
    let expiry = account
        .invitation
        .as_ref()
        .filter(|_| !account.is_activated())
        .map(|inv| inv.expires_at)
        .filter(|at| *at > now)
        .map(until);
    [expiry, key_due, reset_wait.map(until)]
        .into_iter()
        .flatten()
        .fold(RESYNC, Duration::min)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use usher_crds::UserSpec;

    use super::*;
    use crate::{account::PendingInvitation, controller::status::condition};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-11-27T12:00:00Z";

    fn alice() -> User {
        let mut u = User::new(
            "alice",
            UserSpec {
                login: "alice@example.com".into(),
                full_name: "P".into(),
                profile: "analyst".into(),
                ..Default::default()
            },
        );
        u.metadata.namespace = Some("acme".into());
        u.metadata.generation = Some(1);
        u
    }

    fn activated(login: &str) -> Account {
        let mut a = Account::new(login);
        a.password_hash = Some("$argon2id$x".into());
        a.activated_at = Some(ts(NOW));
        a
    }

    #[test]
    fn status_follows_the_account_and_the_lock() {
        let now = ts(NOW);
        let mut u = alice();
        let mut account = Account::new("alice@example.com");
        let none = ObservedActions::default();

        let s = desired_status(&u, &account, &none, None, None, now);
        assert_eq!(s.phase, Some(UserPhase::Pending));
        // Work under way: not Ready, Reconciling.
        assert_eq!(condition(&s.conditions, "Ready").unwrap().status, "False");
        assert_eq!(
            condition(&s.conditions, "Reconciling").unwrap().reason,
            "Provisioning"
        );

        account.invitation = Some(PendingInvitation {
            token_hash: "h".into(),
            expires_at: ts("2026-11-28T12:00:00Z"),
            sent_at: Some(now),
            issued_by: "acme/alice".into(),
        });
        let s = desired_status(&u, &account, &none, None, None, now);
        assert_eq!(s.phase, Some(UserPhase::Invited));
        assert_eq!(
            s.invitation.as_ref().unwrap().expires_at,
            Some(Time(ts("2026-11-28T12:00:00Z")))
        );
        // Usher did all it can: an Invited User is Ready (kubectl wait and GitOps health).
        let ready = condition(&s.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Invited")
        );
        assert!(condition(&s.conditions, "Reconciling").is_none());
        // Until it expires, the User is looked at again just after the expiry.
        assert_eq!(
            requeue_after(&account, None, None, now),
            Duration::from_secs(3600)
        );
        // A held-back reset link that may go sooner brings it forward.
        let in_ten_minutes = now
            .checked_add(k8s_openapi::jiff::SignedDuration::from_mins(10))
            .unwrap();
        assert_eq!(
            requeue_after(&account, None, Some(in_ten_minutes), now),
            Duration::from_secs(601)
        );
        assert_eq!(
            requeue_after(&account, None, None, ts("2026-11-28T11:59:00Z")),
            Duration::from_secs(61)
        );

        // Past the expiry the condition says how to send a new link.
        let later = ts("2026-11-29T00:00:00Z");
        let s = desired_status(&u, &account, &none, None, None, later);
        let ready = condition(&s.conditions, "Ready").unwrap();
        assert_eq!(ready.reason, "InvitationExpired");
        assert_eq!(ready.status, "False");
        assert_eq!(condition(&s.conditions, "Stalled").unwrap().status, "True");
        assert!(
            ready.message.contains("usher.dev/resend-invitation"),
            "{}",
            ready.message
        );

        account.password_hash = Some("$argon2id$x".into());
        account.activated_at = Some(now);
        let s = desired_status(&u, &account, &none, None, None, now);
        assert_eq!(s.phase, Some(UserPhase::Active));
        assert!(s.invitation.is_none());

        u.spec.locked = true;
        let s = desired_status(&u, &account, &none, None, None, now);
        assert_eq!(s.phase, Some(UserPhase::Locked));
        assert_eq!(condition(&s.conditions, "Ready").unwrap().status, "True");
        assert!(condition(&s.conditions, "Stalled").is_none());

        // A mail outage shows in InvitationSent without touching the phase logic.
        let fresh = Account::new("alice@example.com");
        u.spec.locked = false;
        let s = desired_status(
            &u,
            &fresh,
            &none,
            None,
            Some("the SMTP server did not accept"),
            now,
        );
        let sent = condition(&s.conditions, "InvitationSent").unwrap();
        assert_eq!(
            (sent.status.as_str(), sent.reason.as_str()),
            ("False", "MailUnavailable")
        );
        let reconciling = condition(&s.conditions, "Reconciling").unwrap();
        assert_eq!(reconciling.reason, "MailUnavailable");
        assert!(reconciling.message.contains("USHER_SMTP_URL"));

        // A service user is never invited: Active, Ready once its key is issued.
        let mut service = alice();
        service.spec.user_type = usher_crds::UserType::Service;
        let s = desired_status(&service, &fresh, &none, None, None, now);
        assert_eq!(s.phase, Some(UserPhase::Active));
        assert_eq!(
            condition(&s.conditions, "Ready").unwrap().reason,
            "ServiceUser"
        );
        assert!(condition(&s.conditions, "InvitationSent").is_none());
    }

    #[test]
    fn phase_changes_are_announced_once() {
        use UserPhase::*;
        assert_eq!(
            transition_event(Some(Invited), Some(Active), "a@example.com")
                .unwrap()
                .0,
            Reason::Activated
        );
        assert_eq!(
            transition_event(Some(Active), Some(Locked), "a").unwrap().0,
            Reason::Locked
        );
        assert_eq!(
            transition_event(Some(Locked), Some(Active), "a").unwrap().0,
            Reason::Unlocked
        );
        assert_eq!(transition_event(Some(Active), Some(Active), "a"), None);
        assert_eq!(transition_event(None, Some(Pending), "a"), None);
    }

    #[test]
    fn a_settled_status_is_computed_identically_again() {
        let now = ts(NOW);
        let mut u = alice();
        let account = activated("alice@example.com");
        let first = desired_status(&u, &account, &ObservedActions::default(), None, None, now);
        u.status = Some(first.clone());
        let again = desired_status(
            &u,
            &account,
            &ObservedActions::default(),
            None,
            None,
            ts("2026-11-27T13:00:00Z"),
        );
        assert_eq!(
            again, first,
            "no write when nothing changed, even an hour later"
        );
    }

    #[test]
    fn a_status_read_back_in_whole_seconds_is_not_written_again() {
        // An account keeping sub-second times (a writer that did not round them): the status
        // the API server keeps (whole seconds) must equal the one computed again.
        let now = ts(NOW);
        let mut u = alice();
        let mut account = activated("alice@example.com");
        account.activated_at = Some(now + k8s_openapi::jiff::SignedDuration::from_millis(437));
        let first = desired_status(&u, &account, &ObservedActions::default(), None, None, now);
        let mut stored: UserStatus =
            serde_json::from_value(serde_json::to_value(&first).unwrap()).unwrap();
        if let Some(t) = stored.activated_at.as_mut() {
            t.0 = Timestamp::from_second(t.0.as_second()).unwrap();
        }
        u.status = Some(stored.clone());
        let again = desired_status(&u, &account, &ObservedActions::default(), None, None, now);
        assert_eq!(again, stored);
    }
}
