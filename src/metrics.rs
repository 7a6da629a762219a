//! Prometheus metrics: one registry, text format on `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// 0.1 ms to 10 s: admission answers are sub-millisecond, cloud calls take seconds.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    pub kind: String,
    pub operation: String,
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub control: String,
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: String,
}

/// Every metric onus exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub admission_requests: Family<AdmissionLabels, Counter>,
    pub admission_duration: Histogram,
    pub admission_violations: Family<ViolationLabels, Counter>,
    pub baselines: Family<ScopeLabels, Gauge>,
    pub certificate_expiry: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let admission_requests = Family::<AdmissionLabels, Counter>::default();
        r.register(
            "onus_admission_requests",
            "Admission reviews answered, by kind, operation and decision",
            admission_requests.clone(),
        );
        let admission_duration = Histogram::new(LATENCY_BUCKETS);
        r.register(
            "onus_admission_duration_seconds",
            "Time to answer an admission review",
            admission_duration.clone(),
        );
        let admission_violations = Family::<ViolationLabels, Counter>::default();
        r.register(
            "onus_admission_violations",
            "Failing controls seen at admission, by control and action",
            admission_violations.clone(),
        );
        let baselines = Family::<ScopeLabels, Gauge>::default();
        r.register(
            "onus_baselines",
            "Baselines known, by scope (namespaced, cluster)",
            baselines.clone(),
        );
        let certificate_expiry = Gauge::default();
        r.register(
            "onus_webhook_certificate_expiry_timestamp_seconds",
            "When the webhook's serving certificate expires (unix seconds)",
            certificate_expiry.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            admission_requests,
            admission_duration,
            admission_violations,
            baselines,
            certificate_expiry,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let m = Metrics::new();
        m.admission_requests
            .get_or_create(&AdmissionLabels {
                kind: "Pod".into(),
                operation: "CREATE".into(),
                decision: "deny".into(),
            })
            .inc();
        m.admission_duration.observe(0.0003);
        m.admission_violations
            .get_or_create(&ViolationLabels {
                control: "data.public-access".into(),
                action: "Deny".into(),
            })
            .inc();
        m.certificate_expiry.set(1_900_000_000);
        let text = m.render();
        for line in [
            "onus_admission_requests_total{kind=\"Pod\",operation=\"CREATE\",decision=\"deny\"} 1",
            "onus_admission_duration_seconds_bucket{le=\"0.0005\"} 1",
            "onus_admission_violations_total{control=\"data.public-access\",action=\"Deny\"} 1",
            "onus_webhook_certificate_expiry_timestamp_seconds 1900000000",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
