//! User reconcile: canonical login → platform account (created once, linked for further
//! memberships), one valid invitation per account, one-shot actions, status and Events.
//!
//! fetch → validate (pure) → account and invitation (I/O, under the account's lock) → desired
//! status (pure) → status patch only when it differs.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, ResourceExt,
    api::PostParams,
    runtime::{
        controller::Action,
        finalizer::{Event as FinalizerEvent, finalizer},
    },
};
use usher_crds::{
    ANNOTATION_KILL_SESSIONS, ANNOTATION_RENEW_API_KEY, ANNOTATION_RESEND_INVITATION, ApiKeyStatus,
    InvitationStatus, ObservedActions, Organisation, Profile, User, UserPhase, UserStatus,
    login::canonical_login,
};

use crate::{
    Error,
    account::{Account, PendingInvitation, account_id},
    apikey::ApiKey,
    apikey_secret::{self, Issued, rotation_due},
    conditions::{self, now},
    controller::{Context, apply_status, backoff_key},
    invitation::InvitationToken,
    mailer::{Invitation, invitation_email},
};

/// The finalizer that removes a membership (and its account with the last one).
pub const FINALIZER: &str = "usher.dev/membership";

/// How often a settled User is looked at again.
const RESYNC: Duration = Duration::from_secs(3600);

/// Why a User cannot be provisioned, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// CamelCase reason for the `Ready` condition.
    pub reason: &'static str,
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

/// Checks a User against the cluster's Organisations, Profiles and Users (pure).
pub fn validate(
    user: &User,
    organisations: &[Arc<Organisation>],
    profile_exists: bool,
    same_namespace: &[Arc<User>],
) -> Result<Valid, Failure> {
    let ns = user.namespace().unwrap_or_default();
    let login = match canonical_login(&user.spec.login) {
        Ok(c) if c == user.spec.login => c,
        Ok(c) => {
            return Err(Failure {
                reason: "InvalidLogin",
                message: format!("spec.login is not in canonical form; use {c:?}"),
            });
        }
        Err(e) => {
            return Err(Failure {
                reason: "InvalidLogin",
                message: format!("spec.login: {e}"),
            });
        }
    };
    let Some(organisation) = organisations
        .iter()
        .find(|o| o.namespace_name() == ns)
        .cloned()
    else {
        return Err(Failure {
            reason: "NoOrganisation",
            message: format!(
                "namespace {ns:?} belongs to no Organisation; create one with spec.namespace: {ns} or move the User"
            ),
        });
    };
    if !profile_exists {
        return Err(Failure {
            reason: "UnknownProfile",
            message: format!(
                "Profile {:?} does not exist; create it or set spec.profile to an existing one (kubectl get profiles)",
                user.spec.profile
            ),
        });
    }
    // Two memberships of one login in one organisation: the older one wins.
    let key = |u: &User| (u.creation_timestamp().map(|t| t.0), u.name_any());
    if let Some(first) = same_namespace.iter().find(|u| {
        u.uid() != user.uid()
            && u.spec.login == user.spec.login
            && u.metadata.deletion_timestamp.is_none()
            && key(u) < key(user)
    }) {
        return Err(Failure {
            reason: "DuplicateLogin",
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

/// The status a User should have (pure).
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
    } else if account.is_activated() {
        UserPhase::Active
    } else if sent.is_some() {
        UserPhase::Invited
    } else {
        UserPhase::Pending
    };
    let mut conds = current.conditions.clone();
    let expired = invitation.is_some_and(|i| i.expires_at <= now);
    let (ready, reason, message) = match phase {
        UserPhase::Active => (true, "Active", "the account is active".to_owned()),
        UserPhase::Locked => (
            false,
            "Locked",
            "spec.locked is true: this membership cannot authenticate".to_owned(),
        ),
        UserPhase::Invited if expired => (
            false,
            "InvitationExpired",
            format!(
                "the invitation expired; send a new one with kubectl annotate user {} -n {} {ANNOTATION_RESEND_INVITATION}=\"$(date +%s)\" --overwrite",
                user.name_any(),
                user.namespace().unwrap_or_default()
            ),
        ),
        UserPhase::Invited => (
            false,
            "Invited",
            format!("waiting for {} to accept the invitation", account.login),
        ),
        _ => (
            false,
            "Pending",
            "the invitation has not been sent yet".to_owned(),
        ),
    };
    conditions::set(&mut conds, "Ready", ready, reason, message, generation, now);
    if let Some(err) = mail_error {
        conditions::set(
            &mut conds,
            "InvitationSent",
            false,
            "MailUnavailable",
            format!("the invitation email could not be sent ({err}); retrying"),
            generation,
            now,
        );
    } else if let Some(inv) = invitation.filter(|i| i.sent_at.is_some()) {
        conditions::set(
            &mut conds,
            "InvitationSent",
            true,
            "Sent",
            format!(
                "sent to {}; the link expires {}",
                account.login, inv.expires_at
            ),
            generation,
            now,
        );
    } else if account.is_activated() {
        conds.retain(|c| c.type_ != "InvitationSent");
    }
    UserStatus {
        phase: Some(phase),
        account_id: Some(account.id.clone()),
        invitation: invitation
            .filter(|i| i.sent_at.is_some())
            .map(|i| InvitationStatus {
                sent_at: i.sent_at.map(Time),
                expires_at: Some(Time(i.expires_at)),
            }),
        activated_at: account.activated_at.map(Time),
        mfa_enrolled: Some(account.mfa_enrolled_at.is_some()),
        api_key,
        sessions_revoked_at: account.sessions_revoked_at.map(Time),
        observed_actions: (observed != &ObservedActions::default()).then(|| observed.clone()),
        observed_generation: generation,
        conditions: conds,
    }
}

/// The status of a User that cannot be provisioned (pure).
pub fn failed_status(user: &User, failure: &Failure, now: Timestamp) -> UserStatus {
    let mut status = user.status.clone().unwrap_or_default();
    status.phase = Some(UserPhase::Failed);
    status.observed_generation = user.metadata.generation;
    conditions::set(
        &mut status.conditions,
        "Ready",
        false,
        failure.reason,
        failure.message.clone(),
        user.metadata.generation,
        now,
    );
    status
}

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    ctx.wait_synced().await;
    ctx.mark_counts_ready();
    let ns = user.namespace().unwrap_or_default();
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.recount(&user);
    let key = backoff_key(user.as_ref());
    // kube's finalizer helper adds ours with a JSON patch that tests the finalizers it was
    // given; a cached copy that predates our finalizer makes that test fail (422). Read a User
    // without it live (once per User, at creation).
    let user = if user.metadata.deletion_timestamp.is_none()
        && !user.finalizers().iter().any(|f| f == FINALIZER)
    {
        match api.get_opt(&user.name_any()).await? {
            Some(live) => Arc::new(live),
            None => return Ok(Action::await_change()),
        }
    } else {
        user
    };
    let result = finalizer(&api, FINALIZER, user, |event| async {
        match event {
            FinalizerEvent::Apply(u) => apply(u, &ctx).await,
            FinalizerEvent::Cleanup(u) => cleanup(u, &ctx).await,
        }
    })
    .await
    .or_else(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => Err(e),
        // Already gone: another reconcile removed the finalizer first.
        kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s)) if s.code == 404 => {
            Ok(Action::await_change())
        }
        other => Err(Error::Finalizer(other.to_string())),
    });
    ctx.metrics
        .reconciled("User", started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// True when a one-shot action annotation differs from what the status says was done.
fn has_pending_action(user: &User) -> bool {
    let observed = user
        .status
        .as_ref()
        .and_then(|s| s.observed_actions.clone())
        .unwrap_or_default();
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

async fn apply(user: Arc<User>, ctx: &Context) -> Result<Action, Error> {
    let now = now();
    let ns = user.namespace().unwrap_or_default();
    // A reconcile triggered by another object (the account Secret) may see a User older than
    // the status that recorded an action as done; read it live before acting, so an action is
    // never repeated and the recorded value never goes back.
    let user = if has_pending_action(&user) {
        match Api::<User>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&user.name_any())
            .await?
        {
            Some(live) => Arc::new(live),
            None => return Ok(Action::await_change()),
        }
    } else {
        user
    };
    let same_namespace = ctx
        .users
        .state_filter(|u| u.namespace().as_deref() == Some(ns.as_str()));
    let profile_exists = ctx
        .profiles
        .find(|p| p.name_any() == user.spec.profile)
        .is_some();
    let mut validated = validate(
        &user,
        &ctx.organisations.state(),
        profile_exists,
        &same_namespace,
    );
    // Fail for a missing Organisation or Profile only on fresh data: the caches may not have
    // seen one created a moment before this User (one `kubectl apply` of all three).
    if let Err(Failure {
        reason: "NoOrganisation" | "UnknownProfile",
        ..
    }) = validated
    {
        let orgs: Vec<Arc<Organisation>> = Api::<Organisation>::all(ctx.client.clone())
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect();
        let profile_exists = Api::<Profile>::all(ctx.client.clone())
            .get_opt(&user.spec.profile)
            .await?
            .is_some();
        validated = validate(&user, &orgs, profile_exists, &same_namespace);
    }
    let valid = match validated {
        Ok(v) => v,
        Err(failure) => {
            let status = failed_status(&user, &failure, now);
            if user.status.as_ref().and_then(|s| s.phase) != Some(UserPhase::Failed) {
                ctx.event(user.as_ref(), failure.reason, failure.message.clone())
                    .await;
            }
            apply_status(
                &Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default()),
                user.as_ref(),
                user.status.as_ref(),
                &status,
            )
            .await?;
            return Ok(Action::await_change());
        }
    };

    let _guard = ctx.lock_account(&account_id(&valid.login)).await;
    let (mut account, _) = ctx.accounts.get_or_create(&valid.login).await?;
    // spec.login changed: this membership now belongs to the new login's account; the old
    // account goes with its last membership.
    if let Some(previous) = user
        .status
        .as_ref()
        .and_then(|s| s.account_id.clone())
        .filter(|id| *id != account.id)
    {
        leave_account(ctx, &user, &previous).await?;
    }
    let mut observed = user
        .status
        .as_ref()
        .and_then(|s| s.observed_actions.clone())
        .unwrap_or_default();

    if let Some(value) = user.action(ANNOTATION_KILL_SESSIONS)
        && observed.kill_sessions.as_deref() != Some(value)
    {
        account = update_account(ctx, account, |a| {
            a.sessions_revoked_at = Some(now);
            true
        })
        .await?;
        observed.kill_sessions = Some(value.to_owned());
        ctx.event(
            user.as_ref(),
            "SessionsKilled",
            format!("every session of {} ends at its next request", valid.login),
        )
        .await;
    }

    let resend = user
        .action(ANNOTATION_RESEND_INVITATION)
        .filter(|v| observed.resend_invitation.as_deref() != Some(*v))
        .map(str::to_owned);
    let mut mail_error = None;
    if !account.is_activated() {
        // Issued but never recorded as sent means the token was lost (a crash, a mail outage):
        // issue a new one, which also invalidates the old.
        let unsent = account
            .invitation
            .as_ref()
            .is_none_or(|i| i.sent_at.is_none());
        if unsent || resend.is_some() {
            match invite(ctx, &user, &valid, account.clone(), now).await {
                Ok(a) => {
                    account = a;
                    let (reason, verb) = if resend.is_some() {
                        ("InvitationResent", "sent again")
                    } else {
                        ("Invited", "sent")
                    };
                    let expires = account
                        .invitation
                        .as_ref()
                        .map(|i| i.expires_at.to_string())
                        .unwrap_or_default();
                    ctx.event(
                        user.as_ref(),
                        reason,
                        format!(
                            "invitation {verb} to {}; the link expires {expires}",
                            valid.login
                        ),
                    )
                    .await;
                }
                Err(Error::Mail(e)) => {
                    mail_error = Some(e.to_string());
                    let api_key = user.status.as_ref().and_then(|s| s.api_key.clone());
                    let status = desired_status(
                        &user,
                        &account,
                        &observed,
                        api_key,
                        mail_error.as_deref(),
                        now,
                    );
                    apply_status(
                        &Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default()),
                        user.as_ref(),
                        user.status.as_ref(),
                        &status,
                    )
                    .await?;
                    return Err(Error::Mail(e));
                }
                Err(e) => return Err(e),
            }
        }
    }
    if let Some(value) = resend {
        observed.resend_invitation = Some(value);
    }

    let renew = user
        .action(ANNOTATION_RENEW_API_KEY)
        .filter(|v| observed.renew_api_key.as_deref() != Some(*v))
        .map(str::to_owned);
    let (api_key, key_due) = api_key(ctx, &user, &valid, renew.is_some(), now).await?;
    if let Some(value) = renew {
        observed.renew_api_key = Some(value);
    }

    let status = desired_status(
        &user,
        &account,
        &observed,
        api_key,
        mail_error.as_deref(),
        now,
    );
    let before = user.status.as_ref().and_then(|s| s.phase);
    if before != status.phase {
        match (before, status.phase) {
            (Some(UserPhase::Invited | UserPhase::Pending), Some(UserPhase::Active)) => {
                ctx.event(
                    user.as_ref(),
                    "Activated",
                    format!("{} set a password", valid.login),
                )
                .await;
            }
            (_, Some(UserPhase::Locked)) => {
                ctx.event(
                    user.as_ref(),
                    "Locked",
                    "this membership cannot authenticate".into(),
                )
                .await;
            }
            (Some(UserPhase::Locked), _) => {
                ctx.event(
                    user.as_ref(),
                    "Unlocked",
                    "this membership can authenticate again".into(),
                )
                .await;
            }
            _ => {}
        }
    }
    let requeue = match account
        .invitation
        .as_ref()
        .filter(|_| !account.is_activated())
    {
        Some(inv) if inv.expires_at > now => {
            let secs = (inv.expires_at.as_second() - now.as_second()).max(1) as u64;
            Duration::from_secs(secs + 1).min(RESYNC)
        }
        _ => RESYNC,
    };
    let requeue = key_due.map_or(requeue, |due| due.min(requeue));
    apply_status(
        &Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default()),
        user.as_ref(),
        user.status.as_ref(),
        &status,
    )
    .await?;
    Ok(Action::requeue(requeue))
}

/// Keeps the API-key Secret as the spec says: issued when enabled, renewed on request or when
/// `rotateEvery` is due, deleted when disabled. Returns the status and when rotation is due.
async fn api_key(
    ctx: &Context,
    user: &User,
    valid: &Valid,
    renew: bool,
    now: Timestamp,
) -> Result<(Option<ApiKeyStatus>, Option<Duration>), Error> {
    let enabled = user.api_key_enabled();
    let recorded = user.status.as_ref().is_some_and(|s| s.api_key.is_some());
    if !enabled && !recorded {
        // No key wanted and none issued: nothing to read or delete.
        return Ok((None, None));
    }
    let ns = user.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = user.api_key_secret_name();
    let existing = secrets.get_opt(&name).await?;
    let issued = existing.as_ref().map(|s| Issued::read(s, user));
    let Some(spec) = user.spec.api_key.as_ref().filter(|k| k.enabled) else {
        if issued.as_ref().is_some_and(|i| i.ours) {
            crate::api::delete_if_present(&secrets, &name).await?;
            ctx.event(
                user,
                "ApiKeyRevoked",
                format!("deleted Secret {name}; the key stops working"),
            )
            .await;
        }
        return Ok((None, None));
    };
    if issued.as_ref().is_some_and(|i| !i.ours) {
        // Never overwrite a Secret Usher did not make.
        ctx.event(
            user,
            "ApiKeySecretTaken",
            format!("Secret {name} exists and is not this User's; set spec.apiKey.secretName to another name"),
        )
        .await;
        return Ok((None, None));
    }
    let every = spec.rotate_every.map(|d| d.get());
    let current = issued.as_ref().and_then(|i| i.key.clone().zip(i.issued_at));
    let due = current
        .as_ref()
        .is_some_and(|(_, at)| rotation_due(Some(*at), every, now));
    let (key, issued_at) = match current {
        Some(current) if !renew && !due => current,
        current => {
            let key = ApiKey::generate()?;
            let grace = spec.grace_period.map(|d| d.get()).unwrap_or_default();
            let previous = current
                .as_ref()
                .filter(|_| !grace.is_zero())
                .map(|(old, _)| {
                    (
                        old,
                        now.checked_add(SignedDuration::try_from(grace).unwrap_or_default())
                            .unwrap_or(now),
                    )
                });
            let org = valid.organisation.name_any();
            let rv = issued.as_ref().and_then(|i| i.resource_version.clone());
            let secret = apikey_secret::secret(user, &org, &key, now, previous, rv.clone());
            // One write: the new key replaces the old at once (readers never see half).
            let written = if rv.is_some() {
                secrets
                    .replace(&name, &PostParams::default(), &secret)
                    .await
            } else {
                secrets.create(&PostParams::default(), &secret).await
            };
            written?;
            let (reason, verb) = if current.is_some() {
                ("ApiKeyRenewed", "renewed")
            } else {
                ("ApiKeyIssued", "issued")
            };
            ctx.event(
                user,
                reason,
                format!("API key {verb} in Secret {name} ({})", key.fingerprint()),
            )
            .await;
            (key, now)
        }
    };
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
    Ok((
        Some(ApiKeyStatus {
            secret_name: Some(name),
            issued_at: Some(Time(issued_at)),
            fingerprint: Some(key.fingerprint()),
        }),
        next,
    ))
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
    let mut account = update_account(ctx, account, |a| {
        if a.is_activated() {
            return false;
        }
        a.invitation = Some(pending.clone());
        true
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
    account = update_account(ctx, account, |a| match a.invitation.as_mut() {
        Some(inv) if inv.token_hash == pending.token_hash => {
            inv.sent_at = Some(now);
            true
        }
        _ => false,
    })
    .await?;
    Ok(account)
}

/// Applies `change` to `account` (as last read or written) and writes it; on a conflict reads it
/// again and retries. `change` returns false when nothing needs writing.
async fn update_account(
    ctx: &Context,
    account: Account,
    change: impl Fn(&mut Account) -> bool,
) -> Result<Account, Error> {
    let login = account.login.clone();
    let mut current = account;
    for _ in 0..8 {
        let mut changed = current.clone();
        if !change(&mut changed) {
            return Ok(current);
        }
        if let Some(stored) = ctx.accounts.update(&changed).await? {
            return Ok(stored);
        }
        current = ctx.accounts.get_or_create(&login).await?.0;
    }
    Err(Error::AccountContention)
}

/// `user` no longer belongs to account `id`: delete it if no other live membership does.
async fn leave_account(ctx: &Context, user: &User, id: &str) -> Result<(), Error> {
    let _guard = ctx.lock_account(id).await;
    let others = ctx.users.find(|u| {
        u.uid() != user.uid()
            && u.metadata.deletion_timestamp.is_none()
            && canonical_login(&u.spec.login).is_ok_and(|l| account_id(&l) == id)
    });
    if others.is_none() {
        ctx.accounts.delete_id(id).await?;
        tracing::info!(
            account = id,
            "account deleted: its last membership changed login"
        );
    }
    Ok(())
}

/// Removes the membership; the account goes with its last membership.
async fn cleanup(user: Arc<User>, ctx: &Context) -> Result<Action, Error> {
    let Ok(login) = canonical_login(&user.spec.login) else {
        return Ok(Action::await_change());
    };
    let _guard = ctx.lock_account(&account_id(&login)).await;
    let others = ctx.users.find(|u| {
        u.uid() != user.uid()
            && u.metadata.deletion_timestamp.is_none()
            && canonical_login(&u.spec.login).ok().as_deref() == Some(login.as_str())
    });
    if others.is_none() {
        ctx.accounts.delete(&login).await?;
        tracing::info!(%login, "account deleted with its last membership");
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use usher_crds::{OrganisationSpec, UserSpec};

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

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

    fn orgs() -> Vec<Arc<Organisation>> {
        vec![Arc::new(Organisation::new(
            "acme",
            OrganisationSpec {
                display_name: "ACME".into(),
                ..Default::default()
            },
        ))]
    }

    #[test]
    fn validation_names_each_failure_and_its_fix() {
        let alice = user("alice", "alice@example.com", "2026-11-27T10:00:00Z");
        assert!(validate(&alice, &orgs(), true, &[]).is_ok());

        let upper = user("a2", "Alice@Example.com", "2026-11-27T10:00:00Z");
        let f = validate(&upper, &orgs(), true, &[]).unwrap_err();
        assert_eq!(f.reason, "InvalidLogin");
        assert!(f.message.contains("\"alice@example.com\""), "{}", f.message);

        let f = validate(&alice, &[], true, &[]).unwrap_err();
        assert_eq!(f.reason, "NoOrganisation");
        assert!(f.message.contains("spec.namespace: acme"), "{}", f.message);

        let f = validate(&alice, &orgs(), false, &[]).unwrap_err();
        assert_eq!(f.reason, "UnknownProfile");
    }

    #[test]
    fn of_two_memberships_with_one_login_in_one_organisation_the_older_wins() {
        let old = Arc::new(user("first", "bob@example.com", "2026-11-27T10:00:00Z"));
        let new = Arc::new(user("second", "bob@example.com", "2026-11-27T11:00:00Z"));
        let both = [old.clone(), new.clone()];
        assert!(validate(&old, &orgs(), true, &both).is_ok());
        let f = validate(&new, &orgs(), true, &both).unwrap_err();
        assert_eq!(f.reason, "DuplicateLogin");
        assert!(f.message.contains("\"first\""), "{}", f.message);
    }

    #[test]
    fn status_follows_the_account_and_the_lock() {
        let now = ts("2026-11-27T12:00:00Z");
        let mut u = user("alice", "alice@example.com", "2026-11-27T10:00:00Z");
        let mut account = Account::new("alice@example.com");
        let none = ObservedActions::default();

        let s = desired_status(&u, &account, &none, None, None, now);
        assert_eq!(s.phase, Some(UserPhase::Pending));

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
        let ready = conditions::get(&s.conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Invited")
        );

        // Past the expiry the condition says how to send a new link.
        let later = ts("2026-11-29T00:00:00Z");
        let s = desired_status(&u, &account, &none, None, None, later);
        let ready = conditions::get(&s.conditions, "Ready").unwrap();
        assert_eq!(ready.reason, "InvitationExpired");
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
        let sent = conditions::get(&s.conditions, "InvitationSent").unwrap();
        assert_eq!(
            (sent.status.as_str(), sent.reason.as_str()),
            ("False", "MailUnavailable")
        );
    }

    #[test]
    fn a_settled_status_is_computed_identically_again() {
        let now = ts("2026-11-27T12:00:00Z");
        let mut u = user("alice", "alice@example.com", "2026-11-27T10:00:00Z");
        let mut account = Account::new("alice@example.com");
        account.password_hash = Some("$argon2id$x".into());
        account.activated_at = Some(now);
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
}
