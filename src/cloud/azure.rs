//! Azure auditor: the live posture of blob containers and storage accounts, read through the
//! official Azure SDK for Rust (`azure_storage_blob`, `azure_identity`).
//!
//! - Credentials, in this order: workload identity (`AZURE_FEDERATED_TOKEN_FILE`, as the AKS
//!   webhook injects it), a service principal from the environment (`AZURE_TENANT_ID`,
//!   `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), then managed identity. For emulators and tests
//!   only, `ONUS_AZURE_STORAGE_KEY` signs requests with a shared account key instead.
//! - Endpoints: `https://{account}.blob.core.windows.net`, or `ONUS_AZURE_BLOB_ENDPOINT` with
//!   `{account}` replaced (`http://127.0.0.1:10000/{account}` for azurite).
//! - Every call is reported to the [`CallObserver`] (`provider="azure"`, service `blob`) and
//!   bounded in time; a failed read is [`Posture::failed`], never a pass.
//! - Container public access is what the data plane shows (`x-ms-blob-public-access`), in effect
//!   unless the account forbids it (`allowBlobPublicAccess: false`, read from ARM when the
//!   baseline names the subscription and resource group, see [`super::azure_arm`]). Without
//!   them, a container set public counts as public.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    AsyncRawResponse, ClientOptions, Context, ExponentialRetryOptions, Request, RetryOptions, Url,
};
use azure_storage_blob::models::{PublicAccessType, SignedIdentifiersHeaders};
use azure_storage_blob::{
    BlobContainerClient, BlobContainerClientOptions, BlobServiceClient, BlobServiceClientOptions,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hmac::{KeyInit, Mac};

use super::azure_arm::{AccountFacts, ArmClient, Scope};
use super::{CallObserver, OUTCOME_ERROR, OUTCOME_OK, OUTCOME_THROTTLED, error_chain};
use crate::posture::{CloudResource, EncryptionAtRest, Posture, PublicAccess, Source, Transit};
use crate::refs::NsgId;

/// Emulator endpoint template: `{account}` is replaced by the storage account name.
pub const ENDPOINT_ENV: &str = "ONUS_AZURE_BLOB_ENDPOINT";
/// A shared account key (base64), for emulators and tests only.
pub const STORAGE_KEY_ENV: &str = "ONUS_AZURE_STORAGE_KEY";

/// How long one call may take, retries included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read: a container's ACL or a service's properties are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;
/// Longest error text kept from a service's answer.
const MAX_ERROR: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("{0} is not set to a URL with {{account}}: {1}")]
    BadEndpoint(&'static str, String),
    #[error("{STORAGE_KEY_ENV} is not base64: {0}")]
    BadKey(String),
    #[error("no Azure credentials: {0}")]
    Credentials(String),
    #[error("{account:?} is not a storage account name (3-24 lowercase letters and digits)")]
    BadAccount { account: String },
    #[error(
        "{container:?} is not a container name (3-63 lowercase letters, digits and dashes, or $root, $web, $logs)"
    )]
    BadContainer { container: String },
    #[error("{operation}: {message}")]
    Call {
        operation: &'static str,
        status: Option<u16>,
        code: Option<String>,
        message: String,
    },
    #[error("{what} does not exist")]
    NotFound { what: String },
    #[error(
        "network security group {0:?}: not an ARM id, and the baseline names no azure.subscriptionId and azure.resourceGroup to find it in"
    )]
    NsgUnplaced(String),
    #[error("{0} is not a resource the Azure auditor reads yet")]
    Unsupported(String),
    /// A failure shared by the audits of one pass (the account's ARM read).
    #[error("{0}")]
    Shared(String),
}

/// How requests are authorised.
#[derive(Clone)]
enum Auth {
    Token(Arc<dyn TokenCredential>),
    SharedKey(Vec<u8>),
}

/// Live auditor for one set of Azure credentials.
pub struct AzureAuditor {
    endpoint: String,
    auth: Auth,
    /// The management plane: storage account facts when the baseline says where the accounts
    /// live (`scope`), network security groups by their ARM id.
    arm: ArmClient,
    scope: Option<Scope>,
    /// Each account's ARM facts, read once per pass: audits given the same `now` belong to one
    /// pass and share the read (a thousand containers of one account cost one ARM call).
    facts: std::sync::Mutex<FactsMemo>,
    observe: CallObserver,
}

type FactsCell = tokio::sync::OnceCell<Result<Option<AccountFacts>, String>>;
/// The pass (its `now`) and each account's read in it.
type FactsMemo = (DateTime<Utc>, HashMap<String, Arc<FactsCell>>);

impl fmt::Debug for AzureAuditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::Token(_) => "token",
            Auth::SharedKey(_) => "shared-key",
        };
        f.debug_struct("AzureAuditor")
            .field("endpoint", &self.endpoint)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

impl AzureAuditor {
    /// Endpoint and credentials from the environment (see the module comment); `client_id`
    /// picks a user-assigned identity for workload or managed identity.
    pub fn new(
        client_id: Option<String>,
        arm: Option<Scope>,
        observe: CallObserver,
    ) -> Result<AzureAuditor, AzureError> {
        let endpoint = match std::env::var(ENDPOINT_ENV) {
            Ok(e) if !e.trim().is_empty() => {
                let e = e.trim().trim_end_matches('/').to_string();
                if !e.contains("{account}") || Url::parse(&e.replace("{account}", "a")).is_err() {
                    return Err(AzureError::BadEndpoint(ENDPOINT_ENV, e));
                }
                e
            }
            _ => "https://{account}.blob.core.windows.net".to_string(),
        };
        let auth = match std::env::var(STORAGE_KEY_ENV) {
            Ok(k) if !k.trim().is_empty() => Auth::SharedKey(
                base64::engine::general_purpose::STANDARD
                    .decode(k.trim())
                    .map_err(|e| AzureError::BadKey(e.to_string()))?,
            ),
            _ => Auth::Token(credential(client_id)?),
        };
        let token = match &auth {
            Auth::Token(t) => Some(t.clone()),
            Auth::SharedKey(_) => None,
        };
        Ok(AzureAuditor {
            endpoint,
            auth,
            arm: ArmClient::new(token, observe.clone())?,
            scope: arm,
            facts: std::sync::Mutex::new((DateTime::<Utc>::MIN_UTC, HashMap::new())),
            observe,
        })
    }

    /// The live posture of `r`; a failed read is a posture with `error` set.
    pub async fn audit(&self, r: &CloudResource, now: DateTime<Utc>) -> Posture {
        let read = match r {
            CloudResource::AzureContainer { account, container } => {
                self.container(account, container, now).await
            }
            CloudResource::AzureStorageAccount(account) => self.account(account, now).await,
            CloudResource::AzureNsg(nsg) => self.nsg(nsg).await,
            other => Err(AzureError::Unsupported(other.to_string())),
        };
        match read {
            Ok(mut p) => {
                p.observed_at = Some(now);
                p
            }
            Err(e) => Posture::failed(r.clone(), e.to_string(), now),
        }
    }

    /// Public access level of a container (Get Container ACL). Its stored access policies are
    /// not judged: they are how SAS tokens are made revocable, not a gap.
    async fn container(
        &self,
        account: &str,
        container: &str,
        now: DateTime<Utc>,
    ) -> Result<Posture, AzureError> {
        if !valid_container(container) {
            return Err(AzureError::BadContainer {
                container: crate::text::cut(container, 80),
            });
        }
        let url = self.account_url(account)?;
        let url = url
            .join(&format!("{}/", encode(container)))
            .map_err(|e| AzureError::BadEndpoint(ENDPOINT_ENV, e.to_string()))?;
        let client = BlobContainerClient::new(
            url,
            self.credential(),
            Some(BlobContainerClientOptions {
                client_options: self.client_options(account),
                ..Default::default()
            }),
        )
        .map_err(|e| call_error("GetContainerACL", e))?;
        let what = format!("azblob://{account}/{container}");
        let rsp = self
            .call("GetContainerACL", &what, client.get_access_policy(None))
            .await?;
        // Only an answer from the storage service counts: a proxy or portal that answers 200
        // without the header would otherwise read as "private".
        azure_answer("GetContainerACL", rsp.headers())?;
        let level = rsp.access().map_err(|e| call_error("GetContainerACL", e))?;
        // The body must be the ACL document the API describes.
        rsp.into_model()
            .map_err(|e| call_error("GetContainerACL", e))?;
        let mut exposures = Vec::new();
        match level {
            Some(PublicAccessType::Container) => exposures.push(
                "container public access level is container: anyone can list and read its blobs"
                    .to_string(),
            ),
            Some(PublicAccessType::Blob) => exposures.push(
                "container public access level is blob: anyone who knows a blob's name can read it"
                    .to_string(),
            ),
            Some(PublicAccessType::UnknownValue(v)) => {
                exposures.push(format!("container public access level is {v}"))
            }
            None => {}
        }
        // The account's allowBlobPublicAccess decides whether the level takes effect.
        let guard = self.facts(account, now).await?.map(|f| f.guard());
        if guard == Some(Ok(())) {
            exposures.clear();
        }
        let mut p = Posture::new(
            CloudResource::AzureContainer {
                account: account.to_string(),
                container: container.to_string(),
            },
            Source::Live,
        );
        p.public_access = Some(PublicAccess { exposures, guard });
        Ok(p)
    }

    /// Blob service properties of an account: Storage Analytics logging.
    async fn account(&self, account: &str, now: DateTime<Utc>) -> Result<Posture, AzureError> {
        let url = self.account_url(account)?;
        let client = BlobServiceClient::new(
            url,
            self.credential(),
            Some(BlobServiceClientOptions {
                client_options: self.client_options(account),
                ..Default::default()
            }),
        )
        .map_err(|e| call_error("GetBlobServiceProperties", e))?;
        let what = format!("azure storage account {account}");
        let rsp = self
            .call(
                "GetBlobServiceProperties",
                &what,
                client.get_properties(None),
            )
            .await?;
        azure_answer("GetBlobServiceProperties", rsp.headers())?;
        let props = rsp
            .into_model()
            .map_err(|e| call_error("GetBlobServiceProperties", e))?;
        let mut p = Posture::new(
            CloudResource::AzureStorageAccount(account.to_string()),
            Source::Live,
        );
        p.access_logging = Some(props.logging.is_some_and(|l| {
            l.read == Some(true) && l.write == Some(true) && l.delete == Some(true)
        }));
        if let Some(f) = self.facts(account, now).await? {
            p.public_access = Some(PublicAccess {
                exposures: Vec::new(),
                guard: Some(f.guard()),
            });
            p.transit = Some(Transit {
                https_only: f.https_only,
                min_tls: f
                    .minimum_tls_version
                    .as_deref()
                    .map(|v| v.trim_start_matches("TLS").replace('_', ".")),
                secure_transport_policy: None,
            });
            p.storage_network = Some(f.network.clone());
            p.encryption_at_rest = Some(EncryptionAtRest {
                // Azure Storage encrypts every account; only the key owner varies.
                enabled: true,
                algorithm: Some(f.key_source.clone().unwrap_or("Microsoft.Storage".into())),
                customer_managed_key: f
                    .key_source
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("Microsoft.Keyvault")),
            });
        }
        Ok(p)
    }

    /// The account's management-plane facts, when the baseline says where it lives. An account
    /// ARM does not know there is an error that says where onus looked, never a pass.
    async fn facts(
        &self,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountFacts>, AzureError> {
        let (arm, Some(scope)) = (&self.arm, &self.scope) else {
            return Ok(None);
        };
        let cell = {
            let mut memo = self.facts.lock().unwrap_or_else(|e| e.into_inner());
            if memo.0 != now {
                *memo = (now, HashMap::new());
            }
            memo.1.entry(account.to_string()).or_default().clone()
        };
        let read = cell
            .get_or_init(|| async {
                match arm.storage_account(scope, account).await {
                    Ok(Some(f)) => Ok(Some(f)),
                    Ok(None) => Err(AzureError::NotFound {
                        what: format!(
                            "storage account {account} in subscription {} resource group {} (azure.resourceGroup)",
                            scope.subscription, scope.resource_group
                        ),
                    }
                    .to_string()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
        read.clone().map_err(AzureError::Shared)
    }

    /// A network security group's inbound rules, from ARM. A bare name (an ASO object's) is
    /// looked up in the baseline's subscription and resource group.
    async fn nsg(&self, nsg: &str) -> Result<Posture, AzureError> {
        let id = NsgId::parse(nsg)
            .or_else(|| {
                let scope = self.scope.as_ref()?;
                // Valid as a name only if it makes a valid id.
                NsgId::parse(
                    &NsgId {
                        subscription: scope.subscription.clone(),
                        resource_group: scope.resource_group.clone(),
                        name: nsg.to_string(),
                    }
                    .to_string(),
                )
            })
            .ok_or_else(|| AzureError::NsgUnplaced(crate::text::cut(nsg, 200)))?;
        let rules =
            self.arm
                .network_security_group(&id)
                .await?
                .ok_or_else(|| AzureError::NotFound {
                    what: format!("network security group {id}"),
                })?;
        let mut p = Posture::new(CloudResource::AzureNsg(nsg.to_string()), Source::Live);
        p.ingress = Some(rules);
        Ok(p)
    }

    fn account_url(&self, account: &str) -> Result<Url, AzureError> {
        // Storage account names are 3-24 lowercase letters and digits: anything else would let
        // a manifest steer the request elsewhere (`evil.com/x`).
        if !(3..=24).contains(&account.len())
            || !account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(AzureError::BadAccount {
                account: account.to_string(),
            });
        }
        let url = format!("{}/", self.endpoint.replace("{account}", account));
        Url::parse(&url).map_err(|e| AzureError::BadEndpoint(ENDPOINT_ENV, e.to_string()))
    }

    fn credential(&self) -> Option<Arc<dyn TokenCredential>> {
        match &self.auth {
            Auth::Token(t) => Some(t.clone()),
            Auth::SharedKey(_) => None,
        }
    }

    fn client_options(&self, account: &str) -> ClientOptions {
        let mut o = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: 3,
                max_total_elapsed: azure_core::time::Duration::seconds(20),
                max_delay: azure_core::time::Duration::seconds(5),
            }),
            ..Default::default()
        };
        if let Auth::SharedKey(key) = &self.auth {
            o.per_try_policies.push(Arc::new(SharedKey {
                account: account.to_string(),
                key: key.clone(),
            }));
        }
        o.per_try_policies.push(Arc::new(LimitBody(MAX_BODY)));
        o
    }

    /// Runs one call with a time bound and reports it; "not found" answers name `what`.
    async fn call<T>(
        &self,
        operation: &'static str,
        what: &str,
        fut: impl std::future::Future<Output = azure_core::Result<T>>,
    ) -> Result<T, AzureError> {
        let start = Instant::now();
        let result = tokio::time::timeout(CALL_TIMEOUT, fut).await;
        let elapsed = start.elapsed();
        match result {
            Ok(Ok(v)) => {
                (self.observe)("blob", operation, OUTCOME_OK, elapsed);
                Ok(v)
            }
            Ok(Err(e)) => {
                let err = call_error(operation, e);
                let outcome = match &err {
                    AzureError::Call {
                        status: Some(429 | 503),
                        ..
                    } => OUTCOME_THROTTLED,
                    _ => OUTCOME_ERROR,
                };
                (self.observe)("blob", operation, outcome, elapsed);
                match err {
                    AzureError::Call {
                        status: Some(404),
                        code: Some(code),
                        ..
                    } if NOT_FOUND.contains(&code.as_str()) => Err(AzureError::NotFound {
                        what: format!("{what} ({code})"),
                    }),
                    other => Err(other),
                }
            }
            Err(_) => {
                (self.observe)("blob", operation, OUTCOME_ERROR, elapsed);
                Err(AzureError::Call {
                    operation,
                    status: None,
                    code: None,
                    message: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
                })
            }
        }
    }
}

/// Error codes that mean the resource is gone.
const NOT_FOUND: &[&str] = &["ContainerNotFound", "ResourceNotFound", "AccountNotFound"];

fn call_error(operation: &'static str, e: azure_core::Error) -> AzureError {
    let (status, code) = match e.kind() {
        azure_core::error::ErrorKind::HttpResponse {
            status, error_code, ..
        } => (
            Some(u16::from(*status)),
            error_code.as_deref().map(|c| crate::text::cut(c, 80)),
        ),
        _ => (None, None),
    };
    // The service's text can be long and multi-line: one line, bounded.
    AzureError::Call {
        operation,
        status,
        code,
        message: super::one_line(&error_chain(&e), MAX_ERROR),
    }
}

/// An answer carries the storage service's request id (`x-ms-request-id`), as every answer of
/// Azure Storage and its emulator does.
fn azure_answer(
    operation: &'static str,
    headers: &azure_core::http::headers::Headers,
) -> Result<(), AzureError> {
    if headers
        .iter()
        .any(|(k, _)| k.as_str().eq_ignore_ascii_case("x-ms-request-id"))
    {
        Ok(())
    } else {
        Err(AzureError::Call {
            operation,
            status: None,
            code: None,
            message: "the answer does not come from Azure Storage (no x-ms-request-id)".into(),
        })
    }
}

/// Container names as Azure allows them, and the three system containers.
fn valid_container(c: &str) -> bool {
    matches!(c, "$root" | "$web" | "$logs")
        || ((3..=63).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
            && !c.contains("--"))
}

/// Ends an answer once it passes `.0` bytes: the SDK reads bodies whole, and a hostile or
/// broken endpoint could otherwise send gigabytes.
#[derive(Debug)]
struct LimitBody(usize);

#[async_trait::async_trait]
impl Policy for LimitBody {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let Some((first, rest)) = next.split_first() else {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "no transport after the body limit",
            ));
        };
        let (status, headers, body) = first.send(ctx, request, rest).await?.deconstruct();
        let limit = self.0;
        let too_large = move || {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Io,
                format!("the answer is larger than {limit} bytes"),
            )
        };
        let declared = headers
            .iter()
            .find(|(k, _)| k.as_str().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.as_str().parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        // Chunks pass while the total stays within the limit; the first one over it ends the
        // answer with an error.
        let limited = body
            .scan(0usize, move |seen, chunk| {
                let item = match chunk {
                    Ok(bytes) if *seen + bytes.len() > limit => Err(too_large()),
                    Ok(bytes) => {
                        *seen += bytes.len();
                        Ok(bytes)
                    }
                    Err(e) => Err(e),
                };
                futures::future::ready(Some(item))
            })
            .scan(false, |ended, item| {
                if *ended {
                    return futures::future::ready(None);
                }
                *ended = item.is_err();
                futures::future::ready(Some(item))
            });
        Ok(AsyncRawResponse::new(status, headers, Box::pin(limited)))
    }
}

/// Percent-encode a container name for a URL path (names are lowercase letters, digits and
/// dashes; anything else is encoded rather than trusted).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Workload identity, then a service principal from the environment, then managed identity.
fn credential(client_id: Option<String>) -> Result<Arc<dyn TokenCredential>, AzureError> {
    let bad = |e: azure_core::Error| AzureError::Credentials(error_chain(&e));
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        let options = azure_identity::WorkloadIdentityCredentialOptions {
            client_id: client_id.clone(),
            ..Default::default()
        };
        let c = azure_identity::WorkloadIdentityCredential::new(Some(options)).map_err(bad)?;
        return Ok(c);
    }
    if let (Some(tenant), Some(client), Some(secret)) = (
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_CLIENT_SECRET"),
    ) {
        let c = azure_identity::ClientSecretCredential::new(&tenant, client, secret.into(), None)
            .map_err(bad)?;
        return Ok(c);
    }
    let options = azure_identity::ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
        ..Default::default()
    };
    let c = azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(bad)?;
    Ok(c)
}

/// A pipeline policy that signs requests to `account` with a shared key (base64): for
/// emulators and tests only (seeding azurite); production uses workload identity.
pub fn shared_key_policy(account: &str, key: &str) -> Result<Arc<dyn Policy>, AzureError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|e| AzureError::BadKey(e.to_string()))?;
    Ok(Arc::new(SharedKey {
        account: account.to_string(),
        key,
    }))
}

/// Shared Key authorisation (for emulators): signs each try with the account key, as
/// "Authorize with Shared Key" in the Azure Storage REST reference describes.
struct SharedKey {
    account: String,
    key: Vec<u8>,
}

/// Never the key.
impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKey")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Policy for SharedKey {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        request.insert_header("x-ms-date", date);
        let signature = self.sign(&string_to_sign(&self.account, request));
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account),
        );
        match next.split_first() {
            Some((first, rest)) => first.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "no transport after the shared key policy",
            )),
        }
    }
}

impl SharedKey {
    fn sign(&self, text: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }
}

fn string_to_sign(account: &str, request: &Request) -> String {
    let headers = request.headers();
    let header = |name: &str| -> String {
        headers
            .iter()
            .find(|(k, _)| k.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str().to_string())
            .unwrap_or_default()
    };
    // The transport sets Content-Length after the policies run: take it from the body.
    let length = match header("content-length") {
        l if !l.is_empty() => l,
        _ => request.body().len().unwrap_or(0).to_string(),
    };
    let length = if length == "0" { String::new() } else { length };
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str().to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| {
            let value = v.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
            (k.as_str().to_ascii_lowercase(), value)
        })
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let url = request.url();
    let mut resource = format!("/{account}{}", url.path());
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    params.sort();
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in params {
        match merged.last_mut() {
            Some((last, vs)) if *last == k => vs.push(v),
            _ => merged.push((k, vec![v])),
        }
    }
    for (k, vs) in merged {
        resource.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    format!(
        "{}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n{canonical_headers}{resource}",
        request.method().as_ref(),
        header("content-encoding"),
        header("content-language"),
        header("content-md5"),
        header("content-type"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::Method;

    /// The example of "Authorize with Shared Key": the string to sign of a GET with query
    /// parameters puts them sorted, one per line, after the canonical resource.
    #[test]
    fn the_string_to_sign_follows_the_rest_reference() {
        let url = Url::parse(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata",
        )
        .unwrap();
        let mut r = Request::new(url, Method::Get);
        r.insert_header("x-ms-date", "Fri, 26 Jun 2015 23:39:12 GMT");
        r.insert_header("x-ms-version", "2015-02-21");
        assert_eq!(
            string_to_sign("myaccount", &r),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\nrestype:container"
        );
    }

    #[test]
    fn account_names_cannot_steer_the_request() {
        let a = AzureAuditor {
            endpoint: "https://{account}.blob.core.windows.net".into(),
            auth: Auth::SharedKey(vec![1]),
            arm: ArmClient::new(None, super::super::no_observer()).unwrap(),
            scope: None,
            facts: std::sync::Mutex::new((DateTime::<Utc>::MIN_UTC, HashMap::new())),
            observe: super::super::no_observer(),
        };
        for bad in ["evil.com/x", "a", "UPPER", "with-dash", &"x".repeat(25)] {
            assert!(
                matches!(a.account_url(bad), Err(AzureError::BadAccount { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            a.account_url("shop01").unwrap().as_str(),
            "https://shop01.blob.core.windows.net/"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
