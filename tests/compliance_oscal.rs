//! `onus compliance --output oscal-*` validated by a real OSCAL tool: compliance-trestle's models,
//! generated from NIST's OSCAL JSON schemas (`hack/oscal`, installed from PyPI like moto).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn onus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onus"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// Validate `doc` as `kind`; `Err` carries the tool's reasons.
fn validate(dir: &Path, name: &str, kind: &str, doc: &Value) -> Result<(), String> {
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/oscal"))
        .args(["validate", kind])
        .arg(&file)
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        other => panic!(
            "hack/oscal could not run ({other:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn json_of(args: &[&str]) -> Value {
    let out = onus(args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn component_definitions_and_assessment_results_validate_and_broken_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    // A component definition per framework, under its own provider (AWS where any will do).
    for (framework, provider) in [
        ("nist-800-53-r5", "aws"),
        ("cis-kubernetes", "gcp"),
        ("cis-eks", "aws"),
        ("cis-aks", "azure"),
        ("cis-gke", "gcp"),
        ("cis-aws", "aws"),
        ("cis-azure", "azure"),
        ("cis-gcp", "gcp"),
        ("pci-dss-4", "azure"),
        ("iso-27001-2022", "aws"),
        ("soc2", "aws"),
        ("csa-ccm-4", "aws"),
    ] {
        let doc = json_of(&[
            "compliance",
            "--framework",
            framework,
            "--provider",
            provider,
            "--model",
            "paas",
            "--output",
            "oscal-component",
        ]);
        let implemented = doc["component-definition"]["components"][0]["control-implementations"]
            [0]["implemented-requirements"]
            .as_array()
            .unwrap();
        assert!(!implemented.is_empty(), "{framework}");
        validate(
            dir.path(),
            &format!("{framework}.json"),
            "component-definition",
            &doc,
        )
        .unwrap_or_else(|e| panic!("{framework}: {e}"));
    }
    // NIST requirements carry NIST's own control ids and who owns them.
    let nist = json_of(&[
        "compliance",
        "--framework",
        "nist-800-53-r5",
        "--provider",
        "aws",
        "--model",
        "paas",
        "--output",
        "oscal-component",
    ]);
    let reqs = nist["component-definition"]["components"][0]["control-implementations"][0]
        ["implemented-requirements"]
        .as_array()
        .unwrap();
    let ac3 = reqs
        .iter()
        .find(|r| r["control-id"] == "ac-3")
        .expect("ac-3");
    assert!(
        ac3["props"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "responsibility" && p["value"] == "customer")
    );
    assert!(
        ac3["description"]
            .as_str()
            .unwrap()
            .contains("onus checks: ")
    );

    // Assessment results of the shipped examples.
    let results = json_of(&[
        "compliance",
        "--framework",
        "cis-aws",
        "--provider",
        "aws",
        "--model",
        "iaas",
        "--output",
        "oscal-assessment-results",
        "manifests/examples",
    ]);
    let findings = results["assessment-results"]["results"][0]["findings"]
        .as_array()
        .unwrap();
    let public = findings
        .iter()
        .find(|f| f["target"]["target-id"] == "req-2.21_smt")
        .expect("CIS AWS 2.21");
    assert_eq!(public["target"]["status"]["state"], "not-satisfied");
    assert!(
        !public["related-observations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    validate(dir.path(), "results.json", "assessment-results", &results).unwrap();

    // The check can fail: a component without its type, results without their import-ap.
    let mut broken = nist.clone();
    broken["component-definition"]["components"][0]
        .as_object_mut()
        .unwrap()
        .remove("type");
    let e = validate(dir.path(), "broken.json", "component-definition", &broken).unwrap_err();
    assert!(e.contains("type"), "{e}");
    let mut broken = results.clone();
    broken["assessment-results"]
        .as_object_mut()
        .unwrap()
        .remove("import-ap");
    assert!(
        validate(
            dir.path(),
            "broken-results.json",
            "assessment-results",
            &broken
        )
        .is_err()
    );

    // Assessment results need something to assess.
    let out = onus(&[
        "compliance",
        "--framework",
        "cis-aws",
        "--provider",
        "aws",
        "--model",
        "iaas",
        "--output",
        "oscal-assessment-results",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
