//! Prometheus metrics of the controller.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels naming a kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Organisation, Profile or User.
    pub kind: String,
}

/// Labels of a failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Organisation, Profile or User.
    pub kind: String,
    /// The error's metric label.
    pub error: String,
}

/// Labels of an invitation outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// sent or failed (and dropped, for logouts).
    pub outcome: String,
}

/// The controller's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    invitations: Family<OutcomeLabels, Counter>,
    logouts: Family<OutcomeLabels, Counter>,
    logouts_due: Gauge,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
        });
        let invitations = Family::<OutcomeLabels, Counter>::default();
        let logouts = Family::<OutcomeLabels, Counter>::default();
        let logouts_due = Gauge::default();
        let mut root = Registry::default();
        root.register(
            "usher_audit_dropped",
            "Audit records that could not be kept (the queue or the collector's buffer full)",
            crate::audit::sink::dropped_total(),
        );
        let registry = root.sub_registry_with_prefix("usher_controller");
        registry.register(
            "oidc_logouts",
            "Back-channel logout tokens by outcome: sent, failed (kept, retried), dropped",
            logouts.clone(),
        );
        registry.register(
            "oidc_logouts_due",
            "Back-channel logouts kept in the outbox, not delivered yet",
            logouts_due.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile took",
            duration.clone(),
        );
        registry.register(
            "invitations",
            "Invitation emails by outcome",
            invitations.clone(),
        );
        Metrics {
            reconciles,
            failures,
            duration,
            invitations,
            logouts,
            logouts_due,
            registry: Arc::new(root),
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` that took `seconds`.
    pub fn reconciled(&self, kind: &str, seconds: f64) {
        let labels = KindLabels { kind: kind.into() };
        self.reconciles.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, kind: &str, error: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                kind: kind.into(),
                error: error.into(),
            })
            .inc();
    }

    /// Counts an invitation email `sent` or `failed`.
    pub fn invitation(&self, outcome: &str) {
        self.invitations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a back-channel logout `sent`, `failed` (kept, retried) or `dropped`.
    pub fn logout(&self, outcome: &str) {
        self.logouts
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Sets how many back-channel logouts the outbox keeps.
    pub fn logouts_due(&self, n: usize) {
        self.logouts_due.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
