//! `onus check --live` against moto: referenced buckets are audited before judging.

mod support;

use std::process::Command;

use serde_json::Value;
use support::moto::{Moto, create_acl_bucket, create_bucket};

const MANIFESTS: &str = r#"
apiVersion: onus.dev/v1alpha1
kind: ResponsibilityBaseline
metadata: {name: aws, namespace: live}
spec: {provider: aws, serviceModel: iaas, aws: {region: us-east-1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reader, namespace: live, annotations: {onus.dev/uses: "s3://live-public, s3://live-private"}}
spec:
  selector: {matchLabels: {app: reader}}
  template:
    metadata: {labels: {app: reader}}
    spec:
      containers:
      - name: app
        image: registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000
"#;

fn check(moto: &Moto, file: &std::path::Path, live: bool) -> (i32, Vec<Value>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onus"));
    moto.apply_env(&mut cmd);
    cmd.args(["check", "--output", "json"]);
    if live {
        cmd.arg("--live");
    }
    let out = cmd.arg(file).output().unwrap();
    let vs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        vs.as_array().cloned().unwrap_or_default(),
    )
}

fn on(vs: &[Value], bucket: &str) -> Vec<String> {
    vs.iter()
        .filter(|v| {
            v["control"] == "data.public-access" && v["cloudResource"] == format!("s3://{bucket}")
        })
        .map(|v| v["result"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn live_check_audits_referenced_buckets() {
    let moto = Moto::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s3 = moto.s3().await;
        create_acl_bucket(&s3, "live-public").await;
        create_bucket(&s3, "live-private").await;
        s3.put_bucket_acl()
            .bucket("live-public")
            .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
            .send()
            .await
            .unwrap();
        let bpa = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        s3.put_public_access_block()
            .bucket("live-private")
            .public_access_block_configuration(bpa)
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();

    // Offline, nothing is known about the buckets: they are unknown (warn), exit 0.
    let (code, vs) = check(&moto, &file, false);
    assert_eq!(code, 0);
    assert_eq!(on(&vs, "live-public"), ["warn"]);

    // Live: the public one fails (Deny, exit 1), the private one passes.
    let (code, vs) = check(&moto, &file, true);
    assert_eq!(code, 1, "{vs:#?}");
    // ...and, since it takes ACLs, is warned about that too.
    assert_eq!(on(&vs, "live-public"), ["warn", "fail"]);
    assert_eq!(on(&vs, "live-private"), ["pass"]);
    let v = vs
        .iter()
        .find(|v| {
            v["cloudResource"] == "s3://live-public"
                && v["control"] == "data.public-access"
                && v["result"] == "fail"
        })
        .unwrap();
    assert!(v["message"].as_str().unwrap().contains("AllUsers"), "{v}");

    // The cloud unreachable: errors, never passes, and the Deny baseline exits 1.
    moto.stop();
    let (code, vs) = check(&moto, &file, true);
    assert_eq!(code, 1);
    assert_eq!(on(&vs, "live-private"), ["error"]);
    assert!(
        vs.iter()
            .filter(|v| v["cloudResource"].is_string())
            .all(|v| v["result"] != "pass")
    );
}
