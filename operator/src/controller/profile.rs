//! Profile reconcile: how many Users use the profile.

use std::{sync::Arc, time::Duration};

use kube::{Api, ResourceExt, runtime::controller::Action};
use usher_crds::{Profile, rules};

use super::{
    context::Context,
    error::Error,
    status::{Progress, apply_status, set_progress},
};
use crate::{reason::Reason, runtime::clock::now};

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(profile: Arc<Profile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = profile.name_any();
    let mut status = profile.status.clone().unwrap_or_default();
    if let Some(users) = ctx.counted_users() {
        let count = users
            .state_filter(|u| u.spec.profile == name && rules::is_live(u))
            .len();
        status.users = Some(u32::try_from(count).unwrap_or(u32::MAX));
    }
    status.observed_generation = profile.metadata.generation;
    set_progress(
        &mut status.conditions,
        &Progress::Ready(
            Reason::Valid,
            format!("{} permission(s)", profile.spec.permissions.len()),
        ),
        profile.metadata.generation,
        now(),
    );
    let api: Api<Profile> = Api::all(ctx.client.clone());
    apply_status(&api, profile.as_ref(), profile.status.as_ref(), &status).await?;
    Ok(Action::requeue(Duration::from_secs(3600)))
}
