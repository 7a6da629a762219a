//! Engine tests: each control with passing and failing objects, the matrix gate, exceptions,
//! unknown and unreadable cloud resources, and several baselines at once.

use chrono::{DateTime, Utc};

use super::{Outcome, Verdict, evaluate, evaluate_namespace};
use crate::api::{Action, BaselineSpec};
use crate::baseline::EffectiveBaseline;
use crate::check::parse_stream;
use crate::inventory::Inventory;
use crate::model::ControlId::{self, *};
use crate::object::Object;
use crate::posture::{AuditTrail, CloudResource, Posture, PublicAccess, Source, Trail};

fn now() -> DateTime<Utc> {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

fn objects(yaml: &str) -> Vec<Object> {
    let (mut docs, mut errs) = (Vec::new(), Vec::new());
    parse_stream("test.yaml", yaml, &mut docs, &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    docs.into_iter()
        .map(|d| Object::from_value(d.value, Some("app")).unwrap())
        .collect()
}

fn baseline(spec: &str) -> EffectiveBaseline {
    let spec: BaselineSpec = serde_yaml_ng::from_str(spec).unwrap();
    EffectiveBaseline::compile("ResponsibilityBaseline/app/test", &spec).unwrap()
}

const AWS_IAAS: &str = "provider: aws\nserviceModel: iaas\n";

/// Verdicts for every object in `yaml` under `spec`, with the same objects as the snapshot.
fn judge_with(spec: &str, yaml: &str, extra: impl FnOnce(&mut Inventory)) -> Vec<Verdict> {
    let objs = objects(yaml);
    let mut inv = Inventory::from_objects(objs.iter());
    extra(&mut inv);
    let b = baseline(spec);
    objs.iter()
        .flat_map(|o| evaluate(o, &[&b], &inv, now()))
        .collect()
}

fn judge(spec: &str, yaml: &str) -> Vec<Verdict> {
    judge_with(spec, yaml, |_| {})
}

/// The outcome of `control` on object `name` (the one verdict, or the worst of several).
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

fn message(vs: &[Verdict], control: ControlId, name: &str) -> String {
    vs.iter()
        .filter(|v| v.control == control && v.resource.name == name && v.result != Outcome::Pass)
        .map(|v| {
            format!(
                "{} | {}",
                v.message,
                v.remediation.clone().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  template:
    spec:
      serviceAccountName: SA
      containers:
        - name: app
          image: IMAGE
          env: ENV
"#;

fn deploy(name: &str, sa: &str, image: &str, env: &str) -> String {
    DEPLOY
        .replace("NAME", name)
        .replace("SA", sa)
        .replace("IMAGE", image)
        .replace("ENV", env)
}

const PINNED: &str = "registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn workload_identity_static_keys_fail_and_clean_pods_pass() {
    let yaml = [
        deploy(
            "keys",
            "default",
            PINNED,
            "[{name: AWS_SECRET_ACCESS_KEY, valueFrom: {secretKeyRef: {name: k, key: s}}}]",
        ),
        deploy(
            "inline-key",
            "default",
            PINNED,
            "[{name: ID, value: AKIAABCDEFGHIJKLMNOP}]",
        ),
        deploy(
            "gcp",
            "default",
            PINNED,
            "[{name: GOOGLE_APPLICATION_CREDENTIALS, value: /var/secrets/key.json}]",
        ),
        deploy(
            "clean",
            "default",
            PINNED,
            "[{name: LOG_LEVEL, value: info}]",
        ),
    ]
    .join("---\n");
    let vs = judge(AWS_IAAS, &yaml);
    assert_eq!(
        outcome(&vs, IdentityWorkloadIdentity, "keys"),
        Outcome::Fail
    );
    assert!(
        message(&vs, IdentityWorkloadIdentity, "keys")
            .contains("AWS_SECRET_ACCESS_KEY (from Secret k)")
    );
    assert!(
        message(&vs, IdentityWorkloadIdentity, "keys").contains("eks.amazonaws.com/role-arn"),
        "AWS fix names IRSA"
    );
    assert_eq!(
        outcome(&vs, IdentityWorkloadIdentity, "inline-key"),
        Outcome::Fail
    );
    assert_eq!(outcome(&vs, IdentityWorkloadIdentity, "gcp"), Outcome::Fail);
    assert_eq!(
        outcome(&vs, IdentityWorkloadIdentity, "clean"),
        Outcome::Pass
    );
    let v = vs
        .iter()
        .find(|v| v.resource.name == "keys" && v.control == IdentityWorkloadIdentity)
        .unwrap();
    assert_eq!(v.action, Action::Deny);
    assert!(v.denies());
    assert!(
        v.message.contains("customer's duty under aws iaas"),
        "{}",
        v.message
    );
}

#[test]
fn host_isolation_fails_on_privileged_and_host_namespaces() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  hostNetwork: true
  containers: [{name: c, image: x, securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN]}}}]
  volumes: [{name: h, hostPath: {path: /var/run/docker.sock}}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers: [{name: c, image: x, securityContext: {privileged: false}}]
"#;
    let vs = judge(AWS_IAAS, yaml);
    assert_eq!(outcome(&vs, HostOsIsolation, "priv"), Outcome::Fail);
    let m = message(&vs, HostOsIsolation, "priv");
    for part in [
        "hostNetwork",
        "privileged",
        "SYS_ADMIN",
        "/var/run/docker.sock",
    ] {
        assert!(m.contains(part), "{part} in {m}");
    }
    assert_eq!(outcome(&vs, HostOsIsolation, "plain"), Outcome::Pass);
}

#[test]
fn host_isolation_is_skipped_where_the_provider_runs_the_os() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: priv}\nspec:\n  containers: [{name: c, image: x, securityContext: {privileged: true}}]\n";
    let vs = judge("provider: azure\nserviceModel: paas\n", yaml);
    assert_eq!(outcome(&vs, HostOsIsolation, "priv"), Outcome::Skip);
    let skip = vs.iter().find(|v| v.control == HostOsIsolation).unwrap();
    assert!(
        skip.message.contains("provider's duty under azure paas"),
        "{}",
        skip.message
    );
    // The customer can take the duty back.
    let vs = judge(
        "provider: azure\nserviceModel: paas\nresponsibilities: [{domain: host-os, owner: customer}]\n",
        yaml,
    );
    assert_eq!(outcome(&vs, HostOsIsolation, "priv"), Outcome::Fail);
}

#[test]
fn image_provenance() {
    let yaml = [
        deploy("latest", "default", "nginx:latest", "[]"),
        deploy("untagged", "default", "nginx", "[]"),
        deploy("tagged", "default", "nginx:1.27", "[]"),
        deploy("pinned", "default", PINNED, "[]"),
        deploy(
            "elsewhere",
            "default",
            "ghcr.io/x/y@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "[]",
        ),
    ]
    .join("---\n");
    let spec = format!(
        "{AWS_IAAS}controls: [{{id: application.image-provenance, parameters: {{allowedRegistries: [registry.example.com/]}}}}]\n"
    );
    let vs = judge(&spec, &yaml);
    assert_eq!(
        outcome(&vs, ApplicationImageProvenance, "latest"),
        Outcome::Fail
    );
    assert_eq!(
        outcome(&vs, ApplicationImageProvenance, "untagged"),
        Outcome::Fail
    );
    assert_eq!(
        outcome(&vs, ApplicationImageProvenance, "tagged"),
        Outcome::Fail
    );
    assert_eq!(
        outcome(&vs, ApplicationImageProvenance, "pinned"),
        Outcome::Pass
    );
    assert!(
        message(&vs, ApplicationImageProvenance, "elsewhere").contains("not an allowed registry")
    );
    // Tags are fine when the baseline does not ask for digests.
    let spec = format!(
        "{AWS_IAAS}controls: [{{id: application.image-provenance, parameters: {{requireDigest: false}}}}]\n"
    );
    let vs = judge(&spec, &yaml);
    assert_eq!(
        outcome(&vs, ApplicationImageProvenance, "tagged"),
        Outcome::Pass
    );
    assert_eq!(
        outcome(&vs, ApplicationImageProvenance, "latest"),
        Outcome::Fail
    );
}

const ACK_BUCKETS: &str = r#"
apiVersion: s3.services.k8s.aws/v1alpha1
kind: Bucket
metadata: {name: open}
spec:
  name: open-bucket
  grantRead: uri=http://acs.amazonaws.com/groups/global/AllUsers
  encryption: {rules: [{applyServerSideEncryptionByDefault: {sseAlgorithm: AES256}}]}
---
apiVersion: s3.services.k8s.aws/v1alpha1
kind: Bucket
metadata: {name: closed}
spec:
  name: closed-bucket
  publicAccessBlock: {blockPublicACLs: true, ignorePublicACLs: true, blockPublicPolicy: true, restrictPublicBuckets: true}
  encryption: {rules: [{applyServerSideEncryptionByDefault: {sseAlgorithm: "aws:kms", kmsMasterKeyID: "arn:aws:kms:eu-west-1:123456789012:key/k"}}]}
  logging: {loggingEnabled: {targetBucket: logs}}
  policy: '{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::closed-bucket/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}'
---
apiVersion: s3.services.k8s.aws/v1alpha1
kind: Bucket
metadata: {name: plain}
spec: {name: plain-bucket}
"#;

#[test]
fn declared_buckets_public_access_and_encryption() {
    let vs = judge(AWS_IAAS, ACK_BUCKETS);
    assert_eq!(outcome(&vs, DataPublicAccess, "open"), Outcome::Fail);
    assert!(message(&vs, DataPublicAccess, "open").contains("ACL grants READ to AllUsers"));
    assert!(
        message(&vs, DataPublicAccess, "open")
            .contains("aws s3api put-public-access-block --bucket open-bucket")
    );
    assert_eq!(outcome(&vs, DataPublicAccess, "closed"), Outcome::Pass);
    assert_eq!(outcome(&vs, DataEncryptionAtRest, "open"), Outcome::Pass);
    assert_eq!(outcome(&vs, DataEncryptionAtRest, "plain"), Outcome::Fail);
    assert!(
        message(&vs, DataEncryptionAtRest, "plain")
            .contains("put-bucket-encryption --bucket plain-bucket")
    );
    // A customer-managed key, when asked for.
    let spec = format!(
        "{AWS_IAAS}controls: [{{id: data.encryption-at-rest, parameters: {{requireCustomerManagedKey: true}}}}]\n"
    );
    let vs = judge(&spec, ACK_BUCKETS);
    assert_eq!(outcome(&vs, DataEncryptionAtRest, "open"), Outcome::Fail);
    assert_eq!(outcome(&vs, DataEncryptionAtRest, "closed"), Outcome::Pass);
}

#[test]
fn buckets_with_acls_enabled_are_warned_about() {
    let bucket = |ownership: &str| {
        format!(
            "apiVersion: s3.services.k8s.aws/v1alpha1\nkind: Bucket\nmetadata: {{name: b}}\nspec:\n  name: b-bucket\n  publicAccessBlock: {{blockPublicACLs: true, ignorePublicACLs: true, blockPublicPolicy: true, restrictPublicBuckets: true}}\n{ownership}"
        )
    };
    let acl = |vs: &[Verdict]| {
        vs.iter()
            .find(|v| v.control == DataPublicAccess && v.rule == "acls-enabled")
            .map(|v| (v.result, v.message.clone()))
    };
    let vs = judge(
        AWS_IAAS,
        &bucket("  ownershipControls: {rules: [{objectOwnership: ObjectWriter}]}\n"),
    );
    let (result, said) = acl(&vs).expect("a warning");
    assert_eq!(result, Outcome::Warn);
    assert!(
        said.contains("Object Ownership ObjectWriter: ACLs are enabled"),
        "{said}"
    );
    assert_eq!(
        outcome(&vs, DataPublicAccess, "b"),
        Outcome::Warn,
        "warned, not failed"
    );
    for quiet in [
        "  ownershipControls: {rules: [{objectOwnership: BucketOwnerEnforced}]}\n",
        "",
    ] {
        assert!(acl(&judge(AWS_IAAS, &bucket(quiet))).is_none(), "{quiet}");
    }
}

#[test]
fn buckets_shared_with_other_accounts_are_warned_about_unless_trusted() {
    let yaml = deploy(
        "uses",
        "default",
        PINNED,
        "[{name: B, value: \"s3://partner-drop\"}]",
    );
    let judge_with_trust = |spec: &str| {
        judge_with(spec, &yaml, |inv| {
            let mut live =
                Posture::new(CloudResource::S3Bucket("partner-drop".into()), Source::Live);
            live.public_access = Some(PublicAccess {
                exposures: vec![],
                guard: Some(Ok(())),
            });
            let doc = crate::iam::parse(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:root"},"Action":["s3:PutObject"],"Resource":"arn:aws:s3:::partner-drop/*"}]}"#).unwrap();
            live.cross_account = Some(doc.cross_account_grants("123456789012"));
            inv.live.replace(live);
        })
    };
    let vs = judge_with_trust(AWS_IAAS);
    let shared = vs
        .iter()
        .find(|v| v.rule == "cross-account")
        .expect("a cross-account warning");
    assert_eq!(shared.result, Outcome::Warn);
    assert!(
        shared
            .message
            .contains("account 210987654321 write (s3:PutObject)"),
        "{}",
        shared.message
    );
    let trusting = format!(
        "{AWS_IAAS}controls: [{{id: data.public-access, parameters: {{trustedAccounts: [\"210987654321\"]}}}}]\n"
    );
    let vs = judge_with_trust(&trusting);
    assert!(!vs.iter().any(|v| v.rule == "cross-account"), "{vs:#?}");
    assert_eq!(outcome(&vs, DataPublicAccess, "uses"), Outcome::Pass);
}

#[test]
fn transit_and_access_logging_when_asked() {
    let spec = format!(
        "{AWS_IAAS}controls:\n- {{id: data.encryption-in-transit, parameters: {{requireSecureTransportPolicy: true}}}}\n- {{id: logging.audit-trail, parameters: {{requireAccessLogging: true}}}}\n"
    );
    let vs = judge(&spec, ACK_BUCKETS);
    assert_eq!(
        outcome(&vs, DataEncryptionInTransit, "closed"),
        Outcome::Pass
    );
    assert_eq!(
        outcome(&vs, DataEncryptionInTransit, "plain"),
        Outcome::Fail
    );
    assert!(message(&vs, DataEncryptionInTransit, "plain").contains("aws:SecureTransport"));
    assert_eq!(outcome(&vs, LoggingAuditTrail, "closed"), Outcome::Pass);
    assert_eq!(outcome(&vs, LoggingAuditTrail, "plain"), Outcome::Fail);
    // Not asked: no transit or logging verdicts on buckets (S3 accepts plain HTTP unless a
    // policy denies it, so a pass would claim what is not so).
    let vs = judge(AWS_IAAS, ACK_BUCKETS);
    assert!(!vs.iter().any(|v| v.control == LoggingAuditTrail));
    assert!(!vs.iter().any(|v| v.control == DataEncryptionInTransit));
}

#[test]
fn workloads_are_judged_on_the_buckets_they_use() {
    let yaml = format!(
        "{ACK_BUCKETS}---\n{}---\n{}",
        deploy(
            "reader",
            "default",
            PINNED,
            "[{name: SRC, value: \"s3://open-bucket/data\"}]"
        ),
        deploy(
            "writer",
            "default",
            PINNED,
            "[{name: DST, value: \"arn:aws:s3:::closed-bucket/out\"}]"
        ),
    );
    let vs = judge(AWS_IAAS, &yaml);
    assert_eq!(outcome(&vs, DataPublicAccess, "reader"), Outcome::Fail);
    let m = message(&vs, DataPublicAccess, "reader");
    assert!(
        m.contains("s3://open-bucket") && m.contains("env SRC of container app"),
        "{m}"
    );
    let v = vs
        .iter()
        .find(|v| v.resource.name == "reader" && v.control == DataPublicAccess)
        .unwrap();
    assert_eq!(v.cloud_resource.as_deref(), Some("s3://open-bucket"));
    assert_eq!(outcome(&vs, DataPublicAccess, "writer"), Outcome::Pass);
}

#[test]
fn crossplane_split_bucket_objects_are_merged() {
    let yaml = r#"
apiVersion: s3.aws.upbound.io/v1beta1
kind: Bucket
metadata: {name: media, annotations: {crossplane.io/external-name: acme-media}}
spec: {forProvider: {region: eu-west-1}}
---
apiVersion: s3.aws.upbound.io/v1beta1
kind: BucketServerSideEncryptionConfiguration
metadata: {name: media-sse}
spec:
  forProvider:
    bucketRef: {name: media}
    rule: [{applyServerSideEncryptionByDefault: [{sseAlgorithm: "aws:kms", kmsMasterKeyId: "arn:aws:kms:eu-west-1:1:key/k"}]}]
---
apiVersion: s3.aws.upbound.io/v1beta1
kind: BucketACL
metadata: {name: media-acl}
spec: {forProvider: {bucketRef: {name: media}, acl: public-read}}
---
apiVersion: s3.aws.upbound.io/v1beta1
kind: BucketPublicAccessBlock
metadata: {name: media-pab}
spec: {forProvider: {bucket: acme-media, blockPublicAcls: true, ignorePublicAcls: false, blockPublicPolicy: true, restrictPublicBuckets: true}}
---
apiVersion: s3.aws.upbound.io/v1beta1
kind: Bucket
metadata: {name: bare}
spec: {forProvider: {region: eu-west-1}}
"#;
    let vs = judge(AWS_IAAS, yaml);
    // The bucket is judged with what its sibling objects declare.
    assert_eq!(outcome(&vs, DataEncryptionAtRest, "media"), Outcome::Pass);
    assert_eq!(outcome(&vs, DataPublicAccess, "media"), Outcome::Fail);
    assert!(message(&vs, DataPublicAccess, "media").contains("canned ACL public-read"));
    assert!(message(&vs, DataPublicAccess, "media").contains("ignorePublicAcls off"));
    assert_eq!(outcome(&vs, DataPublicAccess, "media-acl"), Outcome::Fail);
    assert!(
        vs.iter()
            .filter(|v| v.resource.name == "media-acl")
            .all(|v| v.control == DataPublicAccess),
        "an ACL object is judged on access only"
    );
    assert_eq!(
        outcome(&vs, DataEncryptionAtRest, "media-sse"),
        Outcome::Pass
    );
    assert_eq!(outcome(&vs, DataEncryptionAtRest, "bare"), Outcome::Fail);
    let v = vs
        .iter()
        .find(|v| {
            v.resource.name == "media" && v.control == DataPublicAccess && v.result == Outcome::Fail
        })
        .unwrap();
    assert_eq!(v.cloud_resource.as_deref(), Some("s3://acme-media"));
}

const ROLES: &str = r#"
apiVersion: iam.services.k8s.aws/v1alpha1
kind: Role
metadata: {name: admin}
spec:
  name: app-admin
  inlinePolicies:
    all: '{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
---
apiVersion: iam.services.k8s.aws/v1alpha1
kind: Role
metadata: {name: reader}
spec:
  name: app-reader
  inlinePolicies:
    read: '{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}'
---
apiVersion: iam.services.k8s.aws/v1alpha1
kind: Role
metadata: {name: managed}
spec:
  name: app-managed
  policies: [arn:aws:iam::aws:policy/AdministratorAccess]
---
apiVersion: iam.services.k8s.aws/v1alpha1
kind: Role
metadata: {name: broken}
spec:
  name: app-broken
  inlinePolicies:
    bad: '{"Statement": ['
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: admin-sa, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/app-admin"}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader-sa, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/app-reader"}}
"#;

#[test]
fn least_privilege_follows_irsa_to_declared_roles() {
    let yaml = format!(
        "{ROLES}---\n{}---\n{}",
        deploy("risky", "admin-sa", PINNED, "[]"),
        deploy("careful", "reader-sa", PINNED, "[]")
    );
    let vs = judge(AWS_IAAS, &yaml);
    assert_eq!(outcome(&vs, IdentityLeastPrivilege, "admin"), Outcome::Fail);
    assert_eq!(
        outcome(&vs, IdentityLeastPrivilege, "reader"),
        Outcome::Pass
    );
    assert_eq!(
        outcome(&vs, IdentityLeastPrivilege, "managed"),
        Outcome::Fail
    );
    assert!(message(&vs, IdentityLeastPrivilege, "managed").contains("AdministratorAccess"));
    assert_eq!(
        outcome(&vs, IdentityLeastPrivilege, "admin-sa"),
        Outcome::Fail
    );
    assert_eq!(outcome(&vs, IdentityLeastPrivilege, "risky"), Outcome::Fail);
    let m = message(&vs, IdentityLeastPrivilege, "risky");
    assert!(
        m.contains("ServiceAccount admin-sa") && m.contains("every action"),
        "{m}"
    );
    assert!(m.contains("--role-name app-admin"), "{m}");
    assert_eq!(
        outcome(&vs, IdentityLeastPrivilege, "careful"),
        Outcome::Pass
    );
    // A document that does not parse is an error, never a pass.
    assert_eq!(
        outcome(&vs, IdentityLeastPrivilege, "broken"),
        Outcome::Error
    );
}

#[test]
fn a_policy_too_tangled_to_analyse_is_an_error_never_a_pass() {
    let tangled: Vec<String> = (0..240)
        .map(|i| format!("{}{i}", "*a".repeat(28)))
        .collect();
    let doc = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": tangled, "Resource": "*"},
        {"Effect": "Deny", "Action": tangled, "Resource": "*"}
    ]});
    let yaml = format!(
        "apiVersion: iam.services.k8s.aws/v1alpha1\nkind: Policy\nmetadata: {{name: tangled}}\nspec:\n  name: tangled\n  policyDocument: {}\n",
        serde_json::to_string(&doc.to_string()).unwrap()
    );
    let vs = judge(AWS_IAAS, &yaml);
    assert_eq!(
        outcome(&vs, IdentityLeastPrivilege, "tangled"),
        Outcome::Error
    );
    let m = message(&vs, IdentityLeastPrivilege, "tangled");
    assert!(m.contains("cannot say what the document grants"), "{m}");
}

#[test]
fn security_groups_and_load_balancers() {
    let yaml = r#"
apiVersion: ec2.services.k8s.aws/v1alpha1
kind: SecurityGroup
metadata: {name: open}
spec:
  name: open
  ingressRules:
    - {ipProtocol: tcp, fromPort: 3300, toPort: 3400, ipRanges: [{cidrIP: 0.0.0.0/0}]}
---
apiVersion: ec2.services.k8s.aws/v1alpha1
kind: SecurityGroup
metadata: {name: web}
spec:
  name: web
  ingressRules:
    - {ipProtocol: tcp, fromPort: 443, toPort: 443, ipRanges: [{cidrIP: 0.0.0.0/0}]}
    - {ipProtocol: "-1", ipRanges: [{cidrIP: 10.0.0.0/8}]}
---
apiVersion: ec2.aws.upbound.io/v1beta1
kind: SecurityGroupIngressRule
metadata: {name: xp-ssh}
spec: {forProvider: {securityGroupId: sg-0123456789abcdef0, cidrIpv6: "::/0", fromPort: 22, toPort: 22, ipProtocol: tcp}}
---
apiVersion: v1
kind: Service
metadata: {name: ssh}
spec: {type: LoadBalancer, ports: [{port: 22}]}
---
apiVersion: v1
kind: Service
metadata: {name: ssh-restricted}
spec: {type: LoadBalancer, loadBalancerSourceRanges: [203.0.113.0/24], ports: [{port: 22}]}
---
apiVersion: v1
kind: Service
metadata: {name: internal-db, annotations: {service.beta.kubernetes.io/aws-load-balancer-scheme: internal}}
spec: {type: LoadBalancer, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: https}
spec: {type: LoadBalancer, ports: [{port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: cluster-ip}
spec: {ports: [{port: 22}]}
---
apiVersion: v1
kind: Service
metadata: {name: lb-with-sg, annotations: {service.beta.kubernetes.io/aws-load-balancer-security-groups: sg-0123456789abcdef0}}
spec: {type: LoadBalancer, loadBalancerSourceRanges: [10.0.0.0/8], ports: [{port: 443}]}
"#;
    let vs = judge(AWS_IAAS, yaml);
    assert_eq!(outcome(&vs, NetworkExposure, "open"), Outcome::Fail);
    assert!(message(&vs, NetworkExposure, "open").contains("3389"));
    assert!(message(&vs, NetworkExposure, "open").contains("revoke-security-group-ingress"));
    assert_eq!(outcome(&vs, NetworkExposure, "web"), Outcome::Pass);
    assert_eq!(outcome(&vs, NetworkExposure, "xp-ssh"), Outcome::Fail);
    assert_eq!(outcome(&vs, NetworkExposure, "ssh"), Outcome::Fail);
    assert_eq!(
        outcome(&vs, NetworkExposure, "ssh-restricted"),
        Outcome::Pass
    );
    assert_eq!(outcome(&vs, NetworkExposure, "internal-db"), Outcome::Pass);
    assert_eq!(outcome(&vs, NetworkExposure, "https"), Outcome::Pass);
    assert!(!vs.iter().any(|v| v.resource.name == "cluster-ip"));
    // The load balancer's security group is the declared open one.
    assert_eq!(outcome(&vs, NetworkExposure, "lb-with-sg"), Outcome::Fail);
    // Forbidden ports are a parameter.
    let spec = format!(
        "{AWS_IAAS}controls: [{{id: network.exposure, parameters: {{forbiddenPorts: [443]}}}}]\n"
    );
    let vs = judge(&spec, yaml);
    assert_eq!(outcome(&vs, NetworkExposure, "https"), Outcome::Fail);
    assert_eq!(outcome(&vs, NetworkExposure, "ssh"), Outcome::Pass);
}

#[test]
fn azure_storage_and_nsg_fields_singular_and_plural() {
    let yaml = r#"
apiVersion: storage.azure.com/v1api20230101
kind: StorageAccount
metadata: {name: weak}
spec: {allowBlobPublicAccess: true, supportsHttpsTrafficOnly: false, minimumTlsVersion: TLS1_1}
---
apiVersion: storage.azure.com/v1api20230101
kind: StorageAccount
metadata: {name: strong}
spec: {allowBlobPublicAccess: false, supportsHttpsTrafficOnly: true, minimumTlsVersion: TLS1_2, networkAcls: {defaultAction: Deny}}
---
apiVersion: storage.azure.com/v1api20230101
kind: StorageAccount
metadata: {name: private}
spec: {allowBlobPublicAccess: false, publicNetworkAccess: Disabled, networkAcls: {defaultAction: Allow}}
---
apiVersion: storage.azure.com/v1api20230101
kind: StorageAccount
metadata: {name: ruled}
spec: {networkAcls: {defaultAction: Deny, ipRules: [{value: 203.0.113.0/24}, {value: 52.0.0.0/8, action: Allow}]}}
---
apiVersion: storage.azure.com/v1api20230101
kind: StorageAccount
metadata: {name: garbled}
spec: {networkAcls: {defaultAction: Deny, ipRules: "52.0.0.0/8"}}
---
apiVersion: network.azure.com/v1api20240301
kind: NetworkSecurityGroupsSecurityRule
metadata: {name: rdp}
spec: {owner: {name: nsg}, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefixes: [10.0.0.0/8, Internet], destinationPortRange: "3380-3390"}
---
apiVersion: network.azure.com/v1api20240301
kind: NetworkSecurityGroupsSecurityRule
metadata: {name: deny-all}
spec: {owner: {name: nsg}, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: "*", destinationPortRange: "*"}
---
apiVersion: network.azure.com/v1api20240301
kind: NetworkSecurityGroupsSecurityRule
metadata: {name: https}
spec: {owner: {name: nsg2}, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: Any, destinationPortRanges: ["443"]}
"#;
    let vs = judge("provider: azure\nserviceModel: iaas\n", yaml);
    assert_eq!(outcome(&vs, DataPublicAccess, "weak"), Outcome::Fail);
    assert_eq!(outcome(&vs, DataEncryptionInTransit, "weak"), Outcome::Fail);
    assert!(
        message(&vs, DataEncryptionInTransit, "weak")
            .contains("az storage account update --name weak --https-only true")
    );
    assert_eq!(outcome(&vs, DataPublicAccess, "strong"), Outcome::Pass);
    assert_eq!(
        outcome(&vs, DataEncryptionInTransit, "strong"),
        Outcome::Pass
    );
    assert_eq!(outcome(&vs, DataEncryptionAtRest, "strong"), Outcome::Pass);
    // Network access: Azure's default (every network) fails; a default deny or no public
    // endpoint at all passes.
    assert_eq!(outcome(&vs, NetworkExposure, "weak"), Outcome::Fail);
    assert!(message(&vs, NetworkExposure, "weak").contains("--default-action Deny"));
    assert_eq!(outcome(&vs, NetworkExposure, "strong"), Outcome::Pass);
    assert_eq!(outcome(&vs, NetworkExposure, "private"), Outcome::Pass);
    // A default deny whose IP rules let in a range wider than the baseline's public prefix is
    // open all the same; rules Azure would not send are an error.
    assert_eq!(outcome(&vs, NetworkExposure, "ruled"), Outcome::Fail);
    let ruled = message(&vs, NetworkExposure, "ruled");
    assert!(
        ruled.contains("52.0.0.0/8") && !ruled.contains("203.0.113.0/24"),
        "{ruled}"
    );
    assert_eq!(outcome(&vs, NetworkExposure, "garbled"), Outcome::Error);
    assert_eq!(outcome(&vs, NetworkExposure, "rdp"), Outcome::Fail);
    assert!(message(&vs, NetworkExposure, "rdp").contains("Internet"));
    assert_eq!(
        outcome(&vs, NetworkExposure, "deny-all"),
        Outcome::Fail,
        "the NSG's merged rules still include the RDP rule"
    );
    assert_eq!(outcome(&vs, NetworkExposure, "https"), Outcome::Pass);
}

#[test]
fn gcs_buckets_from_config_connector() {
    let yaml = r#"
apiVersion: storage.cnrm.cloud.google.com/v1beta1
kind: StorageBucket
metadata: {name: open}
spec: {location: EU}
---
apiVersion: storage.cnrm.cloud.google.com/v1beta1
kind: StorageBucket
metadata: {name: closed}
spec: {location: EU, publicAccessPrevention: enforced, uniformBucketLevelAccess: true}
---
apiVersion: iam.cnrm.cloud.google.com/v1beta1
kind: IAMPolicyMember
metadata: {name: all-users}
spec: {member: allUsers, role: roles/storage.objectViewer, resourceRef: {kind: StorageBucket, name: closed}}
"#;
    let vs = judge("provider: gcp\nserviceModel: paas\n", yaml);
    assert_eq!(outcome(&vs, DataPublicAccess, "open"), Outcome::Fail);
    assert!(message(&vs, DataPublicAccess, "open").contains("public-access-prevention"));
    assert_eq!(outcome(&vs, DataPublicAccess, "all-users"), Outcome::Fail);
    assert!(message(&vs, DataPublicAccess, "all-users").contains("allUsers"));
}

#[test]
fn ingress_tls_and_storage_class_encryption() {
    let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain}
spec: {rules: [{host: a.example.com}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: tls}
spec: {tls: [{hosts: [a.example.com], secretName: s}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: alb, annotations: {alb.ingress.kubernetes.io/certificate-arn: "arn:aws:acm:eu-west-1:1:certificate/x"}}
spec: {}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: plain}
provisioner: ebs.csi.aws.com
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: enc}
provisioner: kubernetes.io/aws-ebs
parameters: {encrypted: "true"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs}
provisioner: nfs.csi.k8s.io
"#;
    let vs = judge(AWS_IAAS, yaml);
    let kind = |k: &str, n: &str, c| {
        let sub: Vec<Verdict> = vs
            .iter()
            .filter(|v| v.resource.kind == k)
            .cloned()
            .collect();
        outcome(&sub, c, n)
    };
    assert_eq!(
        kind("Ingress", "plain", DataEncryptionInTransit),
        Outcome::Fail
    );
    assert_eq!(
        kind("Ingress", "tls", DataEncryptionInTransit),
        Outcome::Pass
    );
    assert_eq!(
        kind("Ingress", "alb", DataEncryptionInTransit),
        Outcome::Pass
    );
    assert_eq!(
        kind("StorageClass", "plain", DataEncryptionAtRest),
        Outcome::Fail
    );
    assert_eq!(
        kind("StorageClass", "enc", DataEncryptionAtRest),
        Outcome::Pass
    );
    assert!(!vs.iter().any(|v| v.resource.name == "nfs"));
}

#[test]
fn unknown_cloud_resources_follow_the_baseline() {
    let yaml = deploy(
        "uses",
        "default",
        PINNED,
        "[{name: B, value: \"s3://never-seen\"}]",
    );
    for (policy, expected) in [
        ("Allow", Outcome::Skip),
        ("Warn", Outcome::Warn),
        ("Deny", Outcome::Fail),
    ] {
        let vs = judge(
            &format!("{AWS_IAAS}unknownCloudResources: {policy}\n"),
            &yaml,
        );
        let v = vs.iter().find(|v| v.rule == "unknown-posture").unwrap();
        assert_eq!(v.result, expected, "{policy}");
        assert!(
            v.message.contains("s3://never-seen") && v.message.contains("not been audited"),
            "{}",
            v.message
        );
        assert_eq!(v.denies(), policy == "Deny");
    }
}

#[test]
fn unreadable_cloud_resources_are_errors_never_passes() {
    let yaml = deploy(
        "uses",
        "default",
        PINNED,
        "[{name: B, value: \"s3://locked\"}]",
    );
    let vs = judge_with(AWS_IAAS, &yaml, |inv| {
        inv.live.replace(Posture::failed(
            CloudResource::S3Bucket("locked".into()),
            "AccessDenied: s3:GetBucketAcl",
            now(),
        ));
    });
    let on_bucket: Vec<&Verdict> = vs
        .iter()
        .filter(|v| v.cloud_resource.as_deref() == Some("s3://locked"))
        .collect();
    assert!(!on_bucket.is_empty());
    assert!(
        on_bucket.iter().all(|v| v.result == Outcome::Error),
        "{on_bucket:#?}"
    );
    assert!(on_bucket[0].message.contains("AccessDenied"));
    assert!(
        on_bucket[0].denies(),
        "an error under Deny refuses, like a failure"
    );
}

#[test]
fn live_postures_win_over_declared_facts() {
    let yaml = format!(
        "{ACK_BUCKETS}---\n{}",
        deploy(
            "uses",
            "default",
            PINNED,
            "[{name: B, value: \"s3://closed-bucket\"}]"
        )
    );
    let vs = judge_with(AWS_IAAS, &yaml, |inv| {
        let mut live = Posture::new(
            CloudResource::S3Bucket("closed-bucket".into()),
            Source::Live,
        );
        live.public_access = Some(PublicAccess {
            exposures: vec!["ACL grants READ to AllUsers".into()],
            guard: Some(Ok(())),
        });
        inv.live.replace(live);
    });
    assert_eq!(outcome(&vs, DataPublicAccess, "uses"), Outcome::Fail);
}

#[test]
fn a_private_bucket_without_block_public_access_is_not_called_public() {
    let yaml = deploy(
        "uses",
        "default",
        PINNED,
        "[{name: B, value: \"s3://quiet-bucket\"}]",
    );
    let with = |exposures: Vec<String>| {
        judge_with(AWS_IAAS, &yaml, move |inv| {
            let mut live =
                Posture::new(CloudResource::S3Bucket("quiet-bucket".into()), Source::Live);
            live.public_access = Some(PublicAccess {
                exposures: exposures.clone(),
                guard: Some(Err(
                    "Block Public Access is not fully on (BlockPublicAcls off)".into(),
                )),
            });
            inv.live.replace(live);
        })
    };
    let message = |vs: &[Verdict]| {
        vs.iter()
            .find(|v| v.control == DataPublicAccess)
            .map(|v| (v.result, v.message.clone()))
            .unwrap()
    };
    let (result, said) = message(&with(vec![]));
    assert_eq!(result, Outcome::Fail, "an unguarded bucket is still a gap");
    assert!(
        said.contains("is not public today, but is not protected") && !said.contains("is public:"),
        "{said}"
    );
    let (_, said) = message(&with(vec!["ACL grants READ to AllUsers".into()]));
    assert!(said.contains("is public: ACL grants READ"), "{said}");
}

#[test]
fn account_audit_trail_is_judged_as_cis_asks() {
    let yaml = deploy("uses", "default", PINNED, "[]");
    let refs = crate::refs::Reference {
        resource: CloudResource::AwsAccount("123456789012".into()),
        found_at: "baseline".into(),
    };
    let trail = |name: &str| Trail {
        name: name.into(),
        multi_region: true,
        logging: true,
        management_events: true,
        log_file_validation: true,
        kms_encrypted: true,
    };
    // (rule, outcome) of each verdict for these trails.
    let judge = |trails: Vec<Trail>| {
        let objs = objects(&yaml);
        let mut inv = Inventory::from_objects(objs.iter());
        let mut p = Posture::new(refs.resource.clone(), Source::Live);
        p.audit_trail = Some(AuditTrail { trails });
        inv.live.replace(p);
        let b = baseline(AWS_IAAS);
        let mut ctx = super::Ctx::new(&objs[0], &b, &inv, now());
        super::cloud::judge_references(&mut ctx, std::slice::from_ref(&refs));
        ctx.out
            .iter()
            .filter(|v| v.control == LoggingAuditTrail)
            .map(|v| (v.rule.to_string(), v.result, v.message.clone()))
            .collect::<Vec<_>>()
    };
    let results = |vs: &[(String, Outcome, String)]| {
        vs.iter()
            .map(|(r, o, _)| (r.as_str().to_string(), *o))
            .collect::<Vec<_>>()
    };
    let none = judge(vec![]);
    assert_eq!(results(&none), [("cloud-trail".into(), Outcome::Fail)]);
    assert!(
        none[0].2.contains("CIS AWS Foundations v7.0 4.1"),
        "{}",
        none[0].2
    );
    // A multi-region trail that records no management events does not count, and says why.
    let blind = judge(vec![Trail {
        management_events: false,
        ..trail("org")
    }]);
    assert_eq!(results(&blind), [("cloud-trail".into(), Outcome::Fail)]);
    assert!(
        blind[0]
            .2
            .contains("trail org records no management events"),
        "{}",
        blind[0].2
    );
    let regional = judge(vec![Trail {
        multi_region: false,
        ..trail("eu")
    }]);
    assert_eq!(results(&regional), [("cloud-trail".into(), Outcome::Fail)]);
    // Complete: validation and encryption are their own checks.
    assert!(
        judge(vec![trail("org")])
            .iter()
            .all(|(_, o, _)| *o == Outcome::Pass)
    );
    let plain = judge(vec![Trail {
        log_file_validation: false,
        kms_encrypted: false,
        ..trail("org")
    }]);
    assert_eq!(
        results(&plain),
        [
            ("cloud-trail".into(), Outcome::Pass),
            ("trail-log-validation".into(), Outcome::Fail),
            ("trail-kms-encryption".into(), Outcome::Fail)
        ]
    );
    assert!(
        plain[1].2.contains("4.2") && plain[2].2.contains("4.5"),
        "{plain:?}"
    );
    // One complete trail with each property is enough.
    let two = judge(vec![
        Trail {
            kms_encrypted: false,
            ..trail("a")
        },
        Trail {
            log_file_validation: false,
            ..trail("b")
        },
    ]);
    assert!(two.iter().all(|(_, o, _)| *o == Outcome::Pass), "{two:?}");
}

#[test]
fn exceptions_exempt_until_expiry_and_expired_ones_are_reported() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: agent-7}\nspec:\n  hostNetwork: true\n  containers: [{name: c, image: x}]\n";
    let spec = |expires: &str| {
        format!(
            "{AWS_IAAS}exceptions:\n- control: host-os.isolation\n  resources: [{{kind: Pod, name: \"agent-*\"}}]\n  justification: node agent needs host network\n  expires: \"{expires}\"\n"
        )
    };
    let vs = judge(&spec("2027-01-01T00:00:00Z"), yaml);
    assert_eq!(outcome(&vs, HostOsIsolation, "agent-7"), Outcome::Skip);
    assert!(message(&vs, HostOsIsolation, "agent-7").contains("exempted until 2027-01-01"));
    let vs = judge(&spec("2026-01-01T00:00:00Z"), yaml);
    assert_eq!(outcome(&vs, HostOsIsolation, "agent-7"), Outcome::Fail);
    assert!(message(&vs, HostOsIsolation, "agent-7").contains("exception expired 2026-01-01"));
}

#[test]
fn disabled_controls_and_actions() {
    let yaml = deploy(
        "k",
        "default",
        "nginx:latest",
        "[{name: AWS_SECRET_ACCESS_KEY, value: x}]",
    );
    let spec = format!(
        "{AWS_IAAS}action: Warn\ncontrols: [{{id: application.image-provenance, disabled: true}}, {{id: identity.workload-identity, action: Audit}}]\n"
    );
    let vs = judge(&spec, &yaml);
    assert_eq!(outcome(&vs, ApplicationImageProvenance, "k"), Outcome::Skip);
    let v = vs
        .iter()
        .find(|v| v.control == IdentityWorkloadIdentity)
        .unwrap();
    assert_eq!((v.result, v.action), (Outcome::Fail, Action::Audit));
    assert!(!vs.iter().any(Verdict::denies));
    let v = vs.iter().find(|v| v.control == HostOsIsolation).unwrap();
    assert_eq!(v.action, Action::Warn);
}

#[test]
fn the_strictest_of_several_baselines_wins() {
    let yaml = deploy(
        "k",
        "default",
        PINNED,
        "[{name: AWS_SECRET_ACCESS_KEY, value: x}]",
    );
    let objs = objects(&yaml);
    let inv = Inventory::from_objects(objs.iter());
    let iaas_warn = baseline("provider: aws\nserviceModel: iaas\naction: Warn\n");
    let iaas_deny = baseline(AWS_IAAS);
    let vs = evaluate(&objs[0], &[&iaas_warn, &iaas_deny], &inv, now());
    let v = vs
        .iter()
        .find(|v| v.control == IdentityWorkloadIdentity)
        .unwrap();
    assert_eq!((v.result, v.action), (Outcome::Fail, Action::Deny));
    assert_eq!(
        vs.iter()
            .filter(|v| v.control == IdentityWorkloadIdentity)
            .count(),
        1
    );
    // Baselines of different service models judge different duties: each keeps its verdict
    // (compliance reads them per model), and the strictest still decides admission.
    let saas_warn = baseline("provider: aws\nserviceModel: saas\naction: Warn\n");
    let vs = evaluate(&objs[0], &[&saas_warn, &iaas_deny], &inv, now());
    let mine: Vec<&Verdict> = vs
        .iter()
        .filter(|v| v.control == IdentityWorkloadIdentity)
        .collect();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().any(|v| v.denies()));
    // SaaS skips host-os, IaaS enforces it: the enforced verdict is kept.
    let v = vs.iter().find(|v| v.control == HostOsIsolation).unwrap();
    assert_eq!(v.result, Outcome::Pass);
    assert!(
        !vs.iter()
            .any(|v| v.rule == "applicability" && v.control == HostOsIsolation)
    );
}

/// Of two findings on one check, the strictest keeps the requirement ids of both: a Warn
/// baseline asking the restricted profile finds a root container the Deny baseline's profile
/// does not ask about.
#[test]
fn the_strictest_finding_keeps_the_ids_of_the_others() {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{hostNetwork: true, containers: [{{name: c, image: \"{PINNED}\"}}]}}\n"
    );
    let objs = objects(&yaml);
    let inv = Inventory::from_objects(objs.iter());
    let deny = baseline(AWS_IAAS);
    let warn_restricted = baseline(
        "provider: aws\nserviceModel: iaas\naction: Warn\ncontrols:\n  - {id: host-os.isolation, parameters: {profile: restricted}}\n",
    );
    let vs = evaluate(&objs[0], &[&deny, &warn_restricted], &inv, now());
    let v = vs.iter().find(|v| v.control == HostOsIsolation).unwrap();
    assert_eq!(v.action, Action::Deny);
    let root = ids_of(
        "host-access",
        Some("restricted-run-as-non-root"),
        crate::compliance::Framework::CisKubernetes,
    );
    let cis = &v.frameworks.0[&crate::compliance::Framework::CisKubernetes];
    assert!(root.iter().all(|id| cis.contains(id)), "{cis:?}");
}

#[test]
fn namespace_segmentation_is_audit_only() {
    let yaml = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: guarded}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-web, namespace: open}\nspec: {podSelector: {matchLabels: {app: web}}, ingress: [{}]}\n";
    let objs = objects(yaml);
    let inv = Inventory::from_objects(objs.iter());
    let b = baseline(AWS_IAAS);
    let guarded = evaluate_namespace("guarded", &[&b], &inv, now());
    assert_eq!(guarded[0].result, Outcome::Pass);
    let open = evaluate_namespace("open", &[&b], &inv, now());
    assert_eq!(
        (open[0].result, open[0].action),
        (Outcome::Fail, Action::Audit)
    );
    assert!(!open[0].denies());
}

#[test]
fn bad_uses_annotation_is_an_error() {
    let yaml = deploy("x", "default", PINNED, "[]").replace(
        "metadata: {name: x}",
        "metadata: {name: x, annotations: {onus.dev/uses: \"s3://ok-bucket, ftp://nope\"}}",
    );
    let vs = judge(AWS_IAAS, &yaml);
    let v = vs.iter().find(|v| v.rule == "reference").unwrap();
    assert_eq!(v.result, Outcome::Error);
    assert!(v.message.contains("ftp://nope"));
    assert!(
        vs.iter()
            .any(|v| v.cloud_resource.as_deref() == Some("s3://ok-bucket"))
    );
}

#[test]
fn a_failed_account_lookup_is_an_error_on_the_audit_trail() {
    let b = baseline(AWS_IAAS);
    let mut inv = Inventory::default();
    let refs = [&b];
    let none = super::evaluate_namespace("shop", &refs, &inv, now());
    assert!(
        none.iter().all(|v| v.control != LoggingAuditTrail),
        "no audit ran: nothing to say"
    );
    inv.aws_account_error = Some("AccessDenied".into());
    let vs = super::evaluate_namespace("shop", &refs, &inv, now());
    let v = vs
        .iter()
        .find(|v| v.control == LoggingAuditTrail)
        .expect("an audit-trail verdict");
    assert_eq!(v.result, Outcome::Error);
    assert!(v.message.contains("AccessDenied"), "{}", v.message);
}

/// The ids a mapping row of `rule/aspect` carries under AWS for `framework`.
fn ids_of(
    rule: &str,
    aspect: Option<&str>,
    framework: crate::compliance::Framework,
) -> Vec<String> {
    crate::compliance::tables()
        .mappings
        .iter()
        .filter(|m| {
            m.rule == rule
                && m.aspect.as_deref() == aspect
                && m.framework == framework
                && m.scope.covers(crate::model::Provider::Aws)
        })
        .map(|m| m.id.clone())
        .collect()
}

/// A finding carries the requirement ids of the aspects that failed, not every id of its
/// check: an escalation-only policy does not fail CIS AWS 2.14 (full admin), a hostPath-only
/// pod does not fail CIS Kubernetes 5.2.5 (hostNetwork), Redis open to the internet does not
/// fail CIS AWS 5.3 (remote administration ports). Passes carry every id of the check.
#[test]
fn findings_carry_the_ids_of_the_aspects_that_failed() {
    use crate::compliance::Framework::{CisAws, CisKubernetes, Iso27001};
    let yaml = format!(
        r#"
apiVersion: iam.services.k8s.aws/v1alpha1
kind: Role
metadata: {{name: escalates}}
spec:
  name: escalates
  inlinePolicies:
    p: '{{"Statement":[{{"Effect":"Allow","Action":["iam:PassRole","ec2:RunInstances"],"Resource":"*"}}]}}'
---
apiVersion: iam.services.k8s.aws/v1alpha1
kind: Role
metadata: {{name: admin}}
spec:
  name: admin
  inlinePolicies:
    p: '{{"Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}}]}}'
---
apiVersion: ec2.services.k8s.aws/v1alpha1
kind: SecurityGroup
metadata: {{name: redis}}
spec:
  name: redis
  ingressRules:
    - {{ipProtocol: tcp, fromPort: 6379, toPort: 6379, ipRanges: [{{cidrIP: 0.0.0.0/0}}]}}
---
apiVersion: ec2.services.k8s.aws/v1alpha1
kind: SecurityGroup
metadata: {{name: ssh}}
spec:
  name: ssh
  ingressRules:
    - {{ipProtocol: tcp, fromPort: 22, toPort: 22, ipRanges: [{{cidrIP: 0.0.0.0/0}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: mounts}}
spec:
  volumes: [{{name: h, hostPath: {{path: /var/log}}}}]
  containers: [{{name: c, image: "{PINNED}"}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: clean}}
spec:
  containers: [{{name: c, image: "{PINNED}"}}]
"#
    );
    let spec = "provider: aws\nserviceModel: iaas\ncontrols:\n  - {id: network.exposure, parameters: {forbiddenPorts: [22, 6379]}}\n";
    let vs = judge(spec, &yaml);
    let ids = |name: &str, control: ControlId, f| -> Vec<String> {
        let v = vs
            .iter()
            .find(|v| v.control == control && v.resource.name == name)
            .unwrap_or_else(|| panic!("no {control} verdict for {name}: {vs:#?}"));
        v.frameworks.0.get(&f).cloned().unwrap_or_default()
    };
    let has_all = |have: &[String], want: &[String]| want.iter().all(|w| have.contains(w));
    let has_none = |have: &[String], want: &[String]| !want.iter().any(|w| have.contains(w));

    let admin = ids_of("policy-analysis", Some("full-admin"), CisAws);
    let escalation = ids_of("policy-analysis", Some("privilege-escalation"), CisAws);
    assert!(!admin.is_empty());
    let got = ids("escalates", IdentityLeastPrivilege, CisAws);
    assert!(
        has_all(&got, &escalation) && has_none(&got, &admin),
        "{got:?}"
    );
    assert!(has_all(
        &ids("admin", IdentityLeastPrivilege, CisAws),
        &admin
    ));

    let ssh = ids_of("ingress-rules", Some("tcp-22"), CisAws);
    let redis = ids_of("ingress-rules", Some("tcp-6379"), Iso27001);
    assert!(!ssh.is_empty() && !redis.is_empty());
    assert!(has_none(&ids("redis", NetworkExposure, CisAws), &ssh));
    assert!(has_all(&ids("redis", NetworkExposure, Iso27001), &redis));
    assert!(has_all(&ids("ssh", NetworkExposure, CisAws), &ssh));

    let host_path = ids_of("host-access", Some("host-path"), CisKubernetes);
    let host_network = ids_of("host-access", Some("host-network"), CisKubernetes);
    let general = ids_of("host-access", None, CisKubernetes);
    assert!(!host_path.is_empty() && !host_network.is_empty() && !general.is_empty());
    let got = ids("mounts", HostOsIsolation, CisKubernetes);
    assert!(
        has_all(&got, &host_path) && has_all(&got, &general) && has_none(&got, &host_network),
        "{got:?}"
    );
    let clean = ids("clean", HostOsIsolation, CisKubernetes);
    assert!(has_all(&clean, &host_path) && has_all(&clean, &host_network));
}
