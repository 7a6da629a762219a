//! The admission webhook: an axum HTTPS server (rustls) whose handler is a thin adapter over
//! the engine, and the `ValidatingWebhookConfiguration` that routes reviews to it.

pub mod certs;
mod config;
pub mod confirm;
pub mod review;

pub use config::{WebhookConfigOptions, validating_webhook_configuration};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use tokio::sync::watch;

use crate::index::Snapshot;
use crate::metrics::{AdmissionLabels, Metrics, ViolationLabels};

/// Largest AdmissionReview accepted. etcd keeps objects under 1.5 MiB; a review carries the
/// object (and the old one on UPDATE), so anything above this is not a real review.
pub const MAX_REVIEW_BYTES: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct WebhookState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub metrics: Metrics,
    /// Every watch has listed its objects once. Before that the snapshot knows no baseline, and
    /// "allow" would be a guess: the answer is 503, and the webhook's failurePolicy decides.
    pub synced: Arc<std::sync::atomic::AtomicBool>,
    /// Reviews being judged: CPU work, at most this many at once.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Bytes of bodies buffered, in KiB permits: slow clients hold what they sent, not a slot,
    /// so a crowd of them cannot starve small, quick reviews, and memory stays bounded.
    pub buffered: Arc<tokio::sync::Semaphore>,
    /// For the baselines of namespaces the snapshot cannot vouch for yet.
    pub client: kube::Client,
    /// The user onus writes as (from a SelfSubjectReview at start), when known.
    pub onus_user: Option<Arc<str>>,
}

impl WebhookState {
    pub fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        metrics: Metrics,
        synced: Arc<std::sync::atomic::AtomicBool>,
        client: kube::Client,
    ) -> WebhookState {
        WebhookState {
            snapshots,
            metrics,
            synced,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            buffered: Arc::new(tokio::sync::Semaphore::new(MAX_BUFFERED_KIB)),
            client,
            onus_user: None,
        }
    }
}

/// Reviews judged at once (and HTTP/2 streams per connection).
pub const MAX_IN_FLIGHT: usize = 32;
/// How long a review waits for a turn when `MAX_IN_FLIGHT` are being judged.
pub const QUEUE_WAIT: Duration = Duration::from_millis(500);
/// Body bytes buffered at once, all requests together: 64 MiB.
pub const MAX_BUFFERED_KIB: usize = 64 * 1024;
/// Time to receive a whole body; the API server sends one at once.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to judge one review, below the API server's default webhook timeout (10 s) and the
/// chart's (5 s): an answer that comes later is no answer.
pub const JUDGE_DEADLINE: Duration = Duration::from_secs(4);

/// Routes of the webhook server.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .with_state(state)
}

/// Read the body up to `MAX_REVIEW_BYTES`: refused from its `Content-Length` when that is larger,
/// and cut off at the limit otherwise (chunked); never buffered past it.
async fn read_body(
    body: Body,
    declared: Option<usize>,
    budget: &Arc<tokio::sync::Semaphore>,
) -> Result<(Vec<u8>, tokio::sync::OwnedSemaphorePermit), Response> {
    let too_large = |n: String| {
        let msg = format!(
            "onus: AdmissionReview of {n} bytes is larger than the {MAX_REVIEW_BYTES} bytes accepted\n"
        );
        (StatusCode::PAYLOAD_TOO_LARGE, msg).into_response()
    };
    if let Some(n) = declared.filter(|n| *n > MAX_REVIEW_BYTES) {
        return Err(too_large(n.to_string()));
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let full = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "onus: too many bytes of reviews buffered; try again\n",
        )
            .into_response()
    };
    let mut held = budget
        .clone()
        .try_acquire_many_owned(1)
        .map_err(|_| full())?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("onus: reading the body: {e}\n"),
            )
                .into_response()
        })?;
        if buf.len() + chunk.len() > MAX_REVIEW_BYTES {
            return Err(too_large(format!("more than {MAX_REVIEW_BYTES}")));
        }
        buf.extend_from_slice(&chunk);
        // One KiB permit per KiB held (plus the one taken up front).
        let need = (buf.len() / 1024) as u32 + 1;
        if need > held.num_permits() as u32 {
            let more = budget
                .clone()
                .try_acquire_many_owned(need - held.num_permits() as u32)
                .map_err(|_| full())?;
            held.merge(more);
        }
    }
    Ok((buf, held))
}

fn count_invalid(metrics: &Metrics) {
    count(metrics, "invalid");
}

fn count(metrics: &Metrics, decision: &str) {
    let labels = AdmissionLabels {
        kind: String::new(),
        operation: String::new(),
        decision: decision.into(),
    };
    metrics.admission_requests.get_or_create(&labels).inc();
}

async fn validate(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    if !state.synced.load(std::sync::atomic::Ordering::Acquire) {
        count(&state.metrics, "unavailable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "onus: not synced with the cluster yet; the webhook's failurePolicy decides\n",
        )
            .into_response();
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let (body, bytes_held) = match tokio::time::timeout(
        BODY_TIMEOUT,
        read_body(body, declared, &state.buffered),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(resp)) => {
            count_invalid(&state.metrics);
            tracing::warn!("admission review refused: too large or unreadable");
            return resp;
        }
        Err(_) => {
            count_invalid(&state.metrics);
            tracing::warn!("admission review body not received within {BODY_TIMEOUT:?}");
            return (
                StatusCode::REQUEST_TIMEOUT,
                "onus: the body did not arrive in time\n",
            )
                .into_response();
        }
    };
    // Past the cap, wait a little for a turn (a burst of the API server's concurrent calls is
    // no reason to refuse: it does not retry a webhook, so a 429 is a denied create), then say
    // so. CPU stays bounded by the cap, memory by the buffered-bytes budget.
    let turn = tokio::time::timeout(QUEUE_WAIT, state.in_flight.clone().acquire_owned()).await;
    let Ok(Ok(permit)) = turn else {
        count(&state.metrics, "busy");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "onus: too many reviews in flight\n",
        )
            .into_response();
    };
    let snapshot = state.snapshots.borrow().clone();
    // A namespace the snapshot cannot vouch for: read its baselines now.
    let mut confirmed = None;
    if let Some(ns) = review::namespace_of(&body)
        && snapshot.unconfirmed(&ns, chrono::Utc::now())
    {
        let outcome = match confirm::baselines(&state.client, &ns).await {
            Ok(c) => {
                let found = if c.baselines.is_empty() && c.broken.is_empty() {
                    "none"
                } else {
                    "found"
                };
                confirmed = Some(c);
                found
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "cannot read a new namespace's baselines");
                "error"
            }
        };
        state
            .metrics
            .namespace_reads
            .get_or_create(&crate::metrics::OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        if outcome == "error" {
            count(&state.metrics, "unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "onus: cannot read the baselines of this new namespace; the webhook's failurePolicy decides\n",
            )
                .into_response();
        }
    }
    // Judging is CPU work: off the async workers, so one heavy review cannot stall the others
    // (or /healthz), and with a deadline. The permit goes with the work, so work that outlives
    // its deadline still counts against the cap.
    let onus_user = state.onus_user.clone();
    let judging = tokio::task::spawn_blocking(move || {
        let _permits = (permit, bytes_held);
        review::review_with(
            &body,
            &snapshot,
            confirmed.as_ref(),
            onus_user.as_deref(),
            chrono::Utc::now(),
        )
    });
    let result = match tokio::time::timeout(JUDGE_DEADLINE, judging).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            count_invalid(&state.metrics);
            tracing::error!(error = %e, "judging a review failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "onus: judging failed; the webhook's failurePolicy decides\n",
            )
                .into_response();
        }
        Err(_) => {
            count(&state.metrics, "timeout");
            tracing::warn!("judging a review took longer than {JUDGE_DEADLINE:?}");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "onus: judging took too long; the webhook's failurePolicy decides\n",
            )
                .into_response();
        }
    };
    let response = match result {
        Ok(d) => {
            state
                .metrics
                .admission_requests
                .get_or_create(&AdmissionLabels {
                    kind: d.kind.into(),
                    operation: d.operation.into(),
                    decision: d.decision.into(),
                })
                .inc();
            for (control, action) in &d.violations {
                state
                    .metrics
                    .admission_violations
                    .get_or_create(&ViolationLabels {
                        control: control.clone(),
                        action: action.as_str().into(),
                    })
                    .inc();
            }
            if d.decision == "deny" {
                tracing::info!(kind = %d.kind, operation = %d.operation, "denied");
            }
            axum::Json(d.review).into_response()
        }
        Err(e) => {
            count_invalid(&state.metrics);
            tracing::warn!(error = %e, "malformed admission review");
            (StatusCode::BAD_REQUEST, format!("onus: {e}\n")).into_response()
        }
    };
    state
        .metrics
        .admission_duration
        .observe(started.elapsed().as_secs_f64());
    response
}
