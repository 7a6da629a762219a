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

#[test]
fn agreement_with_public_test_suites() {
    let mut worst: f64 = 1.0;
    let mut report = String::new();
    for (suite, cases) in pss_cases() {
        let agree = cases
            .iter()
            .filter(|c| c.expected_fail == c.onus_fails)
            .count();
        let ratio = agree as f64 / cases.len() as f64;
        worst = worst.min(ratio);
        report.push_str(&format!(
            "{suite}: {agree}/{} agree ({:.1} %)\n",
            cases.len(),
            ratio * 100.0
        ));
        for c in cases.iter().filter(|c| c.expected_fail != c.onus_fails) {
            report.push_str(&format!(
                "  differs: {} (expected {}, onus {}): {}\n",
                c.name,
                if c.expected_fail { "fail" } else { "pass" },
                if c.onus_fails { "fails" } else { "passes" },
                c.why
            ));
        }
    }
    println!("{report}");
    assert!(
        worst >= REQUIRED,
        "agreement below {} %:\n{report}",
        REQUIRED * 100.0
    );
}
