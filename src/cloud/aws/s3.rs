//! S3: a bucket's ACL, policy, Block Public Access (bucket and account), default encryption,
//! Object Ownership and server access logging.

use super::*;

// Answers that are facts ("not configured"), not failures.
pub(super) const NO_BUCKET_POLICY: &[&str] = &["NoSuchBucketPolicy"];
pub(super) const NO_ENCRYPTION: &[&str] = &["ServerSideEncryptionConfigurationNotFoundError"];
pub(super) const NO_PUBLIC_ACCESS_BLOCK: &[&str] = &["NoSuchPublicAccessBlockConfiguration"];
pub(super) const NO_OWNERSHIP_CONTROLS: &[&str] = &["OwnershipControlsNotFoundError"];
// Answers that mean the resource is gone.
pub(super) const S3_NOT_FOUND: &[&str] = &["NoSuchBucket"];

/// Account-level Block Public Access flags (`None`: not configured).
pub(super) type AccountBpa = tokio::sync::OnceCell<Option<[bool; 4]>>;

impl AwsAuditor {
    pub(super) fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let mut clients = self.s3.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
                    .region(Region::new(region.to_string()))
                    .force_path_style(self.path_style)
                    .build();
                aws_sdk_s3::Client::from_conf(conf)
            })
            .clone()
    }

    /// The region of a bucket (GetBucketLocation). A bucket elsewhere than the endpoint asked
    /// may be answered with a redirect that names its region (`x-amz-bucket-region`): that is
    /// an answer too.
    pub(super) fn locate_bucket<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, AwsError>> {
        Box::pin(async move {
            let (service, operation) = ("s3", "GetBucketLocation");
            let client = self.s3(self.location_region());
            let start = Instant::now();
            let result = client.get_bucket_location().bucket(name).send().await;
            let elapsed = start.elapsed();
            match result {
                Ok(out) => {
                    (self.observe)(service, operation, OUTCOME_OK, elapsed);
                    Ok(bucket_region(out.location_constraint().map(|c| c.as_str())))
                }
                Err(e) => {
                    let redirected = e
                        .raw_response()
                        .and_then(|r| r.headers().get("x-amz-bucket-region"))
                        .map(str::trim)
                        .filter(|r| !r.is_empty());
                    match redirected {
                        Some(region) => {
                            (self.observe)(service, operation, OUTCOME_OK, elapsed);
                            Ok(region.to_string())
                        }
                        None => Err(self.failure(service, operation, &e, elapsed)),
                    }
                }
            }
        })
    }

    /// GetBucketLocation answers for any bucket from us-east-1 in the `aws` partition; other
    /// partitions answer from their own regions.
    pub(super) fn location_region(&self) -> &str {
        if self.region.starts_with("cn-") || self.region.starts_with("us-gov-") {
            &self.region
        } else {
            "us-east-1"
        }
    }

    /// The account's Block Public Access for the pass that `now` names.
    pub(super) fn account_bpa_of_pass(&self, now: DateTime<Utc>) -> Arc<AccountBpa> {
        let mut slot = self.account_bpa.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((pass, cell)) if *pass == now => cell.clone(),
            _ => {
                let cell = Arc::new(AccountBpa::new());
                *slot = Some((now, cell.clone()));
                cell
            }
        }
    }

    pub(super) async fn audit_bucket(
        &self,
        resource: &CloudResource,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Posture, AwsError> {
        let region = self
            .locate_bucket(name)
            .await
            .map_err(|e| not_found(e, S3_NOT_FOUND, "the bucket"))?;
        let s3 = self.s3(&region);

        let pass = self.account_bpa_of_pass(now);
        // A failed read is not kept: the next bucket of the pass asks again.
        let account_bpa = pass.get_or_try_init(|| async {
            let account = self.account_id().await?;
            let out = self
                .call_opt(
                    "s3control",
                    "GetPublicAccessBlock",
                    NO_PUBLIC_ACCESS_BLOCK,
                    self.s3control
                        .get_public_access_block()
                        .account_id(account)
                        .send(),
                )
                .await?;
            Ok::<_, AwsError>(out.and_then(|o| {
                o.public_access_block_configuration().map(|c| {
                    [
                        c.block_public_acls(),
                        c.ignore_public_acls(),
                        c.block_public_policy(),
                        c.restrict_public_buckets(),
                    ]
                    .map(|f| f.unwrap_or(false))
                })
            }))
        });
        let (acl, policy, bpa, encryption, logging, ownership, account_bpa) = tokio::join!(
            self.call(
                "s3",
                "GetBucketAcl",
                s3.get_bucket_acl().bucket(name).send()
            ),
            self.call_opt(
                "s3",
                "GetBucketPolicy",
                NO_BUCKET_POLICY,
                s3.get_bucket_policy().bucket(name).send()
            ),
            self.call_opt(
                "s3",
                "GetPublicAccessBlock",
                NO_PUBLIC_ACCESS_BLOCK,
                s3.get_public_access_block().bucket(name).send()
            ),
            self.call_opt(
                "s3",
                "GetBucketEncryption",
                NO_ENCRYPTION,
                s3.get_bucket_encryption().bucket(name).send()
            ),
            self.call(
                "s3",
                "GetBucketLogging",
                s3.get_bucket_logging().bucket(name).send()
            ),
            self.call_opt(
                "s3",
                "GetBucketOwnershipControls",
                NO_OWNERSHIP_CONTROLS,
                s3.get_bucket_ownership_controls().bucket(name).send()
            ),
            account_bpa,
        );
        let not_found = |e| not_found(e, S3_NOT_FOUND, "the bucket");
        let (acl, policy, bpa, encryption, logging, ownership) = (
            acl.map_err(not_found)?,
            policy.map_err(not_found)?,
            bpa.map_err(not_found)?,
            encryption.map_err(not_found)?,
            logging.map_err(not_found)?,
            ownership.map_err(not_found)?,
        );
        // No ownership controls: ACLs are enabled (buckets made before April 2023).
        let object_ownership = ownership
            .as_ref()
            .and_then(|o| o.ownership_controls())
            .and_then(|c| c.rules().first())
            .map_or_else(String::new, |r| r.object_ownership().as_str().to_string());
        let account_bpa = account_bpa.copied();
        // AWS's own verdict on a policy, asked only when there is one.
        let status = match policy.as_ref().and_then(|p| p.policy()) {
            Some(_) => self
                .call_opt(
                    "s3",
                    "GetBucketPolicyStatus",
                    NO_BUCKET_POLICY,
                    s3.get_bucket_policy_status().bucket(name).send(),
                )
                .await
                .map_err(not_found)?,
            None => None,
        };

        let acl_public = acl_exposures(acl.grants().iter().filter_map(|g| {
            let uri = g.grantee()?.uri()?;
            Some((uri, g.permission().map_or("FULL_CONTROL", |p| p.as_str())))
        }));
        let mut policy_public = Vec::new();
        let mut secure_transport = false;
        let mut cross_account = Vec::new();
        if let Some(text) = policy.as_ref().and_then(|p| p.policy()) {
            let doc = crate::iam::parse(text)
                .map_err(|e| AwsError::Unreadable(format!("bucket policy: {e}")))?;
            policy_public = doc.public_statements(&Default::default());
            cross_account = doc.cross_account_grants(&self.account_id().await?);
            let aws_says_public = status
                .as_ref()
                .and_then(|s| s.policy_status())
                .and_then(|s| s.is_public())
                == Some(true);
            if policy_public.is_empty() && aws_says_public {
                policy_public.push(
                    "bucket policy is public by AWS's own evaluation (GetBucketPolicyStatus IsPublic=true)"
                        .to_string(),
                );
            }
            secure_transport = doc.denies_insecure_transport();
        }
        let bucket_flags = bpa.and_then(|o| {
            o.public_access_block_configuration().map(|c| {
                [
                    c.block_public_acls(),
                    c.ignore_public_acls(),
                    c.block_public_policy(),
                    c.restrict_public_buckets(),
                ]
                .map(|f| f.unwrap_or(false))
            })
        });
        let account_flags = account_bpa.map_err(|e| e.to_string());
        let exposures = effective_exposures(
            acl_public,
            policy_public,
            bucket_flags,
            account_flags.as_ref().ok().copied().flatten(),
        );
        let guard = block_public_access(bucket_flags, account_flags);

        let default_encryption = encryption.as_ref().and_then(|e| {
            e.server_side_encryption_configuration()?
                .rules()
                .iter()
                .find_map(|r| r.apply_server_side_encryption_by_default())
        });
        let encryption_at_rest = encryption_facts(
            default_encryption.map(|d| d.sse_algorithm().as_str()),
            default_encryption.and_then(|d| d.kms_master_key_id()),
        );

        let mut p = Posture::new(resource.clone(), Source::Live);
        p.public_access = Some(PublicAccess {
            exposures,
            guard: Some(guard),
        });
        p.encryption_at_rest = Some(encryption_at_rest);
        p.transit = Some(Transit {
            secure_transport_policy: Some(secure_transport),
            ..Transit::default()
        });
        p.access_logging = Some(logging.logging_enabled().is_some());
        p.object_ownership = Some(object_ownership);
        p.cross_account = Some(cross_account);
        Ok(p)
    }
}

/// The region of a bucket from its location constraint (none means us-east-1, `EU` the legacy
/// name of eu-west-1).
pub(super) fn bucket_region(constraint: Option<&str>) -> String {
    match constraint.map(str::trim) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    }
}

pub(super) const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

pub(super) const AUTHENTICATED_USERS: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Public ACL grants, from `(grantee group URI, permission)` pairs:
/// `"ACL grants READ to AllUsers"`. Other grantees (owners, accounts, LogDelivery) are not public.
pub fn acl_exposures<'a>(grants: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (uri, permission) in grants {
        let group = match uri.trim() {
            u if u.eq_ignore_ascii_case(ALL_USERS) => "AllUsers",
            u if u.eq_ignore_ascii_case(AUTHENTICATED_USERS) => "AuthenticatedUsers",
            _ => continue,
        };
        let e = format!("ACL grants {permission} to {group}");
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

pub(super) const BPA_FLAGS: [&str; 4] = [
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
];

/// The Block Public Access guard of a bucket. A flag is on when the bucket or the account has
/// it on (S3 applies the most restrictive combination). `bucket: None` means no bucket-level
/// configuration; `account: Ok(None)` no account-level one; `Err` an account setting that
/// could not be read, which never counts as on.
pub fn block_public_access(
    bucket: Option<[bool; 4]>,
    account: Result<Option<[bool; 4]>, String>,
) -> Result<(), String> {
    let b = bucket.unwrap_or([false; 4]);
    let a = account
        .as_ref()
        .ok()
        .copied()
        .flatten()
        .unwrap_or([false; 4]);
    let off: Vec<&str> = BPA_FLAGS
        .iter()
        .zip(b.iter().zip(a.iter()))
        .filter(|(_, (b, a))| !**b && !**a)
        .map(|(name, _)| *name)
        .collect();
    if off.is_empty() {
        return Ok(());
    }
    let mut why = format!(
        "Block Public Access is not fully on ({} off",
        off.join(", ")
    );
    if bucket.is_none() && matches!(account, Ok(None)) {
        why.push_str("; no bucket or account configuration");
    }
    if let Err(e) = &account {
        why.push_str(&format!(
            "; the account-level setting could not be read: {e}"
        ));
    }
    why.push(')');
    Err(why)
}

/// What still makes a bucket public once Block Public Access applies: `IgnorePublicAcls` (bucket
/// or account) makes S3 ignore public ACL grants, and `RestrictPublicBuckets` limits a public
/// policy to AWS services and the owner's account, so those exposures no longer count.
pub fn effective_exposures(
    acl: Vec<String>,
    policy: Vec<String>,
    bucket: Option<[bool; 4]>,
    account: Option<[bool; 4]>,
) -> Vec<String> {
    let on = |i: usize| bucket.is_some_and(|f| f[i]) || account.is_some_and(|f| f[i]);
    let mut out = Vec::new();
    if !on(1) {
        out.extend(acl);
    }
    if !on(3) {
        out.extend(policy);
    }
    out
}

/// Default encryption facts from the algorithm (`AES256`, `aws:kms`, `aws:kms:dsse`) and KMS
/// key id. A KMS key other than the AWS-managed `alias/aws/s3` counts as customer-managed (a key
/// given by id or ARN is not looked up in KMS).
pub fn encryption_facts(algorithm: Option<&str>, kms_key: Option<&str>) -> EncryptionAtRest {
    let Some(alg) = algorithm.map(str::trim).filter(|a| !a.is_empty()) else {
        return EncryptionAtRest::default();
    };
    let customer_managed_key = alg.starts_with("aws:kms")
        && kms_key
            .map(str::trim)
            .is_some_and(|k| !k.is_empty() && k != "alias/aws/s3" && !k.ends_with(":alias/aws/s3"));
    EncryptionAtRest {
        enabled: true,
        algorithm: Some(alg.to_string()),
        customer_managed_key,
    }
}
