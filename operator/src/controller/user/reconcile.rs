//! The User reconcile, one call per step: read the User (live when it lacks the finalizer or an
//! action is pending) → validate (pure) → under the account's lock: the account, what is
//! around it → plan (pure) → apply → status (pure) → write it only when it differs. Deleting a
//! User (finalizer) removes its membership and the account with its last one.

use std::sync::Arc;

use kube::{
    Api, ResourceExt,
    runtime::{
        controller::Action,
        finalizer::{Event as FinalizerEvent, finalizer},
    },
};
use usher_crds::{User, login::canonical_login, rules};

use super::{apply, observe, plan, status};
use crate::{
    account::{account_id, membership_key},
    controller::{context::Context, error::Error},
    runtime::clock::now,
};

/// The finalizer that removes a membership (and its account with the last one).
pub const FINALIZER: &str = "usher.dev/membership";

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.mark_counts_ready();
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    ctx.recount(&user);
    // kube's finalizer helper adds ours with a JSON patch that tests the finalizers it was
    // given; a cached copy that predates our finalizer makes that test fail (422). Read a User
    // without it live (once per User, at creation).
    let user = if rules::is_live(&user) && !user.finalizers().iter().any(|f| f == FINALIZER) {
        match observe::live(&user, &ctx).await? {
            Some(live) => live,
            None => return Ok(Action::await_change()),
        }
    } else {
        user
    };
    finalizer(&api, FINALIZER, user, |event| async {
        match event {
            FinalizerEvent::Apply(u) => provision(u, &ctx).await,
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
    })
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
    let _guard = ctx.lock_account(&account_id(&valid.login)).await;
    let (account, _) = ctx.accounts.get_or_create(&valid.login).await?;
    let observed = observe::around(&user, account, ctx, now).await?;
    let plan = plan::plan(&user, &valid, &observed);
    let outcome = apply::execute(ctx, &user, &valid, observed, &plan).await?;
    let status = status::desired_status(
        &user,
        &outcome.account,
        &plan.observed,
        outcome.api_key,
        None,
        now,
    );
    let before = user.status.as_ref().and_then(|s| s.phase);
    if let Some((reason, note)) = status::transition_event(before, status.phase, &valid.login) {
        ctx.event(user.as_ref(), reason, note).await;
    }
    let requeue = status::requeue_after(&outcome.account, outcome.key_due, now);
    apply::write_status(ctx, &user, &status).await?;
    Ok(Action::requeue(requeue))
}

/// Removes the membership; the account goes with its last membership.
async fn cleanup(user: Arc<User>, ctx: &Context) -> Result<Action, Error> {
    let Ok(login) = canonical_login(&user.spec.login) else {
        return Ok(Action::await_change());
    };
    let id = account_id(&login);
    let _guard = ctx.lock_account(&id).await;
    if plan::last_member(&user, &id, &ctx.users.state()) {
        ctx.accounts.delete_id(&id).await?;
        tracing::info!(%login, "account deleted with its last membership");
    } else if let Some(account) = ctx.accounts.get_id(&id).await? {
        // The account stays for its other memberships; this one's key and record go.
        ctx.accounts
            .modify(account, |a| {
                Ok::<_, Error>(a.memberships.remove(&membership_key(&user)).is_some())
            })
            .await?;
    }
    Ok(Action::await_change())
}
