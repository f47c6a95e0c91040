//! Carries out a User [`Plan`]: the account writes (leaving an old account, Kill Session, the
//! invitation and its email), the API-key Secret, the status, and an Event for each.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, ResourceExt};
use usher_crds::{ApiKeyStatus, User, UserPhase};

use super::{
    plan::{self, Failure, KeyPlan, KeyWrite, Observed, Plan, Valid},
    status,
};
use crate::{
    account::{Account, PendingInvitation},
    apikey::{self, secret::Issued},
    controller::{context::Context, error::Error, status::apply_status},
    invitation::InvitationToken,
    mail::{Invitation, invitation_email},
    runtime::api::delete_if_present,
};

/// What carrying out a plan left behind.
pub struct Outcome {
    /// The account as last written.
    pub account: Account,
    /// The status of the key in force, if any.
    pub api_key: Option<ApiKeyStatus>,
    /// When the key's rotation is due.
    pub key_due: Option<Duration>,
}

/// Writes `status` when it differs from the User's.
pub async fn write_status(
    ctx: &Context,
    user: &User,
    status: &usher_crds::UserStatus,
) -> Result<(), Error> {
    apply_status(
        &Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default()),
        user,
        user.status.as_ref(),
        status,
    )
    .await
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
        ctx.event(user, failure.reason.as_str(), failure.message.clone())
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
    let mut account = observed.account;
    if let Some((id, delete)) = &plan.leave
        && *delete
    {
        let _guard = ctx.lock_account(id).await;
        ctx.accounts.delete_id(id).await?;
        tracing::info!(
            account = %id,
            "account deleted: its last membership changed login"
        );
    }
    if plan.kill_sessions {
        account = ctx
            .accounts
            .modify(account, |a| {
                a.sessions_revoked_at = Some(now);
                Ok::<_, Error>(true)
            })
            .await?;
        ctx.event(
            user,
            "SessionsKilled",
            format!("every session of {} ends at its next request", valid.login),
        )
        .await;
    }
    if let Some(why) = plan.invite {
        match invite(ctx, user, valid, account.clone(), now).await {
            Ok(a) => {
                account = a;
                let (reason, verb) = why.event();
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
                let api_key = user.status.as_ref().and_then(|s| s.api_key.clone());
                let status = status::desired_status(
                    user,
                    &account,
                    &plan.observed_if_mail_fails,
                    api_key,
                    Some(&e.to_string()),
                    now,
                );
                write_status(ctx, user, &status).await?;
                return Err(Error::Mail(e));
            }
            Err(e) => return Err(e),
        }
    }
    let (api_key, key_due) =
        api_key(ctx, user, valid, &plan.api_key, observed.key_secret, now).await?;
    Ok(Outcome {
        account,
        api_key,
        key_due,
    })
}

/// Carries out the key part of the plan: the status of the key in force and when its rotation
/// is due.
async fn api_key(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    key: &KeyPlan,
    secret: Option<Secret>,
    now: Timestamp,
) -> Result<(Option<ApiKeyStatus>, Option<Duration>), Error> {
    let name = user.api_key_secret_name();
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    match key {
        KeyPlan::Nothing => Ok((None, None)),
        KeyPlan::Revoke => {
            delete_if_present(&secrets, &name).await?;
            ctx.event(
                user,
                "ApiKeyRevoked",
                format!("deleted Secret {name}; the key stops working"),
            )
            .await;
            Ok((None, None))
        }
        KeyPlan::Taken => {
            ctx.event(
                user,
                "ApiKeySecretTaken",
                format!("Secret {name} exists and is not this User's; set spec.apiKey.secretName to another name"),
            )
            .await;
            Ok((None, None))
        }
        KeyPlan::Keep { key, issued_at } => {
            let (status, due) = plan::key_status(user, key, *issued_at, now);
            Ok((Some(status), due))
        }
        KeyPlan::Write(why) => {
            let renewed =
                apikey::renew(&secrets, user, &valid.organisation.name_any(), secret, now).await?;
            let (reason, verb) = match why {
                KeyWrite::Issue => ("ApiKeyIssued", "issued"),
                KeyWrite::Renew | KeyWrite::Rotate => ("ApiKeyRenewed", "renewed"),
            };
            ctx.event(
                user,
                reason,
                format!(
                    "API key {verb} in Secret {name} ({})",
                    renewed.key.fingerprint()
                ),
            )
            .await;
            let issued_at = Issued::read(&renewed.secret, user).issued_at.unwrap_or(now);
            let (status, due) = plan::key_status(user, &renewed.key, issued_at, now);
            Ok((Some(status), due))
        }
    }
}

/// Issues a new token (replacing any other), emails it, and records that it was sent.
async fn invite(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    account: Account,
    now: Timestamp,
) -> Result<Account, Error> {
    let token = InvitationToken::generate()?;
    let ttl = k8s_openapi::jiff::SignedDuration::try_from(ctx.settings.invitation_ttl)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::from_hours(24));
    let expires_at = now.checked_add(ttl).unwrap_or(now);
    let issued_by = format!(
        "{}/{}",
        user.namespace().unwrap_or_default(),
        user.name_any()
    );
    let pending = PendingInvitation {
        token_hash: token.hash(),
        expires_at,
        sent_at: None,
        issued_by,
    };
    let mut account = ctx
        .accounts
        .modify(account, |a| {
            if a.is_activated() {
                return Ok::<_, Error>(false);
            }
            a.invitation = Some(pending.clone());
            Ok(true)
        })
        .await?;
    if account.is_activated() {
        return Ok(account);
    }
    let message = invitation_email(
        &ctx.settings.mail_from,
        &Invitation {
            login: &valid.login,
            full_name: &user.spec.full_name,
            organisation: &valid.organisation.spec.display_name,
            link: &token.link(&ctx.settings.public_url),
            expires: &expires_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        },
    )?;
    if let Err(e) = ctx.mailer.send(message).await {
        ctx.metrics.invitation("failed");
        return Err(e.into());
    }
    ctx.metrics.invitation("sent");
    account = ctx
        .accounts
        .modify(account, |a| match a.invitation.as_mut() {
            Some(inv) if inv.token_hash == pending.token_hash => {
                inv.sent_at = Some(now);
                Ok::<_, Error>(true)
            }
            _ => Ok(false),
        })
        .await?;
    Ok(account)
}
