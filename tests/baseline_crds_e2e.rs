//! onus's own CRDs against a real kube-apiserver: accepted as structural schemas, invalid
//! baselines refused by the API server with the schema's message, printer columns shown.

mod support;

use std::sync::Once;

use support::{ControlPlane, control_plane};

fn with_crds() -> &'static ControlPlane {
    static INSTALL: Once = Once::new();
    let cp = control_plane();
    INSTALL.call_once(|| {
        support::onus::install_crds(cp, &[]);
    });
    cp
}

fn baseline(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
    )
}

#[test]
fn onus_crd_applies_through_kubectl_and_is_established() {
    let cp = with_crds();
    let out = cp.kubectl(&[
        "get",
        "crd",
        "responsibilitybaselines.onus.dev",
        "-o",
        "json",
    ]);
    let crd = out.expect_success().json();
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    let ok = |t: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    assert!(ok("Established") && ok("NamesAccepted"), "{conditions:?}");
    assert!(
        !conditions
            .iter()
            .any(|c| c["type"] == "NonStructuralSchema"),
        "schema is structural: {conditions:?}"
    );
    // The generated output also installs as a single piped stream from the binary.
    let yaml = std::process::Command::new(env!("CARGO_BIN_EXE_onus"))
        .arg("crd")
        .output()
        .unwrap()
        .stdout;
    cp.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &String::from_utf8(yaml).unwrap(),
    )
    .expect_success();
}

#[test]
fn the_shipped_example_baselines_are_accepted() {
    let cp = with_crds();
    for ns in ["shop", "portal"] {
        let _ = cp.kubectl(&["create", "namespace", ns]);
    }
    let root = support::repo_root().join("manifests/examples");
    for f in [
        "aws-shop/00-baseline.yaml",
        "azure-portal/00-baseline.yaml",
        "cluster/baseline.yaml",
    ] {
        let path = root.join(f);
        cp.kubectl(&["apply", "-f", path.to_str().unwrap()])
            .expect_success();
    }
    let got = cp
        .kubectl(&["get", "rb", "aws-iaas", "-n", "shop", "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(got["spec"]["provider"], "aws");
    assert_eq!(got["spec"]["exceptions"][0]["control"], "host-os.isolation");
    cp.kubectl(&["get", "crb", "eks-platform"]).expect_success();
}

#[test]
fn defaults_are_filled_by_the_api_server() {
    let cp = with_crds();
    let ns = cp.create_namespace("defaults");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &baseline(&ns, "minimal", "  provider: gcp\n  serviceModel: saas\n"),
    )
    .expect_success();
    let got = cp
        .kubectl(&["get", "rb", "minimal", "-n", &ns, "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(got["spec"]["action"], "Deny");
    assert_eq!(got["spec"]["unknownCloudResources"], "Warn");
}

#[test]
fn invalid_baselines_are_refused_with_the_reason() {
    let cp = with_crds();
    let ns = cp.create_namespace("invalid");
    let cases = [
        (
            "unknown-provider",
            "  provider: ibm\n  serviceModel: iaas\n",
            "supported values: \"aws\", \"azure\", \"gcp\"",
        ),
        (
            "unknown-model",
            "  provider: aws\n  serviceModel: faas\n",
            "spec.serviceModel",
        ),
        (
            "unknown-control",
            "  provider: aws\n  serviceModel: iaas\n  controls: [{id: data.public}]\n",
            "spec.controls[0].id",
        ),
        (
            "no-justification",
            "  provider: aws\n  serviceModel: iaas\n  exceptions: [{control: host-os.isolation, resources: [{kind: Pod, name: x}], justification: \"  ok  \"}]\n",
            "an exception needs a justification of at least 10 characters",
        ),
        (
            "missing-justification",
            "  provider: aws\n  serviceModel: iaas\n  exceptions: [{control: host-os.isolation, resources: [{kind: Pod, name: x}]}]\n",
            "justification: Required value",
        ),
        (
            "bad-expires",
            "  provider: aws\n  serviceModel: iaas\n  exceptions: [{control: host-os.isolation, resources: [{kind: Pod, name: x}], justification: a good enough reason, expires: next-tuesday}]\n",
            "spec.exceptions[0].expires",
        ),
        (
            "no-resources",
            "  provider: aws\n  serviceModel: iaas\n  exceptions: [{control: host-os.isolation, resources: [], justification: a good enough reason}]\n",
            "spec.exceptions[0].resources",
        ),
        (
            "bad-action",
            "  provider: aws\n  serviceModel: iaas\n  action: Block\n",
            "spec.action",
        ),
        (
            "bad-account",
            "  provider: aws\n  serviceModel: iaas\n  aws: {accountId: \"12345\"}\n",
            "spec.aws.accountId",
        ),
        (
            "bad-owner",
            "  provider: aws\n  serviceModel: iaas\n  responsibilities: [{domain: data, owner: nobody}]\n",
            "spec.responsibilities[0].owner",
        ),
    ];
    for (name, spec, expected) in cases {
        let out = cp.kubectl_stdin(&["apply", "-f", "-"], &baseline(&ns, name, spec));
        let stderr = out.expect_failure();
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            stderr.contains("Invalid value")
                || stderr.contains("Required value")
                || stderr.contains("Unsupported value"),
            "{name}: {stderr}"
        );
    }
    // None of them was stored.
    let list = cp
        .kubectl(&["get", "rb", "-n", &ns, "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[test]
fn kubectl_get_rb_shows_the_printer_columns() {
    let cp = with_crds();
    let ns = cp.create_namespace("columns");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &baseline(
            &ns,
            "azure-paas",
            "  provider: azure\n  serviceModel: paas\n  action: Warn\n",
        ),
    )
    .expect_success();
    let out = cp.kubectl(&["get", "rb", "-n", &ns]);
    let text = &out.expect_success().stdout;
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PROVIDER",
            "MODEL",
            "ACTION",
            "COMPLIANT",
            "FINDINGS",
            "AGE"
        ],
        "{text}"
    );
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["azure-paas", "azure", "paas", "Warn"], "{text}");
    // The short name and the category work too.
    cp.kubectl(&["get", "onus", "-n", &ns]).expect_success();
}

#[test]
fn status_is_a_subresource() {
    let cp = with_crds();
    let ns = cp.create_namespace("status");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &baseline(&ns, "b", "  provider: aws\n  serviceModel: iaas\n"),
    )
    .expect_success();
    let patch = r#"{"status":{"summary":{"pass":3,"fail":1,"warn":0,"error":0,"skip":2}}}"#;
    cp.kubectl(&[
        "patch",
        "rb",
        "b",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    ])
    .expect_success();
    let got = cp
        .kubectl(&["get", "rb", "b", "-n", &ns, "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(got["status"]["summary"]["fail"], 1);
    // A plain update cannot write status.
    cp.kubectl(&[
        "patch",
        "rb",
        "b",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"status":{"summary":{"fail":9}}}"#,
    ])
    .expect_success();
    let got = cp
        .kubectl(&["get", "rb", "b", "-n", &ns, "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(got["status"]["summary"]["fail"], 1);
}
