//! Carries out a User [`Plan`]: the account writes (leaving an old account, Kill Session, the
//! invitation and its email), the key (see `key`), the status, and an Event for each.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};
use usher_crds::{ANNOTATION_ADDED_BY, ApiKeyStatus, User, UserPhase};

use super::{
    key,
    plan::{Failure, Observed, Plan, ResetBy, Valid},
    status,
};
use crate::account::guesses::Factor;
use crate::{
    account::{Account, PasswordReset, PendingInvitation, membership_key},
    controller::{context::Context, error::Error, status::apply_status},
    link_token::LinkToken,
    mail::{
        AddedNotice, Invitation, LockedNotice, MailError, PasswordResetMail, added_notice,
        invitation_email, locked_notice, reset_email,
    },
    reason::Reason,
};

/// What carrying out a plan left behind.
pub struct Outcome {
    /// The account as last written.
    pub account: Account,
    /// The status of the key in force, if any.
    pub api_key: Option<ApiKeyStatus>,
    /// When the key's rotation is due.
    pub key_due: Option<Duration>,
    /// The invitation could not be emailed: the plan stopped there (the reset link and the key
    /// wait for the retry), and the status says so. Only the reconcile writes that status.
    pub mail_error: Option<MailError>,
}

/// Writes `status` when it differs from the User's.
pub async fn write_status(
    ctx: &Context,
    user: &User,
    status: &usher_crds::UserStatus,
) -> Result<(), Error> {
    let written = apply_status(
        &Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default()),
        user,
        user.status.as_ref(),
        status,
    )
    .await?;
    if let Some(w) = written {
        ctx.wrote(w);
    }
    Ok(())
}

/// Marks a User that cannot be provisioned: status `Failed`, and an Event when that is news.
pub async fn fail(
    ctx: &Context,
    user: &User,
    failure: &Failure,
    now: Timestamp,
) -> Result<(), Error> {
    let status = status::failed_status(user, failure, now);
    if user.status.as_ref().and_then(|s| s.phase) != Some(UserPhase::Failed) {
        ctx.warning(user, failure.reason.reason(), failure.message.clone())
            .await;
    }
    write_status(ctx, user, &status).await
}

/// Carries out `plan` for `user`, in the plan's order. When the invitation email fails, the
/// status says so and the error is returned (the reconcile is retried).
pub async fn execute(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    observed: Observed,
    plan: &Plan,
) -> Result<Outcome, Error> {
    let now = observed.now;
    let mut account = observed.account.clone();
    if let Some((id, delete)) = &plan.leave {
        leave(ctx, user, id, *delete).await?;
    }
    if plan.kill_sessions {
        // To the millisecond: a sign-in just after the kill is not caught by it.
        let at = Timestamp::now();
        account = ctx
            .accounts
            .modify(account, |a| {
                a.membership_mut(user).sessions_revoked_at = Some(at);
                Ok::<_, Error>(true)
            })
            .await?;
        ctx.audit_user_unless(
            crate::audit::Action::SessionKilled,
            user,
            one_shot(user, usher_crds::ANNOTATION_KILL_SESSIONS),
        );
        ctx.event(
            user,
            Reason::SessionsKilled,
            format!(
                "the sessions of {} in this organisation end at their next request",
                valid.login
            ),
        )
        .await;
    }
    if let Some(why) = plan.invite {
        match invite(
            ctx,
            user,
            valid,
            account.clone(),
            plan.record_emailed.clone(),
            now,
        )
        .await
        {
            Ok(a) => {
                account = a;
                let (reason, verb) = why.event();
                ctx.audit_user_unless(crate::audit::Action::InvitationSent, user, None);
                let expires = account
                    .invitation
                    .as_ref()
                    .map(|i| i.expires_at.to_string())
                    .unwrap_or_default();
                ctx.event(
                    user,
                    reason,
                    format!(
                        "invitation {verb} to {}; the link expires {expires}",
                        valid.login
                    ),
                )
                .await;
            }
            Err(Error::Mail(e)) => {
                return Ok(Outcome {
                    api_key: user.status.as_ref().and_then(|s| s.api_key.clone()),
                    account,
                    key_due: None,
                    mail_error: Some(e),
                });
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(by) = plan.reset {
        account = reset(ctx, user, valid, account, by, now).await?;
        // Asked with the annotation (kubectl, or the admin API, which recorded it already);
        // a request from the sign-in page or the CLI is recorded where it was made.
        if by == ResetBy::Annotation {
            ctx.audit_user_unless(
                crate::audit::Action::PasswordResetRequested,
                user,
                one_shot(user, usher_crds::ANNOTATION_RESET_PASSWORD),
            );
        }
    }
    if plan.notify_added {
        notify_added(ctx, user, valid).await?;
    }
    if plan.notify_locked {
        account = notify_locked(ctx, user, valid, account).await?;
    }
    let (account, api_key, key_due) =
        key::apply(ctx, user, valid, plan, account, &observed).await?;
    Ok(Outcome {
        account,
        api_key,
        key_due,
        mail_error: None,
    })
}

/// Tells the person that this organisation added their login, linked to the account they
/// already use (no invitation: nothing to accept). A mail failure fails the reconcile before
/// the status records the User as provisioned, so the notice goes out once the mail server is
/// back (at least once: a crash between the send and the status write sends it again).
async fn notify_added(ctx: &Context, user: &User, valid: &Valid) -> Result<(), Error> {
    let added_by = user
        .annotations()
        .get(ANNOTATION_ADDED_BY)
        .map(String::as_str);
    let message = added_notice(
        &ctx.settings.mail_from,
        &AddedNotice {
            login: &valid.login,
            full_name: &user.spec.full_name,
            organisation: &valid.organisation.spec.display_name,
            added_by,
        },
    )?;
    ctx.mailer.send(message).await?;
    ctx.event(
        user,
        Reason::AddedNoticeSent,
        format!(
            "{} already had an account: linked without an invitation, and told by email",
            valid.login
        ),
    )
    .await;
    Ok(())
}

/// Tells the person that sign-in with a factor stopped, then records that they were told (at
/// least once: a crash between the two tells them again).
async fn notify_locked(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    account: Account,
) -> Result<Account, Error> {
    let Some(locked_at) = account.guesses.locked_at else {
        return Ok(account);
    };
    let (factor, failures) = if account.guesses.locked(Factor::Password) {
        ("password", account.guesses.password)
    } else {
        ("two-factor code", account.guesses.code)
    };
    let message = locked_notice(
        &ctx.settings.mail_from,
        &LockedNotice {
            login: &valid.login,
            full_name: &user.spec.full_name,
            factor,
            failures,
            reset_page: &format!("{}/reset", ctx.settings.public_url.trim_end_matches('/')),
        },
    )?;
    ctx.mailer.send(message).await?;
    let account = ctx
        .accounts
        .modify(account, |a| {
            if !a.guesses.notice_due() {
                return Ok::<_, Error>(false);
            }
            a.guesses.notice_sent_at = Some(Timestamp::now().max(locked_at));
            Ok(true)
        })
        .await?;
    ctx.event(
        user,
        Reason::SignInLockedNoticeSent,
        format!(
            "sign-in of {} stopped after {failures} failed attempts in a row at the {factor}; they were told by email",
            valid.login
        ),
    )
    .await;
    Ok(account)
}

/// `user` leaves account `id` (its login changed): the account goes when `delete`, else only
/// this membership's record in it. The reconcile holds the account's lock already
/// (`plan::accounts_to_lock`).
async fn leave(ctx: &Context, user: &User, id: &str, delete: bool) -> Result<(), Error> {
    if delete {
        ctx.logouts
            .account_going(
                &ctx.accounts,
                &ctx.oidc_clients,
                &ctx.settings.public_url,
                id,
            )
            .await?;
        ctx.accounts.delete_id(id).await?;
        tracing::info!(account = %id, "account deleted: its last membership changed login");
    } else if let Some(old) = ctx.accounts.get_id(id).await? {
        ctx.accounts
            .modify(old, |a| {
                Ok::<_, Error>(a.memberships.remove(&membership_key(user)).is_some())
            })
            .await?;
    }
    Ok(())
}

/// Issues a password reset link (replacing any other), emails it, and records that it was sent.
/// A request in the account that another membership of the login answered meanwhile sends
/// nothing more.
async fn reset(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    account: Account,
    by: ResetBy,
    now: Timestamp,
) -> Result<Account, Error> {
    let token = LinkToken::generate()?;
    let ttl = k8s_openapi::jiff::SignedDuration::try_from(ctx.settings.reset_ttl)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::from_hours(1));
    let expires_at = now.checked_add(ttl).unwrap_or(now);
    let hash = token.hash();
    // The link answers the requests recorded until now; one recorded after this is answered by
    // a link of its own.
    let issued_at = Timestamp::now();
    let account = ctx
        .accounts
        .modify(account, |a| {
            if !a.is_activated() || (by == ResetBy::Request && !a.reset.wanted()) {
                return Ok::<_, Error>(false);
            }
            a.reset = PasswordReset {
                requested_at: Some(a.reset.requested_at.map_or(now, |r| r.max(now))),
                token_hash: Some(hash.clone()),
                expires_at: Some(expires_at),
                sent_at: None,
                sent_recent: std::mem::take(&mut a.reset.sent_recent),
            };
            Ok(true)
        })
        .await?;
    if account.reset.token_hash.as_deref() != Some(hash.as_str()) {
        return Ok(account);
    }
    let answered = account.reset.requested_at;
    let message = reset_email(
        &ctx.settings.mail_from,
        &PasswordResetMail {
            login: &valid.login,
            full_name: &user.spec.full_name,
            link: &token.link(&ctx.settings.public_url, "reset"),
            expires: &expires_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        },
    )?;
    ctx.mailer.send(message).await?;
    let account = ctx
        .accounts
        .modify(account, |a| {
            if a.reset.token_hash.as_deref() != Some(hash.as_str()) {
                return Ok::<_, Error>(false);
            }
            // Sent as of its issue (to the nanosecond, not the reconcile's whole second), or of
            // the request it answers: not of the request recorded last, which may have come
            // while the mail was on its way (it was swallowed so, and no second link went).
            a.reset.record_answered(issued_at, answered);
            Ok(true)
        })
        .await?;
    ctx.event(
        user,
        Reason::PasswordResetSent,
        format!(
            "a password reset link went to {}; it expires {expires_at}",
            valid.login
        ),
    )
    .await;
    Ok(account)
}

/// Issues a new link: emails it, then records its token's hash with the time it was sent, in
/// one write (which replaces any other link, so the previous one stops). A crash between the two
/// leaves no record: the next reconcile issues another link, and the one in the newest email is
/// the one that works. When only the record failed (the API server refused it), the plan has the
/// retry record the link already emailed (`record_emailed`) instead of emailing another.
async fn invite(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    account: Account,
    record_emailed: Option<PendingInvitation>,
    now: Timestamp,
) -> Result<Account, Error> {
    let emailed = match record_emailed {
        Some(emailed) => emailed,
        None => {
            let emailed = email_invitation(ctx, user, valid, now).await?;
            ctx.set_unrecorded(&account.id, Some(emailed.clone()));
            emailed
        }
    };
    let id = account.id.clone();
    let recorded = ctx
        .accounts
        .modify(account, |a| {
            // Accepted meanwhile (through another membership's link): nothing to record.
            if a.is_activated() {
                return Ok::<_, Error>(false);
            }
            a.invitation = Some(emailed.clone());
            Ok(true)
        })
        .await?;
    ctx.set_unrecorded(&id, None);
    Ok(recorded)
}

/// Emails `user` a new invitation link; the invitation to record.
async fn email_invitation(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    now: Timestamp,
) -> Result<PendingInvitation, Error> {
    let token = LinkToken::generate()?;
    let ttl = k8s_openapi::jiff::SignedDuration::try_from(ctx.settings.invitation_ttl)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::from_hours(24));
    let expires_at = now.checked_add(ttl).unwrap_or(now);
    let message = invitation_email(
        &ctx.settings.mail_from,
        &Invitation {
            login: &valid.login,
            full_name: &user.spec.full_name,
            organisation: &valid.organisation.spec.display_name,
            link: &token.link(&ctx.settings.public_url, "invite"),
            expires: &expires_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        },
    )?;
    if let Err(e) = ctx.mailer.send(message).await {
        ctx.metrics.invitation("failed");
        return Err(e.into());
    }
    ctx.metrics.invitation("sent");
    Ok(PendingInvitation {
        token_hash: token.hash(),
        expires_at,
        sent_at: Some(now),
        issued_by: format!(
            "{}/{}",
            user.namespace().unwrap_or_default(),
            user.name_any()
        ),
    })
}

/// The `usher.dev/audited` marker the admin API writes for the one-shot action `annotation`
/// of `user` as it stands.
fn one_shot(user: &User, annotation: &str) -> Option<String> {
    user.annotations()
        .get(annotation)
        .map(|v| format!("{annotation}={v}"))
}
