//! The User reconcile, one call per step: the User (as this process last wrote it when the cache
//! lags; live when an action is pending) → its finalizer (added in the same reconcile) →
//! validate (pure) → under the account's lock: the account (from the cache), what is around it
//! → plan (pure) → apply → status (pure) → write it only when it differs. Deleting a User
//! (finalizer) removes its membership and the account with its last one. A new User costs three
//! writes: the finalizer, the account with its sent invitation, the status.

use std::sync::Arc;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use usher_crds::User;

use super::{apply, observe, plan, status};
use crate::{
    account::{account_id, membership_key},
    controller::{
        context::{Context, MANAGER},
        error::Error,
    },
    runtime::clock::now,
};

/// The finalizer that removes a membership (and its account with the last one).
pub const FINALIZER: &str = "usher.dev/membership";

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The version this process wrote last, if the cache has not caught up with it yet.
    let user = ctx.fresher(user);
    ctx.recount(&user);
    // A lock, an edit or a deletion may end what the account's sessions gave apps.
    ctx.logouts.touch_user(&user);
    let ours = user.finalizers().iter().any(|f| f == FINALIZER);
    if user.metadata.deletion_timestamp.is_some() {
        if ours {
            cleanup(user.clone(), &ctx).await?;
            finalize(&user, &ctx, false).await?;
            // Once per User, though a stale copy may be reconciled again before it is gone.
            if ctx.first_removal(&user) {
                ctx.audit_user(
                    crate::audit::Action::UserRemoved,
                    &user,
                    crate::audit::Outcome::Success,
                );
            }
        }
        return Ok(Action::await_change());
    }
    // The finalizer first, so an account is never made for a User whose deletion would not
    // remove it; then, in the same reconcile, the rest.
    let user = if ours {
        user
    } else {
        match finalize(&user, &ctx, true).await? {
            Some(u) => u,
            None => return Ok(Action::await_change()),
        }
    };
    provision(user, &ctx).await
}

/// Adds (`add`) or removes our finalizer with a merge patch that carries the resourceVersion
/// read, so a stale copy is refused (409) instead of dropping someone else's finalizer; then
/// reads the User live and tries once more. The User as written, or `None` when it is gone.
async fn finalize(user: &User, ctx: &Context, add: bool) -> Result<Option<Arc<User>>, Error> {
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    let mut current = Arc::new(user.clone());
    for attempt in 0..2 {
        let mut finalizers: Vec<String> = current
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        if add {
            finalizers.push(FINALIZER.to_owned());
        }
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": current.resource_version(),
            "finalizers": finalizers,
        }});
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        match api
            .patch(&current.name_any(), &params, &Patch::Merge(&patch))
            .await
        {
            Ok(written) => {
                ctx.wrote(written.clone());
                return Ok(Some(Arc::new(written)));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => {
                match observe::live(&current, ctx).await? {
                    Some(live) => current = live,
                    None => return Ok(None),
                }
                let has = current.finalizers().iter().any(|f| f == FINALIZER);
                if has == add {
                    return Ok(Some(current));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Finalizer(format!(
        "the finalizer of User {} kept changing under us",
        user.name_any()
    )))
}

async fn provision(user: Arc<User>, ctx: &Context) -> Result<Action, Error> {
    let now = now();
    let Some(user) = observe::current(user, ctx).await? else {
        return Ok(Action::await_change());
    };
    let valid = match observe::validated(&user, ctx).await? {
        Ok(valid) => valid,
        Err(failure) => {
            apply::fail(ctx, &user, &failure, now).await?;
            return Ok(Action::await_change());
        }
    };
    // Every account this reconcile may touch, locked in one global order before acting.
    let _locks = ctx
        .locks
        .lock(&plan::accounts_to_lock(&user, &account_id(&valid.login)))
        .await;
    // From the cache; a new login's account is written by the first change recorded in it.
    let account = ctx.accounts.get_or_new(&valid.login).await?;
    let observed = observe::around(&user, account, ctx, now).await?;
    let plan = plan::plan(&user, &valid, &observed);
    let outcome = apply::execute(ctx, &user, &valid, observed, &plan).await?;
    // When the invitation could not be emailed, what was done before it is recorded as
    // observed, and the status says why it waits; the reconcile then fails and is retried.
    let observed = match outcome.mail_error {
        Some(_) => &plan.observed_if_mail_fails,
        None => &plan.observed,
    };
    let status = status::desired_status(
        &user,
        &outcome.account,
        observed,
        outcome.api_key,
        outcome
            .mail_error
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        now,
    );
    let before = user.status.as_ref().and_then(|s| s.phase);
    if let Some((reason, note)) = status::transition_event(before, status.phase, &valid.login) {
        ctx.event(user.as_ref(), reason, note).await;
    }
    let change = status::kubernetes_change(&user, status.phase);
    apply::write_status(ctx, &user, &status).await?;
    // Recorded once the status says it was acted on: a retry after a failed write records it
    // then, not twice.
    if let Some(action) = change {
        ctx.audit_user(action, &user, crate::audit::Outcome::Success);
    }
    if let Some(e) = outcome.mail_error {
        return Err(Error::Mail(e));
    }
    Ok(Action::requeue(status::requeue_after(
        &outcome.account,
        outcome.key_due,
        plan.reset_wait,
        now,
    )))
}

/// Removes the membership; the account goes with its last membership.
async fn cleanup(user: Arc<User>, ctx: &Context) -> Result<(), Error> {
    let Some(id) = plan::account_to_leave(&user) else {
        return Ok(());
    };
    let _locks = ctx.locks.lock(std::slice::from_ref(&id)).await;
    if plan::last_member(&user, &id, &ctx.users.state()) {
        ctx.logouts
            .account_going(
                &ctx.accounts,
                &ctx.oidc_clients,
                &ctx.settings.public_url,
                &id,
            )
            .await?;
        ctx.accounts.delete_id(&id).await?;
        tracing::info!(account = %id, "account deleted with its last membership");
    } else if let Some(account) = ctx.accounts.get_id(&id).await? {
        // The account stays for its other memberships; this one's key and record go.
        ctx.accounts
            .modify(account, |a| {
                Ok::<_, Error>(a.memberships.remove(&membership_key(&user)).is_some())
            })
            .await?;
    }
    Ok(())
}
