//! Requirements of one framework under one provider and service model: who owns each (from
//! the matrix cells the engine uses), which onus checks give evidence, and, given verdicts,
//! whether the evidence says met or failing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Framework, natural, tables};
use crate::engine::{Outcome, Verdict};
use crate::model::{ControlId, Domain, Matrix, Owner, Provider, ServiceModel};

/// What the evidence says of a requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequirementStatus {
    /// Checks ran and none failed.
    Met,
    /// A check failed, warned, or could not be made (`error`).
    Failing,
    /// No check of this requirement judged anything.
    NoEvidence,
    /// The customer's, and nothing in a cluster or its cloud resources shows it.
    OutsideReach,
}

impl RequirementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequirementStatus::Met => "met",
            RequirementStatus::Failing => "failing",
            RequirementStatus::NoEvidence => "no evidence",
            RequirementStatus::OutsideReach => "outside onus's reach",
        }
    }
}

/// The matrix cell behind an owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Responsibility {
    pub domain: Domain,
    pub owner: Owner,
    pub source: &'static str,
}

/// One requirement of a framework, as `onus compliance` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub id: String,
    pub title: String,
    /// `provider`, `customer` or `shared`: the owner of the domains its checks guard (shared
    /// when they differ).
    pub owner: Owner,
    /// The matrix cells the owner comes from.
    pub responsibility: Vec<Responsibility>,
    /// Files (and commits) the requirement's rows come from.
    pub source: Vec<String>,
    /// The onus checks that give evidence, as `control/check`.
    pub controls: Vec<String>,
    /// Set when verdicts were given, and for requirements outside onus's reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RequirementStatus>,
    /// The objects whose verdicts fail it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

/// Every requirement of `framework` that onus maps under `provider`, then those outside its
/// reach, in the framework's order. With `verdicts`, each says what the evidence shows.
pub fn requirements(
    framework: Framework,
    provider: Provider,
    model: ServiceModel,
    verdicts: Option<&[Verdict]>,
) -> Result<Vec<Requirement>, String> {
    if let Some(only) = framework.provider().filter(|p| *p != provider) {
        return Err(format!(
            "{framework} ({}) applies to {only}, not {provider}",
            framework.title()
        ));
    }
    let matrix = Matrix::resolve(provider, model, &[]);
    let cells: BTreeMap<Domain, (Owner, &'static str)> = matrix
        .cells()
        .into_iter()
        .map(|c| (c.domain, (c.owner, c.source)))
        .collect();
    let t = tables();
    let mut by_id: BTreeMap<&str, Vec<&super::Mapping>> = BTreeMap::new();
    for m in t
        .mappings
        .iter()
        .filter(|m| m.framework == framework && m.scope.covers(provider))
    {
        by_id.entry(m.id.as_str()).or_default().push(m);
    }
    let mut out: Vec<Requirement> = by_id
        .into_iter()
        .map(|(id, rows)| {
            let checks: BTreeSet<(ControlId, &str)> =
                rows.iter().map(|m| (m.control, m.rule.as_str())).collect();
            let domains: BTreeSet<Domain> = checks.iter().map(|(c, _)| c.domain()).collect();
            let responsibility: Vec<Responsibility> = domains
                .iter()
                .map(|d| {
                    let (owner, source) = cells.get(d).copied().unwrap_or((Owner::Customer, ""));
                    Responsibility {
                        domain: *d,
                        owner,
                        source,
                    }
                })
                .collect();
            let owners: BTreeSet<Owner> = responsibility.iter().map(|r| r.owner).collect();
            let owner = match owners.iter().collect::<Vec<_>>().as_slice() {
                [one] => **one,
                _ => Owner::Shared,
            };
            let (status, failing) = match verdicts {
                Some(vs) => judge((framework, id), (provider, model), vs),
                None => (None, Vec::new()),
            };
            Requirement {
                id: id.to_string(),
                // Rows of one id share its title; the first is as good as any.
                title: rows[0].title.clone(),
                owner,
                responsibility,
                source: rows
                    .iter()
                    .map(|m| m.source.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                controls: checks.iter().map(|(c, r)| format!("{c}/{r}")).collect(),
                status,
                failing,
            }
        })
        .collect();
    out.sort_by_key(|a| natural(&a.id));
    let mut outside: Vec<Requirement> = t
        .outside_reach
        .iter()
        .filter(|o| o.framework == framework && !out.iter().any(|r| r.id == o.id))
        .map(|o| Requirement {
            id: o.id.clone(),
            title: o.title.clone(),
            owner: Owner::Customer,
            responsibility: Vec::new(),
            source: vec![o.source.clone()],
            controls: Vec::new(),
            status: Some(RequirementStatus::OutsideReach),
            failing: Vec::new(),
        })
        .collect();
    outside.sort_by_key(|a| natural(&a.id));
    out.extend(outside);
    Ok(out)
}

/// What the verdicts of a requirement's checks say, for baselines of this provider and model.
/// A verdict is evidence for the requirements it carries: a pass, those of the aspects it
/// evaluated and met; a finding, those of the aspects that failed (a hostPath-only pod does not
/// fail "minimise hostNetwork", and a baseline profile that never asks for seccomp does not
/// meet "seccomp RuntimeDefault"). A check that stands for its whole control (an audit that
/// failed, results a Report folded) carries every requirement of that control.
fn judge(
    requirement: (Framework, &str),
    (provider, model): (Provider, ServiceModel),
    verdicts: &[Verdict],
) -> (Option<RequirementStatus>, Vec<String>) {
    // A verdict's ids come from the rows of its own check (of its whole control, for a check
    // that stands for it): carrying the id is being one of the requirement's checks.
    let relevant = verdicts.iter().filter(|v| {
        v.provider == provider
            && v.service_model == model
            && v.frameworks.contains(requirement.0, requirement.1)
    });
    let mut judged = false;
    let mut failing = BTreeSet::new();
    for v in relevant {
        match v.result {
            // A resource nobody audited says nothing either way: no evidence, not met.
            Outcome::Warn if v.rule == "unknown-posture" => {}
            // A warning is a finding: the requirement is not met.
            Outcome::Fail | Outcome::Error | Outcome::Warn => {
                judged = true;
                failing.insert(v.resource.to_string());
            }
            Outcome::Pass => judged = true,
            Outcome::Skip => {}
        }
    }
    let status = match (judged, failing.is_empty()) {
        (false, _) => RequirementStatus::NoEvidence,
        (true, true) => RequirementStatus::Met,
        (true, false) => RequirementStatus::Failing,
    };
    (Some(status), failing.into_iter().collect())
}
