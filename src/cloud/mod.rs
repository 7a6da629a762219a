//! Cloud auditors: live posture of the resources workloads use.
//!
//! Each auditor turns a [`crate::posture::CloudResource`] into a
//! [`crate::posture::Posture`] with `source: live`; a resource that cannot be read gives a
//! posture with `error` set (never a pass).

use std::sync::Arc;
use std::time::Duration;

pub mod aws;
pub mod azure;
pub mod azure_arm;
pub mod gcp;

/// Observes every cloud call, for `onus_cloud_requests_total{provider,service,operation,outcome}`
/// and `onus_cloud_request_duration_seconds{provider,service}`: `(service, operation, outcome,
/// duration)`, outcome `"ok"`, `"error"` or `"throttled"`. One observer serves one provider.
pub type CallObserver =
    Arc<dyn Fn(&'static str, &'static str, &'static str, Duration) + Send + Sync>;

/// An observer that ignores everything.
pub fn no_observer() -> CallObserver {
    Arc::new(|_, _, _, _| {})
}

/// An error and its sources, joined with `: ` (empty ones and repeats skipped).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let more = s.to_string();
        if !more.is_empty() && !out.contains(&more) {
            out = format!("{out}: {more}");
        }
        cur = s.source();
    }
    out
}

/// A failed call, as [`retried`] needs to know it.
pub(crate) trait CallFailure {
    /// The HTTP status the service answered with, if it answered.
    fn http_status(&self) -> Option<u16>;
    /// No answer, throttling or a server error: worth another try.
    fn retryable(&self) -> bool;
}

/// How many times [`retried`] tries a call.
const ATTEMPTS: u32 = 3;

/// Runs `once` up to three times (on no answer, throttling or a server error, with 400 ms
/// then 800 ms between tries), reporting every try to `observe`.
pub(crate) async fn retried<T, E, Fut>(
    observe: &CallObserver,
    service: &'static str,
    operation: &'static str,
    mut once: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: CallFailure,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        let start = std::time::Instant::now();
        let result = once().await;
        let outcome = match &result {
            Ok(_) => OUTCOME_OK,
            Err(e) if e.http_status() == Some(429) => OUTCOME_THROTTLED,
            Err(_) => OUTCOME_ERROR,
        };
        observe(service, operation, outcome, start.elapsed());
        match result {
            Err(e) if e.retryable() && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// An answer's body, read chunk by chunk and refused past `max` bytes (declared or not).
pub(crate) async fn read_bounded(
    mut rsp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    if rsp.content_length().is_some_and(|n| n > max as u64) {
        return Err("answer too large".into());
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = rsp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > max {
            return Err("answer too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A service's error text as one line of at most `max` bytes.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    crate::text::cut(&text.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

/// Outcome labels given to the [`CallObserver`].
pub const OUTCOME_OK: &str = "ok";
pub const OUTCOME_ERROR: &str = "error";
pub const OUTCOME_THROTTLED: &str = "throttled";

/// The credentials an audit runs with, from a baseline: tenants with different credentials
/// never share an audit or an auditor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Credentials {
    Aws {
        region: Option<String>,
        role: Option<String>,
    },
    Azure {
        client_id: Option<String>,
        /// Where the storage accounts live, for management-plane facts.
        arm: Option<azure_arm::Scope>,
    },
    Gcp {
        project: Option<String>,
    },
}

impl Credentials {
    /// The credentials of a baseline.
    pub fn of(b: &crate::baseline::EffectiveBaseline) -> Credentials {
        match b.provider {
            crate::model::Provider::Aws => Credentials::Aws {
                region: b.aws_region.clone(),
                role: b.aws_role_arn.clone(),
            },
            crate::model::Provider::Azure => Credentials::Azure {
                client_id: b.azure_client_id.clone(),
                arm: b
                    .azure_subscription
                    .clone()
                    .zip(b.azure_resource_group.clone())
                    .map(|(subscription, resource_group)| azure_arm::Scope {
                        subscription,
                        resource_group,
                    }),
            },
            crate::model::Provider::Gcp => Credentials::Gcp {
                project: b.gcp_project.clone(),
            },
        }
    }

    pub fn provider(&self) -> crate::model::Provider {
        match self {
            Credentials::Aws { .. } => crate::model::Provider::Aws,
            Credentials::Azure { .. } => crate::model::Provider::Azure,
            Credentials::Gcp { .. } => crate::model::Provider::Gcp,
        }
    }

    /// How a `CloudResource` status records them (`status.auditor`).
    pub fn record(&self, account: Option<String>) -> crate::api::Auditor {
        match self {
            Credentials::Aws { region, role } => crate::api::Auditor {
                account,
                region: region.clone(),
                role: role.clone(),
                client_id: None,
            },
            Credentials::Azure { client_id, arm } => crate::api::Auditor {
                client_id: client_id.clone(),
                account: arm
                    .as_ref()
                    .map(|s| format!("{}/{}", s.subscription, s.resource_group)),
                ..Default::default()
            },
            Credentials::Gcp { project } => crate::api::Auditor {
                account: project.clone(),
                ..Default::default()
            },
        }
    }

    /// Were these the credentials of a recorded audit?
    pub fn recorded(&self, a: &crate::api::Auditor) -> bool {
        match self {
            Credentials::Aws { region, role } => {
                a.region == *region && a.role == *role && a.client_id.is_none()
            }
            Credentials::Azure { client_id, arm } => {
                a.client_id == *client_id
                    && a.account
                        == arm
                            .as_ref()
                            .map(|s| format!("{}/{}", s.subscription, s.resource_group))
                    && a.region.is_none()
                    && a.role.is_none()
            }
            Credentials::Gcp { project } => {
                a.account == *project
                    && a.client_id.is_none()
                    && a.region.is_none()
                    && a.role.is_none()
            }
        }
    }
}

/// A live auditor of one provider, for one set of credentials.
#[derive(Debug)]
pub enum Auditor {
    Aws(Box<aws::AwsAuditor>),
    Azure(azure::AzureAuditor),
    Gcp(gcp::GcpAuditor),
}

impl Auditor {
    pub async fn new(c: &Credentials, observe: CallObserver) -> Result<Auditor, String> {
        match c {
            Credentials::Aws { region, role } => {
                aws::AwsAuditor::new(region.clone(), role.clone(), observe)
                    .await
                    .map(|a| Auditor::Aws(Box::new(a)))
                    .map_err(|e| format!("AWS auditor: {e}"))
            }
            Credentials::Azure { client_id, arm } => {
                azure::AzureAuditor::new(client_id.clone(), arm.clone(), observe)
                    .map(Auditor::Azure)
                    .map_err(|e| format!("Azure auditor: {e}"))
            }
            Credentials::Gcp { .. } => gcp::GcpAuditor::new(observe)
                .map(Auditor::Gcp)
                .map_err(|e| format!("GCP auditor: {e}")),
        }
    }

    /// The live posture of `r`; a failed read is a posture with `error` set, never a pass.
    pub async fn audit(
        &self,
        r: &crate::posture::CloudResource,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::posture::Posture {
        match self {
            Auditor::Aws(a) => a.audit(r, now).await,
            Auditor::Azure(a) => a.audit(r, now).await,
            Auditor::Gcp(a) => a.audit(r, now).await,
        }
    }

    pub fn aws(&self) -> Option<&aws::AwsAuditor> {
        match self {
            Auditor::Aws(a) => Some(a),
            Auditor::Azure(_) | Auditor::Gcp(_) => None,
        }
    }
}
