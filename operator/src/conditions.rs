//! Standard status conditions and timestamps at the precision the API server stores.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Now, truncated to whole seconds: the API server stores `Time` that way, so comparing a
/// finer value with a stored one would never be equal and status would be rewritten forever.
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Sets condition `type_`, keeping `lastTransitionTime` when its status does not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    let previous = conditions.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// The condition `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-27T11:00:00Z".parse().unwrap();
        let mut c = Vec::new();
        set(&mut c, "Ready", false, "Invited", "waiting", Some(1), t0);
        set(
            &mut c,
            "Ready",
            false,
            "Invited",
            "still waiting",
            Some(2),
            t1,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(t0));
        assert_eq!(c[0].message, "still waiting");
        set(&mut c, "Ready", true, "Active", "ok", Some(2), t1);
        assert_eq!(c[0].last_transition_time, Time(t1));
    }

    #[test]
    fn now_has_whole_seconds() {
        assert_eq!(now().subsec_nanosecond(), 0);
    }
}
