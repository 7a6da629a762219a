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
    /// `valid`, or `invalid`: stored but impossible to compile.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub namespace: String,
    pub control: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudCallLabels {
    pub provider: String,
    pub service: String,
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudServiceLabels {
    pub provider: String,
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct CloudResourceLabels {
    pub provider: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
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
    pub findings: Family<FindingLabels, Gauge>,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub cloud_requests: Family<CloudCallLabels, Counter>,
    pub cloud_request_duration: Family<CloudServiceLabels, Histogram>,
    pub cloud_resources: Family<CloudResourceLabels, Gauge>,
    pub cloud_resource_writes: Family<OperationLabels, Counter>,
    pub posture_oldest_age: Gauge,
    pub ready: Gauge,
    pub watches_failing: Gauge,
    pub namespace_reads: Family<OutcomeLabels, Counter>,
    pub index_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
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
            "Baselines known, by scope (namespaced, cluster) and state (valid, invalid)",
            baselines.clone(),
        );
        let certificate_expiry = Gauge::default();
        r.register(
            "onus_webhook_certificate_expiry_timestamp_seconds",
            "When the webhook's serving certificate expires (unix seconds)",
            certificate_expiry.clone(),
        );
        let findings = Family::<FindingLabels, Gauge>::default();
        r.register(
            "onus_findings",
            "Verdicts of the last audit, by namespace, control and result",
            findings.clone(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        r.register(
            "onus_reconcile",
            "Namespace reconciles, by result (ok, error)",
            reconciles.clone(),
        );
        let reconcile_duration = latency();
        r.register(
            "onus_reconcile_duration_seconds",
            "Time to reconcile one namespace",
            reconcile_duration.clone(),
        );
        let cloud_requests = Family::<CloudCallLabels, Counter>::default();
        r.register(
            "onus_cloud_requests",
            "Cloud API calls, by provider, service, operation and outcome",
            cloud_requests.clone(),
        );
        let cloud_request_duration = Family::<CloudServiceLabels, Histogram>::new_with_constructor(
            latency as fn() -> Histogram,
        );
        r.register(
            "onus_cloud_request_duration_seconds",
            "Cloud API call latency",
            cloud_request_duration.clone(),
        );
        let cloud_resources = Family::<CloudResourceLabels, Gauge>::default();
        r.register(
            "onus_cloud_resources",
            "Cloud resources referenced by workloads and audited, by provider and kind",
            cloud_resources.clone(),
        );
        let cloud_resource_writes = Family::<OperationLabels, Counter>::default();
        r.register(
            "onus_cloud_resource_writes",
            "Writes of CloudResource objects by the leader, by operation (create, update, delete, error)",
            cloud_resource_writes.clone(),
        );
        let posture_oldest_age = Gauge::default();
        r.register(
            "onus_posture_oldest_age_seconds",
            "Age of the oldest audited posture this replica judges from (0 when it holds none)",
            posture_oldest_age.clone(),
        );
        let ready = Gauge::default();
        r.register(
            "onus_ready",
            "1 when this replica judges from a synced, live snapshot (what /readyz says), else 0",
            ready.clone(),
        );
        let watches_failing = Gauge::default();
        r.register(
            "onus_watches_failing",
            "Watches failing right now (retrying with backoff)",
            watches_failing.clone(),
        );
        let index_lag = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        r.register(
            "onus_index_lag_seconds",
            "How long the oldest change the watches received has waited to reach a snapshot (0 when none waits)",
            index_lag.clone(),
        );
        let namespace_reads = Family::<OutcomeLabels, Counter>::default();
        r.register(
            "onus_namespace_reads",
            "Baselines of new namespaces read on the request path, by outcome (found, none, error)",
            namespace_reads.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            admission_requests,
            admission_duration,
            admission_violations,
            baselines,
            certificate_expiry,
            findings,
            reconciles,
            reconcile_duration,
            cloud_requests,
            cloud_request_duration,
            cloud_resources,
            cloud_resource_writes,
            posture_oldest_age,
            ready,
            watches_failing,
            namespace_reads,
            index_lag,
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
