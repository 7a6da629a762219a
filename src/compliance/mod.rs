//! Compliance frameworks: which requirement ids each onus check gives evidence for, as data.
//!
//! The tables live in `data/compliance/` (each row names the file and commit it was read from,
//! see its `SOURCES.md`) and are compiled in. A verdict carries the ids of its check for its
//! baseline's provider ([`for_check`]); `onus compliance` turns them around into requirements
//! and who owns each ([`requirements`]).

pub mod oscal;
mod render;
mod requirements;

pub use render::{ComplianceFormat, Heading, render};
pub use requirements::{Requirement, RequirementStatus, Responsibility, requirements};

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{OnceLock, RwLock};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{ControlId, Provider, str_enum};

str_enum!(
    /// A compliance framework onus maps its checks to.
    Framework {
        Nist80053R5 = "nist-800-53-r5",
        CisKubernetes = "cis-kubernetes",
        CisEks = "cis-eks",
        CisAks = "cis-aks",
        CisGke = "cis-gke",
        CisAws = "cis-aws",
        CisAzure = "cis-azure",
        CisGcp = "cis-gcp",
        PciDss4 = "pci-dss-4",
        Iso27001 = "iso-27001-2022",
        Soc2 = "soc2",
        CsaCcm4 = "csa-ccm-4",
    }
);

impl Framework {
    /// Name and version of the edition whose ids are compiled in.
    pub fn title(self) -> &'static str {
        use Framework::*;
        match self {
            Nist80053R5 => "NIST SP 800-53 Revision 5",
            CisKubernetes => "CIS Kubernetes Benchmark v2.0.1",
            CisEks => "CIS Amazon EKS Benchmark v1.8.0",
            CisAks => "CIS Azure Kubernetes Service (AKS) Benchmark v1.8",
            CisGke => "CIS Google Kubernetes Engine (GKE) Benchmark v1.9.0",
            CisAws => "CIS Amazon Web Services Foundations Benchmark v7.0.0",
            CisAzure => "CIS Microsoft Azure Foundations Benchmark v6.0.0",
            CisGcp => "CIS Google Cloud Platform Foundation Benchmark v5.0.0",
            PciDss4 => "PCI DSS v4.0",
            Iso27001 => "ISO/IEC 27001:2022 Annex A",
            Soc2 => "SOC 2 (AICPA Trust Services Criteria 2017)",
            CsaCcm4 => "CSA Cloud Controls Matrix v4.0.13",
        }
    }

    /// The `framework_version` of the rows compiled in; rows of other editions in the data
    /// (CIS AWS 5.0.0, kept for the old numbering) are left out.
    fn version(self) -> &'static str {
        use Framework::*;
        match self {
            Nist80053R5 => "rev5",
            CisKubernetes => "2.0.1",
            CisEks => "1.8.0",
            CisAks => "1.8",
            CisGke => "1.9.0",
            CisAws => "7.0.0",
            CisAzure => "6.0.0",
            CisGcp => "5.0.0",
            PciDss4 => "4.0",
            Iso27001 => "2022",
            Soc2 => "unspecified",
            CsaCcm4 => "4.0.13",
        }
    }

    /// The only provider a provider-specific benchmark applies to.
    pub fn provider(self) -> Option<Provider> {
        use Framework::*;
        match self {
            CisEks | CisAws => Some(Provider::Aws),
            CisAks | CisAzure => Some(Provider::Azure),
            CisGke | CisGcp => Some(Provider::Gcp),
            _ => None,
        }
    }

    /// Is `id` written the way this framework writes its requirement ids?
    pub fn well_formed(self, id: &str) -> bool {
        use Framework::*;
        let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let dotted = |s: &str, min: usize| {
            let parts: Vec<&str> = s.split('.').collect();
            parts.len() >= min && parts.iter().all(|p| number(p))
        };
        match self {
            // AC-2, AC-2(1), and statement parts as Prowler writes them: CM-6(a), AC-3(3)(b)(1)
            Nist80053R5 => {
                let (base, parts) = id.split_once('(').unwrap_or((id, ""));
                let family_ok = base.split_once('-').is_some_and(|(f, n)| {
                    f.len() == 2 && f.bytes().all(|b| b.is_ascii_uppercase()) && number(n)
                });
                let parts_ok = parts.is_empty()
                    || parts.strip_suffix(')').is_some_and(|p| {
                        p.split(")(").all(|g| {
                            number(g) || (g.len() == 1 && g.bytes().all(|b| b.is_ascii_lowercase()))
                        })
                    });
                family_ok && parts_ok
            }
            CisKubernetes | CisEks | CisAks | CisGke | CisAws | CisAzure | CisGcp => dotted(id, 2),
            // 10.2.1, and the appendix's A1.1.2
            PciDss4 => dotted(id.strip_prefix('A').unwrap_or(id), 2),
            // A.5.15, A.8.24
            Iso27001 => id.strip_prefix("A.").is_some_and(|r| dotted(r, 2)),
            // CC6.1, A1.2, PI1.4, C1.1, P4.2
            Soc2 => {
                let letters: String = id.chars().take_while(|c| c.is_ascii_uppercase()).collect();
                ["CC", "A", "C", "PI", "P"].contains(&letters.as_str())
                    && dotted(&id[letters.len()..], 2)
            }
            // IAM-09, DSP-17
            CsaCcm4 => id.split_once('-').is_some_and(|(d, n)| {
                (2..=4).contains(&d.len())
                    && d.bytes().all(|b| b.is_ascii_uppercase())
                    && n.len() == 2
                    && number(n)
            }),
        }
    }
}

/// Where a mapping row applies: one provider, or every cluster (Kubernetes-side checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Provider(Provider),
    Kubernetes,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "kubernetes" => Some(Scope::Kubernetes),
            other => other.parse().ok().map(Scope::Provider),
        }
    }

    pub fn covers(self, provider: Provider) -> bool {
        self == Scope::Kubernetes || self == Scope::Provider(provider)
    }
}

/// One row of `mappings.csv`: an onus check gives evidence for one requirement.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub control: ControlId,
    /// The check (`Verdict::rule`).
    pub rule: String,
    /// The part of the check's behaviour the row is about (`s3-acl`), when the data names one.
    pub aspect: Option<String>,
    pub scope: Scope,
    pub framework: Framework,
    pub id: String,
    pub title: String,
    /// The Prowler check that links the two, when the link is not a benchmark's own text.
    pub via: Option<String>,
    /// File and commit the row was read from.
    pub source: String,
}

/// A check that gives evidence for nothing, and why.
#[derive(Clone, Debug)]
pub struct Unmapped {
    pub control: ControlId,
    pub rule: String,
    /// `None`: every provider.
    pub provider: Option<Provider>,
    pub reason: String,
}

/// A requirement that is the customer's and that nothing in a cluster shows.
#[derive(Clone, Debug)]
pub struct OutsideReach {
    pub framework: Framework,
    pub id: String,
    pub title: String,
    pub source: String,
}

/// Checks that stand for a whole control: an audit that failed, a posture nobody audited, and
/// results a Report folded together (`aggregated`).
const WHOLE_CONTROL_RULES: &[&str] = &["posture", "unknown-posture", "reference", "aggregated"];

/// The compiled tables.
pub struct Tables {
    pub mappings: Vec<Mapping>,
    pub unmapped: Vec<Unmapped>,
    pub outside_reach: Vec<OutsideReach>,
    /// Per control and provider, the ids of each check (`*`: every check of the control), of
    /// each aspect of a check (`rule/aspect`) and of a check's rows that name no aspect (`rule/`,
    /// which every finding of the check fails). Keyed so that a passing verdict's `&str` rule
    /// looks up without allocating (the webhook does this).
    by_check: HashMap<(ControlId, Provider), HashMap<String, FrameworkIds>>,
}

/// Requirement ids per framework, as a verdict carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameworkIds(pub BTreeMap<Framework, Vec<String>>);

impl FrameworkIds {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Does it hold `id` of `framework`?
    pub fn contains(&self, framework: Framework, id: &str) -> bool {
        self.0
            .get(&framework)
            .is_some_and(|ids| ids.iter().any(|i| i == id))
    }

    /// Add `other`'s ids.
    pub fn merge(&mut self, other: &FrameworkIds) {
        for (f, ids) in &other.0 {
            let list = self.0.entry(*f).or_default();
            for id in ids {
                if !list.contains(id) {
                    list.push(id.clone());
                }
            }
            list.sort_by_key(|a| natural(a));
        }
    }

    /// One string, `framework=id id;framework=id`, for places that hold strings only.
    pub fn compact(&self) -> String {
        self.0
            .iter()
            .map(|(f, ids)| format!("{f}={}", ids.join(" ")))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Read [`FrameworkIds::compact`]'s string back (from a Report).
    pub fn parse_compact(s: &str) -> Result<FrameworkIds, String> {
        let mut out = FrameworkIds::default();
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (f, ids) = part
                .split_once('=')
                .ok_or_else(|| format!("frameworks {part:?} is not framework=ids"))?;
            let f: Framework = f.parse()?;
            let list: Vec<String> = ids
                .split(' ')
                .filter(|i| !i.is_empty())
                .map(String::from)
                .collect();
            if let Some(bad) = list.iter().find(|i| !f.well_formed(i)) {
                return Err(format!("{f} id {bad:?} is not written as {f} writes ids"));
            }
            out.0.insert(f, list);
        }
        Ok(out)
    }

    /// `framework/id` tags, e.g. `cis-aws/4.1`.
    pub fn tags(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(f, ids)| ids.iter().map(move |id| format!("{f}/{id}")))
            .collect()
    }
}

impl Serialize for FrameworkIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(f, ids)| (f.as_str(), ids)))
    }
}

static EMPTY: FrameworkIds = FrameworkIds(BTreeMap::new());

/// The tables, parsed once. The data is compiled in and tested, so a parse failure is a build
/// defect: it panics in tests, never on user input.
pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        load(
            include_str!("../../data/compliance/mappings.csv"),
            include_str!("../../data/compliance/unmapped.csv"),
            include_str!("../../data/compliance/manual.csv"),
        )
        .expect("the compiled compliance tables parse (tested)")
    })
}

/// The requirement ids a check gives evidence for under a provider. Checks that stand for a
/// whole control (a failed audit) carry the whole control's ids.
pub fn for_check(control: ControlId, rule: &str, provider: Provider) -> &'static FrameworkIds {
    let rule = if WHOLE_CONTROL_RULES.contains(&rule) {
        "*"
    } else {
        rule
    };
    tables()
        .by_check
        .get(&(control, provider))
        .and_then(|rules| rules.get(rule))
        .unwrap_or(&EMPTY)
}

/// The requirement ids a verdict of `check` gives evidence for: when the check does not tell
/// its aspects apart, every id of the check; else the ids of its aspects and of the check's
/// rows that name none.
pub fn for_verdict(
    control: ControlId,
    check: &crate::engine::Check,
    provider: Provider,
) -> Cow<'static, FrameworkIds> {
    let aspects = match &check.aspects {
        Some(a) if !WHOLE_CONTROL_RULES.contains(&check.rule) => a,
        _ => return Cow::Borrowed(for_check(control, check.rule, provider)),
    };
    // Long aspect lists are rare and would make long keys: merged per verdict instead.
    if aspects.len() > MERGED_MAX_ASPECTS {
        return merge_aspects(control, check.rule, aspects, provider);
    }
    let key: MergeKey = (control, provider, check.rule, aspects.clone());
    let merged = MERGED.get_or_init(Default::default);
    if let Some(ids) = merged.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Cow::Borrowed(ids);
    }
    let ids = merge_aspects(control, check.rule, aspects, provider);
    let mut cache = merged.write().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = cache.get(&key) {
        // Another thread merged the same meanwhile: one copy is kept.
        return Cow::Borrowed(done);
    }
    if cache.len() >= MERGED_MAX {
        return ids;
    }
    // Bounded (MERGED_MAX entries in all), so leaking them for 'static is bounded too.
    let ids: &'static FrameworkIds = match ids {
        Cow::Borrowed(b) => b,
        Cow::Owned(o) => Box::leak(Box::new(o)),
    };
    cache.insert(key, ids);
    Cow::Borrowed(ids)
}

/// A check's aspects, with the evaluated aspects named as they were: the key of a merge.
type MergeKey = (ControlId, Provider, &'static str, Vec<Cow<'static, str>>);

/// Merged ids of the aspect combinations verdicts carry. Verdicts ask for the same few
/// combinations again and again (the webhook, per review), and a merge sorts; aspects can come
/// from baseline parameters (forbidden ports), so past `MERGED_MAX` combinations the merge is
/// done per verdict instead of remembered.
static MERGED: OnceLock<RwLock<HashMap<MergeKey, &'static FrameworkIds>>> = OnceLock::new();
const MERGED_MAX: usize = 4096;
const MERGED_MAX_ASPECTS: usize = 32;

fn merge_aspects(
    control: ControlId,
    rule: &'static str,
    aspects: &[Cow<'static, str>],
    provider: Provider,
) -> Cow<'static, FrameworkIds> {
    let Some(rules) = tables().by_check.get(&(control, provider)) else {
        return Cow::Borrowed(&EMPTY);
    };
    let mut found = std::iter::once(format!("{rule}/"))
        .chain(aspects.iter().map(|a| format!("{rule}/{a}")))
        .filter_map(|key| rules.get(&key));
    let Some(first) = found.next() else {
        return Cow::Borrowed(&EMPTY);
    };
    let mut rest = found.peekable();
    if rest.peek().is_none() {
        return Cow::Borrowed(first);
    }
    let mut ids = first.clone();
    for more in rest {
        ids.merge(more);
    }
    Cow::Owned(ids)
}

/// The engine's name for a check, as a `&'static str`, when `rule` is one (for verdicts read
/// back from a Report, whose strings are the engine's).
pub fn known_rule(rule: &str) -> Option<&'static str> {
    const OTHERS: &[&str] = &[
        "applicability",
        "posture",
        "unknown-posture",
        "reference",
        "aggregated",
    ];
    let t = tables();
    OTHERS
        .iter()
        .copied()
        .find(|r| *r == rule)
        .or_else(|| {
            t.mappings
                .iter()
                .map(|m| m.rule.as_str())
                .find(|r| *r == rule)
        })
        .or_else(|| {
            t.unmapped
                .iter()
                .map(|u| u.rule.as_str())
                .find(|r| *r == rule)
        })
}

/// The requirement ids of every check of a control under a provider.
pub fn for_control(control: ControlId, provider: Provider) -> &'static FrameworkIds {
    for_check(control, "*", provider)
}

fn load(mappings: &str, unmapped: &str, manual: &str) -> Result<Tables, String> {
    let control = |s: &str| s.parse::<ControlId>();
    let framework = |s: &str| s.parse::<Framework>();
    let mut rows = Vec::new();
    for (line, r) in records(mappings, 9)? {
        let at = |e: String| format!("mappings.csv line {line}: {e}");
        let fw = framework(&r[3]).map_err(at)?;
        if r[4] != fw.version() {
            continue;
        }
        let (rule, aspect) = match r[1].split_once('/') {
            Some((rule, aspect)) => (rule.to_string(), Some(aspect.to_string())),
            None => (r[1].clone(), None),
        };
        rows.push(Mapping {
            control: control(&r[0]).map_err(at)?,
            rule,
            aspect,
            scope: Scope::parse(&r[2]).ok_or_else(|| at(format!("unknown provider {:?}", r[2])))?,
            framework: fw,
            id: r[5].clone(),
            title: r[6].clone(),
            via: (!r[7].is_empty()).then(|| r[7].clone()),
            source: r[8].clone(),
        });
    }
    let mut gaps = Vec::new();
    for (line, r) in records(unmapped, 4)? {
        let at = |e: String| format!("unmapped.csv line {line}: {e}");
        gaps.push(Unmapped {
            control: control(&r[0]).map_err(at)?,
            rule: r[1].clone(),
            provider: match r[2].as_str() {
                "*" => None,
                p => Some(p.parse().map_err(at)?),
            },
            reason: r[3].clone(),
        });
    }
    let mut outside = Vec::new();
    for (line, r) in records(manual, 4)? {
        let at = |e: String| format!("manual.csv line {line}: {e}");
        outside.push(OutsideReach {
            framework: framework(&r[0]).map_err(at)?,
            id: r[1].clone(),
            title: r[2].clone(),
            source: r[3].clone(),
        });
    }
    let mut by_check: HashMap<(ControlId, Provider), HashMap<String, FrameworkIds>> =
        HashMap::new();
    for m in &rows {
        for p in Provider::ALL.iter().filter(|p| m.scope.covers(**p)) {
            let part = format!("{}/{}", m.rule, m.aspect.as_deref().unwrap_or(""));
            for key in [m.rule.as_str(), "*", part.as_str()] {
                let ids = by_check
                    .entry((m.control, *p))
                    .or_default()
                    .entry(key.to_string())
                    .or_default();
                let list = ids.0.entry(m.framework).or_default();
                if !list.contains(&m.id) {
                    list.push(m.id.clone());
                }
            }
        }
    }
    for ids in by_check.values_mut().flat_map(|rules| rules.values_mut()) {
        for list in ids.0.values_mut() {
            list.sort_by_key(|a| natural(a));
        }
    }
    Ok(Tables {
        mappings: rows,
        unmapped: gaps,
        outside_reach: outside,
        by_check,
    })
}

/// Sort key that puts `AC-2` before `AC-10` and `1.2` before `1.10`.
pub(crate) fn natural(id: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num: Option<u64> = None;
    for c in id.chars() {
        match c.to_digit(10) {
            Some(d) => num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(d.into())),
            None => {
                if let Some(n) = num.take() {
                    out.push((std::mem::take(&mut text), n));
                }
                text.push(c);
            }
        }
    }
    out.push((text, num.unwrap_or(0)));
    out
}

/// CSV records (RFC 4180 quoting, one record per line) after the header, with their line
/// numbers; every record must have `fields` fields.
fn records(text: &str, fields: usize) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                ('"', true) => quoted = false,
                ('"', false) if field.is_empty() => quoted = true,
                (',', false) => record.push(std::mem::take(&mut field)),
                (c, _) => field.push(c),
            }
        }
        if quoted {
            return Err(format!("line {}: an unclosed quote", i + 1));
        }
        record.push(field);
        if record.len() != fields {
            return Err(format!(
                "line {}: {} fields, expected {fields}",
                i + 1,
                record.len()
            ));
        }
        out.push((i + 1, record));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
