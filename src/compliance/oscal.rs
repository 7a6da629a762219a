//! OSCAL documents (JSON, OSCAL 1.2.1): a component definition of onus for one framework,
//! provider and service model, and assessment results from judged objects.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Framework, Requirement, RequirementStatus, WHOLE_CONTROL_RULES};
use crate::engine::{Outcome, Verdict};
use crate::model::{ControlId, Provider, ServiceModel};

const OSCAL_VERSION: &str = "1.2.1";
/// Namespace of onus's own OSCAL properties.
const NS: &str = "https://onus.dev/ns/oscal";

/// A UUID (version 5 layout) derived from `seed`: the same document gets the same ids.
fn uuid(seed: &str) -> String {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        seed.hash(&mut h);
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The OSCAL control id of a requirement, and the statement part it names, if any. NIST ids
/// follow NIST's catalog (`AC-2(1)` is `ac-2.1`, `CM-6(a)` is part `cm-6_smt.a`); other
/// frameworks have no published OSCAL catalog, so their ids are prefixed to make tokens
/// (`2.21` is `req-2.21`).
pub fn control_id(framework: Framework, id: &str) -> (String, Option<String>) {
    if framework != Framework::Nist80053R5 {
        return (format!("req-{id}"), None);
    }
    let (base, rest) = id.split_once('(').unwrap_or((id, ""));
    let groups: Vec<&str> = rest
        .trim_end_matches(')')
        .split(")(")
        .filter(|g| !g.is_empty())
        .collect();
    let mut control = base.to_ascii_lowercase();
    let mut parts = groups.as_slice();
    if let Some(first) = parts.first()
        && first.bytes().all(|b| b.is_ascii_digit())
    {
        control = format!("{control}.{first}");
        parts = &parts[1..];
    }
    let statement = (!parts.is_empty()).then(|| format!("{control}_smt.{}", parts.join(".")));
    (control, statement)
}

fn catalog(framework: Framework) -> &'static str {
    use Framework::*;
    match framework {
        Nist80053R5 => {
            "https://raw.githubusercontent.com/usnistgov/oscal-content/main/nist.gov/SP800-53/rev5/json/NIST_SP-800-53_rev5_catalog.json"
        }
        CisKubernetes => "https://www.cisecurity.org/benchmark/kubernetes",
        CisEks | CisAws => "https://www.cisecurity.org/benchmark/amazon_web_services",
        CisAks | CisAzure => "https://www.cisecurity.org/benchmark/azure",
        CisGke | CisGcp => "https://www.cisecurity.org/benchmark/google_cloud_computing_platform",
        PciDss4 => "https://docs-prv.pcisecuritystandards.org/PCI%20DSS/Standard/PCI-DSS-v4_0.pdf",
        Iso27001 => "https://www.iso.org/standard/27001",
        Soc2 => {
            "https://www.aicpa-cima.com/resources/download/2017-trust-services-criteria-with-revised-points-of-focus-2022"
        }
        CsaCcm4 => "https://cloudsecurityalliance.org/research/cloud-controls-matrix",
    }
}

fn metadata(title: String, now: DateTime<Utc>) -> Value {
    json!({
        "title": title,
        "last-modified": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "version": env!("CARGO_PKG_VERSION"),
        "oscal-version": OSCAL_VERSION,
    })
}

fn prop(name: &str, value: &str) -> Value {
    json!({"name": name, "ns": NS, "value": value})
}

/// What a requirement asks of whom, in one paragraph.
fn responsibility(r: &Requirement, provider: Provider, model: ServiceModel) -> String {
    let cells: Vec<String> = r
        .responsibility
        .iter()
        .map(|c| format!("{} is the {}'s ({})", c.domain, c.owner, c.source))
        .collect();
    let checks: Vec<String> = r
        .controls
        .iter()
        .map(|c| {
            let control = c.split('/').next().unwrap_or(c);
            let title = control
                .parse::<ControlId>()
                .map(|c| c.title())
                .unwrap_or("");
            format!("{c} ({title})")
        })
        .collect();
    format!(
        "{}. Under {provider} {model}: {}. The provider covers the platform beneath; the customer must meet the requirement for what it runs and configures. onus checks: {}.",
        r.title.trim_end_matches('.'),
        cells.join("; "),
        checks.join("; ")
    )
}

/// The component definition: onus as a software component implementing each requirement it
/// gives evidence for, with who owns it.
pub fn component_definition(
    framework: Framework,
    provider: Provider,
    model: ServiceModel,
    rows: &[Requirement],
    now: DateTime<Utc>,
) -> Value {
    let seed = format!("onus/{framework}/{provider}/{model}");
    // Requirements that are parts of one control are statements of one implemented requirement.
    let mut by_control: BTreeMap<String, Vec<(&Requirement, Option<String>)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.controls.is_empty()) {
        let (control, statement) = control_id(framework, &r.id);
        by_control.entry(control).or_default().push((r, statement));
    }
    let implemented: Vec<Value> = by_control
        .iter()
        .map(|(control, reqs)| {
            let whole: Vec<&&Requirement> = reqs
                .iter()
                .filter(|(_, s)| s.is_none())
                .map(|(r, _)| r)
                .collect();
            let first = reqs[0].0;
            let description = match whole.first() {
                Some(r) => responsibility(r, provider, model),
                None => format!("Parts of {control}: see its statements."),
            };
            let mut props = vec![prop("responsibility", first.owner.as_str())];
            let mut checks: Vec<&String> = reqs.iter().flat_map(|(r, _)| &r.controls).collect();
            checks.sort();
            checks.dedup();
            props.extend(checks.iter().map(|c| prop("onus-check", c)));
            let mut req = json!({
                "uuid": uuid(&format!("{seed}/{control}")),
                "control-id": control,
                "description": description,
                "props": props,
            });
            let statements: Vec<Value> = reqs
                .iter()
                .filter_map(|(r, s)| s.as_ref().map(|s| (r, s)))
                .map(|(r, s)| {
                    json!({
                        "statement-id": s,
                        "uuid": uuid(&format!("{seed}/{s}")),
                        "description": responsibility(r, provider, model),
                    })
                })
                .collect();
            if !statements.is_empty() {
                req["statements"] = json!(statements);
            }
            req
        })
        .collect();
    let outside = rows
        .iter()
        .filter(|r| r.status == Some(RequirementStatus::OutsideReach))
        .count();
    json!({"component-definition": {
        "uuid": uuid(&seed),
        "metadata": metadata(format!("onus: {} under {provider} {model}", framework.title()), now),
        "components": [{
            "uuid": uuid(&format!("{seed}/component")),
            "type": "software",
            "title": "onus",
            "description": "Kubernetes admission controller and operator that enforces the customer's side of the cloud shared-responsibility model.",
            "control-implementations": [{
                "uuid": uuid(&format!("{seed}/implementation")),
                "source": catalog(framework),
                "description": format!(
                    "{} under {provider} {model}: the requirements onus gives evidence for, and who owns each (onus's responsibility matrix). {outside} more are the customer's and outside onus's reach.",
                    framework.title()
                ),
                "implemented-requirements": implemented,
            }],
        }],
    }})
}

/// Assessment results: one observation per judged object and check, one finding per
/// requirement with evidence (satisfied or not).
pub fn assessment_results(
    framework: Framework,
    provider: Provider,
    model: ServiceModel,
    rows: &[Requirement],
    verdicts: &[Verdict],
    now: DateTime<Utc>,
) -> Value {
    let stamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let seed = format!("onus/results/{framework}/{provider}/{model}/{stamp}");
    let judged: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.provider == provider && v.service_model == model && v.result != Outcome::Skip)
        .collect();
    let observation_id = |v: &Verdict| {
        uuid(&format!(
            "{seed}/{}/{}/{}/{}",
            v.control,
            v.rule,
            v.resource,
            v.cloud_resource.as_deref().unwrap_or("")
        ))
    };
    let checks: Vec<String> = judged
        .iter()
        .map(|v| format!("{}/{}", v.control, v.rule))
        .collect();
    let observations: Vec<Value> = judged
        .iter()
        .map(|v| {
            json!({
                "uuid": observation_id(v),
                "title": format!("{}/{} on {}", v.control, v.rule, v.resource),
                "description": v.message,
                "props": [prop("result", v.result.as_str()), prop("onus-check", &format!("{}/{}", v.control, v.rule))],
                "methods": ["TEST"],
                "subjects": [{
                    "subject-uuid": uuid(&v.resource.to_string()),
                    "type": "resource",
                    "title": v.resource.to_string(),
                }],
                "collected": stamp,
            })
        })
        .collect();
    let mut selected: Vec<String> = Vec::new();
    let findings: Vec<Value> = rows
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                Some(RequirementStatus::Met | RequirementStatus::Failing)
            )
        })
        .map(|r| {
            let (control, statement) = control_id(framework, &r.id);
            if !selected.contains(&control) {
                selected.push(control.clone());
            }
            // The observations of the requirement's checks, as `requirements` judged them (a
            // failed audit stands for its whole control).
            let related: Vec<Value> = judged
                .iter()
                .zip(&checks)
                .filter(|(v, check)| {
                    r.controls.contains(check)
                        || (WHOLE_CONTROL_RULES.contains(&v.rule)
                            && r.controls
                                .iter()
                                .any(|c| c.split('/').next() == Some(v.control.as_str())))
                })
                .map(|(v, _)| json!({"observation-uuid": observation_id(v)}))
                .collect();
            let state = if r.status == Some(RequirementStatus::Met) {
                "satisfied"
            } else {
                "not-satisfied"
            };
            let mut finding = json!({
                "uuid": uuid(&format!("{seed}/finding/{}", r.id)),
                "title": format!("{} {}", r.id, r.title),
                "description": match r.failing.as_slice() {
                    [] => format!("met: {}", r.controls.join(", ")),
                    objects => format!("failing on {}", objects.join(", ")),
                },
                "target": {
                    "type": "statement-id",
                    "target-id": statement.unwrap_or_else(|| format!("{control}_smt")),
                    "status": {"state": state},
                },
            });
            if !related.is_empty() {
                finding["related-observations"] = json!(related);
            }
            finding
        })
        .collect();
    let mut result = json!({
        "uuid": uuid(&format!("{seed}/result")),
        "title": format!("onus: {} under {provider} {model}", framework.title()),
        "description": "Objects judged by onus (as `onus check` judges them) and what they show for each requirement.",
        "start": stamp,
        "reviewed-controls": {"control-selections": [
            if selected.is_empty() { json!({"include-all": {}}) }
            else { json!({"include-controls": selected.iter().map(|c| json!({"control-id": c})).collect::<Vec<_>>()}) }
        ]},
    });
    if !observations.is_empty() {
        result["observations"] = json!(observations);
    }
    if !findings.is_empty() {
        result["findings"] = json!(findings);
    }
    json!({"assessment-results": {
        "uuid": uuid(&seed),
        "metadata": metadata(format!("onus assessment: {} under {provider} {model}", framework.title()), now),
        // No assessment plan is written; the results say what was judged.
        "import-ap": {"href": "#onus-check"},
        "results": [result],
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nist_ids_become_catalog_control_and_statement_ids() {
        let n = |id| control_id(Framework::Nist80053R5, id);
        assert_eq!(n("AC-2(1)"), ("ac-2.1".into(), None));
        assert_eq!(n("SC-28"), ("sc-28".into(), None));
        assert_eq!(n("CM-6(a)"), ("cm-6".into(), Some("cm-6_smt.a".into())));
        assert_eq!(
            n("AC-3(3)(b)(1)"),
            ("ac-3.3".into(), Some("ac-3.3_smt.b.1".into()))
        );
        assert_eq!(
            control_id(Framework::CisAws, "2.21"),
            ("req-2.21".into(), None)
        );
    }

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let u = uuid("x");
        assert_eq!(u, uuid("x"));
        assert_ne!(u, uuid("y"));
        let b = u.as_bytes();
        assert_eq!(u.len(), 36);
        assert_eq!(b[14], b'5');
        assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'), "{u}");
    }
}
