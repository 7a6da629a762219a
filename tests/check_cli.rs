//! `onus check` as a user runs it: the built binary on the shipped examples and on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn onus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onus"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn examples_json() -> Vec<Value> {
    let out = onus(&["check", "--output", "json", "manifests/examples"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "examples hold Deny findings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn result_of<'a>(vs: &'a [Value], control: &str, kind: &str, name: &str) -> Vec<&'a str> {
    vs.iter()
        .filter(|v| {
            v["control"] == control
                && v["resource"]["kind"] == kind
                && v["resource"]["name"] == name
        })
        .map(|v| v["result"].as_str().unwrap())
        .collect()
}

#[test]
fn every_control_fails_somewhere_and_passes_somewhere_in_the_examples() {
    let vs = examples_json();
    for control in [
        "data.public-access",
        "data.encryption-at-rest",
        "data.encryption-in-transit",
        "identity.least-privilege",
        "identity.workload-identity",
        "network.exposure",
        "network.segmentation",
        "host-os.isolation",
        "application.image-provenance",
        "logging.audit-trail",
    ] {
        assert!(
            vs.iter()
                .any(|v| v["control"] == control && v["result"] == "fail"),
            "{control} never fails"
        );
        assert!(
            vs.iter()
                .any(|v| v["control"] == control && v["result"] == "pass"),
            "{control} never passes"
        );
    }
}

#[test]
fn examples_give_the_expected_verdicts() {
    let vs = examples_json();
    let cases = [
        ("data.public-access", "Bucket", "shop-public-assets", "fail"),
        ("data.public-access", "Bucket", "shop-invoices", "pass"),
        ("data.encryption-at-rest", "Bucket", "shop-exports", "fail"),
        (
            "data.encryption-at-rest",
            "StorageClass",
            "gp3-plain",
            "fail",
        ),
        (
            "data.encryption-at-rest",
            "StorageClass",
            "gp3-encrypted",
            "pass",
        ),
        (
            "data.encryption-in-transit",
            "Ingress",
            "admin-console",
            "fail",
        ),
        (
            "data.encryption-in-transit",
            "Ingress",
            "storefront",
            "pass",
        ),
        ("identity.least-privilege", "Role", "shop-batch", "fail"),
        (
            "identity.least-privilege",
            "Policy",
            "shop-deployer",
            "fail",
        ),
        ("identity.least-privilege", "Role", "shop-orders", "pass"),
        (
            "identity.least-privilege",
            "CronJob",
            "nightly-export",
            "fail",
        ),
        ("identity.least-privilege", "Deployment", "orders", "pass"),
        (
            "identity.workload-identity",
            "CronJob",
            "nightly-export",
            "fail",
        ),
        (
            "identity.workload-identity",
            "Deployment",
            "report-renderer",
            "fail",
        ),
        (
            "identity.workload-identity",
            "Deployment",
            "portal-web",
            "pass",
        ),
        ("network.exposure", "Service", "bastion-ssh", "fail"),
        ("network.exposure", "Service", "legacy-sftp", "fail"),
        ("network.exposure", "Service", "storefront", "pass"),
        ("network.exposure", "SecurityGroup", "shop-debug", "fail"),
        ("network.exposure", "SecurityGroup", "shop-web", "pass"),
        (
            "network.exposure",
            "NetworkSecurityGroupsSecurityRule",
            "allow-rdp",
            "fail",
        ),
        ("network.segmentation", "Namespace", "shop", "fail"),
        ("network.segmentation", "Namespace", "portal", "pass"),
        ("host-os.isolation", "DaemonSet", "node-debugger", "fail"),
        ("host-os.isolation", "DaemonSet", "log-shipper", "skip"),
        ("host-os.isolation", "Deployment", "portal-web", "skip"),
        (
            "application.image-provenance",
            "Deployment",
            "recommendations",
            "fail",
        ),
        (
            "application.image-provenance",
            "Deployment",
            "orders",
            "pass",
        ),
        ("logging.audit-trail", "Bucket", "shop-exports", "fail"),
        ("logging.audit-trail", "Bucket", "shop-invoices", "pass"),
        (
            "data.public-access",
            "StorageAccount",
            "portalfiles",
            "fail",
        ),
        (
            "data.public-access",
            "StorageAccountsBlobServicesContainer",
            "downloads",
            "fail",
        ),
        ("data.public-access", "Deployment", "portal-web", "pass"),
        (
            "data.encryption-in-transit",
            "StorageAccount",
            "portalsecure",
            "pass",
        ),
    ];
    for (control, kind, name, want) in cases {
        let got = result_of(&vs, control, kind, name);
        assert!(
            got.contains(&want),
            "{control} on {kind}/{name}: want {want}, got {got:?}"
        );
    }
    // The Azure namespace warns (not denies) on image provenance.
    let v = vs
        .iter()
        .find(|v| {
            v["control"] == "application.image-provenance"
                && v["resource"]["name"] == "report-renderer"
        })
        .unwrap();
    assert_eq!(
        (v["result"].as_str(), v["action"].as_str()),
        (Some("fail"), Some("Warn"))
    );
}

#[test]
fn verdict_json_has_the_contract_fields() {
    let vs = examples_json();
    let v = vs
        .iter()
        .find(|v| v["control"] == "data.public-access" && v["resource"]["name"] == "nightly-export")
        .unwrap();
    for field in [
        "control",
        "result",
        "action",
        "domain",
        "owner",
        "resource",
        "cloudResource",
        "message",
        "remediation",
    ] {
        assert!(!v[field].is_null(), "missing {field} in {v}");
    }
    assert_eq!(v["resource"]["apiVersion"], "batch/v1");
    assert_eq!(v["resource"]["namespace"], "shop");
    assert_eq!(v["cloudResource"], "s3://shop-exports");
    assert_eq!(v["domain"], "data");
    assert_eq!(v["owner"], "customer");
    assert_eq!(v["provider"], "aws");
    // The bucket is private but Block Public Access is off: CIS AWS Foundations 7.0 3.1.4
    // (Prowler's cis_7.0_aws.json), not 2.21 (resource policies open to everyone).
    let cis: Vec<&str> = v["frameworks"]["cis-aws"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(cis, ["3.1.4"]);
    assert!(v["frameworks"]["nist-800-53-r5"].as_array().unwrap().len() > 5);
    assert!(
        v["remediation"]
            .as_str()
            .unwrap()
            .contains("aws s3api put-public-access-block --bucket shop-exports")
    );
}

#[test]
fn text_output_groups_by_object_and_summarises() {
    let out = onus(&["check", "manifests/examples"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
    let block = text
        .split("\n\n")
        .find(|b| b.starts_with("CronJob/nightly-export in shop"))
        .expect("object heading");
    assert!(block.contains("DENY  identity.workload-identity"));
    assert!(block.contains("fix: remove the keys and use IRSA"));
    assert!(
        text.contains("fail (") && text.contains("deny)"),
        "summary line"
    );
}

#[test]
fn sarif_is_2_1_0_with_rules_and_locations() {
    let out = onus(&["check", "--output", "sarif", "manifests/examples"]);
    assert_eq!(out.status.code(), Some(1));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "onus");
    assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 10);
    let results = run["results"].as_array().unwrap();
    let r = results
        .iter()
        .find(|r| {
            r["message"]["text"]
                .as_str()
                .unwrap()
                .contains("bastion-ssh")
        })
        .unwrap();
    assert_eq!(r["ruleId"], "network.exposure");
    assert_eq!(r["level"], "error");
    // Tags that code scanning shows and a severity it ranks by.
    let public = results
        .iter()
        .find(|r| {
            r["message"]["text"]
                .as_str()
                .unwrap()
                .contains("s3://shop-public-assets is public")
        })
        .unwrap();
    let tags: Vec<&str> = public["properties"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"security"), "{tags:?}");
    assert!(tags.contains(&"cis-aws/2.21"), "{tags:?}");
    assert!(
        tags.iter().any(|t| t.starts_with("nist-800-53-r5/")),
        "{tags:?}"
    );
    let rule = &run["tool"]["driver"]["rules"][r["ruleIndex"].as_u64().unwrap() as usize];
    assert_eq!(rule["id"], "network.exposure");
    let severity: f64 = rule["properties"]["security-severity"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((7.0..9.0).contains(&severity), "{severity}");
    assert!(rule["properties"]["frameworks"]["nist-800-53-r5"].is_array());
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(
        loc["artifactLocation"]["uri"],
        "manifests/examples/aws-shop/network-fail.yaml"
    );
    assert_eq!(loc["region"]["startLine"], 2);
}

#[test]
fn text_shows_framework_ids_on_request() {
    let plain = String::from_utf8(onus(&["check", "manifests/examples"]).stdout).unwrap();
    assert!(!plain.contains("frameworks:"));
    let out = onus(&["check", "--show-frameworks", "manifests/examples"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let block = text
        .split("\n\n")
        .find(|b| b.starts_with("Bucket/shop-public-assets in shop"))
        .expect("object heading");
    assert!(
        block.contains("frameworks: ") && block.contains("cis-aws 2.21"),
        "{block}"
    );
}

#[test]
fn compliance_says_who_owns_each_requirement_and_what_the_evidence_shows() {
    // Without evidence: ownership and the checks, no status.
    let out = onus(&[
        "compliance",
        "--framework",
        "cis-aws",
        "--provider",
        "aws",
        "--model",
        "paas",
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let trail = rows.iter().find(|r| r["id"] == "4.2").expect("CIS AWS 4.2");
    assert_eq!(trail["owner"], "shared", "logging is shared under AWS PaaS");
    assert_eq!(
        trail["controls"][0],
        "logging.audit-trail/trail-log-validation"
    );
    assert!(
        trail["source"][0]
            .as_str()
            .unwrap()
            .contains("cis_7.0_aws.json@")
    );
    assert!(trail.get("status").is_none());
    let mfa = rows
        .iter()
        .find(|r| r["status"] == "outside-reach")
        .expect("a customer duty no cluster shows");
    assert_eq!(mfa["owner"], "customer");
    // With the examples as evidence: met, failing (with the objects) or no evidence; exit 1.
    let out = onus(&[
        "compliance",
        "--framework",
        "cis-aws",
        "--provider",
        "aws",
        "--model",
        "iaas",
        "--output",
        "json",
        "manifests/examples",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let public = rows.iter().find(|r| r["id"] == "2.21").unwrap();
    assert_eq!(public["status"], "failing");
    assert!(
        public["failing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "Bucket/shop-public-assets in shop"),
        "{public}"
    );
    // 3.1.1 (deny HTTP by bucket policy): the example baseline does not ask for the policy,
    // so nothing evaluated it; no evidence, not met.
    let https = rows.iter().find(|r| r["id"] == "3.1.1").unwrap();
    assert_eq!(https["status"], "no-evidence");
    // The baseline Pod Security profile evaluates hostIPC (CIS Kubernetes 5.2.4: no example
    // uses it, met) but not allowPrivilegeEscalation (5.2.6: the restricted profile's, no
    // evidence); the privileged DaemonSet fails 5.2.5 (hostNetwork).
    let out = onus(&[
        "compliance",
        "--framework",
        "cis-kubernetes",
        "--provider",
        "aws",
        "--model",
        "iaas",
        "--output",
        "json",
        "manifests/examples",
    ]);
    let k8s: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let status = |id: &str| k8s.iter().find(|r| r["id"] == id).unwrap()["status"].clone();
    assert_eq!(status("5.2.4"), "met");
    assert_eq!(status("5.2.6"), "no-evidence");
    assert_eq!(status("5.2.5"), "failing");
    // Verdicts are evidence for their baseline's provider and model only, and onus says so.
    let out = onus(&[
        "compliance",
        "--framework",
        "cis-aws",
        "--provider",
        "aws",
        "--model",
        "paas",
        "--output",
        "json",
        "manifests/examples/aws-shop",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no baseline in the evidence is aws paas (found: aws iaas)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let public = rows.iter().find(|r| r["id"] == "2.21").unwrap();
    assert_eq!(public["status"], "no-evidence");
    // Markdown and CSV carry the same rows; a benchmark for another cloud is refused.
    let md = String::from_utf8(
        onus(&[
            "compliance",
            "--framework",
            "nist-800-53-r5",
            "--provider",
            "aws",
            "--model",
            "iaas",
            "--output",
            "markdown",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        md.starts_with("# NIST SP 800-53 Revision 5")
            && md.contains("| AC-3 | Access Enforcement | customer |"),
        "{md}"
    );
    let csv = String::from_utf8(
        onus(&[
            "compliance",
            "--framework",
            "soc2",
            "--provider",
            "gcp",
            "--model",
            "saas",
            "--output",
            "csv",
        ])
        .stdout,
    )
    .unwrap();
    assert!(csv.starts_with("id,title,owner,controls,status,failing,source\n"));
    assert!(csv.lines().count() > 1);
    let wrong = onus(&[
        "compliance",
        "--framework",
        "cis-azure",
        "--provider",
        "aws",
        "--model",
        "iaas",
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("applies to azure, not aws"));
}

fn temp_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const BASELINE: &str = "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {name: b}\nspec: {provider: aws, serviceModel: iaas}\n";
const CLEAN_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  containers: [{name: c, image: \"r.example.com/a@sha256:0000000000000000000000000000000000000000000000000000000000000000\"}]\n";

#[test]
fn clean_input_exits_0_and_unknown_kinds_are_counted() {
    let dir = temp_with(&[
        ("b.yaml", BASELINE),
        (
            "pods.yaml",
            &format!(
                "{CLEAN_POD}---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w}}\n"
            ),
        ),
    ]);
    let path = dir.path().to_str().unwrap();
    let out = onus(&["check", path]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("example.com/v1/Widget (1)"), "{text}");
}

#[test]
fn broken_yaml_exits_2_with_file_and_document_after_reporting_the_rest() {
    let dir = temp_with(&[
        ("b.yaml", BASELINE),
        ("bad.yaml", &format!("{CLEAN_POD}---\nkind: [oops\n")),
    ]);
    let out = onus(&["check", "--output", "json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml: document 2 (line 7)"), "{err}");
    let vs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        vs.as_array()
            .unwrap()
            .iter()
            .any(|v| v["resource"]["name"] == "ok"),
        "what could be read was reported"
    );
}

#[test]
fn unknown_control_id_in_a_baseline_exits_2() {
    let bad = BASELINE.replace(
        "serviceModel: iaas}",
        "serviceModel: iaas, controls: [{id: data.public}]}",
    );
    let dir = temp_with(&[("b.yaml", &bad), ("p.yaml", CLEAN_POD)]);
    let b = dir.path().join("b.yaml");
    let out = onus(&[
        "check",
        "--baseline",
        b.to_str().unwrap(),
        dir.path().join("p.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("b.yaml: document 1") && err.contains("data.public"),
        "{err}"
    );
}

#[test]
fn bad_parameter_missing_file_and_no_baseline_exit_2() {
    let bad = BASELINE.replace("serviceModel: iaas}", "serviceModel: iaas, controls: [{id: network.exposure, parameters: {forbiddenPorts: [ssh]}}]}");
    let dir = temp_with(&[("b.yaml", &bad), ("p.yaml", CLEAN_POD)]);
    let out = onus(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbiddenPorts"));

    let out = onus(&["check", "/nonexistent/manifests.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/manifests.yaml"));

    let dir = temp_with(&[("p.yaml", CLEAN_POD)]);
    let out = onus(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ResponsibilityBaseline"));
}

#[test]
fn baselines_may_come_from_flags_and_objects_without_namespace_use_the_flag() {
    let dir = temp_with(&[
        ("b.yaml", BASELINE),
        (
            "p.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: latest}\nspec:\n  containers: [{name: c, image: \"nginx:latest\"}]\n",
        ),
    ]);
    let b = dir.path().join("b.yaml");
    let p = dir.path().join("p.yaml");
    // The baseline has no namespace: it belongs to --namespace, like the pod.
    let out = onus(&[
        "check",
        "--namespace",
        "team-a",
        "--output",
        "json",
        "--baseline",
        b.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(vs.as_array().unwrap().iter().all(|v| v["resource"]["namespace"] == "team-a" || v["resource"]["kind"] == "Namespace"));
}

#[test]
fn matrix_prints_text_json_and_markdown() {
    let out = onus(&[
        "matrix",
        "--provider",
        "aws",
        "--model",
        "saas",
        "--output",
        "json",
    ]);
    assert!(out.status.success());
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = m["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "host-os")
        .unwrap();
    assert_eq!(host["owner"], "provider");
    let md = onus(&[
        "matrix",
        "--provider",
        "azure",
        "--model",
        "iaas",
        "--output",
        "markdown",
    ]);
    assert!(String::from_utf8_lossy(&md.stdout).contains("| network | customer |"));
    let bad = onus(&["matrix", "--provider", "ibm", "--model", "iaas"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[allow(dead_code)]
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn output_that_cannot_be_written_exits_2() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_onus"))
        .args(["check", "--output", "sarif", "manifests/examples"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("writing the output"));
}

/// Names and values from a manifest reach a reviewer's terminal as text, never as terminal
/// control sequences: an escape in a name cannot erase or recolour the findings around it.
#[test]
fn text_output_escapes_control_characters_from_manifests() {
    let dir = temp_with(&[(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: \"web\\u001b[2K\", namespace: shop}\nspec: {hostNetwork: true, containers: [{name: c, image: \"nginx\\u001b[31m:1\"}]}\n",
    )]);
    let pod = dir.path().join("pod.yaml");
    let out = onus(&[
        "check",
        pod.to_str().unwrap(),
        "manifests/examples/aws-shop/00-baseline.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("Pod/web\\u{1b}[2K in shop"), "{text}");
    let out = onus(&[
        "compliance",
        "--framework",
        "cis-kubernetes",
        "--provider",
        "aws",
        "--model",
        "iaas",
        pod.to_str().unwrap(),
        "manifests/examples/aws-shop/00-baseline.yaml",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("failing: Pod/web\\u{1b}[2K in shop"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

/// Workloads are judged after everything they look things up in, wherever those come in the
/// files: a ConfigMap and a public ACK Bucket written after the Deployment that uses them still
/// count, verdicts come out in reading order, and a document whose head says "Deployment" but
/// which is not a manifest is an error, not a silent skip.
#[test]
fn workloads_are_judged_against_everything_whatever_the_order() {
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec:\n      containers:\n      - name: c\n        image: \"r.example.com/a@sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n        env:\n        - name: DATA\n          valueFrom: {configMapKeyRef: {name: cfg, key: bucket}}\n";
    let later = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {bucket: \"s3://late-bucket\"}\n---\napiVersion: s3.services.k8s.aws/v1alpha1\nkind: Bucket\nmetadata: {name: late-bucket}\nspec: {name: late-bucket, acl: public-read}\n";
    let dir = temp_with(&[
        ("a.yaml", &format!("{deploy}---\n{later}")),
        ("b.yaml", BASELINE),
        (
            "c.yaml",
            &format!("{CLEAN_POD}---\n--- |\napiVersion: apps/v1\nkind: Deployment\n"),
        ),
    ]);
    let out = onus(&["check", "--output", "json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c.yaml: document 2"), "{err}");
    let vs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let public: Vec<&Value> = vs
        .iter()
        .filter(|v| v["resource"]["name"] == "api" && v["control"] == "data.public-access")
        .collect();
    assert_eq!(public.len(), 1, "{public:#?}");
    assert_eq!(public[0]["result"], "fail", "{public:#?}");
    assert!(
        public[0]["message"]
            .as_str()
            .unwrap()
            .contains("late-bucket")
    );
    // Reading order: a.yaml's Deployment, then its Bucket, then c.yaml's Pod.
    let names: Vec<&str> = vs
        .iter()
        .filter_map(|v| v["resource"]["name"].as_str())
        .fold(Vec::new(), |mut seen, n| {
            if seen.last() != Some(&n) {
                seen.push(n);
            }
            seen
        });
    assert_eq!(names[..3], ["api", "late-bucket", "ok"], "{names:?}");
}
