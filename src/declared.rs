//! Declared cloud resources: ACK, Crossplane, Azure Service Operator and Config Connector objects
//! turned into `Posture` facts (field names as in the upstream CRDs).

use serde_json::Value;

use crate::iam::{self, IamFinding, IamIssue};
use crate::model::ControlId;
use crate::network::{aws_port_range, normalise_protocol, nsg_ingress};
use crate::object::{Object, list, truthy};
use crate::posture::{
    CloudResource, EncryptionAtRest, IngressRule, Posture, PublicAccess, Source, StorageNetwork,
    Transit,
};

use ControlId::*;

/// Resolves the name a cloud resource really has from the Kubernetes object that manages it
/// (Crossplane external names, ASO `azureName`), for objects that reference others by `*Ref`.
pub trait NameResolver {
    fn cloud_name(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<String>;
}

/// Resolves nothing: references by `*Ref` fall back to the Kubernetes name.
pub struct NoResolver;

impl NameResolver for NoResolver {
    fn cloud_name(&self, _: &str, _: &str, _: Option<&str>, _: &str) -> Option<String> {
        None
    }
}

/// The facts one declaring object contributes, and which controls judge that object.
#[derive(Clone, Debug)]
pub struct Declared {
    pub posture: Posture,
    pub controls: &'static [ControlId],
}

const BUCKET: &[ControlId] = &[
    DataPublicAccess,
    DataEncryptionAtRest,
    DataEncryptionInTransit,
    LoggingAuditTrail,
];
const IDENTITY: &[ControlId] = &[IdentityLeastPrivilege];
const NETWORK: &[ControlId] = &[NetworkExposure];

const S3_PUBLIC_GROUPS: &[(&str, &str)] = &[
    (
        "http://acs.amazonaws.com/groups/global/AllUsers",
        "AllUsers",
    ),
    (
        "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
        "AuthenticatedUsers",
    ),
];

/// Declared kinds: (group, kind, plural), for watches and webhook rules.
pub const DECLARED_KINDS: &[(&str, &str, &str)] = &[
    ("s3.services.k8s.aws", "Bucket", "buckets"),
    ("iam.services.k8s.aws", "Role", "roles"),
    ("iam.services.k8s.aws", "Policy", "policies"),
    ("ec2.services.k8s.aws", "SecurityGroup", "securitygroups"),
    ("s3.aws.upbound.io", "Bucket", "buckets"),
    ("s3.aws.upbound.io", "BucketACL", "bucketacls"),
    ("s3.aws.upbound.io", "BucketPolicy", "bucketpolicies"),
    (
        "s3.aws.upbound.io",
        "BucketPublicAccessBlock",
        "bucketpublicaccessblocks",
    ),
    (
        "s3.aws.upbound.io",
        "BucketServerSideEncryptionConfiguration",
        "bucketserversideencryptionconfigurations",
    ),
    ("s3.aws.upbound.io", "BucketLogging", "bucketloggings"),
    ("iam.aws.upbound.io", "Role", "roles"),
    ("iam.aws.upbound.io", "Policy", "policies"),
    ("iam.aws.upbound.io", "RolePolicy", "rolepolicies"),
    (
        "iam.aws.upbound.io",
        "RolePolicyAttachment",
        "rolepolicyattachments",
    ),
    (
        "ec2.aws.upbound.io",
        "SecurityGroupIngressRule",
        "securitygroupingressrules",
    ),
    (
        "ec2.aws.upbound.io",
        "SecurityGroupRule",
        "securitygrouprules",
    ),
    ("storage.azure.com", "StorageAccount", "storageaccounts"),
    (
        "storage.azure.com",
        "StorageAccountsBlobServicesContainer",
        "storageaccountsblobservicescontainers",
    ),
    (
        "network.azure.com",
        "NetworkSecurityGroupsSecurityRule",
        "networksecuritygroupssecurityrules",
    ),
    (
        "storage.cnrm.cloud.google.com",
        "StorageBucket",
        "storagebuckets",
    ),
    (
        "iam.cnrm.cloud.google.com",
        "IAMPolicyMember",
        "iampolicymembers",
    ),
];

/// Is this a kind onus reads cloud facts from?
pub fn is_declared_kind(group: &str, kind: &str) -> bool {
    DECLARED_KINDS
        .iter()
        .any(|(g, k, _)| *g == group && *k == kind)
}

/// The facts an object declares, if it is a declared cloud resource kind.
pub fn declared(obj: &Object, names: &dyn NameResolver) -> Option<Declared> {
    let (group, kind) = (obj.group(), obj.kind());
    if !is_declared_kind(group, kind) {
        return None;
    }
    let by = format!("{}/{}", kind, obj.id.name);
    let mut d = match (group, kind) {
        ("s3.services.k8s.aws", "Bucket") => ack_bucket(obj),
        ("iam.services.k8s.aws", "Role") => ack_role(obj, names),
        ("iam.services.k8s.aws", "Policy") => ack_policy(obj),
        ("ec2.services.k8s.aws", "SecurityGroup") => ack_security_group(obj),
        ("s3.aws.upbound.io", _) => crossplane_s3(obj, kind, names),
        ("iam.aws.upbound.io", _) => crossplane_iam(obj, kind, names),
        ("ec2.aws.upbound.io", _) => crossplane_ingress(obj, names),
        ("storage.azure.com", "StorageAccount") => aso_storage_account(obj),
        ("storage.azure.com", _) => aso_container(obj, names),
        ("network.azure.com", _) => aso_nsg_rule(obj, names),
        ("storage.cnrm.cloud.google.com", _) => kcc_bucket(obj),
        ("iam.cnrm.cloud.google.com", _) => kcc_policy_member(obj)?,
        _ => return None,
    };
    d.posture.declared_by = Some(by);
    Some(d)
}

fn posture(resource: CloudResource) -> Posture {
    Posture::new(resource, Source::Declared)
}

/// The cloud name of a Crossplane managed resource: its external-name annotation, else its name.
fn external_name(obj: &Object) -> String {
    obj.annotation("crossplane.io/external-name")
        .unwrap_or(&obj.id.name)
        .to_string()
}

/// A Crossplane field given directly (`bucket`) or as a reference (`bucketRef.name`).
fn crossplane_ref(
    obj: &Object,
    field: &str,
    group: &str,
    kind: &str,
    names: &dyn NameResolver,
) -> Option<String> {
    let fp = obj.at("spec.forProvider")?;
    if let Some(v) = fp.get(field).and_then(Value::as_str) {
        return Some(v.to_string());
    }
    let name = fp.get(format!("{field}Ref"))?.get("name")?.as_str()?;
    Some(
        names
            .cloud_name(group, kind, None, name)
            .unwrap_or_else(|| name.to_string()),
    )
}

fn s3_public_acl(acl: &str) -> Option<String> {
    match acl {
        "public-read" | "public-read-write" | "authenticated-read" => {
            Some(format!("canned ACL {acl}"))
        }
        _ => None,
    }
}

fn ack_bucket(obj: &Object) -> Declared {
    let name = obj.str_at("spec.name").unwrap_or(&obj.id.name).to_string();
    let mut p = posture(CloudResource::S3Bucket(name));
    let spec = obj.at("spec").cloned().unwrap_or(Value::Null);
    let mut exposures = Vec::new();
    if let Some(e) = spec
        .get("acl")
        .and_then(Value::as_str)
        .and_then(s3_public_acl)
    {
        exposures.push(e);
    }
    for (field, perm) in [
        ("grantRead", "READ"),
        ("grantWrite", "WRITE"),
        ("grantFullControl", "FULL_CONTROL"),
        ("grantReadACP", "READ_ACP"),
        ("grantWriteACP", "WRITE_ACP"),
    ] {
        if let Some(g) = spec.get(field).and_then(Value::as_str) {
            for (uri, group) in S3_PUBLIC_GROUPS {
                if g.contains(uri) {
                    exposures.push(format!("ACL grants {perm} to {group}"));
                }
            }
        }
    }
    let policy = spec.get("policy").and_then(Value::as_str);
    let mut transit = Transit::default();
    if let Some(text) = policy {
        match iam::parse(text) {
            Ok(doc) => {
                exposures.extend(doc.public_statements(&Default::default()));
                transit.secure_transport_policy = Some(doc.denies_insecure_transport());
            }
            Err(e) => p.error = Some(format!("spec.policy: {e}")),
        }
    } else {
        transit.secure_transport_policy = Some(false);
    }
    let guard = spec.get("publicAccessBlock").map(|b| {
        bpa_guard(&[
            ("blockPublicACLs", truthy(b.get("blockPublicACLs"))),
            ("ignorePublicACLs", truthy(b.get("ignorePublicACLs"))),
            ("blockPublicPolicy", truthy(b.get("blockPublicPolicy"))),
            (
                "restrictPublicBuckets",
                truthy(b.get("restrictPublicBuckets")),
            ),
        ])
    });
    p.public_access = Some(PublicAccess { exposures, guard });
    p.transit = Some(transit);
    let rules = list(&spec, "encryption.rules");
    p.encryption_at_rest = Some(s3_encryption(rules.iter().filter_map(|r| {
        let d = r.get("applyServerSideEncryptionByDefault")?;
        Some((
            d.get("sseAlgorithm")?.as_str()?,
            d.get("kmsMasterKeyID").and_then(Value::as_str),
        ))
    })));
    p.access_logging = Some(
        obj.at("spec.logging.loggingEnabled.targetBucket")
            .and_then(Value::as_str)
            .is_some(),
    );
    // Without the field AWS applies its default for new buckets (ACLs disabled).
    p.object_ownership = list(&spec, "ownershipControls.rules")
        .first()
        .and_then(|r| r.get("objectOwnership"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Declared {
        posture: p,
        controls: BUCKET,
    }
}

/// Block Public Access: every flag must be on.
fn bpa_guard(flags: &[(&str, Option<bool>)]) -> Result<(), String> {
    let off: Vec<&str> = flags
        .iter()
        .filter(|(_, v)| *v != Some(true))
        .map(|(n, _)| *n)
        .collect();
    if off.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Block Public Access is not fully on ({} off)",
            off.join(", ")
        ))
    }
}

fn s3_encryption<'a>(rules: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> EncryptionAtRest {
    let mut enc = EncryptionAtRest::default();
    for (alg, key) in rules {
        enc.enabled = true;
        enc.algorithm = Some(alg.to_string());
        // SSE-KMS with the AWS-managed key (`alias/aws/s3` or no key) is not a customer key.
        enc.customer_managed_key = alg.starts_with("aws:kms")
            && key.is_some_and(|k| !k.is_empty() && !k.ends_with("alias/aws/s3"));
    }
    enc
}

/// Known AWS-managed policies whose effect is public knowledge.
fn aws_managed_policy(arn: &str) -> Option<Vec<IamFinding>> {
    let name = arn.strip_prefix("arn:aws:iam::aws:policy/")?;
    let issue = match name {
        "AdministratorAccess" => IamIssue::FullAdmin,
        "PowerUserAccess" => IamIssue::AllowNotAction,
        "IAMFullAccess" => IamIssue::ServiceWildcard {
            service: "iam".into(),
        },
        "AmazonS3FullAccess" => IamIssue::ServiceWildcard {
            service: "s3".into(),
        },
        "AmazonEC2FullAccess" => IamIssue::ServiceWildcard {
            service: "ec2".into(),
        },
        _ => return Some(Vec::new()),
    };
    Some(vec![IamFinding {
        issue,
        statement: format!("AWS managed policy {name}"),
        conditioned: false,
    }])
}

/// Analyse documents into a role/policy posture; a broken document is an error, never a pass.
fn iam_posture(resource: CloudResource, docs: &[(String, &str)], attached: Vec<String>) -> Posture {
    let mut p = posture(resource);
    let mut findings = Vec::new();
    for (label, text) in docs {
        match iam::parse(text).and_then(|doc| doc.analyse()) {
            Ok(found) => findings.extend(found.into_iter().map(|mut f| {
                f.statement = format!("{label}: {}", f.statement);
                f
            })),
            Err(e) => p.error = Some(format!("{label}: {e}")),
        }
    }
    for arn in &attached {
        if let Some(known) = aws_managed_policy(arn) {
            findings.extend(known);
        }
    }
    p.iam = Some(findings);
    p.attached_policies = attached;
    p
}

fn ack_role(obj: &Object, names: &dyn NameResolver) -> Declared {
    let name = obj.str_at("spec.name").unwrap_or(&obj.id.name);
    let inline: Vec<(String, &str)> = obj
        .at("spec.inlinePolicies")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((format!("inline policy {k}"), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut attached: Vec<String> = list(&obj.body, "spec.policies")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for r in list(&obj.body, "spec.policyRefs") {
        if let Some(n) = r
            .get("from")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            let ns = r
                .get("from")
                .and_then(|f| f.get("namespace"))
                .and_then(Value::as_str)
                .or(obj.namespace());
            let cloud = names
                .cloud_name("iam.services.k8s.aws", "Policy", ns, n)
                .unwrap_or_else(|| n.to_string());
            attached.push(format!("policy/{cloud}"));
        }
    }
    Declared {
        posture: iam_posture(
            CloudResource::IamRole(format!("role/{name}")),
            &inline,
            attached,
        ),
        controls: IDENTITY,
    }
}

fn ack_policy(obj: &Object) -> Declared {
    let name = obj.str_at("spec.name").unwrap_or(&obj.id.name);
    let doc = obj.str_at("spec.policyDocument").unwrap_or("");
    let docs = [("policy document".to_string(), doc)];
    Declared {
        posture: iam_posture(
            CloudResource::IamPolicy(format!("policy/{name}")),
            &docs,
            Vec::new(),
        ),
        controls: IDENTITY,
    }
}

fn ack_security_group(obj: &Object) -> Declared {
    let id = obj
        .str_at("status.id")
        .map(str::to_string)
        .unwrap_or_else(|| obj.str_at("spec.name").unwrap_or(&obj.id.name).to_string());
    let mut p = posture(CloudResource::SecurityGroup(id));
    let mut rules = Vec::new();
    for r in list(&obj.body, "spec.ingressRules") {
        let proto = r.get("ipProtocol").and_then(Value::as_str).unwrap_or("-1");
        let (from, to) = aws_port_range(
            proto,
            r.get("fromPort").and_then(Value::as_i64),
            r.get("toPort").and_then(Value::as_i64),
        );
        let sources = list(r, "ipRanges")
            .iter()
            .filter_map(|x| x.get("cidrIP").and_then(Value::as_str))
            .chain(
                list(r, "ipv6Ranges")
                    .iter()
                    .filter_map(|x| x.get("cidrIPv6").and_then(Value::as_str)),
            );
        for src in sources {
            rules.push(IngressRule {
                protocol: normalise_protocol(proto),
                from_port: from,
                to_port: to,
                source: src.to_string(),
            });
        }
    }
    p.ingress = Some(rules);
    Declared {
        posture: p,
        controls: NETWORK,
    }
}

fn crossplane_s3(obj: &Object, kind: &str, names: &dyn NameResolver) -> Declared {
    let bucket = if kind == "Bucket" {
        external_name(obj)
    } else {
        crossplane_ref(obj, "bucket", "s3.aws.upbound.io", "Bucket", names)
            .unwrap_or_else(|| obj.id.name.clone())
    };
    let mut p = posture(CloudResource::S3Bucket(bucket));
    let fp = obj.at("spec.forProvider").cloned().unwrap_or(Value::Null);
    let controls: &'static [ControlId] = match kind {
        // The bucket itself declares no facts: its ACL, policy, encryption and logging are
        // separate objects, merged in by the inventory. What none of them declares is absent.
        "Bucket" => BUCKET,
        "BucketACL" => {
            let mut exposures: Vec<String> = fp
                .get("acl")
                .and_then(Value::as_str)
                .and_then(s3_public_acl)
                .into_iter()
                .collect();
            for acp in list(&fp, "accessControlPolicy") {
                for g in list(acp, "grant") {
                    let perm = g.get("permission").and_then(Value::as_str).unwrap_or("?");
                    for grantee in list(g, "grantee") {
                        let uri = grantee.get("uri").and_then(Value::as_str).unwrap_or("");
                        for (u, group) in S3_PUBLIC_GROUPS {
                            if uri == *u {
                                exposures.push(format!("ACL grants {perm} to {group}"));
                            }
                        }
                    }
                }
            }
            p.public_access = Some(PublicAccess {
                exposures,
                guard: None,
            });
            &[DataPublicAccess]
        }
        "BucketPolicy" => {
            match iam::parse(fp.get("policy").and_then(Value::as_str).unwrap_or("")) {
                Ok(doc) => {
                    p.public_access = Some(PublicAccess {
                        exposures: doc.public_statements(&Default::default()),
                        guard: None,
                    });
                    p.transit = Some(Transit {
                        secure_transport_policy: Some(doc.denies_insecure_transport()),
                        ..Transit::default()
                    });
                }
                Err(e) => p.error = Some(format!("spec.forProvider.policy: {e}")),
            }
            &[DataPublicAccess, DataEncryptionInTransit]
        }
        "BucketPublicAccessBlock" => {
            let flag = |n: &str| truthy(fp.get(n));
            p.public_access = Some(PublicAccess {
                exposures: Vec::new(),
                guard: Some(bpa_guard(&[
                    ("blockPublicAcls", flag("blockPublicAcls")),
                    ("ignorePublicAcls", flag("ignorePublicAcls")),
                    ("blockPublicPolicy", flag("blockPublicPolicy")),
                    ("restrictPublicBuckets", flag("restrictPublicBuckets")),
                ])),
            });
            &[DataPublicAccess]
        }
        "BucketServerSideEncryptionConfiguration" => {
            let rules = list(&fp, "rule");
            p.encryption_at_rest = Some(s3_encryption(
                rules
                    .iter()
                    .flat_map(|r| list(r, "applyServerSideEncryptionByDefault"))
                    .filter_map(|d| {
                        Some((
                            d.get("sseAlgorithm")?.as_str()?,
                            d.get("kmsMasterKeyId").and_then(Value::as_str),
                        ))
                    }),
            ));
            &[DataEncryptionAtRest]
        }
        _ => {
            // BucketLogging
            p.access_logging =
                Some(fp.get("targetBucket").is_some() || fp.get("targetBucketRef").is_some());
            &[LoggingAuditTrail]
        }
    };
    Declared {
        posture: p,
        controls,
    }
}

fn crossplane_iam(obj: &Object, kind: &str, names: &dyn NameResolver) -> Declared {
    let fp = obj.at("spec.forProvider").cloned().unwrap_or(Value::Null);
    let posture = match kind {
        "Role" => {
            let inline: Vec<(String, &str)> = list(&fp, "inlinePolicy")
                .iter()
                .filter_map(|p| {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("unnamed");
                    Some((format!("inline policy {name}"), p.get("policy")?.as_str()?))
                })
                .collect();
            let attached = list(&fp, "managedPolicyArns")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            iam_posture(
                CloudResource::IamRole(format!("role/{}", external_name(obj))),
                &inline,
                attached,
            )
        }
        "Policy" => {
            let docs = [(
                "policy document".to_string(),
                fp.get("policy").and_then(Value::as_str).unwrap_or(""),
            )];
            iam_posture(
                CloudResource::IamPolicy(format!("policy/{}", external_name(obj))),
                &docs,
                Vec::new(),
            )
        }
        "RolePolicy" => {
            let role = crossplane_ref(obj, "role", "iam.aws.upbound.io", "Role", names)
                .unwrap_or_default();
            let docs = [(
                format!("inline policy {}", obj.id.name),
                fp.get("policy").and_then(Value::as_str).unwrap_or(""),
            )];
            iam_posture(
                CloudResource::IamRole(format!("role/{role}")),
                &docs,
                Vec::new(),
            )
        }
        _ => {
            // RolePolicyAttachment
            let role = crossplane_ref(obj, "role", "iam.aws.upbound.io", "Role", names)
                .unwrap_or_default();
            let arn = crossplane_ref(obj, "policyArn", "iam.aws.upbound.io", "Policy", names)
                .unwrap_or_default();
            iam_posture(
                CloudResource::IamRole(format!("role/{role}")),
                &[],
                vec![arn],
            )
        }
    };
    Declared {
        posture,
        controls: IDENTITY,
    }
}

fn crossplane_ingress(obj: &Object, names: &dyn NameResolver) -> Declared {
    let fp = obj.at("spec.forProvider").cloned().unwrap_or(Value::Null);
    let sg = crossplane_ref(
        obj,
        "securityGroupId",
        "ec2.aws.upbound.io",
        "SecurityGroup",
        names,
    )
    .unwrap_or_else(|| obj.id.name.clone());
    let mut p = posture(CloudResource::SecurityGroup(sg));
    // SecurityGroupRule carries `type: ingress|egress`; SecurityGroupIngressRule is always ingress.
    let ingress = fp
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(|t| t == "ingress");
    let proto = fp
        .get("ipProtocol")
        .or_else(|| fp.get("protocol"))
        .and_then(Value::as_str)
        .unwrap_or("-1");
    let num = |k: &str| {
        fp.get(k)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let (from, to) = aws_port_range(proto, num("fromPort"), num("toPort"));
    let mut rules = Vec::new();
    if ingress {
        let sources = ["cidrIpv4", "cidrIpv6"]
            .iter()
            .filter_map(|k| fp.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .chain(
                ["cidrBlocks", "ipv6CidrBlocks"]
                    .iter()
                    .flat_map(|k| list(&fp, k))
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
        for src in sources {
            rules.push(IngressRule {
                protocol: normalise_protocol(proto),
                from_port: from,
                to_port: to,
                source: src,
            });
        }
    }
    p.ingress = Some(rules);
    Declared {
        posture: p,
        controls: NETWORK,
    }
}

fn aso_storage_account(obj: &Object) -> Declared {
    let name = obj
        .str_at("spec.azureName")
        .unwrap_or(&obj.id.name)
        .to_string();
    let mut p = posture(CloudResource::AzureStorageAccount(name));
    let guard = truthy(obj.at("spec.allowBlobPublicAccess")).map(|allowed| {
        if allowed {
            Err("allowBlobPublicAccess is true".to_string())
        } else {
            Ok(())
        }
    });
    p.public_access = Some(PublicAccess {
        exposures: Vec::new(),
        guard,
    });
    p.transit = Some(Transit {
        https_only: truthy(obj.at("spec.supportsHttpsTrafficOnly")),
        min_tls: obj
            .str_at("spec.minimumTlsVersion")
            .map(|v| v.trim_start_matches("TLS").replace('_', ".")),
        secure_transport_policy: None,
    });
    match StorageNetwork::read(
        obj.str_at("spec.publicNetworkAccess"),
        obj.at("spec.networkAcls"),
    ) {
        Ok(n) => p.storage_network = Some(n),
        Err(e) => p.error = Some(format!("{}: {e}", obj.id)),
    }
    let key_source = obj.str_at("spec.encryption.keySource");
    p.encryption_at_rest = Some(EncryptionAtRest {
        // Azure Storage encrypts every account; only the key owner varies.
        enabled: true,
        algorithm: Some(key_source.unwrap_or("Microsoft.Storage").to_string()),
        customer_managed_key: key_source
            .is_some_and(|k| k.eq_ignore_ascii_case("Microsoft.Keyvault")),
    });
    Declared {
        posture: p,
        controls: &[
            DataPublicAccess,
            DataEncryptionAtRest,
            DataEncryptionInTransit,
            NetworkExposure,
        ],
    }
}

fn aso_container(obj: &Object, names: &dyn NameResolver) -> Declared {
    let container = obj
        .str_at("spec.azureName")
        .unwrap_or(&obj.id.name)
        .to_string();
    // owner is the blobServices object, whose owner is the account; resolve when we can.
    let owner = obj.str_at("spec.owner.name").unwrap_or("");
    let account = names
        .cloud_name(
            "storage.azure.com",
            "StorageAccountsBlobService",
            obj.namespace(),
            owner,
        )
        .unwrap_or_else(|| owner.to_string());
    let mut p = posture(CloudResource::AzureContainer { account, container });
    let exposures = match obj.str_at("spec.publicAccess") {
        Some(level @ ("Blob" | "Container")) => {
            vec![format!("container public access level is {level}")]
        }
        _ => Vec::new(),
    };
    p.public_access = Some(PublicAccess {
        exposures,
        guard: None,
    });
    Declared {
        posture: p,
        controls: &[DataPublicAccess],
    }
}

fn aso_nsg_rule(obj: &Object, names: &dyn NameResolver) -> Declared {
    let owner = obj.str_at("spec.owner.name").unwrap_or(&obj.id.name);
    let nsg = names
        .cloud_name(
            "network.azure.com",
            "NetworkSecurityGroup",
            obj.namespace(),
            owner,
        )
        .unwrap_or_else(|| owner.to_string());
    let mut p = posture(CloudResource::AzureNsg(nsg));
    match nsg_ingress(obj.at("spec").into_iter()) {
        Ok(rules) => p.ingress = Some(rules),
        Err(e) => p.error = Some(format!("{}: {e}", obj.id)),
    }
    Declared {
        posture: p,
        controls: NETWORK,
    }
}

fn kcc_bucket(obj: &Object) -> Declared {
    let name = obj
        .str_at("spec.resourceID")
        .unwrap_or(&obj.id.name)
        .to_string();
    let mut p = posture(CloudResource::GcsBucket(name));
    let guard = match obj.str_at("spec.publicAccessPrevention") {
        Some(v) if v.eq_ignore_ascii_case("enforced") => Ok(()),
        Some(v) => Err(format!("publicAccessPrevention is {v}, not enforced")),
        None => Err("publicAccessPrevention is not set to enforced".to_string()),
    };
    p.public_access = Some(PublicAccess {
        exposures: Vec::new(),
        guard: Some(guard),
    });
    let cmek = obj.at("spec.encryption.kmsKeyRef").is_some();
    p.encryption_at_rest = Some(EncryptionAtRest {
        // Google encrypts every object; only the key owner varies.
        enabled: true,
        algorithm: Some(if cmek { "CMEK" } else { "Google-managed" }.to_string()),
        customer_managed_key: cmek,
    });
    p.access_logging = Some(obj.str_at("spec.logging.logBucket").is_some());
    Declared {
        posture: p,
        controls: &[DataPublicAccess, DataEncryptionAtRest, LoggingAuditTrail],
    }
}

fn kcc_policy_member(obj: &Object) -> Option<Declared> {
    let kind = obj.str_at("spec.resourceRef.kind")?;
    if kind != "StorageBucket" {
        return None;
    }
    let bucket = obj
        .str_at("spec.resourceRef.external")
        .or(obj.str_at("spec.resourceRef.name"))?;
    let bucket = bucket.trim_start_matches("projects/_/buckets/").to_string();
    let member = obj.str_at("spec.member").unwrap_or("");
    let role = obj.str_at("spec.role").unwrap_or("?");
    let mut p = posture(CloudResource::GcsBucket(bucket));
    let exposures = if member == "allUsers" || member == "allAuthenticatedUsers" {
        vec![format!("IAM grants {role} to {member}")]
    } else {
        Vec::new()
    };
    p.public_access = Some(PublicAccess {
        exposures,
        guard: None,
    });
    Some(Declared {
        posture: p,
        controls: &[DataPublicAccess],
    })
}
