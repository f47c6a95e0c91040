//! Profile reconcile: how many Users use the profile.

use std::{sync::Arc, time::Duration};

use kube::{Api, ResourceExt, runtime::controller::Action};
use usher_crds::Profile;

use crate::{
    Error,
    conditions::{self, now},
    controller::{Context, apply_status, backoff_key},
};

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(profile: Arc<Profile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    ctx.wait_synced().await;
    let name = profile.name_any();
    let mut status = profile.status.clone().unwrap_or_default();
    if let Some(users) = ctx.counted_users() {
        let count = users
            .state_filter(|u| u.spec.profile == name && u.metadata.deletion_timestamp.is_none())
            .len();
        status.users = Some(u32::try_from(count).unwrap_or(u32::MAX));
    }
    status.observed_generation = profile.metadata.generation;
    conditions::set(
        &mut status.conditions,
        "Ready",
        true,
        "Valid",
        format!("{} permission(s)", profile.spec.permissions.len()),
        profile.metadata.generation,
        now(),
    );
    let api: Api<Profile> = Api::all(ctx.client.clone());
    let result = apply_status(&api, profile.as_ref(), profile.status.as_ref(), &status).await;
    ctx.metrics
        .reconciled("Profile", started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.succeeded(&backoff_key(profile.as_ref()));
    }
    result.map(|()| Action::requeue(Duration::from_secs(3600)))
}
