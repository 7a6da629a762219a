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

/// A check inside a control (`host-access`) and, for a finding, the aspects of it that failed
/// (`host-path`, `tcp-22`): the requirements a finding fails are those of its aspects, not every
/// requirement its check gives evidence for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub rule: &'static str,
    pub aspects: Vec<Cow<'static, str>>,
}

impl Check {
    pub fn new(rule: &'static str) -> Check {
        Check {
            rule,
            aspects: Vec::new(),
        }
    }

    /// Add an aspect once.
    pub fn aspect(&mut self, aspect: impl Into<Cow<'static, str>>) {
        let aspect = aspect.into();
        if !self.aspects.contains(&aspect) {
            self.aspects.push(aspect);
        }
    }

    pub fn with(mut self, aspects: &[&'static str]) -> Check {
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

/// Keep the strictest verdict of each check (control, rule, cloud resource), in first-seen order.
pub fn strictest(all: Vec<Verdict>) -> Vec<Verdict> {
    let mut index: HashMap<(ControlId, &'static str, Option<String>), usize> = HashMap::new();
    let mut out: Vec<Verdict> = Vec::with_capacity(all.len());
    for v in all {
        let key = (v.control, v.rule, v.cloud_resource.clone());
        match index.get(&key) {
            Some(&i) if out[i].severity() >= v.severity() => {}
            Some(&i) => out[i] = v,
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
