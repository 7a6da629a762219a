//! `CloudResource` (`onus.dev/v1alpha1`, cluster-scoped): what the leader's audit found about one
//! cloud resource, published so that every replica judges from the same facts.
//!
//! The leader writes them (server-side apply, only on change); every replica watches them and
//! builds the posture part of its admission snapshot from their status.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::iam::{IamFinding, IamIssue};
use crate::model::Provider;
use crate::posture::{
    AuditTrail, CloudResource as Resource, EncryptionAtRest, IngressRule, Posture, PublicAccess,
    Source, Transit,
};

/// Most `usedBy` entries kept on one object; `usedByCount` has the total.
pub const MAX_USED_BY: usize = 50;
/// Most findings and declaring objects kept on one object.
pub const MAX_FINDINGS: usize = 20;

/// Which cloud resource an object describes. Immutable: the name is derived from it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "onus.dev",
    version = "v1alpha1",
    kind = "CloudResource",
    root = "CloudResourceObject",
    plural = "cloudresources",
    shortname = "cres",
    category = "onus",
    status = "CloudResourceStatus",
    doc = "A cloud resource that workloads use or manifests declare, with the posture onus audited. Written by the onus leader; read by every replica.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.kind"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".spec.id"}"#,
    printcolumn = r#"{"name":"Public","type":"boolean","jsonPath":".status.public"}"#,
    printcolumn = r#"{"name":"Encrypted","type":"boolean","jsonPath":".status.encrypted"}"#,
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.result"}"#,
    printcolumn = r#"{"name":"Findings","type":"integer","jsonPath":".status.findingCount"}"#,
    printcolumn = r#"{"name":"Users","type":"integer","jsonPath":".status.usedByCount"}"#,
    printcolumn = r#"{"name":"Audited","type":"date","jsonPath":".status.auditedAt"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self == oldSelf", "message": "spec is immutable: the object's name is derived from it"}
]))]
pub struct CloudResourceSpec {
    pub provider: Provider,
    pub kind: ResourceKind,
    /// The resource as the provider names it: bucket name, role ARN, group id, account id,
    /// `ACCOUNT/CONTAINER`.
    #[schemars(length(min = 1, max = 2048))]
    pub id: String,
}

crate::model::str_enum!(
    /// Kind of cloud resource.
    ResourceKind {
        S3Bucket = "s3-bucket",
        IamRole = "iam-role",
        IamPolicy = "iam-policy",
        SecurityGroup = "security-group",
        AwsAccount = "aws-account",
        AzureStorageAccount = "azure-storage-account",
        AzureBlobContainer = "azure-blob-container",
        AzureNsg = "azure-nsg",
        GcsBucket = "gcs-bucket",
    }
);

/// Outcome of the last audit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    /// The resource was read; the posture holds what was found.
    Ok,
    /// The resource could not be read; every control on it is `error`.
    Error,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudResourceStatus {
    /// Absent until the resource is audited (declared-only resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AuditResult>,
    /// Why the audit failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audited_at: Option<DateTime<Utc>>,
    /// Credentials the audit ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auditor: Option<Auditor>,
    /// Readable or writable by anyone (or the public-access guard is off), as audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Encrypted at rest by default, as audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// The normalised facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<PostureFacts>,
    /// Failing and unreadable checks on this resource, across the namespaces that use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub findings: Vec<ResourceFinding>,
    #[serde(default)]
    pub finding_count: u32,
    /// Workloads and ServiceAccounts that reference the resource (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub used_by: Vec<UsedBy>,
    /// How many objects reference the resource in all.
    #[serde(default)]
    pub used_by_count: u32,
    /// ACK, Crossplane, ASO or Config Connector objects that declare it (`Kind/namespace/name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub declared_by: Vec<String>,
    /// Since when nothing references or declares the resource; deleted after a grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unused_since: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Auditor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Role assumed for the audit (the baseline's `aws.roleArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Identity an Azure audit ran as (the baseline's `azure.clientId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsedBy {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// Where the reference was found (annotation, env var, ConfigMap key, ServiceAccount).
    pub found_at: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFinding {
    /// Control id, for example `data.public-access`.
    pub control: String,
    /// `fail` or `error`.
    pub result: String,
    #[schemars(length(max = 1024))]
    pub message: String,
}

/// The posture facts, as `Posture` holds them. A fact that is absent was not observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostureFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access: Option<PublicAccessFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_at_rest: Option<EncryptionFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit: Option<TransitFacts>,
    /// IAM findings of every policy the identity holds (inline and attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<Vec<IamFindingFacts>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressFacts>>,
    /// Which networks reach a storage account's public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_network: Option<crate::posture::StorageNetwork>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logging: Option<bool>,
    /// S3 Object Ownership (`BucketOwnerEnforced`, ...; empty when the bucket has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ownership: Option<String>,
    /// Bucket-policy statements that grant other accounts access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_account: Option<Vec<crate::iam::CrossAccountGrant>>,
    /// The account's CloudTrail trails (account resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trails: Option<Vec<crate::posture::Trail>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicAccessFacts {
    /// Why the resource is public: ACL grants, policy statements, container access levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposures: Vec<String>,
    /// The public-access guard (S3 Block Public Access, GCS public access prevention, Azure
    /// `allowBlobPublicAccess=false`) is fully on; absent when not observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_on: Option<bool>,
    /// Why the guard is not fully on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_gap: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionFacts {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub customer_managed_key: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_transport_policy: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamFindingFacts {
    /// `full-admin`, `service-wildcard`, `allow-not-action` or `privilege-escalation`.
    pub issue: String,
    /// The service of a `service-wildcard` finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The escalation path of a `privilege-escalation` finding, and its actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Which statement grants it.
    pub statement: String,
    #[serde(default)]
    pub conditioned: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressFacts {
    pub protocol: String,
    pub from_port: u16,
    pub to_port: u16,
    pub source: String,
}

// ------------------------------------------------------------------------------ identity

impl ResourceKind {
    fn of(r: &Resource) -> ResourceKind {
        use Resource::*;
        match r {
            S3Bucket(_) => ResourceKind::S3Bucket,
            IamRole(_) => ResourceKind::IamRole,
            IamPolicy(_) => ResourceKind::IamPolicy,
            SecurityGroup(_) => ResourceKind::SecurityGroup,
            AwsAccount(_) => ResourceKind::AwsAccount,
            AzureStorageAccount(_) => ResourceKind::AzureStorageAccount,
            AzureContainer { .. } => ResourceKind::AzureBlobContainer,
            AzureNsg(_) => ResourceKind::AzureNsg,
            GcsBucket(_) => ResourceKind::GcsBucket,
        }
    }
}

impl CloudResourceSpec {
    pub fn of(r: &Resource) -> CloudResourceSpec {
        let id = match r {
            Resource::AzureContainer { account, container } => format!("{account}/{container}"),
            Resource::S3Bucket(s)
            | Resource::IamRole(s)
            | Resource::IamPolicy(s)
            | Resource::SecurityGroup(s)
            | Resource::AwsAccount(s)
            | Resource::AzureStorageAccount(s)
            | Resource::AzureNsg(s)
            | Resource::GcsBucket(s) => s.clone(),
        };
        CloudResourceSpec {
            provider: r.provider(),
            kind: ResourceKind::of(r),
            id,
        }
    }

    /// The resource this spec names.
    pub fn resource(&self) -> Result<Resource, String> {
        let id = self.id.clone();
        let r = match self.kind {
            ResourceKind::S3Bucket => Resource::S3Bucket(id),
            ResourceKind::IamRole => Resource::IamRole(id),
            ResourceKind::IamPolicy => Resource::IamPolicy(id),
            ResourceKind::SecurityGroup => Resource::SecurityGroup(id),
            ResourceKind::AwsAccount => Resource::AwsAccount(id),
            ResourceKind::AzureStorageAccount => Resource::AzureStorageAccount(id),
            ResourceKind::AzureNsg => Resource::AzureNsg(id),
            ResourceKind::GcsBucket => Resource::GcsBucket(id),
            ResourceKind::AzureBlobContainer => match id.split_once('/') {
                Some((a, c)) if !a.is_empty() && !c.is_empty() => Resource::AzureContainer {
                    account: a.into(),
                    container: c.into(),
                },
                _ => {
                    return Err(format!(
                        "azure-blob-container id {id:?} is not ACCOUNT/CONTAINER"
                    ));
                }
            },
        };
        if r.provider() != self.provider {
            return Err(format!(
                "a {} belongs to {}, not {}",
                self.kind,
                r.provider(),
                self.provider
            ));
        }
        Ok(r)
    }
}

/// The object name of a resource: deterministic, so every replica and every leader agrees.
///
/// `KIND.READABLE` where the id is already a valid name part (bucket names, group ids, account
/// ids); otherwise a cleaned-up readable part and a hash of the exact id, so two ids that clean
/// up alike still get different names.
pub fn object_name(r: &Resource) -> String {
    let spec = CloudResourceSpec::of(r);
    let prefix = match spec.kind {
        ResourceKind::S3Bucket => "s3",
        ResourceKind::IamRole => "iam-role",
        ResourceKind::IamPolicy => "iam-policy",
        ResourceKind::SecurityGroup => "sg",
        ResourceKind::AwsAccount => "aws-account",
        ResourceKind::AzureStorageAccount => "azure-account",
        ResourceKind::AzureBlobContainer => "azblob",
        ResourceKind::AzureNsg => "azure-nsg",
        ResourceKind::GcsBucket => "gcs",
    };
    // IAM ids carry partition, account and path: keep the account and the name readable.
    let readable = match r {
        Resource::IamRole(arn) | Resource::IamPolicy(arn) => {
            let name = arn.rsplit('/').next().unwrap_or(arn);
            match r.aws_account() {
                Some(acct) => format!("{acct}.{name}"),
                None => name.to_string(),
            }
        }
        Resource::AzureContainer { account, container } => format!("{account}.{container}"),
        _ => spec.id.clone(),
    };
    // Each dot-separated part of a DNS subdomain starts and ends with a letter or digit.
    let lower: String = readable
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let mut clean = String::new();
    for part in lower.split('.') {
        let part = part.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if part.is_empty() || clean.len() + part.len() + 1 > 200 {
            continue;
        }
        if !clean.is_empty() {
            clean.push('.');
        }
        clean.push_str(part);
    }
    let exact_kind = matches!(
        r,
        Resource::S3Bucket(_) | Resource::SecurityGroup(_) | Resource::AwsAccount(_)
    );
    if exact_kind && !clean.is_empty() && clean == spec.id {
        return format!("{prefix}.{clean}");
    }
    // Hashed names live under their own prefix, so no plain id can take one (`s3://team_a` is
    // `s3-h.team-a-HASH`, which no bucket name `s3.…` can equal).
    let prefix = if exact_kind {
        format!("{prefix}-h")
    } else {
        prefix.to_string()
    };
    let digest = Sha256::digest(format!("{}\n{}", spec.kind, spec.id).as_bytes());
    let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    if clean.is_empty() {
        format!("{prefix}.{hash}")
    } else {
        format!("{prefix}.{clean}-{hash}")
    }
}

/// A valid DNS subdomain (RFC 1123), as the API server checks object names.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

// ------------------------------------------------------------------------------ posture

impl PostureFacts {
    pub fn of(p: &Posture) -> PostureFacts {
        PostureFacts {
            public_access: p.public_access.as_ref().map(|pa| PublicAccessFacts {
                exposures: pa.exposures.clone(),
                guard_on: pa.guard.as_ref().map(Result::is_ok),
                guard_gap: pa.guard.as_ref().and_then(|g| g.clone().err()),
            }),
            encryption_at_rest: p.encryption_at_rest.as_ref().map(|e| EncryptionFacts {
                enabled: e.enabled,
                algorithm: e.algorithm.clone(),
                customer_managed_key: e.customer_managed_key,
            }),
            transit: p.transit.as_ref().map(|t| TransitFacts {
                https_only: t.https_only,
                min_tls: t.min_tls.clone(),
                secure_transport_policy: t.secure_transport_policy,
            }),
            iam: p
                .iam
                .as_ref()
                .map(|fs| fs.iter().map(IamFindingFacts::of).collect()),
            attached_policies: p.attached_policies.clone(),
            ingress: p.ingress.as_ref().map(|rs| {
                rs.iter()
                    .map(|r| IngressFacts {
                        protocol: r.protocol.clone(),
                        from_port: r.from_port,
                        to_port: r.to_port,
                        source: r.source.clone(),
                    })
                    .collect()
            }),
            storage_network: p.storage_network.clone(),
            access_logging: p.access_logging,
            trails: p.audit_trail.as_ref().map(|t| t.trails.clone()),
            object_ownership: p.object_ownership.clone(),
            cross_account: p.cross_account.clone(),
        }
    }

    /// Fill `p` with these facts. A fact onus cannot read back is an error, never a pass.
    fn apply(&self, p: &mut Posture) -> Result<(), String> {
        p.public_access = self.public_access.as_ref().map(|pa| PublicAccess {
            exposures: pa.exposures.clone(),
            guard: match (pa.guard_on, &pa.guard_gap) {
                (Some(true), _) => Some(Ok(())),
                (Some(false), gap) => Some(Err(gap.clone().unwrap_or_else(|| "not on".into()))),
                (None, _) => None,
            },
        });
        p.encryption_at_rest = self.encryption_at_rest.as_ref().map(|e| EncryptionAtRest {
            enabled: e.enabled,
            algorithm: e.algorithm.clone(),
            customer_managed_key: e.customer_managed_key,
        });
        p.transit = self.transit.as_ref().map(|t| Transit {
            https_only: t.https_only,
            min_tls: t.min_tls.clone(),
            secure_transport_policy: t.secure_transport_policy,
        });
        p.iam = match &self.iam {
            Some(fs) => Some(
                fs.iter()
                    .map(IamFindingFacts::finding)
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        };
        p.attached_policies = self.attached_policies.clone();
        p.ingress = self.ingress.as_ref().map(|rs| {
            rs.iter()
                .map(|r| IngressRule {
                    protocol: r.protocol.clone(),
                    from_port: r.from_port,
                    to_port: r.to_port,
                    source: r.source.clone(),
                })
                .collect()
        });
        p.storage_network.clone_from(&self.storage_network);
        p.access_logging = self.access_logging;
        p.audit_trail = self
            .trails
            .as_ref()
            .map(|t| AuditTrail { trails: t.clone() });
        p.object_ownership.clone_from(&self.object_ownership);
        p.cross_account.clone_from(&self.cross_account);
        Ok(())
    }
}

impl IamFindingFacts {
    fn of(f: &IamFinding) -> IamFindingFacts {
        let mut out = IamFindingFacts {
            issue: String::new(),
            service: None,
            path: None,
            actions: Vec::new(),
            statement: f.statement.clone(),
            conditioned: f.conditioned,
        };
        out.issue = match &f.issue {
            IamIssue::FullAdmin => "full-admin",
            IamIssue::ServiceWildcard { service } => {
                out.service = Some(service.clone());
                "service-wildcard"
            }
            IamIssue::AllowNotAction => "allow-not-action",
            IamIssue::PrivilegeEscalation { name, actions } => {
                out.path = Some(name.clone());
                out.actions.clone_from(actions);
                "privilege-escalation"
            }
        }
        .into();
        out
    }

    fn finding(&self) -> Result<IamFinding, String> {
        let issue = match (self.issue.as_str(), &self.service, &self.path) {
            ("full-admin", _, _) => IamIssue::FullAdmin,
            ("service-wildcard", Some(s), _) => IamIssue::ServiceWildcard { service: s.clone() },
            ("allow-not-action", _, _) => IamIssue::AllowNotAction,
            ("privilege-escalation", _, Some(p)) => IamIssue::PrivilegeEscalation {
                name: p.clone(),
                actions: self.actions.clone(),
            },
            (other, _, _) => return Err(format!("unknown IAM finding {other:?}")),
        };
        Ok(IamFinding {
            issue,
            statement: self.statement.clone(),
            conditioned: self.conditioned,
        })
    }
}

impl CloudResourceStatus {
    /// The audited part of a status, from a live posture (`result`, `message`, `auditedAt`,
    /// `public`, `encrypted`, `posture`).
    pub fn audited(p: &Posture) -> CloudResourceStatus {
        let mut s = CloudResourceStatus {
            audited_at: p.observed_at,
            ..Default::default()
        };
        match &p.error {
            Some(e) => {
                s.result = Some(AuditResult::Error);
                s.message = Some(e.clone());
            }
            None => {
                s.result = Some(AuditResult::Ok);
                s.public = p.public_access.as_ref().map(|pa| {
                    !pa.exposures.is_empty() || pa.guard.as_ref().is_some_and(Result::is_err)
                });
                s.encrypted = p.encryption_at_rest.as_ref().map(|e| e.enabled);
                s.posture = Some(PostureFacts::of(p));
            }
        }
        s
    }

    /// The live posture this status records, with its expiry; `None` when the resource was not
    /// audited. A status onus cannot read back becomes an `error` posture.
    pub fn posture(&self, r: &Resource, max_age: chrono::Duration) -> Option<Posture> {
        let result = self.result?;
        let Some(at) = self.audited_at else {
            return Some(Posture::failed(
                r.clone(),
                "the CloudResource status has a result but no auditedAt",
                Utc::now(),
            ));
        };
        let mut p = Posture::new(r.clone(), Source::Live);
        p.observed_at = Some(at);
        p.expires_at = Some(at + max_age);
        match result {
            AuditResult::Error => {
                p.error = Some(
                    self.message
                        .clone()
                        .unwrap_or_else(|| "audit failed".into()),
                );
            }
            AuditResult::Ok => {
                let facts = self.posture.clone().unwrap_or_default();
                if let Err(e) = facts.apply(&mut p) {
                    p.error = Some(format!("unreadable CloudResource status: {e}"));
                }
            }
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(rs: &[Resource]) -> Vec<String> {
        rs.iter().map(object_name).collect()
    }

    #[test]
    fn names_are_readable_valid_and_distinct() {
        let rs = [
            Resource::S3Bucket("team-a.logs".into()),
            Resource::S3Bucket("Team_A".into()),
            Resource::S3Bucket("team-a".into()),
            Resource::IamRole("arn:aws:iam::123456789012:role/path/Web_Role".into()),
            Resource::IamRole("arn:aws:iam::123456789012:role/web_role".into()),
            Resource::IamRole("role/web".into()),
            Resource::SecurityGroup("sg-0123abcd".into()),
            Resource::AwsAccount("123456789012".into()),
            Resource::AzureContainer {
                account: "acct".into(),
                container: "data".into(),
            },
            Resource::GcsBucket("my_bucket".into()),
            Resource::S3Bucket("-".into()),
        ];
        let ns = names(&rs);
        assert_eq!(ns[0], "s3.team-a.logs");
        assert_eq!(ns[2], "s3.team-a");
        assert_eq!(ns[6], "sg.sg-0123abcd");
        assert_eq!(ns[7], "aws-account.123456789012");
        assert!(
            ns[3].starts_with("iam-role.123456789012.web-role-"),
            "{}",
            ns[3]
        );
        assert!(ns[8].starts_with("azblob.acct.data-"), "{}", ns[8]);
        let mut uniq = ns.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), ns.len(), "{ns:?}");
        // Two roles whose names clean up alike still differ.
        assert_ne!(ns[3], ns[4]);
        // Valid DNS subdomain names, and the same on every call.
        for n in &ns {
            assert!(is_dns_subdomain(n), "{n}");
        }
        assert_eq!(names(&rs), ns);
        let long = Resource::S3Bucket("a".repeat(2000));
        assert!(is_dns_subdomain(&object_name(&long)));
    }

    #[test]
    fn hostile_ids_give_valid_names_and_cannot_take_another_ids_name() {
        let ids = [
            Resource::IamRole("arn:aws:iam::123456789012:role/app_.reader".into()),
            Resource::IamRole("role/.hidden".into()),
            Resource::S3Bucket("a-.b".into()),
            Resource::S3Bucket("a..b".into()),
            Resource::S3Bucket("-.-".into()),
            Resource::GcsBucket("my_.bucket".into()),
            Resource::AzureContainer {
                account: "acct".into(),
                container: "$web".into(),
            },
            Resource::AzureContainer {
                account: "acct".into(),
                container: "$logs".into(),
            },
            Resource::S3Bucket(format!("{}.{}", "a".repeat(150), "b-".repeat(100))),
        ];
        for r in &ids {
            assert!(is_dns_subdomain(&object_name(r)), "{r}: {}", object_name(r));
        }
        // A plain bucket name shaped like another id's hashed name gets a different name.
        let hashed = object_name(&Resource::S3Bucket("team_a".into()));
        let squatter = hashed.trim_start_matches("s3-h.").to_string();
        assert_ne!(object_name(&Resource::S3Bucket(squatter)), hashed);
        // Every printable ASCII id of a few characters maps to a valid name.
        let alphabet: Vec<char> = (0x21u8..0x7f).map(char::from).collect();
        for a in &alphabet {
            for b in ['.', '-', '_', 'x', 'Z'] {
                let id = format!("{a}{b}{a}");
                for r in [
                    Resource::S3Bucket(id.clone()),
                    Resource::GcsBucket(id.clone()),
                    Resource::IamRole(format!("role/{id}")),
                    Resource::SecurityGroup(id.clone()),
                ] {
                    assert!(
                        is_dns_subdomain(&object_name(&r)),
                        "{r}: {}",
                        object_name(&r)
                    );
                }
            }
        }
    }

    #[test]
    fn spec_round_trips_and_refuses_nonsense() {
        for r in [
            Resource::S3Bucket("b".into()),
            Resource::AzureContainer {
                account: "a".into(),
                container: "c".into(),
            },
            Resource::GcsBucket("g".into()),
        ] {
            assert_eq!(CloudResourceSpec::of(&r).resource().unwrap(), r);
        }
        let bad = CloudResourceSpec {
            provider: Provider::Azure,
            kind: ResourceKind::S3Bucket,
            id: "b".into(),
        };
        assert!(bad.resource().is_err());
        let bad = CloudResourceSpec {
            provider: Provider::Azure,
            kind: ResourceKind::AzureBlobContainer,
            id: "nocontainer".into(),
        };
        assert!(bad.resource().is_err());
    }

    #[test]
    fn postures_survive_the_round_trip_through_status() {
        let r = Resource::IamRole("arn:aws:iam::123456789012:role/admin".into());
        let mut p = Posture::new(r.clone(), Source::Live);
        p.observed_at = Some(Utc::now());
        let doc = r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Allow","Action":["iam:PassRole","ec2:RunInstances"],"Resource":"*"}]}"#;
        p.iam = Some(crate::iam::parse(doc).unwrap().analyse().unwrap());
        p.attached_policies = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
        p.public_access = Some(PublicAccess {
            exposures: vec!["ACL grant to AllUsers".into()],
            guard: Some(Err("BlockPublicPolicy off".into())),
        });
        p.ingress = Some(vec![IngressRule {
            protocol: "tcp".into(),
            from_port: 22,
            to_port: 22,
            source: "0.0.0.0/0".into(),
        }]);
        p.audit_trail = Some(AuditTrail {
            trails: vec![crate::posture::Trail {
                name: "main".into(),
                multi_region: true,
                logging: true,
                management_events: true,
                log_file_validation: true,
                kms_encrypted: false,
            }],
        });
        let status = CloudResourceStatus::audited(&p);
        assert_eq!(status.result, Some(AuditResult::Ok));
        assert_eq!(status.public, Some(true));
        // Through JSON, as the API server stores it.
        let json = serde_json::to_value(&status).unwrap();
        let back: CloudResourceStatus = serde_json::from_value(json).unwrap();
        let got = back.posture(&r, chrono::Duration::minutes(15)).unwrap();
        let mut want = p.clone();
        want.expires_at = Some(p.observed_at.unwrap() + chrono::Duration::minutes(15));
        assert_eq!(got, want);

        let failed = Posture::failed(r.clone(), "AccessDenied", Utc::now());
        let status = CloudResourceStatus::audited(&failed);
        assert_eq!(status.result, Some(AuditResult::Error));
        let got = status.posture(&r, chrono::Duration::minutes(15)).unwrap();
        assert_eq!(got.error.as_deref(), Some("AccessDenied"));
    }

    #[test]
    fn unreadable_or_unaudited_status_never_passes() {
        let r = Resource::IamRole("role/x".into());
        assert!(
            CloudResourceStatus::default()
                .posture(&r, chrono::Duration::minutes(1))
                .is_none(),
            "not audited: unknown"
        );
        let mut s = CloudResourceStatus {
            result: Some(AuditResult::Ok),
            audited_at: Some(Utc::now()),
            posture: Some(PostureFacts {
                iam: Some(vec![IamFindingFacts {
                    issue: "something-new".into(),
                    service: None,
                    path: None,
                    actions: vec![],
                    statement: "s".into(),
                    conditioned: false,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = s.posture(&r, chrono::Duration::minutes(1)).unwrap();
        assert!(p.error.unwrap().contains("something-new"));
        s.audited_at = None;
        assert!(
            s.posture(&r, chrono::Duration::minutes(1))
                .unwrap()
                .error
                .is_some()
        );
    }
}
