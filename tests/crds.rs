//! The checked-in CRDs are exactly what `onus crd` prints.

use std::process::Command;

#[test]
fn checked_in_crds_match_onus_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_onus"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut copies = vec![format!("{root}/crds/onus.dev.yaml")];
    let chart = format!("{root}/charts/onus/crds/onus.dev.yaml");
    if std::path::Path::new(&chart).exists() {
        copies.push(chart);
    }
    for path in copies {
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{path} differs from `onus crd`; regenerate with `cargo run -q -- crd > {path}`"
        );
    }
}

#[test]
fn crds_have_names_columns_and_validations() {
    let yaml = onus::api::crds_yaml().unwrap();
    for needle in [
        "name: responsibilitybaselines.onus.dev",
        "name: clusterresponsibilitybaselines.onus.dev",
        "- rb",
        "- crb",
        "scope: Cluster",
        "scope: Namespaced",
        "subresources:",
        "status: {}",
        "name: Compliant",
        "x-kubernetes-validations",
        "format: date-time",
        "namespaceSelector",
    ] {
        assert!(yaml.contains(needle), "CRDs lack {needle:?}");
    }
}
