//! The GCP auditor against fake-gcs-server (behind the front of `tests/support/gcs.rs`):
//! `onus check --live` reads the buckets workloads use; a bucket the emulator does not have,
//! or an emulator that is gone, is an `error`, never a pass.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::gcs::Gcs;

const MANIFESTS: &str = r#"
apiVersion: onus.dev/v1alpha1
kind: ResponsibilityBaseline
metadata: {name: gcp, namespace: data}
spec:
  provider: gcp
  serviceModel: iaas
  controls:
    - {id: logging.audit-trail, parameters: {requireAccessLogging: true}}
    - {id: data.encryption-at-rest, parameters: {requireCustomerManagedKey: true}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: etl, namespace: data, annotations: {onus.dev/uses: "gs://open-data, gs://unguarded, gs://clean, gs://missing"}}
spec:
  selector: {matchLabels: {app: etl}}
  template:
    metadata: {labels: {app: etl}}
    spec:
      containers:
      - name: app
        image: registry.example.com/etl@sha256:0000000000000000000000000000000000000000000000000000000000000000
"#;

fn check(gcs: &Gcs, file: &std::path::Path) -> (i32, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_onus"))
        .envs(gcs.env())
        .args(["check", "--output", "json", "--live"])
        .arg(file)
        .output()
        .unwrap();
    let vs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        vs.as_array().cloned().unwrap_or_default(),
    )
}

/// `(result, message)` of `control` on one bucket.
fn on(vs: &[Value], control: &str, bucket: &str) -> (String, String) {
    let v = vs
        .iter()
        .find(|v| v["control"] == control && v["cloudResource"] == format!("gs://{bucket}"))
        .unwrap_or_else(|| panic!("no {control} verdict on {bucket}: {vs:#?}"));
    (
        v["result"].as_str().unwrap().to_string(),
        format!(
            "{} | {}",
            v["message"].as_str().unwrap_or(""),
            v["remediation"].as_str().unwrap_or("")
        ),
    )
}

#[test]
fn live_check_reads_bucket_iam_and_guards_from_the_emulator() {
    let gcs = Gcs::start();
    for b in ["open-data", "unguarded", "clean"] {
        gcs.create_bucket(b);
    }
    let loose = json!({"iamConfiguration": {"uniformBucketLevelAccess": {"enabled": false},
        "publicAccessPrevention": "inherited"}});
    gcs.set_metadata("open-data", loose.clone());
    gcs.set_iam(
        "open-data",
        json!([{"role": "roles/storage.objectViewer", "members": ["allUsers"]}]),
    );
    gcs.set_metadata("unguarded", loose);
    gcs.set_metadata(
        "clean",
        json!({"iamConfiguration": {"uniformBucketLevelAccess": {"enabled": true},
            "publicAccessPrevention": "enforced"},
            "encryption": {"defaultKmsKeyName": "projects/p/locations/eu/keyRings/r/cryptoKeys/k"},
            "logging": {"logBucket": "audit-logs"}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();

    let (code, vs) = check(&gcs, &file);
    assert_eq!(code, 1);
    let (result, message) = on(&vs, "data.public-access", "open-data");
    assert_eq!(result, "fail", "{message}");
    assert!(
        message.contains("is public: IAM grants roles/storage.objectViewer to allUsers")
            && message.contains("gcloud storage buckets remove-iam-policy-binding gs://open-data"),
        "{message}"
    );
    let (result, message) = on(&vs, "data.public-access", "unguarded");
    assert_eq!(result, "fail", "{message}");
    assert!(
        message.contains("not public today, but is not protected")
            && message.contains("public access prevention is inherited")
            && message.contains("uniform bucket-level access is off"),
        "{message}"
    );
    // The unguarded bucket fails public access prevention, not CIS GCP 5.1 (public).
    let unguarded = vs
        .iter()
        .find(|v| v["cloudResource"] == "gs://unguarded" && v["control"] == "data.public-access")
        .unwrap();
    assert!(
        !unguarded["frameworks"]["cis-gcp"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|i| i == "5.1")),
        "{unguarded}"
    );
    assert_eq!(on(&vs, "data.public-access", "clean").0, "pass");
    assert_eq!(on(&vs, "data.encryption-at-rest", "clean").0, "pass");
    assert_eq!(on(&vs, "logging.audit-trail", "clean").0, "pass");
    let (result, message) = on(&vs, "data.encryption-at-rest", "unguarded");
    assert_eq!(result, "fail", "{message}");
    assert!(message.contains("customer-managed key"), "{message}");
    assert_eq!(on(&vs, "logging.audit-trail", "unguarded").0, "fail");
    let (result, message) = on(&vs, "data.public-access", "missing");
    assert_eq!(result, "error", "{message}");
    assert!(message.contains("gs://missing does not exist"), "{message}");

    // Closed: the next check passes it.
    gcs.set_iam("open-data", json!([]));
    gcs.set_metadata(
        "open-data",
        json!({"iamConfiguration": {"publicAccessPrevention": "enforced"}}),
    );
    let (_, vs) = check(&gcs, &file);
    assert_eq!(on(&vs, "data.public-access", "open-data").0, "pass");

    // The emulator gone: errors, never passes.
    gcs.stop();
    let (_, vs) = check(&gcs, &file);
    for b in ["open-data", "clean"] {
        let (result, message) = on(&vs, "data.public-access", b);
        assert_eq!(result, "error", "{b}: {message}");
        assert!(message.contains("GetBucket"), "{message}");
    }
}

/// An endpoint that answers with far more than a bucket's metadata is cut off at 1 MiB and is
/// an error, not an out-of-memory; one that answers 200 with something other than a bucket is
/// an error, not a private bucket.
#[test]
fn hostile_answers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    let run = |port: u16| {
        let out = Command::new(env!("CARGO_BIN_EXE_onus"))
            .env("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{port}"))
            .args(["check", "--output", "json", "--live"])
            .arg(&file)
            .output()
            .unwrap();
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    };
    let flood = support::hostile_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        64 * 1024 * 1024,
    );
    let (result, message) = on(&run(flood), "data.public-access", "clean");
    assert_eq!(result, "error", "{message}");
    assert!(message.contains("answer too large"), "{message}");
    let portal = support::hostile_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n",
        0,
    );
    let (result, message) = on(&run(portal), "data.public-access", "clean");
    assert_eq!(result, "error", "{message}");
}
