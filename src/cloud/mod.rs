//! Cloud auditors: live posture of the resources workloads use.
//!
//! Each auditor turns a [`crate::posture::CloudResource`] into a
//! [`crate::posture::Posture`] with `source: live`; a resource that cannot be read gives a
//! posture with `error` set (never a pass).

use std::sync::Arc;
use std::time::Duration;

pub mod aws;
pub mod azure;

/// Observes every cloud call, for `onus_cloud_requests_total{provider,service,operation,outcome}`
/// and `onus_cloud_request_duration_seconds{provider,service}`: `(service, operation, outcome,
/// duration)`, outcome `"ok"`, `"error"` or `"throttled"`. One observer serves one provider.
pub type CallObserver =
    Arc<dyn Fn(&'static str, &'static str, &'static str, Duration) + Send + Sync>;

/// An observer that ignores everything.
pub fn no_observer() -> CallObserver {
    Arc::new(|_, _, _, _| {})
}

/// Outcome labels given to the [`CallObserver`].
pub const OUTCOME_OK: &str = "ok";
pub const OUTCOME_ERROR: &str = "error";
pub const OUTCOME_THROTTLED: &str = "throttled";
