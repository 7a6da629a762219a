//! The reconcile loop against a real kube-apiserver and moto: live posture of buckets, IRSA
//! roles, security groups and the account trail, written to baseline status, an OpenReports
//! Report, Events and metrics; gaps that close, a cloud that goes away, leader election.

// The lock only keeps these tests from running at once; it guards no data.
#![allow(clippy::await_holding_lock)]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use support::moto::{Moto, create_acl_bucket, create_bucket, disable_acls};
use support::onus::{Onus, eventually};
use support::{ControlPlane, control_plane};

static SERIAL: Mutex<()> = Mutex::new(());

const PUBLIC_ACL: &str = "ctl-public-acl";
const PUBLIC_POLICY: &str = "ctl-public-policy";
const PLAIN: &str = "ctl-plain";
const CLEAN: &str = "ctl-clean";

fn install_crds(cp: &ControlPlane) {
    support::onus::install_crds(cp, &["openreports.io_reports.yaml"]);
}

/// Buckets, roles and a security group as the issue describes; returns the security group id.
async fn seed(moto: &Moto) -> String {
    let conf = moto.sdk_config().await;
    let s3 = moto.s3().await;
    // As AWS creates buckets today (ACLs disabled), except the one that takes a public ACL.
    create_acl_bucket(&s3, PUBLIC_ACL).await;
    for b in [PUBLIC_POLICY, PLAIN, CLEAN] {
        create_bucket(&s3, b).await;
    }
    s3.put_bucket_acl()
        .bucket(PUBLIC_ACL)
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{PUBLIC_POLICY}/*"}}]}}"#
    );
    s3.put_bucket_policy()
        .bucket(PUBLIC_POLICY)
        .policy(policy)
        .send()
        .await
        .unwrap();
    for b in [PUBLIC_ACL, PUBLIC_POLICY, CLEAN] {
        encrypt(&s3, b).await;
    }
    // Whatever moto does for new buckets, this one has no default encryption.
    let _ = s3.delete_bucket_encryption().bucket(PLAIN).send().await;
    for b in [PUBLIC_POLICY, PLAIN, CLEAN] {
        if b != PUBLIC_POLICY {
            block_public_access(&s3, b).await;
        }
    }

    let iam = aws_sdk_iam::Client::new(&conf);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.example"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
    for (role, doc) in [
        (
            "ctl-admin",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ),
        (
            "ctl-reader",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::ctl-clean/*"}]}"#,
        ),
    ] {
        iam.create_role()
            .role_name(role)
            .assume_role_policy_document(trust)
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name(role)
            .policy_name("inline")
            .policy_document(doc)
            .send()
            .await
            .unwrap();
    }

    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let sg = ec2
        .create_security_group()
        .group_name("ctl-debug")
        .description("debug")
        .send()
        .await
        .unwrap();
    let sg_id = sg.group_id().unwrap().to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&sg_id)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    sg_id
}

async fn encrypt(s3: &aws_sdk_s3::Client, bucket: &str) {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .unwrap(),
        )
        .build();
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn block_public_access(s3: &aws_sdk_s3::Client, bucket: &str) {
    let conf = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(conf)
        .send()
        .await
        .unwrap();
}

fn workloads(ns: &str, sg: &str) -> String {
    let deploy = |name: &str, sa: &str, bucket: &str| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      serviceAccountName: {sa}\n      containers:\n      - name: app\n        image: registry.example.com/{name}@sha256:0000000000000000000000000000000000000000000000000000000000000000\n        env: [{{name: BUCKET, value: \"s3://{bucket}/data\"}}]\n"
        )
    };
    let mut s = String::new();
    s += &format!(
        "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: admin, namespace: {ns}, annotations: {{eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/ctl-admin\"}}}}\n"
    );
    s += &format!(
        "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: reader, namespace: {ns}, annotations: {{eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/ctl-reader\"}}}}\n"
    );
    s += &deploy("uses-acl", "reader", PUBLIC_ACL);
    s += &deploy("uses-policy", "reader", PUBLIC_POLICY);
    s += &deploy("uses-plain", "reader", PLAIN);
    s += &deploy("uses-clean", "reader", CLEAN);
    s += &deploy("runs-as-admin", "admin", CLEAN);
    s += &format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {ns}, annotations: {{service.beta.kubernetes.io/aws-load-balancer-security-groups: \"{sg}\", service.beta.kubernetes.io/aws-load-balancer-scheme: internal}}}}\nspec: {{type: LoadBalancer, selector: {{app: web}}, ports: [{{port: 443}}]}}\n"
    );
    s
}

fn baseline(ns: &str) -> String {
    format!(
        "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws-iaas, namespace: {ns}}}\nspec:\n  provider: aws\n  serviceModel: iaas\n  action: Deny\n  aws: {{region: us-east-1}}\n"
    )
}

fn report(cp: &ControlPlane, ns: &str) -> Option<Value> {
    let out = cp.kubectl(&[
        "get",
        "reports.openreports.io",
        "onus",
        "-n",
        ns,
        "-o",
        "json",
    ]);
    out.success().then(|| out.json())
}

/// Results of the report for one resource name and control.
fn results(report: &Value, name: &str, control: &str) -> Vec<String> {
    report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["policy"] == control && r["resources"][0]["name"] == name)
        .map(|r| r["result"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The Events in `ns` (every namespace when `None`) with this reason about an object of this
/// name, as kubectl shows them.
fn events(cp: &ControlPlane, ns: Option<&str>, reason: &str, name: &str) -> Vec<Value> {
    let mut args = vec!["get", "events.events.k8s.io", "-o", "json"];
    match ns {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("-A"),
    }
    let ev = cp.kubectl(&args).json();
    ev["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == reason && e["regarding"]["name"] == name)
        .cloned()
        .collect()
}

/// The status of ResponsibilityBaseline `name` in `ns`, as `kubectl get -o json` shows it.
fn baseline_status(cp: &ControlPlane, ns: &str, name: &str) -> Value {
    cp.kubectl(&["get", "rb", name, "-n", ns, "-o", "json"])
        .json()["status"]
        .clone()
}

/// Its Ready condition, when its status is `want` ("True"/"False").
fn ready(status: &Value, want: &str) -> Option<Value> {
    status["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == "Ready" && c["status"] == want)
            .cloned()
    })
}

fn start_onus(cp: &ControlPlane, moto: &Moto, onus_ns: &str, extra: &[&str]) -> Onus {
    start_onus_with(cp, &moto.env(), onus_ns, extra)
}

/// `onus run` as the tests run it (short intervals), with `env` pointing it at emulators.
fn start_onus_with(
    cp: &ControlPlane,
    env: &[(&str, String)],
    onus_ns: &str,
    extra: &[&str],
) -> Onus {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec![
        format!("--namespace={onus_ns}"),
        "--cert-host=127.0.0.1".into(),
        "--webhook-config=none".into(),
        "--audit-interval=2s".into(),
        "--posture-ttl=4s".into(),
        "--lease-duration=6s".into(),
    ];
    // A flag in `extra` replaces the default.
    args.retain(|a| {
        let flag = a.split('=').next().unwrap_or("");
        !extra.iter().any(|e| e.split('=').next() == Some(flag))
    });
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Onus::start_with_env(cp, &args, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_audit_reports_gaps_and_follows_the_cloud() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let moto = Moto::start();
    let sg = seed(&moto).await;
    moto.set_recording(false);

    let ns = cp.create_namespace("audited");
    let onus_ns = cp.create_namespace("onus");
    cp.kubectl_stdin(&["apply", "-f", "-"], &baseline(&ns))
        .expect_success();
    cp.kubectl_stdin(&["apply", "-f", "-"], &workloads(&ns, &sg))
        .expect_success();
    let onus = start_onus(cp, &moto, &onus_ns, &[]);

    // The report shows every gap the issue lists, and the clean resources pass.
    let r = eventually(
        Duration::from_secs(60),
        "a report with the live findings",
        || {
            report(cp, &ns).filter(|r| {
                results(r, "uses-plain", "data.encryption-at-rest").contains(&"fail".to_string())
            })
        },
    );
    let expect = [
        ("uses-acl", "data.public-access", "fail"),
        ("uses-policy", "data.public-access", "fail"),
        ("uses-plain", "data.encryption-at-rest", "fail"),
        ("uses-clean", "data.public-access", "pass"),
        ("uses-clean", "data.encryption-at-rest", "pass"),
        ("runs-as-admin", "identity.least-privilege", "fail"),
        ("uses-clean", "identity.least-privilege", "pass"),
        ("web", "network.exposure", "fail"),
        (ns.as_str(), "logging.audit-trail", "fail"),
    ];
    for (name, control, want) in expect {
        let got = results(&r, name, control);
        assert!(
            got.contains(&want.to_string()),
            "{control} on {name}: want {want}, got {got:?}\n{}",
            serde_json::to_string_pretty(&r).unwrap()
        );
    }
    let acl = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["resources"][0]["name"] == "uses-acl"
                && x["policy"] == "data.public-access"
                && x["rule"] == "public-access"
        })
        .unwrap();
    assert_eq!(
        acl["properties"]["cloudResource"],
        format!("s3://{PUBLIC_ACL}")
    );
    assert_eq!(acl["properties"]["owner"], "customer");
    // The requirement ids each finding is evidence for, as OpenReports string properties: a
    // bucket policy open to "*" fails CIS AWS Foundations 7.0 2.21 (no unrestricted Principal
    // "*"); a public ACL does not (2.21 is about policies), though NIST's ids come with both.
    let cis_of = |name: &str| {
        let r = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["resources"][0]["name"] == name && x["rule"] == "public-access")
            .unwrap();
        let frameworks = r["properties"]["frameworks"].as_str().unwrap_or_default();
        assert!(frameworks.contains("nist-800-53-r5="), "{frameworks}");
        frameworks
            .split(';')
            .find_map(|f| f.strip_prefix("cis-aws="))
            .unwrap_or_default()
            .split(' ')
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(cis_of("uses-policy").contains(&"2.21".to_string()));
    assert!(!cis_of("uses-acl").contains(&"2.21".to_string()));

    // `onus compliance --cluster` reads the Report back: the policy-public bucket's user fails
    // CIS AWS 2.21 and the ACL-public one does not.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_onus"))
        .args([
            "compliance",
            "--cluster",
            "--namespace",
            &ns,
            "--framework",
            "cis-aws",
            "--provider",
            "aws",
            "--model",
            "iaas",
            "--output",
            "json",
        ])
        .env("KUBECONFIG", cp.kubeconfig())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let policy = rows.iter().find(|r| r["id"] == "2.21").unwrap();
    assert_eq!(policy["status"], "failing", "{policy}");
    let failing: Vec<&str> = policy["failing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        failing.contains(&format!("Deployment/uses-policy in {ns}").as_str())
            && !failing.iter().any(|f| f.contains("uses-acl")),
        "{failing:?}"
    );
    assert_eq!(r["source"], "onus");
    assert!(r["summary"]["fail"].as_u64().unwrap() >= 6);

    // Baseline status.
    let rb = eventually(Duration::from_secs(30), "baseline status", || {
        let rb = cp
            .kubectl(&["get", "rb", "aws-iaas", "-n", &ns, "-o", "json"])
            .json();
        rb["status"]["summary"]["fail"]
            .as_u64()
            .filter(|n| *n >= 6)
            .map(|_| rb)
    });
    let conds = rb["status"]["conditions"].as_array().unwrap();
    let cond = |t: &str| {
        conds.iter().find(|c| c["type"] == t).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(cond("Ready"), "True");
    assert_eq!(cond("Compliant"), "False");
    let data = rb["status"]["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "data")
        .unwrap();
    assert_eq!(
        (data["owner"].as_str(), data["state"].as_str()),
        (Some("customer"), Some("failing"))
    );
    let physical = rb["status"]["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "physical")
        .unwrap();
    assert_eq!(physical["state"], "skipped");
    assert!(rb["status"]["lastAuditTime"].is_string());
    assert_eq!(
        rb["status"]["observedGeneration"],
        rb["metadata"]["generation"]
    );

    // Events for opened gaps.
    let opened = events(cp, Some(&ns), "GapOpened", "uses-acl");
    assert!(
        opened
            .iter()
            .any(|e| e["note"].as_str().unwrap().contains("data.public-access")),
        "{opened:#?}"
    );

    // Metrics.
    let m = onus.metrics();
    for needle in [
        &format!(
            "onus_findings{{namespace=\"{ns}\",control=\"data.public-access\",result=\"fail\"}} 2"
        ),
        "onus_cloud_requests_total{provider=\"aws\",service=\"s3\"",
        "onus_reconcile_total{result=\"ok\"}",
        "onus_cloud_resources{provider=\"aws\",kind=\"s3-bucket\"} 4",
        "onus_cloud_request_duration_seconds_bucket{provider=\"aws\",service=\"iam\"",
    ] {
        assert!(m.contains(needle), "{needle} missing from metrics:\n{m}");
    }

    // Close two gaps in the cloud: the findings clear within a TTL and events say so.
    let s3 = moto.s3().await;
    block_public_access(&s3, PUBLIC_ACL).await;
    disable_acls(&s3, PUBLIC_ACL).await;
    encrypt(&s3, PLAIN).await;
    let r = eventually(Duration::from_secs(30), "the closed gaps to clear", || {
        report(cp, &ns).filter(|r| {
            results(r, "uses-acl", "data.public-access") == ["pass"]
                && results(r, "uses-plain", "data.encryption-at-rest") == ["pass"]
        })
    });
    assert_eq!(
        results(&r, "uses-policy", "data.public-access"),
        ["fail"],
        "the other public bucket is still public"
    );
    eventually(Duration::from_secs(20), "a GapClosed event", || {
        (!events(cp, Some(&ns), "GapClosed", "uses-acl").is_empty()).then_some(())
    });

    // The webhook reads the same cache: a new Deployment on the still-public bucket is refused.
    let _hook = register_webhook(cp, &onus, &onus_ns);
    let new = workloads(&ns, &sg).replace("uses-policy", "new-on-policy");
    let new: String = new
        .split("---\n")
        .filter(|d| d.contains("new-on-policy"))
        .collect();
    let out = eventually(Duration::from_secs(20), "the webhook to refuse", || {
        let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &new);
        (!out.success()).then_some(out)
    });
    assert!(
        out.stderr.contains("data.public-access") && out.stderr.contains(PUBLIC_POLICY),
        "{out}"
    );

    // The cloud goes away: errors, never passes, and onus keeps running.
    moto.stop();
    let r = eventually(
        Duration::from_secs(40),
        "error verdicts while moto is down",
        || report(cp, &ns).filter(|r| results(r, "uses-clean", "data.public-access") == ["error"]),
    );
    for name in ["uses-acl", "uses-plain", "uses-clean", "runs-as-admin"] {
        let all: Vec<String> = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| {
                x["resources"][0]["name"] == name && x["properties"]["cloudResource"].is_string()
            })
            .map(|x| x["result"].as_str().unwrap().to_string())
            .collect();
        assert!(
            !all.is_empty() && all.iter().all(|x| x == "error"),
            "{name}: {all:?}"
        );
    }
    assert_eq!(onus.http_get("/healthz").map(|x| x.0), Some(200));
    assert!(
        onus.metrics().contains("outcome=\"error\""),
        "failed calls are counted"
    );
    moto.restart();
    eventually(
        Duration::from_secs(40),
        "recovery after moto is back",
        || report(cp, &ns).filter(|r| results(r, "uses-clean", "data.public-access") == ["pass"]),
    );
}

fn lease_holder(cp: &ControlPlane, ns: &str) -> Option<String> {
    let out = cp.kubectl(&[
        "get",
        "lease",
        "onus-controller",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_string())
}

fn reconciles(onus: &Onus) -> u64 {
    onus.metrics()
        .lines()
        .find(|l| l.starts_with("onus_reconcile_total{result=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_reconciles_and_the_other_takes_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let moto = Moto::start();
    let ns = cp.create_namespace("leader");
    let onus_ns = cp.create_namespace("onus-ha");
    cp.kubectl_stdin(&["apply", "-f", "-"], &baseline(&ns))
        .expect_success();
    let a = start_onus(cp, &moto, &onus_ns, &["--identity=replica-a"]);
    let b = start_onus(cp, &moto, &onus_ns, &["--identity=replica-b"]);
    let holder = eventually(Duration::from_secs(30), "a lease holder", || {
        lease_holder(cp, &onus_ns)
    });
    // Let both run a while: only the holder reconciles.
    std::thread::sleep(Duration::from_secs(8));
    let (ra, rb) = (reconciles(&a), reconciles(&b));
    let (leader, follower, follower_name) = if holder == "replica-a" {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    let (rl, rf) = if holder == "replica-a" {
        (ra, rb)
    } else {
        (rb, ra)
    };
    assert!(rl >= 1, "the leader reconciled {rl} times");
    assert_eq!(rf, 0, "the follower must not reconcile");
    // Both serve the webhook (readyz on both).
    assert_eq!(follower.http_get("/readyz").map(|x| x.0), Some(200));
    // Kill the leader: the follower takes over within the lease time.
    let killed = std::time::Instant::now();
    drop(leader);
    eventually(
        Duration::from_secs(20),
        "the follower to take the lease",
        || (lease_holder(cp, &onus_ns).as_deref() == Some(follower_name)).then_some(()),
    );
    eventually(
        Duration::from_secs(10),
        "the new leader to reconcile",
        || (reconciles(&follower) > 0).then_some(()),
    );
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(6 + 2 + 5),
        "takeover took {took:?}"
    );
}

fn cloud_resources(cp: &ControlPlane) -> Vec<Value> {
    let out = cp.kubectl(&["get", "cloudresources", "-o", "json"]);
    out.expect_success();
    out.json()["items"].as_array().cloned().unwrap_or_default()
}

fn cloud_resource(cp: &ControlPlane, kind: &str, id: &str) -> Option<Value> {
    cloud_resources(cp)
        .into_iter()
        .find(|o| o["spec"]["kind"] == kind && o["spec"]["id"] == id)
}

/// An AdmissionReview that creates `object` in `ns`.
fn review(ns: &str, object: &Value) -> Vec<u8> {
    let kind = object["kind"].as_str().unwrap();
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            object["apiVersion"].as_str().unwrap().to_string(),
        ),
    };
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "review-1",
            "kind": {"group": group, "version": version, "kind": kind},
            "operation": "CREATE",
            "namespace": ns,
            "object": object,
        }
    }))
    .unwrap()
}

/// The documents of `workloads()` renamed, as JSON: (yaml for kubectl, objects).
fn renamed(ns: &str, sg: &str, from: &str, to: &str) -> (String, Value) {
    let yaml: String = workloads(ns, sg)
        .split("---\n")
        .filter(|d| d.contains(&format!("name: {from},")))
        .map(|d| format!("---\n{}", d.replace(from, to)))
        .collect();
    let v: Value = serde_yaml_ng::from_str(yaml.trim_start_matches("---\n")).unwrap();
    (yaml, v)
}

/// Register the webhook at `onus`'s URL with the CA of `onus_ns`; removed when dropped.
fn register_webhook<'a>(
    cp: &'a ControlPlane,
    onus: &Onus,
    onus_ns: &str,
) -> support::onus::Cleanup<'a> {
    let vwc_name = format!("onus-{onus_ns}");
    let vwc = std::process::Command::new(env!("CARGO_BIN_EXE_onus"))
        .args(["webhook-config", "--url", &onus.url(), "--name", &vwc_name])
        .args(["--failure-policy", "Fail", "--exclude-namespace", onus_ns])
        .output()
        .unwrap();
    let mut vwc: Value = serde_yaml_ng::from_slice(&vwc.stdout).unwrap();
    vwc["webhooks"][0]["clientConfig"]["caBundle"] =
        Value::String(support::onus::ca_bundle(cp, onus_ns));
    let cleanup = support::onus::Cleanup {
        cp,
        args: vec!["validatingwebhookconfiguration".into(), vwc_name],
    };
    cp.kubectl_stdin(&["apply", "-f", "-"], &serde_json::to_string(&vwc).unwrap())
        .expect_success();
    cleanup
}

fn metric(onus: &Onus, prefix: &str) -> f64 {
    onus.metrics()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Objects of the kind seen by `kubectl get --watch-only` while `f` runs: one line per change.
fn watched_changes(cp: &ControlPlane, f: impl FnOnce()) -> Vec<String> {
    let mut child = cp
        .command("kubectl")
        .args(["get", "cloudresources", "--watch-only", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let the watch start before counting.
    std::thread::sleep(Duration::from_secs(1));
    f();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_refuses_what_the_leader_audited() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    cp.kubectl(&["delete", "cloudresources", "--all"])
        .expect_success();
    let moto = Moto::start();
    let sg = seed(&moto).await;
    moto.set_recording(false);
    let ns = cp.create_namespace("replicas");
    let onus_ns = cp.create_namespace("onus-replicas");
    cp.kubectl_stdin(&["apply", "-f", "-"], &baseline(&ns))
        .expect_success();
    cp.kubectl_stdin(&["apply", "-f", "-"], &workloads(&ns, &sg))
        .expect_success();
    // A TTL long enough that a run of passes without cloud changes has at most one refresh.
    let flags = [
        "--audit-interval=1s",
        "--posture-ttl=15s",
        "--lease-duration=4s",
        "--unused-grace=5s",
    ];
    let start = |id: &str| {
        let mut f: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        f.push(format!("--identity={id}"));
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        start_onus(cp, &moto, &onus_ns, &f)
    };
    let a = start("replica-a");
    let b = start("replica-b");
    let holder = eventually(Duration::from_secs(30), "a lease holder", || {
        lease_holder(cp, &onus_ns)
    });
    let (leader, follower) = if holder == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };

    // The leader publishes what it audited.
    let bucket = eventually(
        Duration::from_secs(60),
        "the public bucket published",
        || {
            cloud_resource(cp, "s3-bucket", PUBLIC_ACL)
                .filter(|o| o["status"]["public"] == true && !users_in(o, &ns).is_empty())
        },
    );
    assert_eq!(bucket["metadata"]["name"], format!("s3.{PUBLIC_ACL}"));
    assert_eq!(bucket["metadata"]["labels"]["onus.dev/kind"], "s3-bucket");
    assert_eq!(bucket["status"]["result"], "ok");
    // Other tests of this binary leave namespaces behind (no namespace controller here): only
    // this namespace's users are this test's business.
    assert_eq!(users_in(&bucket, &ns), ["uses-acl"]);
    assert!(
        bucket["status"]["findings"][0]["control"] == "data.public-access",
        "{bucket:#}"
    );
    let role = eventually(Duration::from_secs(30), "the admin role published", || {
        cloud_resource(cp, "iam-role", "arn:aws:iam::123456789012:role/ctl-admin")
            .filter(|o| o["status"]["result"] == "ok")
    });
    assert_eq!(
        role["status"]["posture"]["iam"][0]["issue"], "full-admin",
        "{role:#}"
    );
    let group = eventually(
        Duration::from_secs(30),
        "the security group published",
        || cloud_resource(cp, "security-group", &sg).filter(|o| o["status"]["result"] == "ok"),
    );
    assert!(
        group["status"]["posture"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["fromPort"] == 22 && r["source"] == "0.0.0.0/0"),
        "{group:#}"
    );
    let clean = cloud_resource(cp, "s3-bucket", CLEAN).unwrap();
    assert_eq!(clean["status"]["public"], false);
    assert_eq!(clean["status"]["encrypted"], true);

    // kubectl shows the columns a person wants.
    let table = cp.kubectl(&["get", "cloudresources"]);
    let header = table
        .expect_success()
        .stdout
        .lines()
        .next()
        .unwrap()
        .to_string();
    for col in [
        "NAME",
        "PROVIDER",
        "KIND",
        "ID",
        "PUBLIC",
        "ENCRYPTED",
        "RESULT",
        "FINDINGS",
        "USERS",
        "AUDITED",
    ] {
        assert!(header.contains(col), "{col} missing from {header}");
    }
    assert!(
        cp.kubectl(&["get", "onus"])
            .expect_success()
            .stdout
            .contains(&format!("s3.{PUBLIC_ACL}"))
    );

    // The follower never audited anything, yet refuses each gap: sent straight to its /validate.
    assert_eq!(metric(&follower, "onus_cloud_requests_total"), 0.0);
    let (_, on_acl) = renamed(&ns, &sg, "uses-acl", "new-on-acl");
    let (_, as_admin) = renamed(&ns, &sg, "runs-as-admin", "new-admin");
    let (_, web) = renamed(&ns, &sg, "web", "web-two");
    for (object, control, cloud) in [
        (&on_acl, "data.public-access", PUBLIC_ACL.to_string()),
        (
            &as_admin,
            "identity.least-privilege",
            "ctl-admin".to_string(),
        ),
        (&web, "network.exposure", sg.clone()),
    ] {
        let (code, body) = follower.post_review(cp, &onus_ns, &review(&ns, object));
        assert_eq!(code, "200", "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["response"]["allowed"], false, "{control}: {body}");
        let msg = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(msg.contains(control) && msg.contains(&cloud), "{msg}");
    }

    // And through the API server, with the webhook pointing at the follower.
    let hook = register_webhook(cp, &follower, &onus_ns);
    let (acl_yaml, _) = renamed(&ns, &sg, "uses-acl", "new-on-acl");
    let out = eventually(
        Duration::from_secs(20),
        "kubectl apply to be refused",
        || {
            let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &acl_yaml);
            (!out.success()).then_some(out)
        },
    );
    assert!(
        out.stderr.contains("data.public-access") && out.stderr.contains(PUBLIC_ACL),
        "{out}"
    );

    // who-uses answers "which of my workloads use this public bucket?".
    let who = cp
        .command(env!("CARGO_BIN_EXE_onus"))
        .args(["who-uses", &format!("arn:aws:s3:::{PUBLIC_ACL}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&who.stdout);
    assert_eq!(
        who.status.code(),
        Some(1),
        "failing checks exit 1: {text}{}",
        String::from_utf8_lossy(&who.stderr)
    );
    assert!(
        text.contains("uses-acl") && text.contains(&ns) && text.contains("public: yes"),
        "{text}"
    );
    assert!(text.contains("data.public-access"), "{text}");
    let who = cp
        .command(env!("CARGO_BIN_EXE_onus"))
        .args(["who-uses", &format!("s3://{CLEAN}"), "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(who.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(users_in(&j, &ns), ["runs-as-admin", "uses-clean"]);
    let who = cp
        .command(env!("CARGO_BIN_EXE_onus"))
        .args(["who-uses", "s3://nobody-uses-this"])
        .output()
        .unwrap();
    assert_eq!(who.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&who.stderr).contains("no CloudResource"));

    // The GapOpened event on the workload names the resource; the bucket has its own event.
    let bucket_object = format!("s3.{PUBLIC_ACL}");
    eventually(
        Duration::from_secs(20),
        "a PostureDegraded event on the bucket",
        || (!events(cp, None, "PostureDegraded", &bucket_object).is_empty()).then_some(()),
    );
    let opened = events(cp, Some(&ns), "GapOpened", "uses-acl");
    assert!(
        opened
            .iter()
            .any(|e| e["note"].as_str().unwrap().contains(PUBLIC_ACL)),
        "{opened:#?}"
    );

    // Passes with no change in the cloud write nothing but TTL refreshes.
    let resources = cloud_resources(cp).len() as f64;
    let writes_before = metric(&leader, "onus_cloud_resource_writes_total");
    let passes_before = reconciles(&leader);
    let changes = watched_changes(cp, || std::thread::sleep(Duration::from_secs(10)));
    let passes = reconciles(&leader) - passes_before;
    let writes = metric(&leader, "onus_cloud_resource_writes_total") - writes_before;
    assert!(passes >= 5, "only {passes} passes in 10 s");
    // At most one refresh per resource in a window shorter than the TTL (15 s).
    assert!(
        writes <= resources,
        "{writes} writes in {passes} passes over {resources} resources"
    );
    assert!(changes.len() as f64 <= resources, "{changes:?}");

    // A resource nobody uses any more is marked, then deleted after the grace period.
    cp.kubectl(&["delete", "deployment", "uses-plain", "-n", &ns])
        .expect_success();
    // A pass or two; generous, as CI machines are shared.
    let unused = eventually(
        Duration::from_secs(60),
        "the plain bucket marked unused",
        || {
            cloud_resource(cp, "s3-bucket", PLAIN)
                .filter(|o| o["status"]["unusedSince"].is_string())
        },
    );
    assert_eq!(unused["status"]["usedByCount"], 0);
    eventually(
        Duration::from_secs(30),
        "the plain bucket's object deleted",
        || {
            cloud_resource(cp, "s3-bucket", PLAIN)
                .is_none()
                .then_some(())
        },
    );
    assert!(
        metric(
            &leader,
            "onus_cloud_resource_writes_total{operation=\"delete\"}"
        ) >= 1.0
    );

    // Kill the leader: the follower takes over without auditing again what was just published,
    // and keeps refusing.
    drop(leader);
    eventually(Duration::from_secs(20), "the follower to lead", || {
        (reconciles(&follower) > 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let (_, body) = follower.post_review(cp, &onus_ns, &review(&ns, &on_acl));
    assert!(body.contains("\"allowed\":false"), "{body}");

    // Close the gap in moto: the CloudResource turns good, an event says so, and the webhook allows.
    let s3 = moto.s3().await;
    block_public_access(&s3, PUBLIC_ACL).await;
    s3.put_bucket_acl()
        .bucket(PUBLIC_ACL)
        .acl(aws_sdk_s3::types::BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(40), "the bucket to turn good", || {
        cloud_resource(cp, "s3-bucket", PUBLIC_ACL).filter(|o| o["status"]["public"] == false)
    });
    eventually(
        Duration::from_secs(20),
        "kubectl apply to be admitted",
        || {
            cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &acl_yaml)
                .success()
                .then_some(())
        },
    );
    assert!(!events(cp, None, "PostureRestored", &bucket_object).is_empty());
    drop(hook);

    // Audits stop (no leader at all): a webhook-only replica judges the old facts while they are
    // younger than --posture-max-age, then falls back to unknownCloudResources, never to a pass.
    drop(follower);
    let max_age = 30;
    let webhook_only = start_onus(
        cp,
        &moto,
        &onus_ns,
        &["--webhook-only", &format!("--posture-max-age={max_age}s")],
    );
    let (_, body) = webhook_only.post_review(cp, &onus_ns, &review(&ns, &as_admin));
    assert!(
        body.contains("\"allowed\":false"),
        "fresh facts still refuse: {body}"
    );
    let body = eventually(
        Duration::from_secs(max_age + 20),
        "the admin role's posture to expire",
        || {
            let (_, body) = webhook_only.post_review(cp, &onus_ns, &review(&ns, &as_admin));
            body.contains("audits have stopped").then_some(body)
        },
    );
    let answer: Value = serde_json::from_str(&body).unwrap();
    // The baseline's unknownCloudResources is Warn: admitted with a warning that says why.
    assert_eq!(answer["response"]["allowed"], true, "{body}");
    assert!(
        answer["response"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("identity.least-privilege")),
        "{body}"
    );
    assert!(metric(&webhook_only, "onus_posture_oldest_age_seconds") >= max_age as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_gives_the_lease_up_and_exits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let moto = Moto::start();
    let onus_ns = cp.create_namespace("onus-term");
    // A long lease: without giving it up, the other replica would wait 30 s to take over.
    let flags = ["--lease-duration=30s", "--shutdown-grace=4s"];
    let start = |id: &str| {
        let mut f: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        f.push(format!("--identity={id}"));
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        start_onus(cp, &moto, &onus_ns, &f)
    };
    let a = start("term-a");
    eventually(Duration::from_secs(30), "term-a to lead", || {
        (lease_holder(cp, &onus_ns).as_deref() == Some("term-a")).then_some(())
    });
    let b = start("term-b");
    let mut a = a;
    let ok = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"DELETE","kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
    assert_eq!(a.post_review(cp, &onus_ns, ok.as_bytes()).0, "200");

    let pid = a.pid();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let signalled = std::time::Instant::now();
    // At once: not ready, yet still answering reviews during the grace period.
    let (code, body) = eventually(
        Duration::from_secs(2),
        "/readyz to say shutting down",
        || a.http_get("/readyz").filter(|(c, _)| *c == 503),
    );
    assert!(body.contains("shutting down"), "{code} {body}");
    let (code, body) = a.post_review(cp, &onus_ns, ok.as_bytes());
    assert_eq!(
        code, "200",
        "reviews are still answered during the grace period: {body}"
    );
    // The Lease is given up: the other replica leads long before the 30 s lease runs out.
    eventually(Duration::from_secs(15), "term-b to lead", || {
        (lease_holder(cp, &onus_ns).as_deref() == Some("term-b")).then_some(())
    });
    assert!(signalled.elapsed() < Duration::from_secs(20));
    // And the process exits cleanly after the grace period.
    let status = a
        .terminate(Duration::from_secs(20))
        .expect("onus exits after SIGTERM");
    assert!(status.success(), "{status}\n{}", a.logs());
    assert!(
        signalled.elapsed() >= Duration::from_secs(4),
        "served for the whole grace period"
    );
    assert!(a.logs().contains("leader lease released"), "{}", a.logs());
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_stored_broken_is_loud_and_keeps_its_namespace_guarded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let moto = Moto::start();
    let ns = cp.create_namespace("broken");
    let onus_ns = cp.create_namespace("onus-broken");
    // Stored while onus is not running: the API server accepts a mistyped parameter (parameters
    // are free-form), onus cannot compile it.
    let typo = format!(
        "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws-iaas, namespace: {ns}}}\nspec:\n  provider: aws\n  serviceModel: iaas\n  controls:\n  - {{id: network.exposure, parameters: {{forbiddenPort: 22}}}}\n"
    );
    cp.kubectl_stdin(&["apply", "-f", "-"], &typo)
        .expect_success();
    let onus = start_onus(cp, &moto, &onus_ns, &[]);

    // Status says it, an Event says it, a metric says it.
    let rb = eventually(
        Duration::from_secs(30),
        "Ready=False on the baseline",
        || ready(&baseline_status(cp, &ns, "aws-iaas"), "False"),
    );
    assert_eq!(rb["reason"], "Invalid");
    assert!(
        rb["message"].as_str().unwrap().contains("forbiddenPort"),
        "{rb}"
    );
    eventually(Duration::from_secs(20), "an InvalidBaseline event", || {
        (!events(cp, Some(&ns), "InvalidBaseline", "aws-iaas").is_empty()).then_some(())
    });
    assert!(
        onus.metrics()
            .contains("onus_baselines{scope=\"namespaced\",state=\"invalid\"} 1"),
        "{}",
        onus.metrics()
    );
    // The namespace is not silently unguarded: a workload is refused, naming the baseline.
    let hook = register_webhook(cp, &onus, &onus_ns);
    let deploy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: app, image: nginx}}]\n"
    );
    let out = eventually(Duration::from_secs(20), "the workload refused", || {
        let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &deploy);
        (!out.success()).then_some(out)
    });
    assert!(
        out.stderr.contains("cannot be compiled") && out.stderr.contains("aws-iaas"),
        "{out}"
    );
    // Applying another broken version is refused with the reason; a fixed one is accepted, and
    // the baseline turns Ready.
    let out = cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &typo.replace("forbiddenPort: 22", "forbiddenPorts: 22"),
    );
    assert!(out.expect_failure().contains("forbiddenPorts"), "{out}");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &typo.replace("{forbiddenPort: 22}", "{}"),
    )
    .expect_success();
    eventually(Duration::from_secs(30), "Ready=True after the fix", || {
        let status = baseline_status(cp, &ns, "aws-iaas");
        // The spec that compiled is recorded, for the day a broken one is stored.
        ready(&status, "True").filter(|_| status["lastValidSpec"]["serviceModel"] == "iaas")
    });

    // Broken again while the webhook is not registered: judged under the last valid spec,
    // which the status and every answer say.
    drop(hook);
    eventually(Duration::from_secs(20), "the broken spec stored", || {
        cp.kubectl_stdin(&["apply", "-f", "-"], &typo)
            .success()
            .then_some(())
    });
    let condition = eventually(
        Duration::from_secs(30),
        "Ready=False, judged under the last valid spec",
        || {
            ready(&baseline_status(cp, &ns, "aws-iaas"), "False").filter(|c| {
                c["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("last valid spec")
            })
        },
    );
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("forbiddenPort"),
        "{condition}"
    );
    let hook = register_webhook(cp, &onus, &onus_ns);
    // Nobody but onus may write what it falls back to.
    let forged =
        r#"{"status":{"lastValidSpec":{"provider":"aws","serviceModel":"saas","action":"Audit"}}}"#;
    let out = eventually(Duration::from_secs(20), "the forged status refused", || {
        let out = cp.kubectl(&[
            "patch",
            "rb",
            "aws-iaas",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            forged,
            "--as=mallory",
            "--as-group=system:masters",
        ]);
        (!out.success()).then_some(out)
    });
    assert!(out.stderr.contains("only onus"), "{out}");
    let host = deploy.replace(
        "    spec:\n      containers",
        "    spec:\n      hostNetwork: true\n      containers",
    );
    let out = eventually(
        Duration::from_secs(20),
        "the host-network workload refused",
        || {
            let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &host);
            (!out.success()).then_some(out)
        },
    );
    assert!(
        out.stderr.contains("host-os.isolation")
            && out.stderr.contains("last valid spec")
            && !out.stderr.contains("refused until it is fixed"),
        "{out}"
    );
    drop(hook);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_its_lease_stops_writing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let moto = Moto::start();
    let sg = seed(&moto).await;
    let ns = cp.create_namespace("lost-lease");
    let onus_ns = cp.create_namespace("onus-lost");
    cp.kubectl_stdin(&["apply", "-f", "-"], &baseline(&ns))
        .expect_success();
    cp.kubectl_stdin(&["apply", "-f", "-"], &workloads(&ns, &sg))
        .expect_success();
    let onus = start_onus(
        cp,
        &moto,
        &onus_ns,
        &[
            "--identity=loser",
            "--audit-interval=1s",
            "--lease-duration=30s",
        ],
    );
    eventually(Duration::from_secs(60), "a first report", || {
        report(cp, &ns)
    });
    // Another holder takes the Lease (as a replica whose clock and network are fine would,
    // after a partition): from the next renewal on, `loser` must not write anything.
    let patch = format!(
        r#"{{"spec":{{"holderIdentity":"intruder","renewTime":"{}","leaseDurationSeconds":30}}}}"#,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    cp.kubectl(&[
        "patch",
        "lease",
        "onus-controller",
        "-n",
        &onus_ns,
        "--type=merge",
        "-p",
        &patch,
    ])
    .expect_success();
    // Renewal runs every lease/3 = 10 s: wait until it has noticed.
    eventually(
        Duration::from_secs(30),
        "the leadership change in the log",
        || plain(&onus.logs()).contains("leading=false").then_some(()),
    );
    let writes = metric(&onus, "onus_cloud_resource_writes_total");
    let passes = reconciles(&onus);
    // A change that a leader would write at once: a new workload on the public bucket.
    let (extra, _) = renamed(&ns, &sg, "uses-acl", "after-the-loss");
    cp.kubectl_stdin(&["apply", "-f", "-"], &extra)
        .expect_success();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(reconciles(&onus), passes, "no pass after losing the Lease");
    assert_eq!(metric(&onus, "onus_cloud_resource_writes_total"), writes);
    let r = report(cp, &ns).unwrap();
    assert!(results(&r, "after-the-loss", "data.public-access").is_empty());
    // The intruder's record is young by this replica's clock: it waits out the whole lease
    // before taking over again, whatever the intruder's renewTime says.
    assert_eq!(lease_holder(cp, &onus_ns).as_deref(), Some("intruder"));
    // Leave nothing for the other tests' leaders to reconcile.
    cp.kubectl(&["delete", "rb", "--all", "-n", &ns])
        .expect_success();
}

/// Log text without terminal colours.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The names of the objects in `ns` that a `CloudResource` (or who-uses JSON) lists as users.
fn users_in(o: &Value, ns: &str) -> Vec<String> {
    o["status"]["usedBy"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["namespace"] == ns)
        .map(|u| u["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Between passes (here: one pass at start, the next in ten minutes), the leader records each
/// spec that compiles as `lastValidSpec` and marks a broken one Invalid within seconds: a broken
/// version stored right after a change falls back to the change, not to an older spec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_valid_spec_is_recorded_between_passes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let moto = Moto::start();
    let ns = cp.create_namespace("recorded");
    let onus_ns = cp.create_namespace("onus-recorded");
    let _onus = start_onus(
        cp,
        &moto,
        &onus_ns,
        &["--audit-interval=600s", "--posture-max-age=1h"],
    );
    let spec = |ports: &str| {
        format!(
            "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: b, namespace: {ns}}}\nspec:\n  provider: aws\n  serviceModel: iaas\n  controls:\n  - {{id: network.exposure, parameters: {ports}}}\n"
        )
    };
    let last_valid =
        || baseline_status(cp, &ns, "b")["lastValidSpec"]["controls"][0]["parameters"].clone();
    cp.kubectl_stdin(&["apply", "-f", "-"], &spec("{forbiddenPorts: [22]}"))
        .expect_success();
    eventually(Duration::from_secs(15), "the first spec recorded", || {
        (last_valid()["forbiddenPorts"] == serde_json::json!([22])).then_some(())
    });
    cp.kubectl_stdin(&["apply", "-f", "-"], &spec("{forbiddenPorts: [22, 9000]}"))
        .expect_success();
    eventually(Duration::from_secs(15), "the changed spec recorded", || {
        (last_valid()["forbiddenPorts"] == serde_json::json!([22, 9000])).then_some(())
    });
    // Broken (no webhook refuses it here): Invalid, judged under the changed spec, at once.
    cp.kubectl_stdin(&["apply", "-f", "-"], &spec("{forbiddenPort: 9000}"))
        .expect_success();
    let condition = eventually(
        Duration::from_secs(15),
        "Ready=False without a pass",
        || ready(&baseline_status(cp, &ns, "b"), "False"),
    );
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("last valid spec"),
        "{condition}"
    );
    assert_eq!(
        last_valid()["forbiddenPorts"],
        serde_json::json!([22, 9000])
    );
    eventually(Duration::from_secs(15), "an InvalidBaseline event", || {
        (!events(cp, Some(&ns), "InvalidBaseline", "b").is_empty()).then_some(())
    });
}

/// Azure end to end: the leader audits the blob containers workloads use on azurite, through
/// the official SDK; the Report, the CloudResource and the metrics show it; the webhook refuses
/// a new workload on the public container; closing the container clears the finding within a
/// TTL; the storage service gone is `error`, never `pass`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_containers_are_audited_live_and_refused_at_admission() {
    use azure_storage_blob::models::{
        BlobContainerClientCreateOptions, PublicAccessType, SignedIdentifiers,
    };
    use support::azurite::{ACCOUNT, Azurite};

    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let azurite = Azurite::start();
    for (name, access) in [
        ("site", Some(PublicAccessType::Container)),
        ("private", None),
    ] {
        azurite
            .container(name)
            .create(Some(BlobContainerClientCreateOptions {
                access,
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    let ns = cp.create_namespace("portal");
    let onus_ns = cp.create_namespace("onus-az");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: azure-paas, namespace: {ns}}}\nspec: {{provider: azure, serviceModel: paas, action: Deny}}\n"
        ),
    )
    .expect_success();
    let deploy = |name: &str, container: &str| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{onus.dev/uses: \"azblob://{ACCOUNT}/{container}\"}}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/{name}@sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
        )
    };
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &(deploy("uses-site", "site") + &deploy("uses-private", "private")),
    )
    .expect_success();
    // Namespaces of earlier tests in this control plane still have baselines whose clouds are
    // gone: passes can be slow, and staleness is not what this test is about.
    let onus = start_onus_with(cp, &azurite.env(), &onus_ns, &["--posture-max-age=120s"]);

    let r = eventually(
        Duration::from_secs(60),
        "a report on the containers",
        || {
            report(cp, &ns).filter(|r| {
                results(r, "uses-site", "data.public-access").contains(&"fail".to_string())
                    && results(r, "uses-private", "data.public-access")
                        .contains(&"pass".to_string())
            })
        },
    );
    let site = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["resources"][0]["name"] == "uses-site" && x["policy"] == "data.public-access")
        .unwrap();
    let msg = site["message"].as_str().unwrap();
    assert!(msg.contains("access level is container"), "{msg}");
    assert_eq!(site["properties"]["provider"], "azure");
    assert!(
        site["properties"]["remediation"]
            .as_str()
            .unwrap()
            .contains("az storage container set-permission")
    );
    // CloudResources are published after the Reports, at the end of the pass.
    let cr = eventually(
        Duration::from_secs(60),
        "the container's CloudResource",
        || cloud_resource(cp, "azure-blob-container", &format!("{ACCOUNT}/site")),
    );
    assert_eq!(cr["spec"]["provider"], "azure");
    assert_eq!(cr["status"]["public"], true, "{cr}");
    assert!(cr.to_string().contains("access level is container"), "{cr}");
    assert!(metric(&onus, "onus_cloud_requests_total{provider=\"azure\"") >= 1.0);
    let opened = eventually(Duration::from_secs(30), "a GapOpened event", || {
        let e = events(cp, Some(&ns), "GapOpened", "uses-site");
        (!e.is_empty()).then_some(e)
    });
    assert!(
        opened[0]["note"]
            .as_str()
            .unwrap_or_default()
            .contains("data.public-access"),
        "{opened:?}"
    );

    // The webhook refuses a new workload on the public container, allows one on the private.
    let (site_yaml, private_yaml) = (
        deploy("new-on-site", "site"),
        deploy("new-on-private", "private"),
    );
    let as_json = |yaml: &str| -> Value {
        serde_yaml_ng::from_str(yaml.trim_start_matches("---\n")).unwrap()
    };
    let (_, body) = onus.post_review(cp, &onus_ns, &review(&ns, &as_json(&site_yaml)));
    assert!(body.contains("\"allowed\":false"), "{body}");
    assert!(body.contains(&format!("azblob://{ACCOUNT}/site")), "{body}");
    let (_, body) = onus.post_review(cp, &onus_ns, &review(&ns, &as_json(&private_yaml)));
    assert!(body.contains("\"allowed\":true"), "{body}");

    // Closed in the emulator: the finding clears within a TTL or two.
    azurite
        .container("site")
        .set_access_policy(SignedIdentifiers::default().try_into().unwrap(), None)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(40),
        "the container to turn good",
        || {
            report(cp, &ns).filter(|r| {
                results(r, "uses-site", "data.public-access") == vec!["pass".to_string()]
            })
        },
    );

    // The storage service gone: error, never pass.
    azurite.stop();
    eventually(Duration::from_secs(60), "the audit to fail loudly", || {
        report(cp, &ns).filter(|r| {
            results(r, "uses-private", "data.public-access").contains(&"error".to_string())
        })
    });
    // Back (empty: azurite keeps its state in memory), the private container made again: the
    // error clears without a restart of onus (failed reads are kept at most 30 s).
    azurite.start_again();
    azurite.container("private").create(None).await.unwrap();
    eventually(Duration::from_secs(90), "the audit to recover", || {
        report(cp, &ns).filter(|r| {
            let got = results(r, "uses-private", "data.public-access");
            got.contains(&"pass".to_string()) && !got.contains(&"error".to_string())
        })
    });
}

/// GCP end to end: the leader audits the buckets workloads use (fake-gcs-server behind the
/// front that adds what the emulator drops); a bucket granted to allUsers and one without
/// public access prevention or uniform access fail, a clean one passes; the webhook refuses a
/// new workload on the public bucket; the emulator gone is `error`, never `pass`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_buckets_are_audited_live_and_refused_at_admission() {
    use support::gcs::Gcs;

    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let gcs = Gcs::start();
    for b in ["ctl-open", "ctl-unguarded", "ctl-clean"] {
        gcs.create_bucket(b);
    }
    let loose = serde_json::json!({"iamConfiguration": {
        "uniformBucketLevelAccess": {"enabled": false}, "publicAccessPrevention": "inherited"}});
    gcs.set_metadata("ctl-open", loose.clone());
    gcs.set_iam(
        "ctl-open",
        serde_json::json!([{"role": "roles/storage.objectViewer", "members": ["allUsers"]}]),
    );
    gcs.set_metadata("ctl-unguarded", loose);
    gcs.set_metadata(
        "ctl-clean",
        serde_json::json!({"iamConfiguration": {"uniformBucketLevelAccess": {"enabled": true},
            "publicAccessPrevention": "enforced"}}),
    );
    let ns = cp.create_namespace("gcp-data");
    let onus_ns = cp.create_namespace("onus-gcp");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: gcp-iaas, namespace: {ns}}}\nspec: {{provider: gcp, serviceModel: iaas, action: Deny, gcp: {{projectId: onus-test}}}}\n"
        ),
    )
    .expect_success();
    let deploy = |name: &str, bucket: &str| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/{name}@sha256:0000000000000000000000000000000000000000000000000000000000000000\n        env: [{{name: BUCKET, value: \"gs://{bucket}/in\"}}]\n"
        )
    };
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &(deploy("uses-open", "ctl-open")
            + &deploy("uses-unguarded", "ctl-unguarded")
            + &deploy("uses-clean", "ctl-clean")),
    )
    .expect_success();
    // Namespaces of earlier tests in this control plane still have baselines whose clouds are
    // gone: passes can be slow, and staleness is not what this test is about.
    let onus = start_onus_with(cp, &gcs.env(), &onus_ns, &["--posture-max-age=120s"]);
    eventually(Duration::from_secs(60), "a report on the buckets", || {
        report(cp, &ns).filter(|r| {
            results(r, "uses-open", "data.public-access").contains(&"fail".to_string())
                && results(r, "uses-unguarded", "data.public-access").contains(&"fail".to_string())
                && results(r, "uses-clean", "data.public-access").contains(&"pass".to_string())
        })
    });
    // CloudResources are published after the Reports, at the end of the pass.
    let cr = eventually(
        Duration::from_secs(60),
        "the bucket's CloudResource",
        || cloud_resource(cp, "gcs-bucket", "ctl-open"),
    );
    assert_eq!(cr["spec"]["provider"], "gcp");
    assert_eq!(cr["status"]["public"], true, "{cr}");
    assert_eq!(cr["status"]["auditor"]["account"], "onus-test", "{cr}");
    assert!(metric(&onus, "onus_cloud_requests_total{provider=\"gcp\"") >= 2.0);

    let as_json = |yaml: &str| -> Value {
        serde_yaml_ng::from_str(yaml.trim_start_matches("---\n")).unwrap()
    };
    let (_, body) = onus.post_review(
        cp,
        &onus_ns,
        &review(&ns, &as_json(&deploy("new-open", "ctl-open"))),
    );
    assert!(
        body.contains("\"allowed\":false") && body.contains("gs://ctl-open"),
        "{body}"
    );
    let (_, body) = onus.post_review(
        cp,
        &onus_ns,
        &review(&ns, &as_json(&deploy("new-clean", "ctl-clean"))),
    );
    assert!(body.contains("\"allowed\":true"), "{body}");

    gcs.stop();
    eventually(Duration::from_secs(60), "the audit to fail loudly", || {
        report(cp, &ns).filter(|r| {
            results(r, "uses-clean", "data.public-access").contains(&"error".to_string())
        })
    });
    // Back (empty: the emulator keeps buckets in memory), the clean bucket made again: the
    // error clears without a restart of onus.
    gcs.start_again();
    gcs.create_bucket("ctl-clean");
    eventually(Duration::from_secs(90), "the audit to recover", || {
        report(cp, &ns).filter(|r| {
            let got = results(r, "uses-clean", "data.public-access");
            got.contains(&"pass".to_string()) && !got.contains(&"error".to_string())
        })
    });
}
