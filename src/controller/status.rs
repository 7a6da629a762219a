//! Baseline status: conditions, the effective matrix with a state per domain, summary counts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::api::{
    BaselineStatus, ClusterResponsibilityBaseline, DomainStatus, ResponsibilityBaseline, Summary,
};
use crate::baseline::EffectiveBaseline;
use crate::engine::{Outcome, Verdict};
use crate::model::{ControlId, Domain};

/// Verdict counts per baseline, gathered over every namespace a pass reconciled.
#[derive(Default, Debug)]
pub struct Tally {
    pub summary: Summary,
    pub failing_domains: std::collections::BTreeSet<Domain>,
}

impl Tally {
    pub fn add(&mut self, v: &Verdict) {
        let s = &mut self.summary;
        match v.result {
            Outcome::Pass => s.pass += 1,
            Outcome::Fail => s.fail += 1,
            Outcome::Warn => s.warn += 1,
            Outcome::Error => s.error += 1,
            Outcome::Skip => s.skip += 1,
        }
        if matches!(v.result, Outcome::Fail | Outcome::Error) {
            self.failing_domains.insert(v.domain);
        }
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
) -> Condition {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status does.
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Largest spec kept as `lastValidSpec`. The copy doubles the object, and etcd refuses objects
/// over 1.5 MiB: a spec larger than this has no last valid copy (and a broken version of it
/// refuses, as one that never compiled does).
pub const MAX_KEPT_SPEC_BYTES: usize = 256 * 1024;

/// The spec to keep as `lastValidSpec`, if it is small enough to keep.
pub fn keepable(spec: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    let spec = spec?;
    let size = serde_json::to_vec(spec).map_or(usize::MAX, |v| v.len());
    (size <= MAX_KEPT_SPEC_BYTES).then(|| spec.clone())
}

/// The status a baseline should have after a pass.
pub fn status_for(
    b: &EffectiveBaseline,
    spec: Option<&serde_json::Value>,
    tally: &Tally,
    generation: Option<i64>,
    previous: Option<&BaselineStatus>,
    audit_time: chrono::DateTime<chrono::Utc>,
) -> BaselineStatus {
    let prev_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let s = &tally.summary;
    let compliant = s.fail == 0 && s.error == 0;
    let matrix = b
        .matrix
        .cells()
        .into_iter()
        .map(|c| DomainStatus {
            domain: c.domain,
            owner: c.owner,
            state: if !c.owner.customer_has_duty() {
                "skipped"
            } else if tally.failing_domains.contains(&c.domain) {
                "failing"
            } else {
                "enforced"
            }
            .into(),
            controls: c
                .controls
                .into_iter()
                .filter(|id: &ControlId| !b.disabled(*id))
                .collect(),
        })
        .collect();
    BaselineStatus {
        observed_generation: generation,
        conditions: vec![
            condition(
                "Ready",
                true,
                "Audited",
                "the baseline is valid and its namespaces were audited".into(),
                generation,
                prev_conditions,
            ),
            condition(
                "Compliant",
                compliant,
                if compliant { "NoGaps" } else { "GapsOpen" },
                if compliant {
                    format!("{} checks pass", s.pass)
                } else {
                    format!(
                        "{} failing and {} unreadable checks on customer-owned duties",
                        s.fail, s.error
                    )
                },
                generation,
                prev_conditions,
            ),
        ],
        matrix,
        summary: Some(s.clone()),
        last_audit_time: Some(audit_time),
        last_valid_spec: keepable(spec),
    }
}

/// The status of a baseline onus cannot compile: not Ready, with the reason, and the rest of
/// what an earlier version said kept (it may still describe the last audit).
pub fn invalid_status(
    error: &str,
    under_last_valid: bool,
    generation: Option<i64>,
    previous: Option<&BaselineStatus>,
) -> BaselineStatus {
    let prev_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let mut s = previous.cloned().unwrap_or_default();
    s.observed_generation = generation;
    let consequence = if under_last_valid {
        "its namespaces are judged under its last valid spec (status.lastValidSpec) until it is fixed"
    } else {
        "creates and updates in its scope are refused (or warned, per its action) until it is fixed"
    };
    s.conditions = vec![condition(
        "Ready",
        false,
        "Invalid",
        format!("{error}; {consequence}"),
        generation,
        prev_conditions,
    )];
    s
}

/// Same content, ignoring when the audit ran.
pub fn same_content(a: &BaselineStatus, b: &BaselineStatus) -> bool {
    let strip = |s: &BaselineStatus| {
        let mut s = s.clone();
        s.last_audit_time = None;
        s
    };
    strip(a) == strip(b)
}

/// Write the status subresource of the baseline named `name` (as `EffectiveBaseline::name`),
/// only if the object is still at `resource_version` (the version this status was made from):
/// a baseline edited, or deleted and created again, since then gets a 409 and is written on the
/// next round, so a status never describes a spec it was not made from.
pub async fn write(
    client: &kube::Client,
    name: &str,
    status: &BaselineStatus,
    resource_version: Option<&str>,
) -> Result<(), kube::Error> {
    let mut body = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    // A merge patch keeps fields it does not name: an absent copy must be removed explicitly.
    if status.last_valid_spec.is_none()
        && let Some(m) = body.as_object_mut()
    {
        m.insert("lastValidSpec".into(), serde_json::Value::Null);
    }
    let patch = match resource_version {
        Some(rv) => Patch::Merge(json!({"metadata": {"resourceVersion": rv}, "status": body})),
        None => Patch::Merge(json!({"status": body})),
    };
    let pp = PatchParams::default();
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["ResponsibilityBaseline", ns, n] => {
            Api::<ResponsibilityBaseline>::namespaced(client.clone(), ns)
                .patch_status(n, &pp, &patch)
                .await?;
        }
        ["ClusterResponsibilityBaseline", n] => {
            Api::<ClusterResponsibilityBaseline>::all(client.clone())
                .patch_status(n, &pp, &patch)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Tallies by baseline name.
pub type Tallies = BTreeMap<String, Tally>;
