//! Prometheus metrics of the auth server.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Labels of a login outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// ok, invalid_credentials, mfa_required, invalid_code, throttled, locked.
    pub outcome: String,
}

/// Labels of a throttled request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    /// login, address or soft_lock.
    pub scope: String,
}

/// Labels of a verify answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerifyLabels {
    /// session, bearer or none.
    pub via: String,
}

/// The auth server's metrics; cheap to clone.
#[derive(Clone)]
pub struct AuthMetrics {
    logins: Family<OutcomeLabels, Counter>,
    throttled: Family<ScopeLabels, Counter>,
    /// Verify histograms by `via`, made once so a request does not look them up.
    verify_by: [Histogram; 3],
    registry: Arc<Registry>,
}

const VIA: [&str; 3] = ["session", "bearer", "none"];

impl Default for AuthMetrics {
    fn default() -> Self {
        let logins = Family::<OutcomeLabels, Counter>::default();
        let throttled = Family::<ScopeLabels, Counter>::default();
        let verify = Family::<VerifyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
            ])
        });
        let mut root = Registry::default();
        root.register(
            "usher_audit_dropped",
            "Audit records that could not be kept (the queue or the collector's buffer full)",
            crate::audit::sink::dropped_total(),
        );
        let registry = root.sub_registry_with_prefix("usher_auth");
        registry.register("logins", "Password logins by outcome", logins.clone());
        registry.register(
            "throttled_requests",
            "Requests refused with 429 by scope",
            throttled.clone(),
        );
        registry.register(
            "verify_duration_seconds",
            "Time /api/v1/verify took to decide",
            verify.clone(),
        );
        let verify_by = VIA.map(|via| {
            verify
                .get_or_create(&VerifyLabels { via: via.into() })
                .clone()
        });
        AuthMetrics {
            logins,
            throttled,
            verify_by,
            registry: Arc::new(root),
        }
    }
}

impl AuthMetrics {
    /// Counts a login attempt's outcome.
    pub fn login(&self, outcome: &str) {
        self.logins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts a throttled request.
    pub fn throttled(&self, scope: &str) {
        self.throttled
            .get_or_create(&ScopeLabels {
                scope: scope.into(),
            })
            .inc();
    }

    /// Records how long a verify took; `via` is session, bearer or none.
    pub fn verified(&self, via: &str, seconds: f64) {
        if let Some(i) = VIA.iter().position(|v| *v == via) {
            self.verify_by[i].observe(seconds);
        }
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
