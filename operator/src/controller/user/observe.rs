//! The reads a User reconcile decides on: the User itself (live when an action is pending), the
//! Organisations, Profiles and Users it is judged against (from the caches, fresh from the API
//! when the caches may be behind), and, once it is valid, its account's neighbours and its
//! API-key Secret.

use std::sync::Arc;

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, ResourceExt};
use usher_crds::{Organisation, Profile, User};

use super::plan::{self, Failure, Valid};
use crate::{
    account::Account,
    controller::{context::Context, error::Error},
};

/// `user` as the API server has it now, when a one-shot action is pending: a reconcile
/// triggered by another object (the account Secret) may see a User older than the status that
/// recorded an action as done. `None` when it is gone.
pub async fn current(user: Arc<User>, ctx: &Context) -> Result<Option<Arc<User>>, Error> {
    if !plan::has_pending_action(&user) {
        return Ok(Some(user));
    }
    live(&user, ctx).await
}

/// `user` read live. `None` when it is gone.
pub async fn live(user: &User, ctx: &Context) -> Result<Option<Arc<User>>, Error> {
    Ok(
        Api::<User>::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default())
            .get_opt(&user.name_any())
            .await?
            .map(Arc::new),
    )
}

/// Validates `user` against the caches; a missing Organisation or Profile is checked again on a
/// fresh List before it counts.
pub async fn validated(user: &User, ctx: &Context) -> Result<Result<Valid, Failure>, Error> {
    let ns = user.namespace().unwrap_or_default();
    let same_namespace = ctx
        .users
        .state_filter(|u| u.namespace().as_deref() == Some(ns.as_str()));
    let verdict = plan::validate(
        user,
        &ctx.organisations.state(),
        &ctx.profiles.state(),
        &same_namespace,
    );
    match verdict {
        Err(f) if f.reason.may_be_stale() => {
            let orgs: Vec<Arc<Organisation>> = Api::<Organisation>::all(ctx.client.clone())
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .map(Arc::new)
                .collect();
            let profiles: Vec<Arc<Profile>> = Api::<Profile>::all(ctx.client.clone())
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .map(Arc::new)
                .collect();
            Ok(plan::validate(user, &orgs, &profiles, &same_namespace))
        }
        verdict => Ok(verdict),
    }
}

/// What the plan needs besides the User, for the `account` of its login.
pub async fn around(
    user: &User,
    account: Account,
    ctx: &Context,
    now: Timestamp,
) -> Result<plan::Observed, Error> {
    let previous = user
        .status
        .as_ref()
        .and_then(|s| s.account_id.clone())
        .filter(|id| *id != account.id)
        .map(|id| {
            let shared = !plan::last_member(user, &id, &ctx.users.state());
            (id, shared)
        });
    let key_secret = if plan::key_in_play(user, &account) {
        read_key_secret(user, &user.api_key_secret_name(), ctx).await?
    } else {
        None
    };
    let stale_secret = match plan::stale_secret_name(user, &account) {
        Some(name) => read_key_secret(user, &name, ctx).await?,
        None => None,
    };
    let key_opens = crate::apikey::renew::current(&ctx.keys, &account, user).is_some();
    let emailed_unrecorded = ctx.unrecorded(&account.id).filter(|i| i.expires_at > now);
    Ok(plan::Observed {
        key_opens,
        emailed_unrecorded,
        account,
        previous,
        key_secret,
        stale_secret,
        now,
    })
}

/// The Secret `name` in `user`'s namespace: from the cache of delivered keys; a name it does not
/// hold is read from the API server (a Secret someone else made under that name is not in it).
async fn read_key_secret(user: &User, name: &str, ctx: &Context) -> Result<Option<Secret>, Error> {
    let ns = user.namespace().unwrap_or_default();
    if let Some(s) = ctx.key_secrets.get(&ns, name) {
        return Ok(Some((*s).clone()));
    }
    Ok(Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .get_opt(name)
        .await?)
}
