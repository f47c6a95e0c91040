//! Carries out the key part of a User [`Plan`]: the key is recorded in (or taken out of) the
//! account first, where it authenticates; then its Secret is written from there, created,
//! replaced when someone changed it, deleted when the key was disabled or moved.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, ResourceExt, api::PostParams};
use usher_crds::{ApiKeyStatus, User};

use super::{
    plan::{KeyPlan, KeyWrite, Observed, Plan, Valid},
    status,
};
use crate::{
    account::Account,
    apikey::{
        delivery,
        renew::{self, NewKey, current},
    },
    controller::{context::Context, error::Error},
    reason::Reason,
    runtime::api::delete_if_present,
};

/// The account as written, the status of the key in force, and when its rotation is due.
pub type KeyOutcome = (Account, Option<ApiKeyStatus>, Option<Duration>);

/// Carries out `plan.api_key` (and the removal of a stale Secret).
pub async fn apply(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    plan: &Plan,
    mut account: Account,
    observed: &Observed,
) -> Result<KeyOutcome, Error> {
    let now = observed.now;
    let name = user.api_key_secret_name();
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    if plan.remove_stale_secret
        && let Some(stale) = observed.stale_secret.as_ref()
    {
        let stale_name = stale.name_any();
        delete_if_present(&secrets, &stale_name).await?;
        ctx.key_secrets
            .forget(&user.namespace().unwrap_or_default(), &stale_name);
        ctx.event(
            user,
            Reason::ApiKeySecretMoved,
            format!("deleted Secret {stale_name}: the key is delivered in Secret {name} now"),
        )
        .await;
    }
    match &plan.api_key {
        KeyPlan::Nothing => return Ok((account, None, None)),
        KeyPlan::Revoke {
            recorded,
            delivered,
        } => {
            if *recorded {
                account = ctx
                    .accounts
                    .modify(account, |a| Ok::<_, Error>(renew::revoke(a, user)))
                    .await?;
            }
            if *delivered {
                delete_if_present(&secrets, &name).await?;
                ctx.key_secrets
                    .forget(&user.namespace().unwrap_or_default(), &name);
            }
            ctx.event(
                user,
                Reason::ApiKeyRevoked,
                format!("the key stops working; Secret {name} is deleted"),
            )
            .await;
            return Ok((account, None, None));
        }
        KeyPlan::Taken => {
            ctx.warning(
                user,
                Reason::ApiKeySecretTaken,
                format!("Secret {name} exists and is not this User's; set spec.apiKey.secretName to another name"),
            )
            .await;
            return Ok((account, None, None));
        }
        KeyPlan::Keep {
            deliver,
            record_secret_name,
        } => {
            if *record_secret_name {
                // secretName changed: the account says where the key is delivered now.
                account = ctx
                    .accounts
                    .modify(account, |a| {
                        let record = a.membership_mut(user).api_key.as_mut();
                        Ok::<_, Error>(record.is_some_and(|k| {
                            k.secret_name = name.clone();
                            true
                        }))
                    })
                    .await?;
            }
            let existed = observed.key_secret.is_some();
            if *deliver
                && write_secret(ctx, user, valid, &account, observed.key_secret.as_ref()).await?
                && existed
            {
                ctx.event(
                    user,
                    Reason::ApiKeySecretRepaired,
                    format!("Secret {name} did not hold this User's key as issued; written again"),
                )
                .await;
            }
        }
        KeyPlan::Write { why, replacing } => {
            account = record_new_key(ctx, user, account, replacing.clone(), now).await?;
            write_secret(ctx, user, valid, &account, observed.key_secret.as_ref()).await?;
            let (action, marker) = match why {
                KeyWrite::Issue => (
                    Some(crate::audit::Action::ApikeyCreated),
                    Some(format!(
                        "generation={}",
                        user.metadata.generation.unwrap_or_default()
                    )),
                ),
                KeyWrite::Renew => (
                    Some(crate::audit::Action::ApikeyRenewed),
                    user.annotations()
                        .get(usher_crds::ANNOTATION_RENEW_API_KEY)
                        .map(|v| format!("{}={v}", usher_crds::ANNOTATION_RENEW_API_KEY)),
                ),
                KeyWrite::Rotate => (Some(crate::audit::Action::ApikeyRenewed), None),
                // The same key, sealed again: nothing new for anyone.
                KeyWrite::Reseal => (None, None),
            };
            if let Some(action) = action {
                ctx.audit_user_unless(action, user, marker);
            }
            let (reason, verb) = match why {
                KeyWrite::Issue => (Reason::ApiKeyIssued, "issued"),
                KeyWrite::Renew | KeyWrite::Rotate | KeyWrite::Reseal => {
                    (Reason::ApiKeyRenewed, "renewed")
                }
            };
            let fingerprint = account
                .api_key(user)
                .map(|k| crate::apikey::fingerprint(&k.hash))
                .unwrap_or_default();
            ctx.event(
                user,
                reason,
                format!("API key {verb} ({fingerprint}), delivered in Secret {name}"),
            )
            .await;
        }
    }
    let Some(record) = account.api_key(user) else {
        return Ok((account, None, None));
    };
    let (status, due) = status::key_status(user, record, now);
    Ok((account, Some(status), due))
}

/// Records a new key for `user` in its account in place of `replacing`, with the one renewal:
/// one that won meanwhile stays.
async fn record_new_key(
    ctx: &Context,
    user: &User,
    account: Account,
    replacing: Option<String>,
    now: Timestamp,
) -> Result<Account, Error> {
    let new = NewKey::generate(&ctx.keys, &account.id, user)?;
    ctx.accounts
        .modify(account, |a| {
            Ok::<_, Error>(renew::renew(a, user, &new, replacing.as_deref(), now))
        })
        .await
}

/// Writes the key the account records into `user`'s Secret: created, or replaced with the
/// resourceVersion read. False when it already delivered it.
async fn write_secret(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    account: &Account,
    existing: Option<&Secret>,
) -> Result<bool, Error> {
    let (Some(record), Some((key, issued_at))) =
        (account.api_key(user), current(&ctx.keys, account, user))
    else {
        return Ok(false);
    };
    let org = valid.organisation.name_any();
    if existing.is_some_and(|s| delivery::delivers(s, user, &org, record)) {
        return Ok(false);
    }
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    let mut desired = delivery::secret(user, &org, &key, issued_at);
    let written = match existing {
        Some(s) => {
            desired.metadata.resource_version = s.resource_version();
            secrets
                .replace(
                    &user.api_key_secret_name(),
                    &PostParams::default(),
                    &desired,
                )
                .await?
        }
        None => secrets.create(&PostParams::default(), &desired).await?,
    };
    ctx.key_secrets.apply_own_write(written);
    Ok(true)
}
