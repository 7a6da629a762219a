//! The conformance corpus (`tests/conformance/`): public test suites of other tools, run through
//! onus's engine. Prints agreement per control and fails below 98 %.

use std::collections::BTreeMap;
use std::path::Path;

use onus::api::BaselineSpec;
use onus::baseline::EffectiveBaseline;
use onus::engine::{Outcome, evaluate};
use onus::inventory::Inventory;
use onus::model::ControlId;
use onus::object::Object;

const REQUIRED: f64 = 0.98;

/// One case: where it comes from, what the source says, what onus says.
struct Case {
    name: String,
    /// The case's id in its corpus file, where it has one.
    id: Option<u64>,
    expected_fail: bool,
    onus_fails: bool,
    why: String,
}

fn pods(dir: &Path) -> Vec<(String, Object)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let (mut docs, mut errors) = (Vec::new(), Vec::new());
            onus::check::parse_stream(&p.display().to_string(), &text, &mut docs, &mut errors);
            assert!(errors.is_empty(), "{}: {errors:?}", p.display());
            let value = docs.pop().expect("one document").value;
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (
                name,
                Object::from_value(value, Some("conformance")).unwrap(),
            )
        })
        .collect()
}

fn baseline(profile: &str) -> EffectiveBaseline {
    let spec: BaselineSpec = serde_yaml_ng::from_str(&format!(
        "provider: aws\nserviceModel: iaas\ncontrols:\n- {{id: host-os.isolation, parameters: {{profile: {profile}}}}}\n"
    ))
    .unwrap();
    EffectiveBaseline::compile("ResponsibilityBaseline/conformance/pss", &spec).unwrap()
}

/// Does onus fail `pod` on host-os.isolation under `profile`, and what did it say?
fn judge(pod: &Object, profile: &str) -> (bool, String) {
    let b = baseline(profile);
    let inv = Inventory::default();
    let vs = evaluate(pod, &[&b], &inv, chrono::Utc::now());
    let mine: Vec<_> = vs
        .iter()
        .filter(|v| v.control == ControlId::HostOsIsolation)
        .collect();
    let fails = mine.iter().any(|v| v.result == Outcome::Fail);
    let said = mine
        .iter()
        .map(|v| v.message.clone())
        .collect::<Vec<_>>()
        .join(" | ");
    (fails, said)
}

fn pss_cases() -> BTreeMap<&'static str, Vec<Case>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/pss");
    let mut out: BTreeMap<&'static str, Vec<Case>> = BTreeMap::new();
    for (level, judged_at) in [
        // Each level's fixtures at their own level...
        ("baseline", "baseline"),
        ("restricted", "restricted"),
        // ...and what the levels imply for the other: restricted passes pass baseline,
        // baseline failures fail restricted.
        ("restricted", "baseline"),
        ("baseline", "restricted"),
    ] {
        for expected in ["pass", "fail"] {
            let implied = (level, judged_at, expected);
            if matches!(
                implied,
                ("restricted", "baseline", "fail") | ("baseline", "restricted", "pass")
            ) {
                continue; // the levels imply nothing here
            }
            for (name, pod) in pods(&root.join(level).join(expected)) {
                let (onus_fails, why) = judge(&pod, judged_at);
                out.entry(if judged_at == "baseline" {
                    "pss baseline"
                } else {
                    "pss restricted"
                })
                .or_default()
                .push(Case {
                    id: None,
                    name: format!("{level}/{expected}/{name} at {judged_at}"),
                    expected_fail: expected == "fail",
                    onus_fails,
                    why,
                });
            }
        }
    }
    out
}

/// Cases where onus deliberately differs from the source tool, with the reason (by case id).
fn iam_differences() -> BTreeMap<u64, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/iam/differences.json");
    let text = std::fs::read_to_string(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, why)| (k.parse().unwrap(), why.as_str().unwrap().to_string()))
        .collect()
}

/// What onus says about one IAM case, in the terms of its kind.
fn iam_verdict(
    kind: &str,
    tool: &str,
    policy: &serde_json::Value,
    params: &serde_json::Value,
) -> (bool, String) {
    use onus::iam::{ESCALATION_PATHS, IamIssue, glob_match};
    let doc = match onus::iam::from_value(policy) {
        Ok(d) => d,
        Err(e) => return (false, format!("not analysed: {e}")),
    };
    let findings = match doc.analyse() {
        Ok(f) => f,
        Err(e) => return (false, format!("not analysed: {e}")),
    };
    let said = findings
        .iter()
        .map(|f| f.describe())
        .collect::<Vec<_>>()
        .join(" | ");
    let wildcard = |service: &str| {
        findings.iter().any(|f| match &f.issue {
            IamIssue::FullAdmin => true,
            IamIssue::ServiceWildcard { service: s } => glob_match(s, service),
            _ => false,
        })
    };
    match kind {
        "admin" => (
            findings
                .iter()
                .any(|f| matches!(f.issue, IamIssue::FullAdmin | IamIssue::AllowNotAction)),
            said,
        ),
        "service-wildcard" => {
            let service = params["service"].as_str().unwrap_or("");
            let hit = if service.is_empty() {
                findings.iter().any(|f| {
                    matches!(
                        f.issue,
                        IamIssue::FullAdmin | IamIssue::ServiceWildcard { .. }
                    )
                })
            } else {
                // Allow + NotAction grants every service its list leaves out.
                let everything_but = findings.iter().any(|f| f.issue == IamIssue::AllowNotAction)
                    && doc.statements.iter().any(|s| {
                        s.not_action
                            && !s
                                .actions
                                .iter()
                                .any(|a| glob_match(a, &format!("{service}:*")))
                    });
                wildcard(service) || everything_but
            };
            (hit, said)
        }
        "escalation" => {
            // A wildcard over a service grants the paths that live in it.
            let hit = findings.iter().any(|f| {
                matches!(
                    f.issue,
                    IamIssue::PrivilegeEscalation { .. }
                        | IamIssue::FullAdmin
                        | IamIssue::AllowNotAction
                )
            }) || ESCALATION_PATHS.iter().any(|p| {
                p.actions
                    .iter()
                    .all(|a| wildcard(a.split(':').next().unwrap_or("")))
            });
            (hit, said)
        }
        "public-resource-policy" => {
            let mut found = doc.public_statements(&Default::default());
            // The source counts other accounts as exposure when it is told to.
            if params["is_cross_account_allowed"] == serde_json::Value::Bool(false) {
                let own = params["source_account"].as_str().unwrap_or("");
                let trusted: Vec<&str> = params["trusted_account_ids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                found.extend(doc.cross_account_statements(own, &trusted));
            }
            // A check about public write counts write exposures only.
            if tool.contains("write") {
                found.retain(|f| f.contains(" write ("));
            }
            (!found.is_empty(), found.join(" | "))
        }
        other => panic!("unknown kind {other}"),
    }
}

fn iam_cases() -> BTreeMap<&'static str, Vec<Case>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/iam/cases.json");
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out: BTreeMap<&'static str, Vec<Case>> = BTreeMap::new();
    for c in cases {
        let kind = c["kind"].as_str().unwrap();
        let suite = match kind {
            "admin" => "iam admin",
            "service-wildcard" => "iam service wildcard",
            "escalation" => "iam privilege escalation",
            _ => "resource policy public",
        };
        let tool = c["tool_function"].as_str().unwrap_or("");
        let (onus_fails, why) = iam_verdict(kind, tool, &c["policy"], &c["params"]);
        out.entry(suite).or_default().push(Case {
            name: format!(
                "#{} {} ({})",
                c["id"],
                c["test"].as_str().unwrap_or(""),
                c["source"]
                    .as_str()
                    .unwrap_or("")
                    .split(' ')
                    .next()
                    .unwrap_or("")
            ),
            id: c["id"].as_u64(),
            expected_fail: c["expected"].as_bool().unwrap(),
            onus_fails,
            why,
        });
    }
    out
}

#[test]
fn agreement_with_public_test_suites() {
    let mut worst: f64 = 1.0;
    let mut report = String::new();
    let differences = iam_differences();
    let mut used = std::collections::BTreeSet::new();
    for (suite, cases) in pss_cases().into_iter().chain(iam_cases()) {
        let agree = cases
            .iter()
            .filter(|c| c.expected_fail == c.onus_fails)
            .count();
        let explained = cases
            .iter()
            .filter(|c| c.expected_fail != c.onus_fails)
            .filter(|c| c.id.is_some_and(|id| differences.contains_key(&id)))
            .count();
        // Disagreements onus cannot explain are what the bar is about.
        let ratio = (agree + explained) as f64 / cases.len() as f64;
        worst = worst.min(ratio);
        report.push_str(&format!(
            "{suite}: {agree}/{} agree ({:.1} %); {explained} deliberate differences; {:.1} % without unexplained ones\n",
            cases.len(),
            agree as f64 * 100.0 / cases.len() as f64,
            ratio * 100.0
        ));
        for c in cases.iter().filter(|c| c.expected_fail != c.onus_fails) {
            let reason = c.id.and_then(|id| differences.get(&id));
            if let Some(id) = c.id.filter(|_| reason.is_some()) {
                used.insert(id);
            }
            report.push_str(&format!(
                "  {}: {} (source says {}, onus {}): {}\n",
                if reason.is_some() {
                    "deliberate"
                } else {
                    "DIFFERS"
                },
                c.name,
                if c.expected_fail { "fail" } else { "pass" },
                if c.onus_fails { "fails" } else { "passes" },
                reason.cloned().unwrap_or_else(|| c.why.clone())
            ));
        }
    }
    // A documented difference that no longer differs must go from the list.
    let stale: Vec<&u64> = differences
        .keys()
        .filter(|id| !used.contains(*id))
        .collect();
    assert!(
        stale.is_empty(),
        "differences.json lists cases onus now agrees on: {stale:?}\n{report}"
    );
    println!("{report}");
    assert!(
        worst >= REQUIRED,
        "agreement below {} %:\n{report}",
        REQUIRED * 100.0
    );
}
