//! Verdicts: what the engine says about one check on one object.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;

use crate::api::Action;
use crate::compliance::FrameworkIds;
use crate::model::{ControlId, Domain, Owner, Provider, ServiceModel};
use crate::object::ObjectRef;

/// Result of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Warn,
    Error,
    Skip,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Warn => "warn",
            Outcome::Error => "error",
            Outcome::Skip => "skip",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub control: ControlId,
    /// The check inside the control, e.g. `acl-grants`, `privileged`.
    pub rule: &'static str,
    pub result: Outcome,
    pub action: Action,
    pub domain: Domain,
    pub owner: Owner,
    pub resource: ObjectRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_resource: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// The baseline that produced the verdict.
    pub baseline: String,
    /// The baseline's provider and service model.
    pub provider: Provider,
    pub service_model: ServiceModel,
    /// Requirement ids the verdict gives evidence for, per framework (`data/compliance/`): a
    /// pass, every id of its check; a finding, the ids of the aspects that failed.
    #[serde(skip_serializing_if = "FrameworkIds::is_empty")]
    pub frameworks: Cow<'static, FrameworkIds>,
}

/// A check inside a control (`host-access`) and the aspects of it the verdict is about
/// (`host-path`, `tcp-22`): for a finding, those that failed; for a pass, those that were
/// evaluated and met. The verdict gives evidence for the requirements of those aspects only.
/// `None`: the check does not tell its aspects apart, and the verdict stands for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub rule: &'static str,
    pub aspects: Option<Vec<Cow<'static, str>>>,
}

impl Check {
    pub fn new(rule: &'static str) -> Check {
        Check {
            rule,
            aspects: None,
        }
    }

    /// Add an aspect once.
    pub fn aspect(&mut self, aspect: impl Into<Cow<'static, str>>) {
        let aspect = aspect.into();
        let list = self.aspects.get_or_insert_with(Vec::new);
        if !list.contains(&aspect) {
            list.push(aspect);
        }
    }

    /// These aspects (possibly none: the verdict is then about no aspect of its check).
    pub fn with(mut self, aspects: &[&'static str]) -> Check {
        self.aspects.get_or_insert_with(Vec::new);
        for a in aspects {
            self.aspect(*a);
        }
        self
    }
}

impl From<&'static str> for Check {
    fn from(rule: &'static str) -> Check {
        Check::new(rule)
    }
}

impl Verdict {
    /// This verdict refuses the object (and makes `onus check` exit 1).
    pub fn denies(&self) -> bool {
        self.action == Action::Deny && matches!(self.result, Outcome::Fail | Outcome::Error)
    }

    /// A gap that needs attention: fail, error or warn.
    pub fn is_finding(&self) -> bool {
        matches!(self.result, Outcome::Fail | Outcome::Error | Outcome::Warn)
    }

    fn severity(&self) -> u8 {
        match self.result {
            Outcome::Fail | Outcome::Error => match self.action {
                Action::Deny => 7,
                Action::Warn => 6,
                Action::Audit => 5,
            },
            Outcome::Warn => 4,
            Outcome::Pass => 2,
            Outcome::Skip => 1,
        }
    }
}

/// Keep the strictest verdict of each check (control, rule, cloud resource) per provider and
/// service model, in first-seen order. Baselines of different models judge different duties,
/// so each keeps its verdict. Of two findings, the strictest keeps the requirement ids of both
/// (a Warn baseline's restricted profile finds what a Deny baseline's profile does not ask).
pub fn strictest(all: Vec<Verdict>) -> Vec<Verdict> {
    type Key = (
        ControlId,
        &'static str,
        Option<String>,
        Provider,
        ServiceModel,
    );
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut out: Vec<Verdict> = Vec::with_capacity(all.len());
    for v in all {
        let key = (
            v.control,
            v.rule,
            v.cloud_resource.clone(),
            v.provider,
            v.service_model,
        );
        match index.get(&key) {
            Some(&i) => {
                let keep = &mut out[i];
                let both_findings = keep.is_finding() && v.is_finding();
                let mut v = v;
                if keep.severity() < v.severity() {
                    std::mem::swap(keep, &mut v);
                }
                if both_findings && keep.frameworks != v.frameworks {
                    keep.frameworks.to_mut().merge(&v.frameworks);
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(v);
            }
        }
    }
    // A control that one baseline skips and another enforces is enforced.
    let enforced: std::collections::HashSet<ControlId> = out
        .iter()
        .filter(|v| v.rule != "applicability")
        .map(|v| v.control)
        .collect();
    out.retain(|v| v.rule != "applicability" || !enforced.contains(&v.control));
    out
}
