//! AWS auditor: the live posture of S3 buckets, IAM roles and policies, EC2 security groups and
//! the account's CloudTrail trails, read through the official AWS SDK for Rust. This file holds
//! the clients, endpoints, errors and call plumbing; one file per service reads its resources
//! (`s3`, `iam`, `ec2`, `cloudtrail`).
//!
//! - Credentials, region and endpoint come from the standard chains (`aws-config`): environment,
//!   profile, web identity (IRSA), container and instance metadata; `AWS_ENDPOINT_URL` (and the
//!   service-specific `AWS_ENDPOINT_URL_S3`, ...) point the clients elsewhere, e.g. at moto. With
//!   an endpoint override S3 uses path-style addressing, and S3 Control (account-level Block
//!   Public Access) keeps the endpoint's host as it is instead of prefixing the account id
//!   (`123456789012.127.0.0.1` cannot be served by a loopback endpoint): see [`PlainHostS3Control`].
//! - Cross-account audit: with a role ARN, credentials come from STS AssumeRole.
//! - Every API call is timed and reported to a [`CallObserver`] with its outcome (`ok`, `error`,
//!   `throttled`). The SDK retries throttling and transient errors (standard mode, exponential
//!   backoff with jitter); the observer sees one call per operation, with its final outcome.
//! - A failed call is never a pass: [`AwsAuditor::audit`] then returns [`Posture::failed`] with
//!   `"<Operation>: <error>"`. Answers that mean "not configured" (no bucket policy, no default
//!   encryption, no Block Public Access configuration) are facts, not failures.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::SharedCredentialsProvider;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3control::config::endpoint::{EndpointFuture, Params, ResolveEndpoint};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, try_join_all};

use crate::iam::IamFinding;
use crate::network::{aws_port_range, normalise_protocol};
use crate::posture::{
    AuditTrail, CloudResource, EncryptionAtRest, IngressRule, Posture, PublicAccess, Source, Trail,
    Transit,
};

mod cloudtrail;
mod ec2;
mod iam;
mod s3;

pub use ec2::ingress_rules;
use s3::AccountBpa;
pub use s3::{acl_exposures, block_public_access, effective_exposures, encryption_facts};

// AWS services reported to the observer: `s3`, `s3control`, `iam`, `ec2`, `sts` and
// `cloudtrail`; operations are the API names (`GetBucketAcl`, ...).
pub use super::{CallObserver, OUTCOME_ERROR, OUTCOME_OK, OUTCOME_THROTTLED, no_observer};

/// Retry and timeout settings of the SDK clients.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// Attempts per call, first one included (standard retry mode).
    pub max_attempts: u32,
    /// First retry delay; later ones grow exponentially (with jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Limit of one attempt (request and response).
    pub attempt_timeout: Duration,
    /// Limit of one call, retries included.
    pub operation_timeout: Duration,
    /// Endpoint for every service, over `AWS_ENDPOINT_URL` (e.g. a local moto).
    pub endpoint_url: Option<String>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(20),
            operation_timeout: Duration::from_secs(60),
            endpoint_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: set aws.region in the baseline, or AWS_REGION")]
    NoRegion,
    #[error("invalid role ARN {0:?}: expected arn:PARTITION:iam::ACCOUNT:role/NAME")]
    InvalidRoleArn(String),
    /// A call failed (after the SDK's retries).
    #[error("{operation}: {message}")]
    Call {
        service: &'static str,
        operation: &'static str,
        /// The service's error code (`AccessDenied`, `NoSuchBucket`, `Throttling`, ...), when
        /// the service answered.
        code: Option<String>,
        message: String,
        throttled: bool,
    },
    /// The resource does not exist.
    #[error("{what} does not exist ({source})")]
    NotFound {
        what: String,
        #[source]
        source: Box<AwsError>,
    },
    /// The resource lives in another account than the one the credentials belong to.
    #[error(
        "{resource} is in account {resource_account}, but the audit credentials belong to account {credentials_account}: set aws.roleArn to a role in account {resource_account} that onus may assume"
    )]
    WrongAccount {
        resource: String,
        resource_account: String,
        credentials_account: String,
    },
    /// An answer onus cannot judge (an unparsable policy document, a missing field).
    #[error("{0}")]
    Unreadable(String),
    #[error("{0} is not an AWS resource")]
    NotAws(String),
}

impl AwsError {
    /// The service's error code, when the service answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Call { code, .. } => code.as_deref(),
            AwsError::NotFound { source, .. } => source.code(),
            _ => None,
        }
    }

    pub fn is_throttling(&self) -> bool {
        matches!(
            self,
            AwsError::Call {
                throttled: true,
                ..
            }
        )
    }
}

/// Error codes AWS services use for throttling.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// The observer outcome of a failed call: `throttled` for throttling codes and HTTP 429.
pub fn classify_failure(code: Option<&str>, status: Option<u16>) -> &'static str {
    if status == Some(429) || code.is_some_and(|c| THROTTLING_CODES.contains(&c)) {
        OUTCOME_THROTTLED
    } else {
        OUTCOME_ERROR
    }
}

/// Live auditor for one (region, role) pair: SDK clients built once and shared by every audit.
pub struct AwsAuditor {
    region: String,
    role_arn: Option<String>,
    sdk: SdkConfig,
    path_style: bool,
    /// S3 clients per bucket region.
    s3: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    s3control: aws_sdk_s3control::Client,
    iam: aws_sdk_iam::Client,
    ec2: aws_sdk_ec2::Client,
    sts: aws_sdk_sts::Client,
    cloudtrail: aws_sdk_cloudtrail::Client,
    account: tokio::sync::OnceCell<String>,
    /// The account's Block Public Access, read once per pass: audits given the same `now`
    /// belong to one pass and share it.
    account_bpa: Mutex<Option<(DateTime<Utc>, Arc<AccountBpa>)>>,
    observe: CallObserver,
}

impl fmt::Debug for AwsAuditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsAuditor")
            .field("region", &self.region)
            .field("role_arn", &self.role_arn)
            .field("endpoint_url", &self.sdk.endpoint_url())
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl AwsAuditor {
    /// Clients from the standard credential chain, the region (`region`, else `AWS_REGION` or
    /// the profile) and endpoint overrides (`AWS_ENDPOINT_URL`, ...). With `role_arn`, every
    /// call uses credentials from STS AssumeRole on that role (session name `onus-audit`).
    pub async fn new(
        region: Option<String>,
        role_arn: Option<String>,
        observe: CallObserver,
    ) -> Result<AwsAuditor, AwsError> {
        Self::with_options(region, role_arn, observe, AwsOptions::default()).await
    }

    /// [`AwsAuditor::new`] with explicit retry and timeout settings.
    pub async fn with_options(
        region: Option<String>,
        role_arn: Option<String>,
        observe: CallObserver,
        options: AwsOptions,
    ) -> Result<AwsAuditor, AwsError> {
        let retry = RetryConfig::standard()
            .with_max_attempts(options.max_attempts.max(1))
            .with_initial_backoff(options.initial_backoff)
            .with_max_backoff(options.max_backoff);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(options.connect_timeout)
            .operation_attempt_timeout(options.attempt_timeout)
            .operation_timeout(options.operation_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(r) = region.filter(|r| !r.trim().is_empty()) {
            loader = loader.region(Region::new(r.trim().to_string()));
        }
        if let Some(url) = options.endpoint_url.filter(|u| !u.trim().is_empty()) {
            loader = loader.endpoint_url(url.trim().to_string());
        }
        let mut sdk = loader.load().await;
        let region = sdk
            .region()
            .map(|r| r.as_ref().to_string())
            .ok_or(AwsError::NoRegion)?;
        let role_arn = role_arn
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if let Some(role) = &role_arn {
            if !is_role_arn(role) {
                return Err(AwsError::InvalidRoleArn(role.clone()));
            }
            let provider = AssumeRoleProvider::builder(role)
                .configure(&sdk)
                .session_name("onus-audit")
                .build()
                .await;
            sdk = sdk
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build();
        }
        let path_style = sdk.endpoint_url().is_some()
            || std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.trim().is_empty());
        let s3control = aws_sdk_s3control::Client::from_conf(
            aws_sdk_s3control::config::Builder::from(&sdk)
                .endpoint_resolver(PlainHostS3Control::default())
                .build(),
        );
        Ok(AwsAuditor {
            iam: aws_sdk_iam::Client::new(&sdk),
            ec2: aws_sdk_ec2::Client::new(&sdk),
            sts: aws_sdk_sts::Client::new(&sdk),
            cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
            s3control,
            s3: Mutex::new(HashMap::new()),
            region,
            role_arn,
            sdk,
            path_style,
            account: tokio::sync::OnceCell::new(),
            account_bpa: Mutex::new(None),
            observe,
        })
    }

    /// The region calls go to (buckets are read in their own region).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The role assumed for every call, if any.
    pub fn role_arn(&self) -> Option<&str> {
        self.role_arn.as_deref()
    }

    /// The account the credentials belong to (STS GetCallerIdentity, once per auditor).
    pub async fn account_id(&self) -> Result<String, AwsError> {
        self.account
            .get_or_try_init(|| async {
                let out = self
                    .call(
                        "sts",
                        "GetCallerIdentity",
                        self.sts.get_caller_identity().send(),
                    )
                    .await?;
                out.account()
                    .map(str::to_string)
                    .ok_or_else(|| AwsError::Unreadable("GetCallerIdentity: no Account".into()))
            })
            .await
            .cloned()
    }

    /// How many API calls one audit of this resource kind makes (GetCallerIdentity, made once
    /// per auditor, not counted):
    /// - S3 bucket: 7 (GetBucketLocation, then GetBucketAcl, GetBucketPolicy,
    ///   GetPublicAccessBlock, GetBucketEncryption, GetBucketLogging,
    ///   GetBucketOwnershipControls), plus GetBucketPolicyStatus
    ///   when the bucket has a policy; the account's S3 Control GetPublicAccessBlock is one more
    ///   call per pass (audits with the same `now`), shared by all its buckets;
    /// - IAM role: 2 (ListRolePolicies, ListAttachedRolePolicies, one page each), plus one
    ///   GetRolePolicy per inline policy and GetPolicy + GetPolicyVersion per attached policy;
    /// - IAM managed policy: 2 (GetPolicy, GetPolicyVersion);
    /// - security group: 1 (DescribeSecurityGroups);
    /// - account: 1 (DescribeTrails), plus GetTrailStatus and GetEventSelectors per
    ///   multi-region trail;
    /// - anything not on AWS: 0.
    pub fn calls_per_audit(resource: &CloudResource) -> usize {
        match resource {
            CloudResource::S3Bucket(_) => 7,
            CloudResource::IamRole(_) | CloudResource::IamPolicy(_) => 2,
            CloudResource::SecurityGroup(_) | CloudResource::AwsAccount(_) => 1,
            _ => 0,
        }
    }

    /// Live posture of one resource. Never panics, and never returns a pass on failure: a
    /// failed call gives [`Posture::failed`] with `"<Operation>: <error>"`.
    pub async fn audit(&self, resource: &CloudResource, now: DateTime<Utc>) -> Posture {
        let audit: BoxFuture<'_, Result<Posture, AwsError>> = match resource {
            CloudResource::S3Bucket(name) => Box::pin(self.audit_bucket(resource, name, now)),
            CloudResource::IamRole(_) => Box::pin(self.audit_role(resource)),
            CloudResource::IamPolicy(policy) => Box::pin(self.audit_policy(resource, policy)),
            CloudResource::SecurityGroup(id) => Box::pin(self.audit_security_group(resource, id)),
            CloudResource::AwsAccount(id) => Box::pin(self.audit_account(resource, id)),
            other => Box::pin(std::future::ready(Err(AwsError::NotAws(other.to_string())))),
        };
        let result = audit.await;
        match result {
            Ok(mut p) => {
                p.observed_at = Some(now);
                p
            }
            Err(e) => {
                tracing::debug!(resource = %resource, error = %e, "AWS audit failed");
                Posture::failed(resource.clone(), e.to_string(), now)
            }
        }
    }

    /// Runs one SDK call, reports it to the observer, and turns the answers listed in `absent`
    /// into `Ok(None)` (facts such as "no bucket policy").
    ///
    /// The call is boxed: SDK futures are large, and an audit joins several of them; kept
    /// inline they make deep, multi-hundred-kilobyte stack frames in debug builds.
    fn call_opt<'a, T, E, F>(
        &'a self,
        service: &'static str,
        operation: &'static str,
        absent: &'static [&'static str],
        fut: F,
    ) -> BoxFuture<'a, Result<Option<T>, AwsError>>
    where
        F: Future<Output = Result<T, SdkError<E>>> + Send + 'a,
        T: Send + 'a,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Box::pin(async move {
            let start = Instant::now();
            let result = fut.await;
            let elapsed = start.elapsed();
            match result {
                Ok(v) => {
                    (self.observe)(service, operation, OUTCOME_OK, elapsed);
                    Ok(Some(v))
                }
                Err(e) => {
                    if e.code().is_some_and(|c| absent.contains(&c)) {
                        (self.observe)(service, operation, OUTCOME_OK, elapsed);
                        return Ok(None);
                    }
                    Err(self.failure(service, operation, &e, elapsed))
                }
            }
        })
    }

    /// Reports a failed call to the observer and describes it.
    fn failure<E>(
        &self,
        service: &'static str,
        operation: &'static str,
        e: &SdkError<E>,
        elapsed: Duration,
    ) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = e.code().map(str::to_string);
        let status = e.raw_response().map(|r| r.status().as_u16());
        let outcome = classify_failure(code.as_deref(), status);
        (self.observe)(service, operation, outcome, elapsed);
        AwsError::Call {
            service,
            operation,
            message: describe_sdk_error(e),
            code,
            throttled: outcome == OUTCOME_THROTTLED,
        }
    }

    fn call<'a, T, E, F>(
        &'a self,
        service: &'static str,
        operation: &'static str,
        fut: F,
    ) -> impl Future<Output = Result<T, AwsError>> + Send + 'a
    where
        F: Future<Output = Result<T, SdkError<E>>> + Send + 'a,
        T: Send + 'a,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.call_opt(service, operation, &[], fut)
            .map(move |r| r?.ok_or_else(|| AwsError::Unreadable(format!("{operation}: no answer"))))
    }

    /// Fails when `resource` names an account other than the credentials' own.
    async fn check_account(&self, resource: &CloudResource) -> Result<(), AwsError> {
        let Some(theirs) = resource.aws_account() else {
            return Ok(());
        };
        let mine = self.account_id().await?;
        if theirs == mine {
            Ok(())
        } else {
            Err(AwsError::WrongAccount {
                resource: resource.to_string(),
                resource_account: theirs.to_string(),
                credentials_account: mine,
            })
        }
    }
}

/// S3 Control endpoint resolution that, under an endpoint override (`AWS_ENDPOINT_URL`), keeps
/// the override's host as it is. The standard rules prefix the account id to the host
/// (`https://123456789012.s3-control.us-east-1.amazonaws.com`, and with an override
/// `http://123456789012.127.0.0.1:PORT`), which local endpoints such as moto cannot serve; the
/// account id also travels in the `x-amz-account-id` header, which is what moto reads. Without
/// an override the standard resolution is used unchanged. (The AWS SDK for Rust has no
/// `disable_host_prefix_injection` setting; the prefix comes from the endpoint rules anyway.)
#[derive(Debug, Default)]
pub struct PlainHostS3Control {
    inner: aws_sdk_s3control::config::endpoint::DefaultResolver,
}

impl ResolveEndpoint for PlainHostS3Control {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::new(async move {
            let endpoint = self.inner.resolve_endpoint(params).await?;
            match (params.endpoint(), params.account_id()) {
                (Some(_), Some(account)) => {
                    let url = strip_account_prefix(endpoint.url(), account);
                    Ok(endpoint.into_builder().url(url).build())
                }
                _ => Ok(endpoint),
            }
        })
    }
}

/// `scheme://ACCOUNT.host...` -> `scheme://host...`.
fn strip_account_prefix(url: &str, account: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            match rest.strip_prefix(account).and_then(|r| r.strip_prefix('.')) {
                Some(host) => format!("{scheme}://{host}"),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// `"{code}: {message}"` for service errors, the chain of causes otherwise (`dispatch failure:
/// io error: ...: Connection refused (os error 111)`, timeouts, ...).
fn describe_sdk_error<E>(e: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) if !msg.is_empty() => format!("{code}: {msg}"),
        (Some(code), _) => code.to_string(),
        _ => super::error_chain(e),
    }
}

/// Turns an error with one of the `codes` into "WHAT does not exist".
fn not_found(e: AwsError, codes: &[&str], what: &str) -> AwsError {
    if e.code().is_some_and(|c| codes.contains(&c)) && !matches!(e, AwsError::NotFound { .. }) {
        AwsError::NotFound {
            what: what.to_string(),
            source: Box::new(e),
        }
    } else {
        e
    }
}

fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.trim().splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len()
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::iam::analyse;
    use super::s3::*;
    use super::*;
    use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};

    #[test]
    fn acl_grants_to_public_groups_are_exposures() {
        let grants = [
            ("http://acs.amazonaws.com/groups/global/AllUsers", "READ"),
            ("http://acs.amazonaws.com/groups/global/AllUsers", "READ"),
            (
                "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
                "WRITE",
            ),
            ("http://acs.amazonaws.com/groups/s3/LogDelivery", "WRITE"),
            ("", "FULL_CONTROL"),
        ];
        assert_eq!(
            acl_exposures(grants),
            vec![
                "ACL grants READ to AllUsers".to_string(),
                "ACL grants WRITE to AuthenticatedUsers".to_string(),
            ]
        );
        assert!(acl_exposures([]).is_empty());
    }

    #[test]
    fn block_public_access_combines_bucket_and_account() {
        let on = [true; 4];
        assert_eq!(block_public_access(Some(on), Ok(None)), Ok(()));
        assert_eq!(block_public_access(None, Ok(Some(on))), Ok(()));
        // Bucket flags all on: an unreadable account setting does not matter.
        assert_eq!(
            block_public_access(Some(on), Err("AccessDenied".into())),
            Ok(())
        );
        // Each flag may come from either level.
        assert_eq!(
            block_public_access(
                Some([true, false, true, false]),
                Ok(Some([false, true, false, true]))
            ),
            Ok(())
        );
        assert_eq!(
            block_public_access(Some([true, true, false, true]), Ok(None)),
            Err("Block Public Access is not fully on (BlockPublicPolicy off)".into())
        );
        let none = block_public_access(None, Ok(None)).unwrap_err();
        assert!(
            none.contains(
                "BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets off"
            ),
            "{none}"
        );
        assert!(
            none.contains("no bucket or account configuration"),
            "{none}"
        );
        let unreadable = block_public_access(
            Some([true, true, true, false]),
            Err("AccessDenied: no".into()),
        )
        .unwrap_err();
        assert!(
            unreadable.contains("RestrictPublicBuckets off"),
            "{unreadable}"
        );
        assert!(
            unreadable.contains("account-level setting could not be read: AccessDenied"),
            "{unreadable}"
        );
    }

    #[test]
    fn block_public_access_neutralises_exposures() {
        let acl = || vec!["ACL grants READ to AllUsers".to_string()];
        let pol =
            || vec!["bucket policy statement #1 allows Principal \"*\" (s3:GetObject)".to_string()];
        assert_eq!(effective_exposures(acl(), pol(), None, None).len(), 2);
        assert_eq!(
            effective_exposures(acl(), pol(), Some([true, true, false, false]), None),
            pol()
        );
        assert_eq!(
            effective_exposures(acl(), pol(), None, Some([false, false, true, true])),
            acl()
        );
        assert!(effective_exposures(acl(), pol(), Some([true; 4]), None).is_empty());
    }

    #[test]
    fn encryption_facts_tell_customer_keys_apart() {
        assert_eq!(encryption_facts(None, None), EncryptionAtRest::default());
        let sse_s3 = encryption_facts(Some("AES256"), None);
        assert!(sse_s3.enabled && !sse_s3.customer_managed_key);
        assert_eq!(sse_s3.algorithm.as_deref(), Some("AES256"));
        assert!(!encryption_facts(Some("aws:kms"), None).customer_managed_key);
        assert!(!encryption_facts(Some("aws:kms"), Some("alias/aws/s3")).customer_managed_key);
        assert!(
            !encryption_facts(
                Some("aws:kms"),
                Some("arn:aws:kms:us-east-1:123456789012:alias/aws/s3")
            )
            .customer_managed_key
        );
        assert!(
            encryption_facts(
                Some("aws:kms"),
                Some("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
            )
            .customer_managed_key
        );
        assert!(encryption_facts(Some("aws:kms:dsse"), Some("alias/mine")).customer_managed_key);
        // A KMS key id on an AES256 rule is ignored by S3.
        assert!(!encryption_facts(Some("AES256"), Some("alias/mine")).customer_managed_key);
    }

    #[test]
    fn throttling_is_classified() {
        assert_eq!(classify_failure(Some("Throttling"), Some(400)), "throttled");
        assert_eq!(classify_failure(Some("SlowDown"), Some(503)), "throttled");
        assert_eq!(
            classify_failure(Some("RequestLimitExceeded"), Some(503)),
            "throttled"
        );
        assert_eq!(classify_failure(None, Some(429)), "throttled");
        assert_eq!(classify_failure(Some("AccessDenied"), Some(403)), "error");
        assert_eq!(classify_failure(None, None), "error");
    }

    #[test]
    fn s3control_host_prefix_is_removed() {
        assert_eq!(
            strip_account_prefix("http://123456789012.127.0.0.1:5000", "123456789012"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            strip_account_prefix("https://123456789012.example.com/x", "123456789012"),
            "https://example.com/x"
        );
        assert_eq!(
            strip_account_prefix("http://127.0.0.1:5000", "123456789012"),
            "http://127.0.0.1:5000"
        );
    }

    #[tokio::test]
    async fn s3control_resolver_keeps_custom_hosts_and_aws_hosts() {
        let resolver = PlainHostS3Control::default();
        let params = Params::builder()
            .region("us-east-1")
            .account_id("123456789012")
            .requires_account_id(true)
            .endpoint("http://127.0.0.1:5000")
            .build()
            .unwrap();
        let ep = resolver.resolve_endpoint(&params).await.unwrap();
        assert_eq!(ep.url(), "http://127.0.0.1:5000");
        let params = Params::builder()
            .region("us-east-1")
            .account_id("123456789012")
            .requires_account_id(true)
            .build()
            .unwrap();
        let ep = resolver.resolve_endpoint(&params).await.unwrap();
        assert_eq!(
            ep.url(),
            "https://123456789012.s3-control.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn bucket_regions() {
        assert_eq!(bucket_region(None), "us-east-1");
        assert_eq!(bucket_region(Some("")), "us-east-1");
        assert_eq!(bucket_region(Some("EU")), "eu-west-1");
        assert_eq!(bucket_region(Some("ap-south-1")), "ap-south-1");
    }

    #[test]
    fn role_arns() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/audit"));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/path/audit"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/audit"));
        assert!(!is_role_arn("arn:aws:iam::1234:role/audit"));
        assert!(!is_role_arn("audit"));
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("eu-central-1"), "aws");
    }

    #[test]
    fn ingress_rules_cover_ipv4_ipv6_all_protocols_and_groups() {
        let perms = vec![
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                .build(),
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-123").build())
                .build(),
            IpPermission::builder()
                .ip_protocol("6")
                .from_port(1000)
                .to_port(2000)
                .ip_ranges(IpRange::builder().cidr_ip("192.0.2.0/24").build())
                .build(),
        ];
        let rule = |p: &str, f, t, s: &str| IngressRule {
            protocol: p.into(),
            from_port: f,
            to_port: t,
            source: s.into(),
        };
        assert_eq!(
            ingress_rules(&perms),
            vec![
                rule("tcp", 22, 22, "0.0.0.0/0"),
                rule("tcp", 22, 22, "::/0"),
                rule("all", 0, 65535, "10.0.0.0/8"),
                rule("all", 0, 65535, "sg-123"),
                rule("tcp", 1000, 2000, "192.0.2.0/24"),
            ]
        );
        let open = ingress_rules(&perms);
        assert!(crate::network::exposure(&open[0], &[22], &Default::default()).is_some());
        assert!(crate::network::exposure(&open[1], &[22], &Default::default()).is_some());
        assert!(crate::network::exposure(&open[4], &[22], &Default::default()).is_none());
    }

    #[test]
    fn analysed_findings_name_their_policy() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let findings = analyse("inline policy admin", doc).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].statement, "inline policy admin: statement #1");
        let encoded = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
        let findings = analyse("attached arn:aws:iam::aws:policy/S3", encoded).unwrap();
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .statement
                .starts_with("attached arn:aws:iam::aws:policy/S3: ")
        );
        assert!(analyse("inline policy x", "not json").is_err());
    }

    #[test]
    fn errors_read_well() {
        let call = AwsError::Call {
            service: "s3",
            operation: "GetBucketAcl",
            code: Some("NoSuchBucket".into()),
            message: "NoSuchBucket: The specified bucket does not exist".into(),
            throttled: false,
        };
        let gone = not_found(call, S3_NOT_FOUND, "the bucket");
        assert_eq!(gone.code(), Some("NoSuchBucket"));
        assert_eq!(
            gone.to_string(),
            "the bucket does not exist (GetBucketAcl: NoSuchBucket: The specified bucket does not exist)"
        );
        let wrong = AwsError::WrongAccount {
            resource: "arn:aws:iam::111111111111:role/x".into(),
            resource_account: "111111111111".into(),
            credentials_account: "123456789012".into(),
        };
        assert!(wrong.to_string().contains("set aws.roleArn"));
    }
}
