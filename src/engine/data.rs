//! Data domain: public access, encryption at rest, encryption in transit.

use serde_json::Value;

use crate::model::ControlId::*;
use crate::object::list;
use crate::posture::{CloudResource, Posture, Source};

use super::cloud::found;
use super::{Check, Ctx, Outcome};

fn subject(p: &Posture, found_at: Option<&str>) -> String {
    let decl = match (&p.source, &p.declared_by) {
        (Source::Declared, Some(by)) if found_at.is_some() => format!(" (declared by {by})"),
        _ => String::new(),
    };
    format!("{}{decl}{}", p.resource, found(found_at))
}

pub(super) fn public_access(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    acls_enabled(ctx, p, found_at);
    shared_with_other_accounts(ctx, p, found_at);
    let Some(pa) = &p.public_access else {
        return;
    };
    let mut reasons = pa.exposures.clone();
    if let Some(Err(why)) = &pa.guard {
        reasons.push(why.clone());
    }
    if reasons.is_empty() {
        let what = format!("{} is not publicly accessible", subject(p, found_at));
        ctx.verdict(
            DataPublicAccess,
            Check::new("public-access").with(&public_evaluated(p)),
            Outcome::Pass,
            Some(&p.resource),
            what,
            None,
        );
        return;
    }
    // Say what is true: a private bucket that Block Public Access does not protect is a gap
    // (nothing stops the next ACL or policy from opening it), not a public bucket.
    let what = if pa.exposures.is_empty() {
        format!(
            "{} is not public today, but is not protected from becoming public: {}",
            subject(p, found_at),
            reasons.join("; ")
        )
    } else {
        format!("{} is public: {}", subject(p, found_at), reasons.join("; "))
    };
    let check = Check::new("public-access").with(&public_aspects(p));
    let fix = match &p.resource {
        CloudResource::S3Bucket(b) => format!(
            "remove public ACL grants and Principal \"*\" statements, then `aws s3api put-public-access-block --bucket {b} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true`"
        ),
        CloudResource::AzureContainer { account, container } => format!(
            "`az storage container set-permission --account-name {account} --name {container} --public-access off` and `az storage account update --name {account} --allow-blob-public-access false`"
        ),
        CloudResource::AzureStorageAccount(a) => {
            format!("`az storage account update --name {a} --allow-blob-public-access false`")
        }
        CloudResource::GcsBucket(b) => format!(
            "remove allUsers/allAuthenticatedUsers bindings (`gcloud storage buckets remove-iam-policy-binding gs://{b} --member=allUsers --role=ROLE`) and `gcloud storage buckets update gs://{b} --public-access-prevention`"
        ),
        other => format!("make {other} private"),
    };
    ctx.verdict(
        DataPublicAccess,
        check,
        Outcome::Fail,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

/// An exposure by ACL, as worded by `cloud::aws::acl_exposures` ("ACL grants ...") and the
/// declared readers ("canned ACL public-read"); any other exposure is a policy statement.
fn by_acl(exposure: &str) -> bool {
    exposure.starts_with("ACL grant") || exposure.starts_with("canned ACL")
}

/// The aspects of `public-access` a public (or unguarded) resource fails.
fn public_aspects(p: &Posture) -> Vec<&'static str> {
    let Some(pa) = &p.public_access else {
        return Vec::new();
    };
    let guard_off = matches!(pa.guard, Some(Err(_)));
    let exposed = !pa.exposures.is_empty();
    let mut out = Vec::new();
    match &p.resource {
        CloudResource::S3Bucket(_) => {
            if pa.exposures.iter().any(|e| by_acl(e)) {
                out.push("s3-acl");
            }
            if pa.exposures.iter().any(|e| !by_acl(e)) {
                out.push("s3-policy");
            }
            if guard_off {
                out.push("s3-block-public-access");
            }
        }
        // Prowler's storage_blob_public_access_level_is_disabled is the account's
        // allowBlobPublicAccess; a public container fails it as well (it took effect).
        CloudResource::AzureContainer { .. } | CloudResource::AzureStorageAccount(_) => {
            out.push("azure-blob");
        }
        // CIS GCP 5.1 is "not anonymously or publicly accessible": a bucket that is private
        // but not guarded by public access prevention does not fail it.
        CloudResource::GcsBucket(_) => {
            if exposed {
                out.push("gcs-all-users");
            }
            if guard_off {
                out.push("gcs-public-access-prevention");
            }
        }
        _ => {}
    }
    out
}

/// The aspects of `public-access` a pass on `p` shows met: those the facts cover.
fn public_evaluated(p: &Posture) -> Vec<&'static str> {
    let Some(pa) = &p.public_access else {
        return Vec::new();
    };
    let guarded = pa.guard.is_some();
    match &p.resource {
        CloudResource::S3Bucket(_) if guarded => {
            vec!["s3-acl", "s3-policy", "s3-block-public-access"]
        }
        CloudResource::S3Bucket(_) => vec!["s3-acl", "s3-policy"],
        // The requirement is the account's allowBlobPublicAccess: met only when it is known.
        CloudResource::AzureContainer { .. } | CloudResource::AzureStorageAccount(_) if guarded => {
            vec!["azure-blob"]
        }
        CloudResource::GcsBucket(_) if guarded => {
            vec!["gcs-all-users", "gcs-public-access-prevention"]
        }
        CloudResource::GcsBucket(_) => vec!["gcs-all-users"],
        _ => Vec::new(),
    }
}

/// A bucket policy that lets other AWS accounts in, other than the baseline's
/// `trustedAccounts`: not public, but outside the account's own control. A warning.
fn shared_with_other_accounts(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    let trusted = &ctx.b.params.trusted_accounts;
    let grants: Vec<&str> = p
        .cross_account
        .iter()
        .flatten()
        .filter(|g| g.accounts.iter().any(|a| !trusted.contains(a)))
        .map(|g| g.description.as_str())
        .collect();
    if grants.is_empty() {
        return;
    }
    let what = format!(
        "{} is shared with other AWS accounts: {}",
        subject(p, found_at),
        grants.join("; ")
    );
    let fix = "if the account is yours or a partner's, list it in data.public-access's trustedAccounts; otherwise remove the statement from the bucket policy (`aws s3api put-bucket-policy`)".to_string();
    ctx.verdict(
        DataPublicAccess,
        "cross-account",
        Outcome::Warn,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

/// An S3 bucket with ACLs enabled (Object Ownership not `BucketOwnerEnforced`): not public, but
/// an ACL on any object or on the bucket can make it so, which AWS advises against. A warning.
fn acls_enabled(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    let Some(ownership) = p.object_ownership.as_deref() else {
        return;
    };
    if ownership == "BucketOwnerEnforced" {
        return;
    }
    let setting = if ownership.is_empty() {
        "has no Object Ownership setting".to_string()
    } else {
        format!("has Object Ownership {ownership}")
    };
    let what = format!(
        "{} {setting}: ACLs are enabled, so an object or bucket ACL can grant access outside the bucket policy",
        subject(p, found_at)
    );
    let fix = match &p.resource {
        CloudResource::S3Bucket(b) => format!(
            "`aws s3api put-bucket-ownership-controls --bucket {b} --ownership-controls 'Rules=[{{ObjectOwnership=BucketOwnerEnforced}}]'` (first move any access granted by ACLs to the bucket policy)"
        ),
        other => format!("disable ACLs on {other}"),
    };
    ctx.verdict(
        DataPublicAccess,
        "acls-enabled",
        Outcome::Warn,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

pub(super) fn encryption_at_rest(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    let want_cmk = ctx.b.params.require_customer_managed_key;
    let enc = match (&p.encryption_at_rest, &p.resource) {
        (Some(e), _) => e.clone(),
        // A declared S3 bucket that no object gives encryption to declares none.
        (None, CloudResource::S3Bucket(_)) if p.source == Source::Declared => Default::default(),
        (None, _) => return,
    };
    let kind = match &p.resource {
        CloudResource::S3Bucket(_) => "s3",
        CloudResource::AzureStorageAccount(_) | CloudResource::AzureContainer { .. } => {
            "azure-storage"
        }
        CloudResource::GcsBucket(_) => "gcs",
        _ => "other",
    };
    let mut check = Check::new("default-encryption");
    let gap = if !enc.enabled {
        check.aspect(kind);
        Some("has no default encryption".to_string())
    } else if want_cmk && !enc.customer_managed_key {
        check.aspect(format!("{kind}-cmk"));
        Some(format!(
            "is encrypted with a provider-managed key ({}), and the baseline asks for a customer-managed key",
            enc.algorithm.as_deref().unwrap_or("default")
        ))
    } else {
        None
    };
    let Some(gap) = gap else {
        let what = format!(
            "{} is encrypted at rest ({})",
            subject(p, found_at),
            enc.algorithm.as_deref().unwrap_or("enabled")
        );
        let mut met = Check::new("default-encryption").with(&[kind]);
        if want_cmk {
            met.aspect(format!("{kind}-cmk"));
        }
        ctx.verdict(
            DataEncryptionAtRest,
            met,
            Outcome::Pass,
            Some(&p.resource),
            what,
            None,
        );
        return;
    };
    let fix = match &p.resource {
        CloudResource::S3Bucket(b) => {
            let manifest = if p.source == Source::Declared {
                "declare spec.encryption.rules[].applyServerSideEncryptionByDefault (ACK) or a BucketServerSideEncryptionConfiguration (Crossplane), or run "
            } else {
                ""
            };
            format!(
                "{manifest}`aws s3api put-bucket-encryption --bucket {b} --server-side-encryption-configuration '{{\"Rules\":[{{\"ApplyServerSideEncryptionByDefault\":{{\"SSEAlgorithm\":\"aws:kms\",\"KMSMasterKeyID\":\"KEY-ARN\"}},\"BucketKeyEnabled\":true}}]}}'`"
            )
        }
        CloudResource::AzureStorageAccount(a) => format!(
            "`az storage account update --name {a} --encryption-key-source Microsoft.Keyvault --encryption-key-vault https://VAULT.vault.azure.net --encryption-key-name KEY`"
        ),
        CloudResource::GcsBucket(b) => format!(
            "`gcloud storage buckets update gs://{b} --default-encryption-key=projects/P/locations/L/keyRings/R/cryptoKeys/K`"
        ),
        other => format!("turn on encryption for {other}"),
    };
    let what = format!("{} {gap}", subject(p, found_at));
    ctx.verdict(
        DataEncryptionAtRest,
        check,
        Outcome::Fail,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

pub(super) fn encryption_in_transit(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    let want_policy = ctx.b.params.require_secure_transport_policy;
    let t = p.transit.clone().unwrap_or_default();
    let mut gaps = Vec::new();
    let mut check = Check::new("transport");
    if t.https_only == Some(false) {
        check.aspect("azure-https-only");
        gaps.push("accepts plain HTTP (supportsHttpsTrafficOnly is false)".to_string());
    }
    if let Some(v) = &t.min_tls
        && tls_below_1_2(v)
    {
        check.aspect("azure-min-tls-1.2");
        gaps.push(format!("accepts TLS {v}, below 1.2"));
    }
    let is_s3 = matches!(p.resource, CloudResource::S3Bucket(_));
    if is_s3 && want_policy && t.secure_transport_policy != Some(true) {
        check.aspect("s3-secure-transport-policy");
        gaps.push("has no bucket policy denying aws:SecureTransport=false".to_string());
    }
    if gaps.is_empty() {
        let mut met = Check::new("transport");
        if t.https_only.is_some() {
            met.aspect("azure-https-only");
        }
        if t.min_tls.is_some() {
            met.aspect("azure-min-tls-1.2");
        }
        if is_s3 && want_policy {
            met.aspect("s3-secure-transport-policy");
        }
        // Nothing asked and nothing known: no verdict (S3 accepts plain HTTP unless a policy
        // denies it, so "only accepts encrypted transport" would not be true).
        if met.aspects.is_some() {
            let what = format!("{} only accepts encrypted transport", subject(p, found_at));
            ctx.verdict(
                DataEncryptionInTransit,
                met,
                Outcome::Pass,
                Some(&p.resource),
                what,
                None,
            );
        }
        return;
    }
    let fix = match &p.resource {
        CloudResource::S3Bucket(b) => format!(
            "add a Deny statement on s3:* for arn:aws:s3:::{b} and arn:aws:s3:::{b}/* with Condition Bool aws:SecureTransport=false: `aws s3api put-bucket-policy --bucket {b} --policy file://deny-insecure-transport.json`"
        ),
        CloudResource::AzureStorageAccount(a) => format!(
            "`az storage account update --name {a} --https-only true --min-tls-version TLS1_2`"
        ),
        other => format!("require TLS 1.2+ on {other}"),
    };
    let what = format!("{} {}", subject(p, found_at), gaps.join("; "));
    ctx.verdict(
        DataEncryptionInTransit,
        check,
        Outcome::Fail,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

fn tls_below_1_2(v: &str) -> bool {
    matches!(
        v.trim()
            .trim_start_matches(['T', 'L', 'S', 'v', ' '])
            .replace('_', ".")
            .as_str(),
        "1.0" | "1.1" | "1" | "1.0.0"
    )
}

/// An Ingress must terminate TLS (spec.tls, or a load-balancer certificate annotation).
pub(super) fn ingress_tls(ctx: &mut Ctx<'_>) {
    if !ctx.applies(DataEncryptionInTransit) {
        return;
    }
    let has_tls = !list(&ctx.obj.body, "spec.tls").is_empty()
        || ctx
            .obj
            .annotation("alb.ingress.kubernetes.io/certificate-arn")
            .is_some()
        || ctx
            .obj
            .annotation("appgw.ingress.kubernetes.io/appgw-ssl-certificate")
            .is_some()
        || ctx
            .obj
            .annotation("networking.gke.io/managed-certificates")
            .is_some()
        || ctx
            .obj
            .annotation("ingress.gcp.kubernetes.io/pre-shared-cert")
            .is_some();
    if has_tls {
        let what = format!("{} terminates TLS", ctx.obj.id);
        ctx.verdict(
            DataEncryptionInTransit,
            "ingress-tls",
            Outcome::Pass,
            None,
            what,
            None,
        );
        return;
    }
    let hosts: Vec<&str> = list(&ctx.obj.body, "spec.rules")
        .iter()
        .filter_map(|r| r.get("host").and_then(Value::as_str))
        .collect();
    let hosts = if hosts.is_empty() {
        "all hosts".to_string()
    } else {
        hosts.join(", ")
    };
    let what = format!("{} serves {hosts} over plain HTTP: no spec.tls", ctx.obj.id);
    let fix = "add spec.tls with the hosts and a Secret holding the certificate (cert-manager can issue it), or a load-balancer certificate annotation such as alb.ingress.kubernetes.io/certificate-arn".to_string();
    ctx.verdict(
        DataEncryptionInTransit,
        "ingress-tls",
        Outcome::Fail,
        None,
        what,
        Some(fix),
    );
}

/// Volumes provisioned by a StorageClass must be encrypted (EBS needs `encrypted: "true"`).
pub(super) fn storage_class(ctx: &mut Ctx<'_>) {
    let provisioner = ctx.obj.str_at("provisioner").unwrap_or("");
    let params = ctx.obj.at("parameters");
    let param = |k: &str| params.and_then(|p| p.get(k)).and_then(Value::as_str);
    let want_cmk = ctx.b.params.require_customer_managed_key;
    let gap = match provisioner {
        "ebs.csi.aws.com" | "kubernetes.io/aws-ebs" => {
            if param("encrypted") != Some("true") {
                Some((
                    "ebs",
                    "EBS volumes are created unencrypted: parameters.encrypted is not \"true\"",
                    "set parameters.encrypted: \"true\" (and kmsKeyId for a customer key); StorageClass parameters are immutable, so create a new class and migrate, or turn on `aws ec2 enable-ebs-encryption-by-default`",
                ))
            } else if want_cmk && param("kmsKeyId").is_none() {
                Some((
                    "ebs-cmk",
                    "EBS volumes use the AWS-managed key, and the baseline asks for a customer-managed key: no parameters.kmsKeyId",
                    "set parameters.kmsKeyId to a customer-managed KMS key ARN",
                ))
            } else {
                None
            }
        }
        "disk.csi.azure.com" | "kubernetes.io/azure-disk"
            if want_cmk && param("diskEncryptionSetID").is_none() =>
        {
            Some((
                "azure-disk-cmk",
                "Azure disks use platform-managed keys, and the baseline asks for a customer-managed key: no parameters.diskEncryptionSetID",
                "set parameters.diskEncryptionSetID to a disk encryption set backed by Key Vault",
            ))
        }
        "pd.csi.storage.gke.io" | "kubernetes.io/gce-pd"
            if want_cmk && param("disk-encryption-kms-key").is_none() =>
        {
            Some((
                "gce-pd-cmk",
                "persistent disks use Google-managed keys, and the baseline asks for a customer-managed key: no parameters.disk-encryption-kms-key",
                "set parameters.disk-encryption-kms-key to a Cloud KMS key",
            ))
        }
        "disk.csi.azure.com"
        | "kubernetes.io/azure-disk"
        | "pd.csi.storage.gke.io"
        | "kubernetes.io/gce-pd" => None,
        // Other provisioners (NFS, local) are not cloud block storage: nothing to say.
        _ => return,
    };
    if !ctx.applies(DataEncryptionAtRest) {
        return;
    }
    match gap {
        Some((aspect, what, fix)) => {
            let what = format!("{} ({provisioner}): {what}", ctx.obj.id);
            ctx.verdict(
                DataEncryptionAtRest,
                Check::new("volume-encryption").with(&[aspect]),
                Outcome::Fail,
                None,
                what,
                Some(fix.to_string()),
            );
        }
        None => {
            let what = format!("{} provisions encrypted volumes", ctx.obj.id);
            // What the class was held to: EBS encryption always, customer keys when asked.
            let met: &[&str] = match (provisioner, want_cmk) {
                ("ebs.csi.aws.com" | "kubernetes.io/aws-ebs", false) => &["ebs"],
                ("ebs.csi.aws.com" | "kubernetes.io/aws-ebs", true) => &["ebs", "ebs-cmk"],
                ("disk.csi.azure.com" | "kubernetes.io/azure-disk", true) => &["azure-disk-cmk"],
                ("pd.csi.storage.gke.io" | "kubernetes.io/gce-pd", true) => &["gce-pd-cmk"],
                _ => &[],
            };
            ctx.verdict(
                DataEncryptionAtRest,
                Check::new("volume-encryption").with(met),
                Outcome::Pass,
                None,
                what,
                None,
            );
        }
    }
}
