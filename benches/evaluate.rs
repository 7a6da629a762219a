//! Benchmarks: `evaluate()` on one Deployment under a full AWS IaaS baseline, and `onus check`
//! (the library driver, same code path as the binary) over 10,000 generated objects.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};

// The allocator of the `onus` binary, so that the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use onus::api::BaselineSpec;
use onus::baseline::EffectiveBaseline;
use onus::check::{CheckOptions, run};
use onus::engine::evaluate;
use onus::inventory::Inventory;
use onus::object::Object;

const BASELINE: &str = r#"
provider: aws
serviceModel: iaas
action: Deny
controls:
  - id: logging.audit-trail
    parameters: {requireAccessLogging: true}
  - id: data.encryption-in-transit
    parameters: {requireSecureTransportPolicy: true}
  - id: application.image-provenance
    parameters: {allowedRegistries: ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/"]}
exceptions:
  - control: host-os.isolation
    resources: [{kind: DaemonSet, name: "node-*"}]
    justification: node agents need the host
"#;

fn deployment(i: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: shop
  annotations: {{onus.dev/uses: "s3://bucket-{b}"}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      serviceAccountName: sa-{s}
      containers:
        - name: app
          image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:4b7e1c9d2a3f5e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b
          ports: [{{containerPort: 8080}}]
          env:
            - {{name: DATA, value: "s3://bucket-{b}/in"}}
            - {{name: LOG_LEVEL, value: info}}
            - {{name: DB_PASSWORD, valueFrom: {{secretKeyRef: {{name: db, key: password}}}}}}
          resources: {{requests: {{cpu: 100m, memory: 128Mi}}}}
          securityContext: {{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
        - name: sidecar
          image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/proxy@sha256:4b7e1c9d2a3f5e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b
"#,
        b = i % 100,
        s = i % 50
    )
}

fn world_objects() -> String {
    let mut s = String::new();
    for b in 0..100 {
        s += &format!(
            "---\napiVersion: s3.services.k8s.aws/v1alpha1\nkind: Bucket\nmetadata: {{name: bucket-{b}, namespace: shop}}\nspec:\n  name: bucket-{b}\n  publicAccessBlock: {{blockPublicACLs: true, ignorePublicACLs: true, blockPublicPolicy: true, restrictPublicBuckets: true}}\n  encryption: {{rules: [{{applyServerSideEncryptionByDefault: {{sseAlgorithm: AES256}}}}]}}\n"
        );
    }
    for sa in 0..50 {
        s += &format!(
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: sa-{sa}, namespace: shop, annotations: {{eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/role-{sa}\"}}}}\n---\napiVersion: iam.services.k8s.aws/v1alpha1\nkind: Role\nmetadata: {{name: role-{sa}, namespace: shop}}\nspec:\n  name: role-{sa}\n  inlinePolicies:\n    p: '{{\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\",\"s3:PutObject\"],\"Resource\":\"arn:aws:s3:::bucket-{sa}/*\"}}]}}'\n"
        );
    }
    s
}

fn parse(yaml: &str) -> Vec<Object> {
    let (mut docs, mut errs) = (Vec::new(), Vec::new());
    onus::check::parse_stream("bench.yaml", yaml, &mut docs, &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    docs.into_iter()
        .map(|d| Object::from_value(d.value, Some("shop")).unwrap())
        .collect()
}

fn bench_evaluate(c: &mut Criterion) {
    let spec: BaselineSpec = serde_yaml_ng::from_str(BASELINE).unwrap();
    let baseline =
        EffectiveBaseline::compile("ResponsibilityBaseline/shop/aws-iaas", &spec).unwrap();
    let world = parse(&world_objects());
    let inventory = Inventory::from_objects(world.iter());
    let deploy = parse(&deployment(7)).remove(0);
    let now = chrono::Utc::now();
    let verdicts = evaluate(&deploy, &[&baseline], &inventory, now);
    assert!(
        verdicts.len() >= 8,
        "the benchmark judges a realistic set of checks: {verdicts:#?}"
    );
    c.bench_function("evaluate/deployment-aws-iaas", |b| {
        b.iter(|| evaluate(black_box(&deploy), &[&baseline], &inventory, now))
    });
}

fn bench_check(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws-iaas, namespace: shop}}\nspec:\n{}",
        BASELINE
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    text += &world_objects();
    let mut n = 201; // baseline + 100 buckets + 50 service accounts + 50 roles
    while n < 10_000 {
        text += "---\n";
        text += &deployment(n);
        n += 1;
    }
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, text).unwrap();
    let opts = CheckOptions {
        baselines: vec![],
        paths: vec![PathBuf::from(&file)],
        namespace: "default".into(),
        now: chrono::Utc::now(),
        live: false,
    };
    let report = run(&opts);
    assert_eq!(report.objects + report.baselines, 10_000);
    assert!(report.errors.is_empty());
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    group.bench_function("10k-objects", |b| b.iter(|| run(black_box(&opts))));
    group.finish();
}

/// IAM analysis of one document: a large realistic one (990 `service:Verb*` entries and a
/// Deny, the size of AWS's biggest managed policies) and a hostile one (tangled wildcards under
/// every size limit), which stops at the analysis bound.
fn bench_iam(c: &mut Criterion) {
    let verbs = ["Get*", "List*", "Describe*", "BatchGet*", "Search*"];
    let allow: Vec<String> = (0..988)
        .map(|i| format!("svc{}:{}", i / 5, verbs[i % 5]))
        .chain(["iam:PassRole".into(), "ec2:Run*".into()])
        .collect();
    let deny: Vec<String> = (0..10).map(|i| format!("svc{i}:Get*")).collect();
    let large = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": allow, "Resource": "*"},
        {"Effect": "Deny", "Action": deny, "Resource": "*"}
    ]})
    .to_string();
    let tangled: Vec<String> = (0..240)
        .map(|i| format!("{}{i}", "*a".repeat(28)))
        .collect();
    let hostile = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": tangled, "Resource": "*"},
        {"Effect": "Deny", "Action": tangled, "Resource": "*"}
    ]})
    .to_string();
    for (name, doc) in [("large-realistic", &large), ("tangled-bounded", &hostile)] {
        c.bench_function(&format!("iam/analyse-{name}"), |b| {
            b.iter(|| onus::iam::parse(black_box(doc)).and_then(|d| d.analyse()))
        });
    }
}

/// The webhook's work on one review, without HTTP and TLS: parse the AdmissionReview, judge
/// the Deployment against the snapshot, build the response (what `benches/webhook/run.sh`
/// sends, under manifests/examples/aws-shop's baseline).
fn bench_review(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut index = onus::index::Index::default();
    let baseline =
        std::fs::read_to_string(root.join("manifests/examples/aws-shop/00-baseline.yaml")).unwrap();
    for o in parse(&baseline) {
        index.upsert(o);
    }
    let snapshot = index.snapshot(chrono::Duration::minutes(15));
    let body = std::fs::read(root.join("benches/webhook/review.json")).unwrap();
    let now = chrono::Utc::now();
    let d = onus::webhook::review::review(&body, &snapshot, now).unwrap();
    assert_eq!(
        d.decision, "warn",
        "the review is allowed with a warning (its bucket is not audited): {:?}",
        d.review
    );
    c.bench_function("webhook/review-deployment", |b| {
        b.iter(|| onus::webhook::review::review(black_box(&body), &snapshot, now))
    });
}

criterion_group!(
    benches,
    bench_evaluate,
    bench_check,
    bench_iam,
    bench_review
);
criterion_main!(benches);
