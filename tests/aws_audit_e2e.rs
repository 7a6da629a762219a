//! The AWS auditor against a real moto server: seeded buckets, roles, security groups and
//! trails give the postures and engine verdicts a user expects; closing a gap flips them; a
//! stopped moto gives errors (never a pass) and a restarted one recovers; throttling is retried.
//!
//! Most tests share one moto (resources get random names) whose endpoint reaches the auditor
//! through `AWS_ENDPOINT_URL`, as in production; tests that touch account-wide settings or
//! stop the server start their own and pass the endpoint in `AwsOptions`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
use aws_sdk_s3::types::{
    BucketCannedAcl, BucketLoggingStatus, LoggingEnabled, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use chrono::{DateTime, Utc};
use onus::api::BaselineSpec;
use onus::baseline::EffectiveBaseline;
use onus::cloud::aws::{AwsAuditor, AwsOptions, CallObserver, PlainHostS3Control};
use onus::engine::{Outcome, Verdict, evaluate, evaluate_namespace};
use onus::iam::IamIssue;
use onus::inventory::Inventory;
use onus::model::ControlId::{self, *};
use onus::object::Object;
use onus::posture::{CloudResource, IngressRule, Posture};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::moto::{ACCOUNT, Moto, create_acl_bucket, create_bucket, disable_acls};
use support::random_suffix;

const NS: &str = "app";
const PINNED: &str = "registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000";

// ------------------------------------------------------------------------------ fixtures

/// The shared moto; its endpoint and test credentials are in the process environment, set once
/// before any test reads it (every test calls this first).
fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(|| {
        let moto = Moto::start();
        // No restart of the shared server: nothing to replay.
        moto.set_recording(false);
        for (k, v) in moto.env() {
            // SAFETY: runs once, inside the OnceLock initialiser; every test calls `shared()`
            // first (before it spawns a process or creates a client), so the other test
            // threads wait on the OnceLock and nothing reads the environment meanwhile.
            unsafe { std::env::set_var(k, v) };
        }
        for k in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"] {
            // SAFETY: as above.
            unsafe { std::env::remove_var(k) };
        }
        moto
    })
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// One observed call: (service, operation, outcome).
type Call = (&'static str, &'static str, &'static str);

/// Every observed call.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn observer(&self) -> CallObserver {
        let log = self.0.clone();
        Arc::new(move |service, operation, outcome, _elapsed| {
            log.lock().unwrap().push((service, operation, outcome));
        })
    }
    fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    fn count(&self, outcome: &str) -> usize {
        self.all().iter().filter(|c| c.2 == outcome).count()
    }
}

/// An auditor configured from the environment (the shared moto), as `onus run` would be.
async fn env_auditor(calls: &Calls) -> AwsAuditor {
    shared();
    AwsAuditor::new(None, None, calls.observer())
        .await
        .expect("auditor from the environment")
}

/// Fast retries, for servers that are stopped or throttle on purpose.
fn quick(endpoint: String, max_attempts: u32) -> AwsOptions {
    AwsOptions {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(10),
        operation_timeout: Duration::from_secs(30),
        endpoint_url: Some(endpoint),
    }
}

async fn own_auditor(moto: &Moto, calls: &Calls, max_attempts: u32) -> AwsAuditor {
    shared(); // credentials from the environment
    AwsAuditor::with_options(
        Some("us-east-1".into()),
        None,
        calls.observer(),
        quick(moto.endpoint(), max_attempts),
    )
    .await
    .expect("auditor")
}

fn name(prefix: &str) -> String {
    format!("onus-{prefix}-{}", random_suffix())
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

fn bpa(all: bool) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(all)
        .ignore_public_acls(all)
        .block_public_policy(all)
        .restrict_public_buckets(all)
        .build()
}

async fn put_bpa(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(bpa(true))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put BPA on {bucket}: {e:?}"));
}

async fn put_encryption(s3: &aws_sdk_s3::Client, bucket: &str, kms_key: Option<&str>) {
    let mut by_default = ServerSideEncryptionByDefault::builder();
    by_default = match kms_key {
        Some(k) => by_default
            .sse_algorithm(ServerSideEncryption::AwsKms)
            .kms_master_key_id(k),
        None => by_default.sse_algorithm(ServerSideEncryption::Aes256),
    };
    let conf = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default.build().unwrap())
                .build(),
        )
        .build()
        .unwrap();
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(conf)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put encryption on {bucket}: {e:?}"));
}

fn public_read_policy(bucket: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")
        }]
    })
    .to_string()
}

/// Public read, and write for a partner account.
fn public_read_and_partner_policy(bucket: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")
        }, {
            "Sid": "PartnerDrop", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/*")
        }]
    })
    .to_string()
}

fn deny_insecure_transport_policy(bucket: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
    .to_string()
}

/// A bucket with everything on: BPA, SSE-KMS with a customer key, access logging, TLS-only
/// policy, ACLs disabled.
async fn seed_clean_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    let logs = format!("{bucket}-logs");
    create_acl_bucket(s3, &logs).await;
    s3.put_bucket_acl()
        .bucket(&logs)
        .acl(BucketCannedAcl::from("log-delivery-write"))
        .send()
        .await
        .expect("log bucket ACL");
    create_bucket(s3, bucket).await;
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(deny_insecure_transport_policy(bucket))
        .send()
        .await
        .expect("TLS-only policy");
    put_bpa(s3, bucket).await;
    put_encryption(s3, bucket, Some("alias/onus-test")).await;
    s3.put_bucket_logging()
        .bucket(bucket)
        .bucket_logging_status(
            BucketLoggingStatus::builder()
                .logging_enabled(
                    LoggingEnabled::builder()
                        .target_bucket(&logs)
                        .target_prefix(format!("{bucket}/"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("logging on {bucket}: {e:?}"));
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
const ADMIN: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Admin","Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const READ_ONE_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data","arn:aws:s3:::data/*"]}]}"#;
const S3_EVERYTHING: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;

async fn create_role(iam: &aws_sdk_iam::Client, role: &str, path: Option<&str>) -> String {
    let out = iam
        .create_role()
        .role_name(role)
        .set_path(path.map(str::to_string))
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create role {role}: {e:?}"));
    out.role().expect("role").arn().to_string()
}

async fn put_inline(iam: &aws_sdk_iam::Client, role: &str, policy: &str, doc: &str) {
    iam.put_role_policy()
        .role_name(role)
        .policy_name(policy)
        .policy_document(doc)
        .send()
        .await
        .unwrap_or_else(|e| panic!("inline policy {policy} on {role}: {e:?}"));
}

async fn open_group(ec2: &aws_sdk_ec2::Client, group: &str, perms: Vec<IpPermission>) -> String {
    let id = ec2
        .create_security_group()
        .group_name(group)
        .description("onus test")
        .send()
        .await
        .unwrap_or_else(|e| panic!("create security group {group}: {e:?}"))
        .group_id()
        .expect("group id")
        .to_string();
    ec2.authorize_security_group_ingress()
        .group_id(&id)
        .set_ip_permissions(Some(perms))
        .send()
        .await
        .unwrap_or_else(|e| panic!("ingress on {group}: {e:?}"));
    id
}

fn tcp(port: i32, v4: &[&str], v6: &[&str]) -> IpPermission {
    let mut p = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port);
    for c in v4 {
        p = p.ip_ranges(IpRange::builder().cidr_ip(*c).build());
    }
    for c in v6 {
        p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(*c).build());
    }
    p.build()
}

// ------------------------------------------------------------------------------ engine

fn baseline(extra: &str) -> EffectiveBaseline {
    let spec: BaselineSpec =
        serde_yaml_ng::from_str(&format!("provider: aws\nserviceModel: iaas\n{extra}"))
            .expect("baseline spec");
    EffectiveBaseline::compile("ResponsibilityBaseline/app/aws", &spec).expect("baseline")
}

fn object(v: serde_json::Value) -> Object {
    Object::from_value(v, Some(NS)).expect("object")
}

/// A Deployment that uses `uses` (annotation `onus.dev/uses`) as ServiceAccount `sa`.
fn deployment(name: &str, uses: &str, sa: &str) -> Object {
    object(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "annotations": {"onus.dev/uses": uses}},
        "spec": {"template": {"spec": {
            "serviceAccountName": sa,
            "containers": [{"name": "app", "image": PINNED}]
        }}}
    }))
}

fn irsa_service_account(name: &str, role_arn: &str) -> Object {
    object(json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {"eks.amazonaws.com/role-arn": role_arn}}
    }))
}

/// Verdicts for `workloads` with the given live postures.
fn judge(
    b: &EffectiveBaseline,
    objects: &[Object],
    postures: impl IntoIterator<Item = Posture>,
) -> Vec<Verdict> {
    let mut inv = Inventory::from_objects(objects.iter());
    for p in postures {
        inv.live.replace(p);
    }
    objects
        .iter()
        .flat_map(|o| evaluate(o, &[b], &inv, now()))
        .collect()
}

/// The worst outcome of `control` on object `name`.
fn outcome(vs: &[Verdict], control: ControlId, name: &str) -> Outcome {
    let mine: Vec<&Verdict> = vs
        .iter()
        .filter(|v| v.control == control && v.resource.name == name)
        .collect();
    assert!(!mine.is_empty(), "no {control} verdict for {name}: {vs:#?}");
    for o in [
        Outcome::Error,
        Outcome::Fail,
        Outcome::Warn,
        Outcome::Pass,
        Outcome::Skip,
    ] {
        if mine.iter().any(|v| v.result == o) {
            return o;
        }
    }
    unreachable!()
}

fn messages(vs: &[Verdict], control: ControlId, name: &str) -> String {
    vs.iter()
        .filter(|v| v.control == control && v.resource.name == name)
        .map(|v| v.message.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

fn guard(p: &Posture) -> Result<(), String> {
    p.public_access
        .as_ref()
        .and_then(|pa| pa.guard.clone())
        .expect("a guard")
}

fn exposures(p: &Posture) -> Vec<String> {
    p.public_access
        .as_ref()
        .map(|pa| pa.exposures.clone())
        .expect("public access facts")
}

/// Runs a test body on a runtime whose threads have room for the SDK's deep, debug-build
/// futures (the default 2 MiB test and worker stacks are not enough for the seeding code).
fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    const STACK: usize = 16 << 20;
    let result = std::thread::Builder::new()
        .name("test-body".into())
        .stack_size(STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(body())
        })
        .expect("spawn the test thread")
        .join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

// ------------------------------------------------------------------------------ tests

#[test]
fn bucket_postures_hold_the_seeded_facts_and_verdicts_follow() {
    run(|| async move {
        let moto = shared();
        let s3 = moto.s3().await;
        let (public_acl, public_policy, unencrypted, clean) =
            (name("acl"), name("policy"), name("plain"), name("clean"));
        create_acl_bucket(&s3, &public_acl).await;
        s3.put_bucket_acl()
            .bucket(&public_acl)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await
            .expect("public-read ACL");
        put_encryption(&s3, &public_acl, None).await;
        create_bucket(&s3, &public_policy).await;
        s3.put_bucket_policy()
            .bucket(&public_policy)
            .policy(public_read_and_partner_policy(&public_policy))
            .send()
            .await
            .expect("public policy");
        put_encryption(&s3, &public_policy, None).await;
        create_bucket(&s3, &unencrypted).await;
        put_bpa(&s3, &unencrypted).await;
        seed_clean_bucket(&s3, &clean).await;

        let calls = Calls::default();
        let auditor = env_auditor(&calls).await;
        assert_eq!(auditor.region(), "us-east-1", "region from AWS_REGION");
        assert_eq!(auditor.account_id().await.unwrap(), ACCOUNT);
        calls.clear();

        // One pass: the four audits share their `now`, and with it the account-level read.
        let pass = now();
        let audit = |b: &str| {
            let r = CloudResource::S3Bucket(b.to_string());
            let auditor = &auditor;
            async move { auditor.audit(&r, pass).await }
        };
        let p_acl = audit(&public_acl).await;
        let p_policy = audit(&public_policy).await;
        let p_plain = audit(&unencrypted).await;
        let p_clean = audit(&clean).await;
        for p in [&p_acl, &p_policy, &p_plain, &p_clean] {
            assert_eq!(p.error, None, "{p:#?}");
            assert_eq!(p.source, onus::posture::Source::Live);
            assert!(p.observed_at.is_some());
        }
        // Exactly the advertised number of calls per bucket, all answered: GetBucketPolicyStatus
        // only for the two buckets with a policy, the account's Block Public Access once.
        let per_bucket = AwsAuditor::calls_per_audit(&CloudResource::S3Bucket(clean.clone()));
        let expected = 4 * per_bucket + 2 + 1;
        assert_eq!(calls.all().len(), expected, "{:#?}", calls.all());
        assert_eq!(calls.count("ok"), expected);
        let made = |op: &str| calls.all().iter().filter(|c| c.1 == op).count();
        assert_eq!(made("GetBucketPolicyStatus"), 2);
        assert_eq!(calls.all().iter().filter(|c| c.0 == "s3control").count(), 1);

        // Public ACL bucket.
        assert_eq!(
            exposures(&p_acl),
            vec!["ACL grants READ to AllUsers".to_string()]
        );
        let g = guard(&p_acl).unwrap_err();
        assert!(
            g.starts_with("Block Public Access is not fully on ("),
            "{g}"
        );
        let enc = p_acl.encryption_at_rest.clone().unwrap();
        assert!(enc.enabled && !enc.customer_managed_key);
        assert_eq!(enc.algorithm.as_deref(), Some("AES256"));
        assert_eq!(p_acl.access_logging, Some(false));
        // ACLs are enabled: a warning of its own.
        assert_eq!(p_acl.object_ownership.as_deref(), Some("ObjectWriter"));
        assert_eq!(
            p_acl.transit.as_ref().unwrap().secure_transport_policy,
            Some(false)
        );
        // Public policy bucket.
        let e = exposures(&p_policy);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("Principal \"*\"") && e[0].contains("PublicRead"),
            "{e:?}"
        );
        // The partner's statement: named, not public.
        let shared = p_policy.cross_account.clone().unwrap();
        assert_eq!(shared.len(), 1, "{shared:?}");
        assert_eq!(shared[0].accounts, ["210987654321"]);
        assert!(
            shared[0]
                .description
                .contains("\"PartnerDrop\" lets account 210987654321 write"),
            "{shared:?}"
        );
        assert_eq!(p_clean.cross_account, Some(vec![]));
        // Unencrypted bucket (BPA on, nothing else).
        assert!(exposures(&p_plain).is_empty());
        assert_eq!(guard(&p_plain), Ok(()));
        assert!(!p_plain.encryption_at_rest.as_ref().unwrap().enabled);
        // Clean bucket.
        assert!(exposures(&p_clean).is_empty());
        assert_eq!(guard(&p_clean), Ok(()));
        let enc = p_clean.encryption_at_rest.clone().unwrap();
        assert!(enc.enabled && enc.customer_managed_key, "{enc:?}");
        assert_eq!(enc.algorithm.as_deref(), Some("aws:kms"));
        assert_eq!(p_clean.access_logging, Some(true));
        assert_eq!(
            p_clean.object_ownership.as_deref(),
            Some("BucketOwnerEnforced")
        );
        assert_eq!(
            p_clean.transit.as_ref().unwrap().secure_transport_policy,
            Some(true)
        );

        // What a user would expect from the engine for Deployments that use them.
        let objects = vec![
            deployment("uses-acl", &format!("s3://{public_acl}"), "default"),
            deployment("uses-policy", &format!("s3://{public_policy}"), "default"),
            deployment(
                "uses-plain",
                &format!("arn:aws:s3:::{unencrypted}"),
                "default",
            ),
            deployment("uses-clean", &format!("s3://{clean}"), "default"),
        ];
        let b = baseline(
            "controls:\n- id: data.encryption-in-transit\n  parameters: {requireSecureTransportPolicy: true}\n- id: logging.audit-trail\n  parameters: {requireAccessLogging: true}\n",
        );
        let postures = [p_acl, p_policy, p_plain, p_clean];
        let vs = judge(&b, &objects, postures.clone());
        assert_eq!(outcome(&vs, DataPublicAccess, "uses-acl"), Outcome::Fail);
        assert!(
            messages(&vs, DataPublicAccess, "uses-acl").contains("ACL grants READ to AllUsers")
        );
        assert_eq!(outcome(&vs, DataPublicAccess, "uses-policy"), Outcome::Fail);
        assert_eq!(
            outcome(&vs, DataEncryptionAtRest, "uses-acl"),
            Outcome::Pass
        );
        assert_eq!(outcome(&vs, DataPublicAccess, "uses-plain"), Outcome::Pass);
        assert_eq!(
            outcome(&vs, DataEncryptionAtRest, "uses-plain"),
            Outcome::Fail
        );
        assert!(
            messages(&vs, DataEncryptionAtRest, "uses-plain").contains("no default encryption")
        );
        assert_eq!(
            outcome(&vs, DataEncryptionInTransit, "uses-plain"),
            Outcome::Fail
        );
        assert_eq!(outcome(&vs, LoggingAuditTrail, "uses-plain"), Outcome::Fail);
        for control in [
            DataPublicAccess,
            DataEncryptionAtRest,
            DataEncryptionInTransit,
            LoggingAuditTrail,
        ] {
            assert_eq!(
                outcome(&vs, control, "uses-clean"),
                Outcome::Pass,
                "{}",
                messages(&vs, control, "uses-clean")
            );
        }
        // A baseline that asks for customer keys fails SSE-S3 and passes SSE-KMS with a CMK.
        let cmk = baseline(
            "controls:\n- id: data.encryption-at-rest\n  parameters: {requireCustomerManagedKey: true}\n",
        );
        let vs = judge(&cmk, &objects, postures);
        assert_eq!(
            outcome(&vs, DataEncryptionAtRest, "uses-acl"),
            Outcome::Fail
        );
        assert_eq!(
            outcome(&vs, DataEncryptionAtRest, "uses-clean"),
            Outcome::Pass
        );
    });
}

#[test]
fn closing_bucket_gaps_flips_the_posture() {
    run(|| async move {
        let moto = shared();
        let s3 = moto.s3().await;
        let (public, plain) = (name("open"), name("unenc"));
        create_acl_bucket(&s3, &public).await;
        s3.put_bucket_acl()
            .bucket(&public)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await
            .expect("public-read ACL");
        s3.put_bucket_policy()
            .bucket(&public)
            .policy(public_read_policy(&public))
            .send()
            .await
            .expect("public policy");
        create_bucket(&s3, &plain).await;

        let calls = Calls::default();
        let auditor = env_auditor(&calls).await;
        let (r_public, r_plain) = (
            CloudResource::S3Bucket(public.clone()),
            CloudResource::S3Bucket(plain.clone()),
        );
        let objects = vec![
            deployment("web", &format!("s3://{public}"), "default"),
            deployment("batch", &format!("s3://{plain}"), "default"),
        ];
        let b = baseline("");
        let before = [
            auditor.audit(&r_public, now()).await,
            auditor.audit(&r_plain, now()).await,
        ];
        assert_eq!(exposures(&before[0]).len(), 2, "{:?}", before[0]);
        assert!(guard(&before[1]).is_err(), "no BPA configuration at all");
        let vs = judge(&b, &objects, before);
        assert_eq!(outcome(&vs, DataPublicAccess, "web"), Outcome::Fail);
        assert_eq!(outcome(&vs, DataPublicAccess, "batch"), Outcome::Fail);
        assert_eq!(outcome(&vs, DataEncryptionAtRest, "batch"), Outcome::Fail);

        // `aws s3api put-public-access-block` and `put-bucket-encryption`, as the remediation says.
        put_bpa(&s3, &public).await;
        disable_acls(&s3, &public).await;
        put_bpa(&s3, &plain).await;
        put_encryption(&s3, &plain, None).await;
        let after = [
            auditor.audit(&r_public, now()).await,
            auditor.audit(&r_plain, now()).await,
        ];
        // IgnorePublicAcls and RestrictPublicBuckets neutralise the grant and the statement.
        assert!(exposures(&after[0]).is_empty(), "{:?}", after[0]);
        assert_eq!(guard(&after[0]), Ok(()));
        assert!(after[1].encryption_at_rest.as_ref().unwrap().enabled);
        let vs = judge(&b, &objects, after);
        assert_eq!(outcome(&vs, DataPublicAccess, "web"), Outcome::Pass);
        assert_eq!(outcome(&vs, DataPublicAccess, "batch"), Outcome::Pass);
        assert_eq!(outcome(&vs, DataEncryptionAtRest, "batch"), Outcome::Pass);
    });
}

#[test]
fn missing_resources_are_errors_never_passes() {
    run(|| async move {
        shared();
        let calls = Calls::default();
        let auditor = env_auditor(&calls).await;
        let gone_name = name("gone");
        let gone_bucket = CloudResource::S3Bucket(gone_name.clone());
        let gone_role = CloudResource::IamRole(role_arn(&name("gone")));
        let gone_group = CloudResource::SecurityGroup("sg-0123456789abcdef0".into());
        let other_account =
            CloudResource::IamRole("arn:aws:iam::210987654321:role/elsewhere".into());
        let mut postures = Vec::new();
        for r in [&gone_bucket, &gone_role, &gone_group, &other_account] {
            let p = auditor.audit(r, now()).await;
            let err = p
                .error
                .clone()
                .unwrap_or_else(|| panic!("no error for {r}: {p:#?}"));
            assert!(p.public_access.is_none() && p.iam.is_none() && p.ingress.is_none());
            postures.push((r.clone(), err, p));
        }
        assert!(
            postures[0].1.contains("the bucket does not exist"),
            "{}",
            postures[0].1
        );
        assert!(
            postures[0].1.contains("GetBucketLocation: NoSuchBucket"),
            "{}",
            postures[0].1
        );
        assert!(
            postures[1].1.contains("the role does not exist"),
            "{}",
            postures[1].1
        );
        assert!(postures[1].1.contains("NoSuchEntity"), "{}", postures[1].1);
        assert!(
            postures[2].1.contains("the security group does not exist"),
            "{}",
            postures[2].1
        );
        assert!(
            postures[3].1.contains("set aws.roleArn"),
            "{}",
            postures[3].1
        );
        assert!(calls.count("error") >= 3, "{:#?}", calls.all());

        let objects = vec![
            irsa_service_account("gone", &role_arn("nobody-here")),
            deployment(
                "uses-gone",
                &format!("s3://{gone_name},sg-0123456789abcdef0"),
                "gone",
            ),
        ];
        let gone_role_posture = auditor
            .audit(&CloudResource::IamRole(role_arn("nobody-here")), now())
            .await;
        let vs = judge(
            &baseline(""),
            &objects,
            postures
                .into_iter()
                .map(|(_, _, p)| p)
                .chain([gone_role_posture]),
        );
        for control in [DataPublicAccess, IdentityLeastPrivilege, NetworkExposure] {
            assert_eq!(
                outcome(&vs, control, "uses-gone"),
                Outcome::Error,
                "{control}"
            );
        }
        assert!(
            !vs.iter()
                .any(|v| v.cloud_resource.is_some() && v.result == Outcome::Pass),
            "{vs:#?}"
        );
    });
}

#[test]
fn iam_role_postures_and_verdicts() {
    run(|| async move {
        let moto = shared();
        let iam = aws_sdk_iam::Client::new(&moto.sdk_config().await);
        let (admin, narrow, attached) = (name("admin"), name("narrow"), name("attached"));
        let admin_arn = create_role(&iam, &admin, None).await;
        put_inline(&iam, &admin, "everything", ADMIN).await;
        put_inline(&iam, &admin, "read-data", READ_ONE_BUCKET).await;
        let narrow_arn = create_role(&iam, &narrow, Some("/team/")).await;
        assert!(
            narrow_arn.ends_with(&format!(":role/team/{narrow}")),
            "{narrow_arn}"
        );
        put_inline(&iam, &narrow, "read-data", READ_ONE_BUCKET).await;
        let attached_arn = create_role(&iam, &attached, None).await;
        let policy_name = name("s3-all");
        let policy = iam
            .create_policy()
            .policy_name(&policy_name)
            .policy_document(S3_EVERYTHING)
            .send()
            .await
            .expect("create policy")
            .policy()
            .and_then(|p| p.arn())
            .expect("policy arn")
            .to_string();
        iam.attach_role_policy()
            .role_name(&attached)
            .policy_arn(&policy)
            .send()
            .await
            .expect("attach policy");

        let calls = Calls::default();
        let auditor = env_auditor(&calls).await;
        let p_admin = auditor
            .audit(&CloudResource::IamRole(admin_arn.clone()), now())
            .await;
        let p_narrow = auditor
            .audit(&CloudResource::IamRole(narrow_arn.clone()), now())
            .await;
        let p_attached = auditor
            .audit(&CloudResource::IamRole(attached_arn.clone()), now())
            .await;
        let p_policy = auditor
            .audit(&CloudResource::IamPolicy(policy.clone()), now())
            .await;
        for p in [&p_admin, &p_narrow, &p_attached, &p_policy] {
            assert_eq!(p.error, None, "{p:#?}");
        }
        let admin_findings = p_admin.iam.clone().unwrap();
        assert_eq!(admin_findings.len(), 1, "{admin_findings:#?}");
        assert_eq!(admin_findings[0].issue, IamIssue::FullAdmin);
        assert_eq!(
            admin_findings[0].statement,
            "inline policy everything: statement \"Admin\""
        );
        assert!(p_admin.attached_policies.is_empty());
        assert_eq!(p_narrow.iam, Some(vec![]));
        let attached_findings = p_attached.iam.clone().unwrap();
        assert_eq!(attached_findings.len(), 1, "{attached_findings:#?}");
        assert_eq!(
            attached_findings[0].issue,
            IamIssue::ServiceWildcard {
                service: "s3".into()
            }
        );
        assert!(
            attached_findings[0]
                .statement
                .starts_with(&format!("attached {policy}: ")),
            "{attached_findings:#?}"
        );
        assert_eq!(p_attached.attached_policies, vec![policy.clone()]);
        assert_eq!(p_policy.iam.as_ref().map(Vec::len), Some(1));
        // A policy known by name only (declared objects) is looked up in the auditor's account.
        let by_name = auditor
            .audit(
                &CloudResource::IamPolicy(format!("policy/{policy_name}")),
                now(),
            )
            .await;
        assert_eq!(by_name.error, None, "{by_name:#?}");
        assert_eq!(by_name.iam.map(|f| f.len()), Some(1));
        // Two list calls per role, one GetRolePolicy per inline policy, two calls per attached one.
        let per_role: BTreeMap<&str, usize> =
            calls.all().iter().fold(BTreeMap::new(), |mut m, c| {
                *m.entry(c.1).or_default() += 1;
                m
            });
        assert_eq!(per_role.get("ListRolePolicies"), Some(&3));
        assert_eq!(per_role.get("ListAttachedRolePolicies"), Some(&3));
        assert_eq!(per_role.get("GetRolePolicy"), Some(&3));
        assert_eq!(per_role.get("GetPolicy"), Some(&3));
        assert_eq!(calls.count("ok"), calls.all().len());

        let objects = vec![
            irsa_service_account("admin", &admin_arn),
            irsa_service_account("narrow", &narrow_arn),
            irsa_service_account("attached", &attached_arn),
            deployment("as-admin", "", "admin"),
            deployment("as-narrow", "", "narrow"),
            deployment("as-attached", "", "attached"),
        ];
        let vs = judge(&baseline(""), &objects, [p_admin, p_narrow, p_attached]);
        assert_eq!(
            outcome(&vs, IdentityLeastPrivilege, "as-admin"),
            Outcome::Fail
        );
        assert!(
            messages(&vs, IdentityLeastPrivilege, "as-admin").contains("inline policy everything"),
            "{}",
            messages(&vs, IdentityLeastPrivilege, "as-admin")
        );
        assert_eq!(outcome(&vs, IdentityLeastPrivilege, "admin"), Outcome::Fail);
        assert_eq!(
            outcome(&vs, IdentityLeastPrivilege, "as-narrow"),
            Outcome::Pass
        );
        assert_eq!(
            outcome(&vs, IdentityLeastPrivilege, "as-attached"),
            Outcome::Fail
        );
        assert!(messages(&vs, IdentityLeastPrivilege, "as-attached").contains(&policy));

        // Narrowing the admin role clears the finding.
        iam.delete_role_policy()
            .role_name(&admin)
            .policy_name("everything")
            .send()
            .await
            .expect("delete inline policy");
        let p_admin = auditor
            .audit(&CloudResource::IamRole(admin_arn), now())
            .await;
        assert_eq!(p_admin.iam, Some(vec![]));
    });
}

#[test]
fn security_group_postures_and_verdicts() {
    run(|| async move {
        let moto = shared();
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
        let ssh = open_group(&ec2, &name("ssh"), vec![tcp(22, &["0.0.0.0/0"], &["::/0"])]).await;
        let https = open_group(
            &ec2,
            &name("https"),
            vec![tcp(443, &["0.0.0.0/0"], &["::/0"])],
        )
        .await;
        let internal = open_group(
            &ec2,
            &name("internal"),
            vec![
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                    .build(),
            ],
        )
        .await;
        let wide_open = open_group(
            &ec2,
            &name("all"),
            vec![
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                    .build(),
            ],
        )
        .await;

        let calls = Calls::default();
        let auditor = env_auditor(&calls).await;
        let mut postures = Vec::new();
        for id in [&ssh, &https, &internal, &wide_open] {
            let p = auditor
                .audit(&CloudResource::SecurityGroup(id.clone()), now())
                .await;
            assert_eq!(p.error, None, "{p:#?}");
            postures.push(p);
        }
        assert_eq!(calls.all().len(), 4);
        let rule = |proto: &str, from, to, src: &str| IngressRule {
            protocol: proto.into(),
            from_port: from,
            to_port: to,
            source: src.into(),
        };
        assert_eq!(
            postures[0].ingress,
            Some(vec![
                rule("tcp", 22, 22, "0.0.0.0/0"),
                rule("tcp", 22, 22, "::/0")
            ])
        );
        assert_eq!(
            postures[1].ingress,
            Some(vec![
                rule("tcp", 443, 443, "0.0.0.0/0"),
                rule("tcp", 443, 443, "::/0")
            ])
        );
        assert_eq!(
            postures[2].ingress,
            Some(vec![rule("all", 0, 65535, "10.0.0.0/8")])
        );
        assert_eq!(
            postures[3].ingress,
            Some(vec![rule("all", 0, 65535, "::/0")])
        );

        let objects = vec![
            deployment("ssh", &ssh, "default"),
            deployment("https", &https, "default"),
            deployment("internal", &internal, "default"),
            deployment("wide", &wide_open, "default"),
        ];
        let vs = judge(&baseline(""), &objects, postures);
        assert_eq!(outcome(&vs, NetworkExposure, "ssh"), Outcome::Fail);
        assert!(messages(&vs, NetworkExposure, "ssh").contains("port 22"));
        assert_eq!(outcome(&vs, NetworkExposure, "https"), Outcome::Pass);
        assert_eq!(outcome(&vs, NetworkExposure, "internal"), Outcome::Pass);
        assert_eq!(outcome(&vs, NetworkExposure, "wide"), Outcome::Fail);
    });
}

#[test]
fn account_audit_trail_follows_cloudtrail() {
    run(|| async move {
        shared(); // the environment is set before anything reads it
        let moto = Moto::start();
        let calls = Calls::default();
        let auditor = own_auditor(&moto, &calls, 2).await;
        let account = CloudResource::AwsAccount(ACCOUNT.into());
        let b = baseline(&format!("aws: {{accountId: \"{ACCOUNT}\"}}\n"));
        let judge_account = |p: Posture| {
            let mut inv = Inventory::from_objects(std::iter::empty::<&Object>());
            inv.live.replace(p);
            evaluate_namespace(NS, &[&b], &inv, now())
        };

        let complete = |p: &Posture| {
            p.audit_trail.as_ref().map(|t| {
                t.complete()
                    .iter()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>()
            })
        };
        let none = auditor.audit(&account, now()).await;
        assert_eq!(none.error, None, "{none:#?}");
        assert_eq!(complete(&none), Some(vec![]));
        let vs = judge_account(none);
        assert_eq!(outcome(&vs, LoggingAuditTrail, NS), Outcome::Fail);
        assert!(messages(&vs, LoggingAuditTrail, NS).contains("no multi-region CloudTrail trail"));

        let sdk = moto.sdk_config().await;
        let s3 = moto.s3().await;
        let trail_bucket = name("trail");
        create_bucket(&s3, &trail_bucket).await;
        let ct = aws_sdk_cloudtrail::Client::new(&sdk);
        ct.create_trail()
            .name("regional")
            .s3_bucket_name(&trail_bucket)
            .send()
            .await
            .expect("create regional trail");
        ct.start_logging()
            .name("regional")
            .send()
            .await
            .expect("start");
        ct.create_trail()
            .name("org-trail")
            .s3_bucket_name(&trail_bucket)
            .is_multi_region_trail(true)
            .send()
            .await
            .expect("create multi-region trail");
        // Not logging yet: still a gap.
        let idle = auditor.audit(&account, now()).await;
        assert_eq!(complete(&idle), Some(vec![]), "{idle:#?}");
        ct.start_logging()
            .name("org-trail")
            .send()
            .await
            .expect("start");
        let logging = auditor.audit(&account, now()).await;
        assert_eq!(
            complete(&logging),
            Some(vec!["org-trail".to_string()]),
            "{logging:#?}"
        );
        // Logging, but without validation or KMS: CIS's other two checks fail, each with its
        // own message.
        let vs = judge_account(logging);
        let rules = |vs: &[Verdict]| {
            vs.iter()
                .filter(|v| v.control == LoggingAuditTrail)
                .map(|v| (v.rule, v.result))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rules(&vs),
            [
                ("cloud-trail", Outcome::Pass),
                ("trail-log-validation", Outcome::Fail),
                ("trail-kms-encryption", Outcome::Fail)
            ]
        );
        // Management events narrowed to reads: the trail no longer counts.
        ct.put_event_selectors()
            .trail_name("org-trail")
            .event_selectors(
                aws_sdk_cloudtrail::types::EventSelector::builder()
                    .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::ReadOnly)
                    .include_management_events(true)
                    .build(),
            )
            .send()
            .await
            .expect("put event selectors");
        let reads = auditor.audit(&account, now()).await;
        assert_eq!(complete(&reads), Some(vec![]), "{reads:#?}");
        let vs = judge_account(reads);
        assert!(
            messages(&vs, LoggingAuditTrail, NS)
                .contains("trail org-trail records no management events"),
            "{vs:#?}"
        );
        // Every management event, validation and a KMS key: all three pass.
        ct.put_event_selectors()
            .trail_name("org-trail")
            .event_selectors(
                aws_sdk_cloudtrail::types::EventSelector::builder()
                    .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::All)
                    .include_management_events(true)
                    .build(),
            )
            .send()
            .await
            .expect("put event selectors");
        ct.update_trail()
            .name("org-trail")
            .enable_log_file_validation(true)
            .kms_key_id(
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            )
            .send()
            .await
            .expect("update trail");
        let vs = judge_account(auditor.audit(&account, now()).await);
        assert!(
            rules(&vs).iter().all(|(_, o)| *o == Outcome::Pass),
            "{vs:#?}"
        );

        // Another account cannot be read with these credentials.
        let other = auditor
            .audit(&CloudResource::AwsAccount("210987654321".into()), now())
            .await;
        assert!(
            other
                .error
                .as_deref()
                .unwrap_or("")
                .contains("210987654321"),
            "{other:#?}"
        );
        assert!(calls.all().iter().any(|c| c.1 == "GetTrailStatus"));
    });
}

#[test]
fn account_level_block_public_access_is_read_through_s3_control() {
    run(|| async move {
        shared(); // the environment is set before anything reads it
        let moto = Moto::start();
        let calls = Calls::default();
        let auditor = own_auditor(&moto, &calls, 2).await;
        let s3 = moto.s3().await;
        let bucket = name("acct");
        create_acl_bucket(&s3, &bucket).await;
        s3.put_bucket_acl()
            .bucket(&bucket)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await
            .expect("public-read ACL");
        let r = CloudResource::S3Bucket(bucket.clone());
        let before = auditor.audit(&r, now()).await;
        assert_eq!(before.error, None, "{before:#?}");
        assert!(
            guard(&before)
                .unwrap_err()
                .contains("no bucket or account configuration")
        );
        assert_eq!(exposures(&before).len(), 1);
        // The account-level call went to moto, not to 123456789012.127.0.0.1.
        assert!(
            calls
                .all()
                .contains(&("s3control", "GetPublicAccessBlock", "ok")),
            "{:#?}",
            calls.all()
        );

        // `aws s3control put-public-access-block --account-id ...` (same endpoint fix).
        let sdk = moto.sdk_config().await;
        let control = aws_sdk_s3control::Client::from_conf(
            aws_sdk_s3control::config::Builder::from(&sdk)
                .endpoint_resolver(PlainHostS3Control::default())
                .build(),
        );
        control
            .put_public_access_block()
            .account_id(ACCOUNT)
            .public_access_block_configuration(
                aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .expect("account-level BPA");
        let after = auditor.audit(&r, now()).await;
        assert_eq!(after.error, None, "{after:#?}");
        assert_eq!(guard(&after), Ok(()), "account-level BPA covers the bucket");
        assert!(
            exposures(&after).is_empty(),
            "IgnorePublicAcls on the account"
        );
    });
}

#[test]
fn stopped_moto_gives_errors_and_restart_recovers() {
    run(|| async move {
        shared(); // the environment is set before anything reads it
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        let s3 = moto.s3().await;
        let iam = aws_sdk_iam::Client::new(&sdk);
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let bucket = name("stop");
        create_bucket(&s3, &bucket).await;
        put_bpa(&s3, &bucket).await;
        put_encryption(&s3, &bucket, None).await;
        let role = name("stop");
        let role = create_role(&iam, &role, None).await;
        let group = open_group(&ec2, &name("stop"), vec![tcp(443, &["0.0.0.0/0"], &[])]).await;
        // Only the seeding is replayed after a restart.
        moto.set_recording(false);

        let calls = Calls::default();
        let auditor = own_auditor(&moto, &calls, 2).await;
        let resources = [
            CloudResource::S3Bucket(bucket.clone()),
            CloudResource::IamRole(role.clone()),
            CloudResource::SecurityGroup(group.clone()),
            CloudResource::AwsAccount(ACCOUNT.into()),
        ];
        let audit_all = || async {
            let mut out = Vec::new();
            for r in &resources {
                out.push(auditor.audit(r, now()).await);
            }
            out
        };
        let objects = vec![
            irsa_service_account("app", &role),
            deployment("app", &format!("s3://{bucket},{group}"), "app"),
        ];
        let b = baseline("");
        let healthy = audit_all().await;
        for p in &healthy {
            assert_eq!(p.error, None, "{p:#?}");
        }
        let vs = judge(&b, &objects, healthy.clone());
        for control in [
            DataPublicAccess,
            DataEncryptionAtRest,
            IdentityLeastPrivilege,
            NetworkExposure,
        ] {
            assert_eq!(
                outcome(&vs, control, "app"),
                Outcome::Pass,
                "{control}: {vs:#?}"
            );
        }
        assert_eq!(calls.count("error"), 0);

        moto.stop();
        calls.clear();
        let started = std::time::Instant::now();
        let down = audit_all().await;
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "audits of a dead endpoint are bounded"
        );
        for p in &down {
            let err = p
                .error
                .as_deref()
                .unwrap_or_else(|| panic!("not an error: {p:#?}"));
            assert!(
                p.public_access.is_none()
                    && p.encryption_at_rest.is_none()
                    && p.iam.is_none()
                    && p.ingress.is_none()
                    && p.audit_trail.is_none(),
                "an error posture carries no facts: {p:#?}"
            );
            assert!(err.contains(": "), "names the operation: {err}");
            assert!(err.contains("Connection refused"), "says why: {err}");
            assert!(!err.contains("DispatchFailure {"), "no Debug dumps: {err}");
        }
        assert!(
            calls.count("error") >= resources.len(),
            "{:#?}",
            calls.all()
        );
        assert_eq!(calls.count("ok"), 0);
        let vs = judge(&b, &objects, down);
        for control in [
            DataPublicAccess,
            DataEncryptionAtRest,
            IdentityLeastPrivilege,
            NetworkExposure,
        ] {
            assert_eq!(outcome(&vs, control, "app"), Outcome::Error, "{control}");
        }
        assert!(
            !vs.iter()
                .any(|v| v.cloud_resource.is_some() && v.result == Outcome::Pass),
            "nothing passes while the cloud cannot be read: {vs:#?}"
        );

        moto.restart();
        calls.clear();
        let back = audit_all().await;
        let strip = |mut p: Posture| {
            p.observed_at = None;
            p
        };
        assert_eq!(
            back.into_iter().map(strip).collect::<Vec<_>>(),
            healthy.into_iter().map(strip).collect::<Vec<_>>(),
            "the same facts after the restart"
        );
        assert_eq!(calls.count("error"), 0, "{:#?}", calls.all());
    });
}

#[test]
fn cross_account_audit_assumes_the_role() {
    run(|| async move {
        let moto = shared();
        let other = "111111111111";
        let audit_role = format!("arn:aws:iam::{other}:role/onus-audit");
        // Seed account 111111111111 through the same role (moto maps assumed credentials to the
        // role's account).
        let base = moto.sdk_config().await;
        let assumed = aws_config::sts::AssumeRoleProvider::builder(&audit_role)
            .configure(&base)
            .session_name("seed")
            .build()
            .await;
        let there = base
            .into_builder()
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(assumed))
            .build();
        let iam_there = aws_sdk_iam::Client::new(&there);
        let role = name("remote");
        let role_there = create_role(&iam_there, &role, None).await;
        assert!(role_there.contains(other), "{role_there}");
        put_inline(&iam_there, &role, "everything", ADMIN).await;

        let calls = Calls::default();
        let cross = AwsAuditor::new(
            Some("us-east-1".into()),
            Some(audit_role.clone()),
            calls.observer(),
        )
        .await
        .expect("cross-account auditor");
        assert_eq!(cross.role_arn(), Some(audit_role.as_str()));
        assert_eq!(cross.account_id().await.unwrap(), other);
        let p = cross
            .audit(&CloudResource::IamRole(role_there.clone()), now())
            .await;
        assert_eq!(p.error, None, "{p:#?}");
        assert_eq!(p.iam.as_ref().map(Vec::len), Some(1));

        // Without the role, the role in the other account is an error, not a pass on a namesake.
        let local = env_auditor(&Calls::default()).await;
        let p = local
            .audit(&CloudResource::IamRole(role_there), now())
            .await;
        assert!(
            p.error.as_deref().unwrap_or("").contains("set aws.roleArn"),
            "{p:#?}"
        );

        assert!(matches!(
            AwsAuditor::new(None, Some("not-an-arn".into()), Calls::default().observer()).await,
            Err(onus::cloud::aws::AwsError::InvalidRoleArn(_))
        ));
    });
}

#[test]
fn throttling_is_retried_with_backoff_and_reported() {
    run(|| async move {
        let moto = shared();
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
        let group = open_group(&ec2, &name("throttle"), vec![tcp(22, &["0.0.0.0/0"], &[])]).await;
        let r = CloudResource::SecurityGroup(group);
        let upstream: SocketAddr = ([127, 0, 0, 1], moto.port()).into();

        // Two throttled answers, then moto: the SDK retries and the call succeeds.
        let proxy = ThrottleProxy::start(upstream, 2).await;
        let calls = Calls::default();
        let auditor = AwsAuditor::with_options(
            Some("us-east-1".into()),
            None,
            calls.observer(),
            quick(proxy.endpoint(), 5),
        )
        .await
        .unwrap();
        let p = auditor.audit(&r, now()).await;
        assert_eq!(p.error, None, "{p:#?}");
        assert_eq!(
            proxy.requests(),
            3,
            "two throttled attempts and one answered"
        );
        assert_eq!(calls.all(), vec![("ec2", "DescribeSecurityGroups", "ok")]);

        // Throttled on every attempt: an error posture, and the observer says throttled.
        let proxy = ThrottleProxy::start(upstream, usize::MAX).await;
        let calls = Calls::default();
        let auditor = AwsAuditor::with_options(
            Some("us-east-1".into()),
            None,
            calls.observer(),
            quick(proxy.endpoint(), 3),
        )
        .await
        .unwrap();
        let p = auditor.audit(&r, now()).await;
        let err = p.error.clone().unwrap_or_else(|| panic!("{p:#?}"));
        assert!(
            err.starts_with("DescribeSecurityGroups: RequestLimitExceeded"),
            "{err}"
        );
        assert_eq!(proxy.requests(), 3, "max_attempts attempts");
        assert_eq!(
            calls.all(),
            vec![("ec2", "DescribeSecurityGroups", "throttled")]
        );
    });
}

// ------------------------------------------------------------------------------ throttling

/// A loopback HTTP/1.1 proxy in front of moto that answers the first `throttle` requests with
/// EC2's `RequestLimitExceeded` (HTTP 503) and forwards the rest.
struct ThrottleProxy {
    addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ThrottleProxy {
    async fn start(upstream: SocketAddr, throttle: usize) -> ThrottleProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, upstream, throttle, counter).await;
                });
            }
        });
        ThrottleProxy { addr, seen, task }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP message (head and Content-Length body); `None` at end of stream.
async fn read_message(s: &mut tokio::net::TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(buf))
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    upstream: SocketAddr,
    throttle: usize,
    seen: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    while let Some(request) = read_message(&mut conn).await? {
        if seen.fetch_add(1, Ordering::SeqCst) < throttle {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>onus-test</RequestID></Response>";
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).await?;
            continue;
        }
        let mut up = tokio::net::TcpStream::connect(upstream).await?;
        up.write_all(&request).await?;
        let Some(answer) = read_message(&mut up).await? else {
            return Ok(());
        };
        conn.write_all(&answer).await?;
    }
    Ok(())
}
