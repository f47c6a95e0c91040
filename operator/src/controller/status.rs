//! Status: standard conditions, and the one status write every reconciler makes (server-side
//! apply through the status subresource, skipped when nothing changed).

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{Api, Resource, ResourceExt};

use super::{context::MANAGER, error::Error};
use crate::reason::{ConditionType, Reason};

/// Writes `status` of `obj` through the status subresource of `api` by server-side apply
/// (field manager [`MANAGER`]), only when it differs from `current`: an unchanged object costs
/// no write. The object as written, when it was.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    S: serde::Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &obj.name_any(),
            &kube::api::PatchParams::apply(MANAGER).force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await?;
    Ok(Some(written))
}

/// Sets condition `type_`, keeping `lastTransitionTime` when its status does not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: bool,
    reason: Reason,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    let type_ = type_.as_str();
    let previous = conditions.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.as_str().to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// Where an object stands, in kstatus terms: each carries the condition's reason and a message
/// that, when something must be fixed, says what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Usher did all it can for the object: `Ready=True`.
    Ready(Reason, String),
    /// Work is under way (and retried by itself): `Ready=False`, `Reconciling=True`.
    Reconciling(Reason, String),
    /// It cannot go on until someone fixes something: `Ready=False`, `Stalled=True`.
    Stalled(Reason, String),
}

/// Sets `Ready`, and `Reconciling` or `Stalled` when they apply (they are removed otherwise, as
/// kstatus reads an absent abnormal-true condition as false), so that `kubectl wait
/// --for=condition=Ready`, Flux and Argo CD read the object alike.
pub fn set_progress(
    conditions: &mut Vec<Condition>,
    progress: &Progress,
    generation: Option<i64>,
    now: Timestamp,
) {
    let (ready, abnormal, reason, message) = match progress {
        Progress::Ready(r, m) => (true, None, *r, m),
        Progress::Reconciling(r, m) => (false, Some(ConditionType::Reconciling), *r, m),
        Progress::Stalled(r, m) => (false, Some(ConditionType::Stalled), *r, m),
    };
    set_condition(
        conditions,
        ConditionType::Ready,
        ready,
        reason,
        message.clone(),
        generation,
        now,
    );
    for kind in [ConditionType::Reconciling, ConditionType::Stalled] {
        if Some(kind) == abnormal {
            set_condition(
                conditions,
                kind,
                true,
                reason,
                message.clone(),
                generation,
                now,
            );
        } else {
            conditions.retain(|c| c.type_ != kind.as_str());
        }
    }
}

/// The condition `type_`, if present.
#[cfg(test)]
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_sets_ready_and_one_abnormal_condition_at_most() {
        let t0: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let mut c = Vec::new();
        set_progress(
            &mut c,
            &Progress::Reconciling(Reason::Provisioning, "sending".into()),
            Some(1),
            t0,
        );
        assert_eq!(condition(&c, "Ready").unwrap().status, "False");
        assert_eq!(condition(&c, "Reconciling").unwrap().status, "True");
        set_progress(
            &mut c,
            &Progress::Stalled(Reason::UnknownProfile, "create it".into()),
            Some(1),
            t0,
        );
        assert!(condition(&c, "Reconciling").is_none());
        assert_eq!(condition(&c, "Stalled").unwrap().reason, "UnknownProfile");
        set_progress(
            &mut c,
            &Progress::Ready(Reason::Invited, "waiting".into()),
            Some(2),
            t0,
        );
        assert_eq!(condition(&c, "Ready").unwrap().status, "True");
        assert_eq!(c.len(), 1, "{c:?}");
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-27T11:00:00Z".parse().unwrap();
        let mut c = Vec::new();
        set_condition(
            &mut c,
            ConditionType::Ready,
            false,
            Reason::Invited,
            "waiting",
            Some(1),
            t0,
        );
        set_condition(
            &mut c,
            ConditionType::Ready,
            false,
            Reason::Invited,
            "still waiting",
            Some(2),
            t1,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(t0));
        assert_eq!(c[0].message, "still waiting");
        set_condition(
            &mut c,
            ConditionType::Ready,
            true,
            Reason::Active,
            "ok",
            Some(2),
            t1,
        );
        assert_eq!(c[0].last_transition_time, Time(t1));
    }
}
