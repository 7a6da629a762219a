//! GCP auditor: the live posture of Cloud Storage buckets, read from the Cloud Storage JSON API
//! with Google's official authentication library (`google-cloud-auth`).
//!
//! Two calls per bucket: the bucket's metadata (`iamConfiguration`: uniform bucket-level access
//! and public access prevention; `encryption.defaultKmsKeyName`; `logging.logBucket`) and its IAM
//! policy (bindings to `allUsers` and `allAuthenticatedUsers`, the providers' own definition of
//! public). The official `google-cloud-storage` crate reads bucket metadata over gRPC (Storage
//! Control), which no emulator here serves and which costs a gRPC stack to build; two JSON
//! calls with the official credentials do the same job (see the README's Benchmarks).
//!
//! - Credentials: application default credentials (GKE workload identity through the metadata
//!   server, `GOOGLE_APPLICATION_CREDENTIALS`). With `STORAGE_EMULATOR_HOST` (the convention of
//!   Google's client libraries) requests go there, unauthenticated.
//! - Every call is reported to the [`CallObserver`] (`provider="gcp"`, service `storage`) and
//!   bounded in time, with retries on 429/5xx; a failed read is [`Posture::failed`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{CallFailure, CallObserver, error_chain, one_line, read_bounded, retried};
use crate::posture::{CloudResource, EncryptionAtRest, Posture, PublicAccess, Source};

/// Where an emulator listens (`host:port` or a URL), as Google's client libraries read it.
pub const EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";
const API: &str = "https://storage.googleapis.com";
/// One attempt's time bound (three attempts at most, see [`retried`]).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read (a bucket's metadata or IAM policy is a few KiB).
const MAX_BODY: usize = 1024 * 1024;
/// Members that make a binding public.
const PUBLIC_MEMBERS: &[&str] = &["allUsers", "allAuthenticatedUsers"];

#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    #[error("{EMULATOR_ENV} is not a host:port or URL: {0}")]
    BadEmulator(String),
    #[error("no GCP credentials: {0}")]
    Credentials(String),
    #[error("{0:?} is not a bucket name (3-63 lowercase letters, digits, -, _ and .)")]
    BadBucket(String),
    #[error("{operation}: {message}")]
    Call {
        operation: &'static str,
        status: Option<u16>,
        message: String,
    },
    #[error("{what} does not exist")]
    NotFound { what: String },
    #[error("{operation}: the answer is not what the API documents: {message}")]
    Unreadable {
        operation: &'static str,
        message: String,
    },
    #[error("{0} is not a resource the GCP auditor reads yet")]
    Unsupported(String),
}

impl CallFailure for GcpError {
    fn http_status(&self) -> Option<u16> {
        match self {
            GcpError::Call { status, .. } => *status,
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, GcpError::Call { status, .. } if status.is_none_or(|s| s == 429 || s >= 500))
    }
}

/// Live auditor for one set of GCP credentials.
pub struct GcpAuditor {
    endpoint: String,
    credentials: Option<google_cloud_auth::credentials::Credentials>,
    http: reqwest::Client,
    observe: CallObserver,
}

impl std::fmt::Debug for GcpAuditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpAuditor")
            .field("endpoint", &self.endpoint)
            .field("authenticated", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl GcpAuditor {
    /// Endpoint and credentials from the environment (see the module comment).
    pub fn new(observe: CallObserver) -> Result<GcpAuditor, GcpError> {
        let (endpoint, credentials) = match std::env::var(EMULATOR_ENV) {
            Ok(h) if !h.trim().is_empty() => (emulator_url(h.trim())?, None),
            _ => (
                API.to_string(),
                Some(
                    google_cloud_auth::credentials::Builder::default()
                        .with_scopes(["https://www.googleapis.com/auth/devstorage.read_only"])
                        .build()
                        .map_err(|e| GcpError::Credentials(e.to_string()))?,
                ),
            ),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| GcpError::Credentials(format!("HTTP client: {e}")))?;
        Ok(GcpAuditor {
            endpoint,
            credentials,
            http,
            observe,
        })
    }

    /// The live posture of `r`; a failed read is a posture with `error` set.
    pub async fn audit(&self, r: &CloudResource, now: DateTime<Utc>) -> Posture {
        let read = match r {
            CloudResource::GcsBucket(b) => self.bucket(b).await,
            other => Err(GcpError::Unsupported(other.to_string())),
        };
        match read {
            Ok(mut p) => {
                p.observed_at = Some(now);
                p
            }
            Err(e) => Posture::failed(r.clone(), e.to_string(), now),
        }
    }

    async fn bucket(&self, bucket: &str) -> Result<Posture, GcpError> {
        if !valid_bucket(bucket) {
            return Err(GcpError::BadBucket(bucket.to_string()));
        }
        let what = format!("gs://{bucket}");
        let meta = self
            .get(
                "GetBucket",
                &format!("{}/storage/v1/b/{bucket}", self.endpoint),
                &what,
            )
            .await?;
        expect_kind("GetBucket", &meta, "storage#bucket")?;
        // Version 3: buckets with IAM Conditions refuse lower versions.
        let policy = self
            .get(
                "GetBucketIamPolicy",
                &format!(
                    "{}/storage/v1/b/{bucket}/iam?optionsRequestedPolicyVersion=3",
                    self.endpoint
                ),
                &what,
            )
            .await?;
        expect_kind("GetBucketIamPolicy", &policy, "storage#policy")?;
        let bindings = bindings_of(&policy).map_err(|message| GcpError::Unreadable {
            operation: "GetBucketIamPolicy",
            message,
        })?;
        let mut p = Posture::new(CloudResource::GcsBucket(bucket.to_string()), Source::Live);
        p.public_access = Some(PublicAccess {
            exposures: public_bindings(&bindings),
            guard: Some(guard(&meta)),
        });
        let kms = meta
            .pointer("/encryption/defaultKmsKeyName")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty());
        p.encryption_at_rest = Some(EncryptionAtRest {
            // Cloud Storage encrypts every object; only the key's owner varies.
            enabled: true,
            algorithm: Some(kms.map_or("Google-managed key".to_string(), |k| format!("CMEK {k}"))),
            customer_managed_key: kms.is_some(),
        });
        p.access_logging = Some(
            meta.pointer("/logging/logBucket")
                .and_then(Value::as_str)
                .is_some_and(|b| !b.is_empty()),
        );
        Ok(p)
    }

    /// One GET with retries on throttling and server errors; the JSON answer.
    async fn get(&self, operation: &'static str, url: &str, what: &str) -> Result<Value, GcpError> {
        let result = retried(&self.observe, "storage", operation, || {
            self.get_once(operation, url)
        })
        .await;
        match result {
            Err(GcpError::Call {
                status: Some(404), ..
            }) => Err(GcpError::NotFound {
                what: what.to_string(),
            }),
            other => other,
        }
    }

    async fn get_once(&self, operation: &'static str, url: &str) -> Result<Value, GcpError> {
        let call = |status: Option<u16>, message: String| GcpError::Call {
            operation,
            status,
            message,
        };
        let mut req = self.http.get(url);
        if let Some(c) = &self.credentials {
            let headers = match c.headers(http::Extensions::new()).await {
                Ok(google_cloud_auth::credentials::CacheableResource::New { data, .. }) => data,
                Ok(google_cloud_auth::credentials::CacheableResource::NotModified) => {
                    return Err(GcpError::Credentials("no token was given".into()));
                }
                Err(e) => return Err(GcpError::Credentials(e.to_string())),
            };
            req = req.headers(headers);
        }
        let rsp = req.send().await.map_err(|e| call(None, error_chain(&e)))?;
        let status = rsp.status();
        let body = read_bounded(rsp, MAX_BODY)
            .await
            .map_err(|e| call(Some(status.as_u16()), e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .unwrap_or_else(|| text.to_string());
            let message = one_line(&message, 300);
            return Err(call(
                Some(status.as_u16()),
                format!("HTTP {status}: {message}"),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| GcpError::Unreadable {
            operation,
            message: e.to_string(),
        })
    }
}

/// `STORAGE_EMULATOR_HOST` as a base URL: `host:port` means plain HTTP, as in Google's clients.
fn emulator_url(h: &str) -> Result<String, GcpError> {
    let url = if h.starts_with("http://") || h.starts_with("https://") {
        h.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", h.trim_end_matches('/'))
    };
    match reqwest::Url::parse(&url) {
        Ok(u) if u.host().is_some() && (u.path() == "/" || u.path().is_empty()) => Ok(url),
        _ => Err(GcpError::BadEmulator(h.to_string())),
    }
}

/// Bucket names as Cloud Storage allows them; anything else could steer the request path.
fn valid_bucket(b: &str) -> bool {
    (3..=222).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c))
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && !b.contains("..")
}

/// The answer is the resource the API documents (`kind`), not an error or another document
/// that happens to parse.
fn expect_kind(operation: &'static str, v: &Value, kind: &str) -> Result<(), GcpError> {
    if v.get("kind").and_then(Value::as_str) == Some(kind) && v.get("error").is_none() {
        Ok(())
    } else {
        Err(GcpError::Unreadable {
            operation,
            message: format!("expected an object of kind {kind}"),
        })
    }
}

/// The bindings of a policy, each an object with a `role` and a list of `members` (strings):
/// any other shape is unreadable, never "no public members".
pub fn bindings_of(policy: &Value) -> Result<Vec<Value>, String> {
    let bindings = match policy.get("bindings") {
        None => return Ok(Vec::new()),
        Some(Value::Array(b)) => b,
        Some(_) => return Err("bindings is not a list".into()),
    };
    for b in bindings {
        let role_ok = b.get("role").is_some_and(Value::is_string);
        let members_ok = b
            .get("members")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().all(Value::is_string));
        if !(role_ok && members_ok) {
            return Err("a binding without a role and a list of members".into());
        }
    }
    Ok(bindings.clone())
}

/// `role granted to allUsers` for every binding that names a public member (compared without
/// case: a member spelled `allusers` is read as the public one it looks like).
pub fn public_bindings(bindings: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for b in bindings {
        let role = b.get("role").and_then(Value::as_str).unwrap_or("a role");
        let members = b
            .get("members")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for m in members.iter().filter_map(Value::as_str) {
            if let Some(m) = PUBLIC_MEMBERS.iter().find(|p| p.eq_ignore_ascii_case(m)) {
                let cond = if b.get("condition").is_some() {
                    " (under a condition)"
                } else {
                    ""
                };
                out.push(format!("IAM grants {role} to {m}{cond}"));
            }
        }
    }
    out
}

/// The bucket's guard against becoming public: public access prevention `enforced`. Without
/// it, and with fine-grained ACLs (no uniform bucket-level access), an object ACL can make an
/// object public too.
pub fn guard(meta: &Value) -> Result<(), String> {
    let pap = meta
        .pointer("/iamConfiguration/publicAccessPrevention")
        .and_then(Value::as_str)
        .unwrap_or("unspecified");
    if pap == "enforced" {
        return Ok(());
    }
    let uniform = meta
        .pointer("/iamConfiguration/uniformBucketLevelAccess/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut why = format!("public access prevention is {pap}, not enforced");
    if !uniform {
        why.push_str(", and uniform bucket-level access is off (object ACLs can grant allUsers)");
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shapes from the Cloud Storage JSON API reference (Buckets: getIamPolicy, Bucket resource).
    #[test]
    fn public_members_and_the_guard_as_the_api_documents_them() {
        let bindings = json!([
            {"role": "roles/storage.legacyBucketOwner", "members": ["projectOwner:p"]},
            {"role": "roles/storage.objectViewer", "members": ["allUsers", "user:a@example.com"]},
            {"role": "roles/storage.objectCreator", "members": ["allAuthenticatedUsers"],
             "condition": {"title": "t", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')"}}
        ]);
        assert_eq!(
            public_bindings(bindings.as_array().unwrap()),
            vec![
                "IAM grants roles/storage.objectViewer to allUsers",
                "IAM grants roles/storage.objectCreator to allAuthenticatedUsers (under a condition)",
            ]
        );
        let enforced = json!({"iamConfiguration": {"publicAccessPrevention": "enforced",
            "uniformBucketLevelAccess": {"enabled": false}}});
        assert_eq!(guard(&enforced), Ok(()));
        let inherited = json!({"iamConfiguration": {"publicAccessPrevention": "inherited",
            "uniformBucketLevelAccess": {"enabled": true}}});
        assert_eq!(
            guard(&inherited),
            Err("public access prevention is inherited, not enforced".into())
        );
        let e = guard(&json!({})).unwrap_err();
        assert!(
            e.contains("unspecified") && e.contains("object ACLs"),
            "{e}"
        );
    }

    #[test]
    fn odd_policies_are_unreadable_never_private() {
        for bad in [
            json!({"kind": "storage#policy", "bindings": "allUsers"}),
            json!({"kind": "storage#policy", "bindings": [{"role": "r", "members": "allUsers"}]}),
            json!({"kind": "storage#policy", "bindings": [{"members": ["allUsers"]}]}),
            json!({"kind": "storage#policy", "bindings": [null]}),
        ] {
            assert!(bindings_of(&bad).is_err(), "{bad}");
        }
        for bad in [
            json!(null),
            json!([]),
            json!({"error": {"code": 403}}),
            json!({"kind": "storage#bucket"}),
        ] {
            assert!(
                expect_kind("GetBucketIamPolicy", &bad, "storage#policy").is_err(),
                "{bad}"
            );
        }
        let odd_case = json!([{"role": "roles/storage.objectViewer", "members": ["allusers"]}]);
        assert_eq!(
            public_bindings(odd_case.as_array().unwrap()),
            vec!["IAM grants roles/storage.objectViewer to allUsers"]
        );
    }

    #[test]
    fn emulator_hosts_and_bucket_names() {
        assert_eq!(
            emulator_url("127.0.0.1:4443").unwrap(),
            "http://127.0.0.1:4443"
        );
        assert_eq!(
            emulator_url("https://gcs.local/").unwrap(),
            "https://gcs.local"
        );
        assert!(emulator_url("http://h/path").is_err());
        assert!(valid_bucket("my-bucket.example_1"));
        for bad in ["a", "UPPER", "x/../y", "a..b", "-lead", "has space"] {
            assert!(!valid_bucket(bad), "{bad}");
        }
    }
}
