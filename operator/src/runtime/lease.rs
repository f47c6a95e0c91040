//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several controller replicas
//! exactly one reconciles (and sends invitations) at a time.
//!
//! A replica takes the Lease when it is free, expired or already its own, always with the
//! resourceVersion it read (two replicas racing for it: one gets 409 and waits). The leader
//! renews every third of the lease duration; if it cannot renew for a whole duration it must
//! assume another replica took over, and stops. On shutdown it releases the Lease so a standby
//! takes over at once.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

/// The Lease's name.
pub const LEASE_NAME: &str = "usher-controller";

/// What a replica sees in the Lease (pure input to [`may_take`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `spec.holderIdentity`, empty when released.
    pub identity: String,
    /// Last renewal.
    pub renewed: Option<Timestamp>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
}

/// True when `me` may take a Lease held as `holder` at `now` (pure).
pub fn may_take(holder: &Holder, me: &str, now: Timestamp) -> bool {
    if holder.identity.is_empty() || holder.identity == me {
        return true;
    }
    let Some(renewed) = holder.renewed else {
        return true;
    };
    let duration = SignedDuration::try_from(holder.duration).unwrap_or(SignedDuration::ZERO);
    renewed.checked_add(duration).is_ok_and(|until| until < now)
}

/// A replica's handle on the Lease.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
}

impl Elector {
    /// An elector for `identity` over the Lease in `namespace`.
    pub fn new(client: Client, namespace: &str, identity: String, duration: Duration) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            identity,
            duration,
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) -> kube::Result<()> {
        let mut waiting_logged = false;
        loop {
            if self.try_take().await? {
                tracing::info!(identity = %self.identity, "leader: holding the Lease");
                return Ok(());
            }
            if !waiting_logged {
                tracing::info!(identity = %self.identity, "standby: another replica holds the Lease");
                waiting_logged = true;
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the Lease until it cannot be renewed for a whole lease duration (or another
    /// replica holds it); then returns.
    pub async fn hold(&self) {
        let mut last_renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_take().await {
                Ok(true) => last_renewed = std::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("another replica took the Lease; stopping");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew the Lease");
                    if last_renewed.elapsed() >= self.duration {
                        tracing::error!(
                            "the Lease was not renewed for a whole lease duration; stopping"
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up (on shutdown) so a standby can take over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(LEASE_NAME).await {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = None;
                let _ = self
                    .api
                    .replace(LEASE_NAME, &PostParams::default(), &lease)
                    .await;
                tracing::info!("Lease released");
            }
        }
    }

    /// One attempt to take or renew the Lease; false when another replica holds it.
    async fn try_take(&self) -> kube::Result<bool> {
        let now = Timestamp::now();
        let secs = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = Holder {
            identity: spec.holder_identity.clone().unwrap_or_default(),
            renewed: spec.renew_time.as_ref().map(|t| t.0),
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(secs)).unwrap_or(0),
            ),
        };
        if !may_take(&holder, &self.identity, now) {
            return Ok(false);
        }
        if holder.identity != self.identity {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(secs);
        spec.renew_time = Some(MicroTime(now));
        // `lease` carries the resourceVersion read: a concurrent taker makes this a 409.
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A replica identity: `$POD_NAME`, else the host name and process id.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(identity: &str, renewed: &str) -> Holder {
        Holder {
            identity: identity.into(),
            renewed: Some(renewed.parse().unwrap()),
            duration: Duration::from_secs(15),
        }
    }

    #[test]
    fn a_held_lease_is_taken_only_when_free_ours_or_expired() {
        let now: Timestamp = "2026-11-27T12:00:20Z".parse().unwrap();
        assert!(may_take(&holder("", "2026-11-27T12:00:19Z"), "b", now));
        assert!(may_take(&holder("b", "2026-11-27T12:00:19Z"), "b", now));
        assert!(!may_take(&holder("a", "2026-11-27T12:00:19Z"), "b", now));
        assert!(!may_take(&holder("a", "2026-11-27T12:00:05Z"), "b", now));
        assert!(may_take(&holder("a", "2026-11-27T12:00:04Z"), "b", now));
    }
}
