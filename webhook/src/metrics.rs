//! Prometheus metrics of the webhook.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of a reviewed request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    /// Organisation, Profile, User or other.
    pub kind: String,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// allowed, denied or error.
    pub decision: String,
}

/// The webhook's metrics and their registry.
pub struct Metrics {
    /// Reviews answered, by kind, operation and decision.
    pub reviews: Family<ReviewLabels, Counter>,
    /// Time to answer a review, in seconds.
    pub duration: Histogram,
    /// Fresh Lists the webhook may ask of the API server now (its budget; set when scraped).
    pub fresh_lists: Gauge<f64, std::sync::atomic::AtomicU64>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let reviews = Family::<ReviewLabels, Counter>::default();
        let duration = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
        ]);
        let mut registry = Registry::with_prefix("usher_webhook");
        registry.register("reviews", "Admission reviews answered", reviews.clone());
        registry.register(
            "review_duration_seconds",
            "Time to answer an admission review",
            duration.clone(),
        );
        let fresh_lists = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "fresh_lists_available",
            "Fresh Lists the webhook may ask of the API server now; at 0, synced caches decide",
            fresh_lists.clone(),
        );
        Metrics {
            reviews,
            duration,
            fresh_lists,
            registry,
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
