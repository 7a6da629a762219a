//! Fuzzing on a fixed budget: the AdmissionReview adapter (everything a client can send to
//! `/validate`) and the IAM policy parser, fed with mutations of realistic inputs. Reports
//! executions, crashes (panics) and the slowest input; exits non-zero on a crash.
//!
//! `cargo bench --bench fuzz` runs each target for `ONUS_FUZZ_SECONDS` (default 60); under
//! `cargo test` it runs a short smoke pass. No fuzzing crate: a seeded xorshift generator and
//! structure-aware mutations, so a run is reproducible from its seed (`ONUS_FUZZ_SEED`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use onus::index::Index;
use onus::object::Object;
use onus::webhook::review::review;
use serde_json::{Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Action":["iam:PassRole","ec2:RunInstances","s3:*"],"Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},{"Effect":"Deny","NotAction":"s3:Get*","NotResource":"arn:aws:s3:::x/*"},{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*"}]}"#;

fn seeds() -> Vec<Value> {
    let deployment = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop",
        "annotations":{"onus.dev/uses":"s3://bucket-a, arn:aws:iam::123456789012:role/app, sg-0123, azblob://acct/c, gs://g"}},
        "spec":{"template":{"metadata":{"annotations":{"onus.dev/uses":"s3://bucket-b"}},"spec":{"serviceAccountName":"app","hostNetwork":true,
            "containers":[{"name":"app","image":"registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "securityContext":{"privileged":true,"capabilities":{"add":["NET_RAW"]}},
                "env":[{"name":"AWS_SECRET_ACCESS_KEY","value":"x"},{"name":"B","value":"s3://bucket-c/path"},
                    {"name":"C","valueFrom":{"configMapKeyRef":{"name":"cm","key":"k"}}}],
                "envFrom":[{"configMapRef":{"name":"cm"}}]}],
            "volumes":[{"name":"h","hostPath":{"path":"/"}}]}}}});
    let service = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"lb","namespace":"shop",
        "annotations":{"service.beta.kubernetes.io/aws-load-balancer-security-groups":"sg-1,sg-2"}},
        "spec":{"type":"LoadBalancer","ports":[{"port":22},{"port":3389,"protocol":"UDP"}],"loadBalancerSourceRanges":["0.0.0.0/0"]}});
    let policy = json!({"apiVersion":"iam.services.k8s.aws/v1alpha1","kind":"Policy","metadata":{"name":"p","namespace":"shop"},
        "spec":{"name":"p","policyDocument":POLICY}});
    let bucket = json!({"apiVersion":"s3.services.k8s.aws/v1alpha1","kind":"Bucket","metadata":{"name":"b","namespace":"shop"},
        "spec":{"name":"bucket-a","acl":"public-read","policy":POLICY,"encryption":{"rules":[{"applyServerSideEncryptionByDefault":{"sseAlgorithm":"aws:kms"}}]}}});
    let baseline = json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b2","namespace":"shop"},
        "spec":{"provider":"aws","serviceModel":"iaas","controls":[{"id":"network.exposure","parameters":{"forbiddenPorts":[22]}}],
            "exceptions":[{"control":"host-os.isolation","resources":[{"kind":"*","name":"we*"}],"justification":"a long enough reason"}]}});
    let ingress = json!({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"i","namespace":"shop"},"spec":{"rules":[{"host":"x"}]}});
    [deployment, service, policy, bucket, baseline, ingress]
        .into_iter()
        .map(|o| {
            let (group, version) = match o["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), o["apiVersion"].as_str().unwrap().to_string()),
            };
            json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",
                "kind":{"group":group,"version":version,"kind":o["kind"]},"operation":"UPDATE","namespace":"shop","object":o,"oldObject":o}})
        })
        .collect()
}

const TOKENS: &[&str] = &[
    "*",
    "?",
    "**",
    "*:*",
    "s3:*",
    "iam:PassRole",
    "arn:aws:iam::123456789012:role/x",
    "s3://",
    "sg-",
    "0.0.0.0/0",
    "::/0",
    "null",
    "true",
    "[]",
    "{}",
    "\"",
    "\\",
    "%",
    "\u{10ffff}",
    "Deny",
    "NotAction",
    "CREATE",
    "DELETE",
];

/// A random JSON value of bounded size: deep nesting, long wildcards, odd scalars.
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 6 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.next() as i64),
        2 => json!(TOKENS[rng.below(TOKENS.len())].repeat(1 + rng.below(64))),
        3 => json!(rng.below(2) == 0),
        4 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        5 => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                m.insert(
                    TOKENS[rng.below(TOKENS.len())].to_string(),
                    random_value(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
        _ => {
            // Deep nesting of one kind.
            let mut v = json!("x");
            for _ in 0..rng.below(200) {
                v = json!([v]);
            }
            v
        }
    }
}

/// Replace one node somewhere in the tree.
fn mutate_tree(v: &mut Value, rng: &mut Rng, depth: usize) {
    let stop = rng.below(4) == 0 || depth > 12;
    match v {
        Value::Object(m) if !m.is_empty() && !stop => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            match rng.below(6) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), random_value(rng, depth));
                }
                _ => mutate_tree(m.get_mut(k).unwrap(), rng, depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && !stop => {
            let i = rng.below(a.len());
            match rng.below(5) {
                0 if a.len() < 1000 => {
                    let dup = a[i].clone();
                    for _ in 0..rng.below(300) {
                        a.push(dup.clone());
                    }
                }
                1 => a[i] = random_value(rng, depth),
                _ => mutate_tree(&mut a[i], rng, depth + 1),
            }
        }
        _ => *v = random_value(rng, depth),
    }
}

/// Byte-level damage, for inputs that are not even JSON.
fn mutate_bytes(b: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..1 + rng.below(8) {
        if b.is_empty() {
            b.push(b'{');
        }
        let i = rng.below(b.len());
        match rng.below(4) {
            0 => b[i] = rng.next() as u8,
            1 => {
                b.remove(i);
            }
            2 => b.insert(i, TOKENS[rng.below(TOKENS.len())].as_bytes()[0]),
            _ => {
                let end = (i + rng.below(64)).min(b.len());
                let chunk = b[i..end].to_vec();
                b.splice(i..i, chunk);
            }
        }
    }
}

struct Outcome {
    runs: u64,
    crashes: u64,
    slowest: Duration,
    slowest_bytes: usize,
}

/// Inputs larger than the webhook accepts are not tried: they never reach the adapter.
const MAX_INPUT: usize = onus::webhook::MAX_REVIEW_BYTES;

fn fuzz(
    name: &str,
    budget: Duration,
    seed: u64,
    mut input: impl FnMut(&mut Rng) -> Vec<u8>,
    one: impl Fn(&[u8]),
) -> Outcome {
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut out = Outcome {
        runs: 0,
        crashes: 0,
        slowest: Duration::ZERO,
        slowest_bytes: 0,
    };
    let mut slowest_input = Vec::new();
    while started.elapsed() < budget {
        let bytes = input(&mut rng);
        if bytes.len() > MAX_INPUT {
            continue;
        }
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| one(&bytes)));
        let took = t.elapsed();
        out.runs += 1;
        if r.is_err() {
            out.crashes += 1;
            let _ = std::fs::write(
                format!("target/fuzz-crash-{name}-{}.bin", out.crashes),
                &bytes,
            );
        }
        if took > out.slowest {
            out.slowest = took;
            out.slowest_bytes = bytes.len();
            slowest_input = bytes;
        }
    }
    let _ = std::fs::write(format!("target/fuzz-slowest-{name}.bin"), &slowest_input);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {} executions in {secs:.0} s ({:.0}/s), {} crashes, slowest input {:.1} ms ({} bytes, kept in target/fuzz-slowest-{name}.bin; seed {seed})",
        out.runs,
        out.runs as f64 / secs,
        out.crashes,
        out.slowest.as_secs_f64() * 1000.0,
        out.slowest_bytes
    );
    out
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("ONUS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 60 } else { 2 });
    let seed: u64 = std::env::var("ONUS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0bad_cafe_f00d);
    // Panics are counted, not printed one by one.
    std::panic::set_hook(Box::new(|_| {}));
    let budget = Duration::from_secs(secs);

    let mut idx = Index::default();
    for ns in ["shop", "other"] {
        let rb = json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":ns},
            "spec":{"provider":"aws","serviceModel":"iaas","unknownCloudResources":"Deny"}});
        idx.upsert(Object::from_value(rb, None).unwrap());
    }
    let snapshot = idx.snapshot(chrono::Duration::minutes(15));
    let seeds = seeds();
    let now = chrono::Utc::now();

    let reviews = fuzz(
        "admission-review",
        budget,
        seed,
        |rng| {
            let mut v = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                mutate_tree(&mut v, rng, 0);
            }
            let mut bytes = serde_json::to_vec(&v).unwrap();
            if rng.below(5) == 0 {
                mutate_bytes(&mut bytes, rng);
            }
            bytes
        },
        |bytes| {
            let _ = review(bytes, &snapshot, now);
        },
    );
    let iam = fuzz(
        "iam-policy",
        budget,
        seed ^ 1,
        |rng| {
            let mut v: Value = serde_json::from_str(POLICY).unwrap();
            for _ in 0..1 + rng.below(6) {
                mutate_tree(&mut v, rng, 0);
            }
            let mut text = serde_json::to_vec(&v).unwrap();
            if rng.below(4) == 0 {
                mutate_bytes(&mut text, rng);
            }
            text
        },
        |bytes| {
            if let Ok(doc) = onus::iam::parse(&String::from_utf8_lossy(bytes)) {
                let _ = doc.analyse();
            }
        },
    );
    let crashes = reviews.crashes + iam.crashes;
    println!(
        "fuzz: {} passed, {crashes} failed",
        reviews.runs + iam.runs - crashes
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}
