//! Posture: the normalised fact sheet of one cloud resource, live or declared.
//!
//! Live audits and declared custom resources (ACK, Crossplane, ASO, Config Connector) both produce
//! a `Posture`, so each control is written once. A fact that is `None` was not observed.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::iam::IamFinding;
use crate::model::Provider;

/// A cloud resource onus can audit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "kebab-case")]
pub enum CloudResource {
    S3Bucket(String),
    /// Role ARN, or `role/NAME` when only the name is known (declared roles).
    IamRole(String),
    /// Managed policy ARN or name.
    IamPolicy(String),
    SecurityGroup(String),
    AzureStorageAccount(String),
    AzureContainer {
        account: String,
        container: String,
    },
    /// Azure network security group, by name.
    AzureNsg(String),
    GcsBucket(String),
    /// An AWS account, for account-level facts (CloudTrail, account Block Public Access).
    AwsAccount(String),
}

impl CloudResource {
    pub fn provider(&self) -> Provider {
        use CloudResource::*;
        match self {
            S3Bucket(_) | IamRole(_) | IamPolicy(_) | SecurityGroup(_) | AwsAccount(_) => {
                Provider::Aws
            }
            AzureStorageAccount(_) | AzureContainer { .. } | AzureNsg(_) => Provider::Azure,
            GcsBucket(_) => Provider::Gcp,
        }
    }

    /// Short kind label, used in metrics and reports.
    pub fn kind(&self) -> &'static str {
        use CloudResource::*;
        match self {
            S3Bucket(_) => "s3-bucket",
            IamRole(_) => "iam-role",
            IamPolicy(_) => "iam-policy",
            SecurityGroup(_) => "security-group",
            AzureStorageAccount(_) => "azure-storage-account",
            AzureContainer { .. } => "azure-blob-container",
            AzureNsg(_) => "azure-nsg",
            GcsBucket(_) => "gcs-bucket",
            AwsAccount(_) => "aws-account",
        }
    }

    /// The resource whose settings also decide this one's (a container's storage account),
    /// audited alongside it.
    pub fn parent(&self) -> Option<CloudResource> {
        match self {
            CloudResource::AzureContainer { account, .. } => {
                Some(CloudResource::AzureStorageAccount(account.clone()))
            }
            _ => None,
        }
    }

    /// The role name of an IAM role reference (`arn:...:role/path/NAME` or `role/NAME`).
    pub fn role_name(&self) -> Option<&str> {
        match self {
            CloudResource::IamRole(r) => r.rsplit('/').next(),
            _ => None,
        }
    }

    /// Account id of an ARN-named resource.
    pub fn aws_account(&self) -> Option<&str> {
        match self {
            CloudResource::IamRole(arn) | CloudResource::IamPolicy(arn) => {
                arn.split(':').nth(4).filter(|a| a.len() == 12)
            }
            CloudResource::AwsAccount(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for CloudResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CloudResource::*;
        match self {
            S3Bucket(b) => write!(f, "s3://{b}"),
            IamRole(r) | IamPolicy(r) => f.write_str(r),
            SecurityGroup(g) => f.write_str(g),
            AzureStorageAccount(a) => write!(f, "azure storage account {a}"),
            AzureContainer { account, container } => write!(f, "azblob://{account}/{container}"),
            AzureNsg(n) => write!(f, "azure nsg {n}"),
            GcsBucket(b) => write!(f, "gs://{b}"),
            AwsAccount(a) => write!(f, "aws account {a}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Live,
    Declared,
}

/// Who can reach the data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PublicAccess {
    /// Why the resource is public: ACL grants, policy statements, container access levels.
    pub exposures: Vec<String>,
    /// The account/bucket-level guard (S3 Block Public Access, GCS public access prevention,
    /// Azure `allowBlobPublicAccess=false`): `Some(Ok)` when fully on, `Some(Err(why))` when not.
    pub guard: Option<Result<(), String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EncryptionAtRest {
    pub enabled: bool,
    /// Algorithm or key source as the provider names it (`AES256`, `aws:kms`, `Microsoft.Keyvault`).
    pub algorithm: Option<String>,
    /// A customer-managed key is used (SSE-KMS with a customer key, Key Vault key, CMEK).
    pub customer_managed_key: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Transit {
    /// Only HTTPS is accepted (Azure `supportsHttpsTrafficOnly`).
    pub https_only: Option<bool>,
    /// Minimum TLS version accepted, normalised as `1.0`, `1.1`, `1.2`, `1.3`.
    pub min_tls: Option<String>,
    /// A bucket policy denies `aws:SecureTransport = false`.
    pub secure_transport_policy: Option<bool>,
}

/// Which networks reach a storage account's public endpoint: `publicNetworkAccess` and
/// `networkAcls.defaultAction`, as ARM and ASO name them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkAccess {
    /// Public network access enabled and the default action `Allow` (Azure's default).
    AllNetworks,
    /// Default action `Deny`: only the listed networks, addresses and trusted services.
    SelectedNetworks,
    /// `publicNetworkAccess: Disabled`: private endpoints only.
    Disabled,
}

impl NetworkAccess {
    /// From the two settings; absent ones take Azure's defaults (enabled, `Allow`). A network
    /// security perimeter (`SecuredByPerimeter`) admits only what its profile lists.
    pub fn of(public_network_access: Option<&str>, default_action: Option<&str>) -> NetworkAccess {
        let is = |v: Option<&str>, what: &str| v.is_some_and(|v| v.eq_ignore_ascii_case(what));
        if is(public_network_access, "Disabled") {
            NetworkAccess::Disabled
        } else if is(default_action, "Deny") || is(public_network_access, "SecuredByPerimeter") {
            NetworkAccess::SelectedNetworks
        } else {
            NetworkAccess::AllNetworks
        }
    }
}

/// A storage account's network rules: who reaches its public endpoint, and the address ranges
/// its IP rules let in when the default action denies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageNetwork {
    pub access: NetworkAccess,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_rules: Vec<String>,
}

/// Azure allows 400 IP rules per storage account.
pub const MAX_IP_RULES: usize = 400;

impl StorageNetwork {
    /// From `publicNetworkAccess` and `networkAcls` (`defaultAction`, `ipRules[].value`), as ARM
    /// and ASO spell them; an `ipRules` that is not a list of `{value}` objects, or longer than
    /// Azure allows, is an error.
    pub fn read(
        public_network_access: Option<&str>,
        network_acls: Option<&serde_json::Value>,
    ) -> Result<StorageNetwork, String> {
        use serde_json::Value;
        let acls = network_acls.filter(|v| !v.is_null());
        let default_action = acls
            .and_then(|a| a.get("defaultAction"))
            .and_then(Value::as_str);
        let rules = match acls.and_then(|a| a.get("ipRules")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.len() <= MAX_IP_RULES => a
                .iter()
                .map(|r| {
                    // `action` is Allow or absent (Allow is the only action ARM offers).
                    let allow = r
                        .get("action")
                        .and_then(Value::as_str)
                        .is_none_or(|a| a.trim().eq_ignore_ascii_case("allow"));
                    match r.get("value").and_then(Value::as_str) {
                        Some(v) => Ok(allow.then(|| v.to_string())),
                        None => Err(format!(
                            "networkAcls.ipRules holds {r}, not an {{value}} rule"
                        )),
                    }
                })
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?,
            Some(Value::Array(a)) => {
                return Err(format!(
                    "networkAcls.ipRules has {} rules, more than the {MAX_IP_RULES} Azure allows",
                    a.len()
                ));
            }
            Some(other) => return Err(format!("networkAcls.ipRules is {other}, not a list")),
        };
        Ok(StorageNetwork {
            access: NetworkAccess::of(public_network_access, default_action),
            ip_rules: rules,
        })
    }
}

/// One ingress rule of a security group or network security group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp`, or `all` (`-1`, `*`).
    pub protocol: String,
    pub from_port: u16,
    pub to_port: u16,
    /// CIDR or a provider tag (`Internet`, `Any`, `*`).
    pub source: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditTrail {
    /// Every trail of the account (shadow trails of other regions included).
    pub trails: Vec<Trail>,
}

/// What CIS AWS Foundations asks of a CloudTrail trail, as read from the API.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Trail {
    pub name: String,
    pub multi_region: bool,
    pub logging: bool,
    /// Records management events, reads and writes.
    pub management_events: bool,
    pub log_file_validation: bool,
    /// Logs are encrypted with a KMS key (SSE-KMS).
    pub kms_encrypted: bool,
}

impl AuditTrail {
    /// Trails that record the account's activity everywhere: multi-region, logging, and
    /// recording management events (CIS AWS Foundations 3.1).
    pub fn complete(&self) -> Vec<&Trail> {
        self.trails
            .iter()
            .filter(|t| t.multi_region && t.logging && t.management_events)
            .collect()
    }
}

/// Normalised facts about one cloud resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Posture {
    pub resource: CloudResource,
    pub source: Source,
    pub observed_at: Option<DateTime<Utc>>,
    /// After this instant the facts are too old to judge on (`--posture-max-age`): the resource
    /// counts as not audited. Set on postures read from `CloudResource` objects.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when the resource could not be read; every control on it is then `error`.
    pub error: Option<String>,
    /// The Kubernetes object that declares the resource (`Kind/namespace/name`), when declared.
    pub declared_by: Option<String>,
    pub public_access: Option<PublicAccess>,
    pub encryption_at_rest: Option<EncryptionAtRest>,
    pub transit: Option<Transit>,
    /// IAM findings of every policy the identity holds (inline and attached).
    pub iam: Option<Vec<IamFinding>>,
    /// Managed policies attached to a role, to look up when declared separately.
    pub attached_policies: Vec<String>,
    pub ingress: Option<Vec<IngressRule>>,
    /// Which networks reach a storage account's public endpoint.
    pub storage_network: Option<StorageNetwork>,
    /// Server access logging on a bucket.
    pub access_logging: Option<bool>,
    pub audit_trail: Option<AuditTrail>,
    /// S3 Object Ownership: `BucketOwnerEnforced` disables ACLs; anything else (or no setting,
    /// the empty string) leaves them enabled.
    pub object_ownership: Option<String>,
    /// Bucket-policy statements that grant other AWS accounts access (live audits, which know
    /// the bucket's account).
    pub cross_account: Option<Vec<crate::iam::CrossAccountGrant>>,
}

impl Posture {
    /// Too old to judge on at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    pub fn new(resource: CloudResource, source: Source) -> Posture {
        Posture {
            resource,
            source,
            observed_at: None,
            expires_at: None,
            error: None,
            declared_by: None,
            public_access: None,
            encryption_at_rest: None,
            transit: None,
            iam: None,
            attached_policies: Vec::new(),
            ingress: None,
            storage_network: None,
            access_logging: None,
            audit_trail: None,
            object_ownership: None,
            cross_account: None,
        }
    }

    /// A posture that records a failed read.
    pub fn failed(resource: CloudResource, error: impl Into<String>, at: DateTime<Utc>) -> Posture {
        let mut p = Posture::new(resource, Source::Live);
        p.error = Some(error.into());
        p.observed_at = Some(at);
        p
    }

    /// Fold `other`'s facts into `self`; `other` wins where both know a fact. Public-access
    /// exposures add up, since each declaring object can open the resource on its own.
    pub fn merge(&mut self, other: &Posture) {
        if other.error.is_some() {
            self.error.clone_from(&other.error);
        }
        if self.declared_by.is_none() {
            self.declared_by.clone_from(&other.declared_by);
        }
        match (&mut self.public_access, &other.public_access) {
            (Some(mine), Some(theirs)) => {
                for e in &theirs.exposures {
                    if !mine.exposures.contains(e) {
                        mine.exposures.push(e.clone());
                    }
                }
                if theirs.guard.is_some() {
                    mine.guard.clone_from(&theirs.guard);
                }
            }
            (None, Some(theirs)) => self.public_access = Some(theirs.clone()),
            _ => {}
        }
        macro_rules! take {
            ($($f:ident),*) => { $(if other.$f.is_some() { self.$f.clone_from(&other.$f); })* };
        }
        take!(
            encryption_at_rest,
            observed_at,
            access_logging,
            storage_network,
            audit_trail,
            object_ownership,
            cross_account
        );
        match (&mut self.transit, &other.transit) {
            (Some(mine), Some(theirs)) => {
                if theirs.https_only.is_some() {
                    mine.https_only = theirs.https_only;
                }
                if theirs.min_tls.is_some() {
                    mine.min_tls.clone_from(&theirs.min_tls);
                }
                if theirs.secure_transport_policy.is_some() {
                    mine.secure_transport_policy = theirs.secure_transport_policy;
                }
            }
            (None, Some(theirs)) => self.transit = Some(theirs.clone()),
            _ => {}
        }
        match (&mut self.iam, &other.iam) {
            (Some(mine), Some(theirs)) => {
                for f in theirs {
                    if !mine.contains(f) {
                        mine.push(f.clone());
                    }
                }
            }
            (None, Some(theirs)) => self.iam = Some(theirs.clone()),
            _ => {}
        }
        match (&mut self.ingress, &other.ingress) {
            (Some(mine), Some(theirs)) => {
                for r in theirs {
                    if !mine.contains(r) {
                        mine.push(r.clone());
                    }
                }
            }
            (None, Some(theirs)) => self.ingress = Some(theirs.clone()),
            _ => {}
        }
        for p in &other.attached_policies {
            if !self.attached_policies.contains(p) {
                self.attached_policies.push(p.clone());
            }
        }
    }
}

/// What the engine knows about a resource.
#[derive(Clone, Copy, Debug)]
pub enum Knowledge<'a> {
    Known(&'a Posture),
    /// Referenced but not audited yet.
    Unknown,
}

/// Read access to postures; the engine never fetches anything itself.
pub trait PostureLookup {
    /// What is known about `resource` for an object in `namespace` ("" for cluster-scoped
    /// objects): live audits, else what that namespace (or a cluster-scoped object) declares.
    fn posture(&self, namespace: &str, resource: &CloudResource) -> Knowledge<'_>;
    /// What manifests declare about the resource, apart from any audit (the fallback when an
    /// audit is too old to judge on).
    fn declared_posture(&self, _namespace: &str, _resource: &CloudResource) -> Option<&Posture> {
        None
    }
}

/// A plain in-memory posture map.
#[derive(Clone, Debug, Default)]
pub struct PostureMap {
    map: HashMap<CloudResource, Posture>,
}

impl PostureMap {
    /// Insert, merging with what is already known about the same resource.
    pub fn add(&mut self, posture: Posture) {
        match self.map.get_mut(&posture.resource) {
            Some(existing) => existing.merge(&posture),
            None => {
                self.map.insert(posture.resource.clone(), posture);
            }
        }
    }

    pub fn replace(&mut self, posture: Posture) {
        self.map.insert(posture.resource.clone(), posture);
    }

    pub fn get(&self, resource: &CloudResource) -> Option<&Posture> {
        self.map.get(resource)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Posture> {
        self.map.values()
    }
}

impl PostureLookup for PostureMap {
    fn posture(&self, _namespace: &str, resource: &CloudResource) -> Knowledge<'_> {
        match self.map.get(resource) {
            Some(p) => Knowledge::Known(p),
            None => Knowledge::Unknown,
        }
    }
}
