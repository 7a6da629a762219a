//! The admission webhook: an axum HTTPS server (rustls) whose handler is a thin adapter over
//! the engine, and the `ValidatingWebhookConfiguration` that routes reviews to it.

pub mod certs;
mod config;
pub mod review;

pub use config::{WebhookConfigOptions, validating_webhook_configuration};

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
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
}

/// Routes of the webhook server.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .with_state(state)
}

/// Bodies past this are cut off without reading further.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

/// Read the body up to `MAX_REVIEW_BYTES`. A larger one is read to the end and dropped, so the
/// client gets a clear 413 instead of a reset stream.
async fn read_body(body: Body) -> Result<Vec<u8>, Response> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("onus: reading the body: {e}\n"),
            )
                .into_response()
        })?;
        seen += chunk.len();
        if seen <= MAX_REVIEW_BYTES {
            buf.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > MAX_REVIEW_BYTES {
        let msg = format!(
            "onus: AdmissionReview of {seen} bytes is larger than the {MAX_REVIEW_BYTES} bytes accepted\n"
        );
        return Err((StatusCode::PAYLOAD_TOO_LARGE, msg).into_response());
    }
    Ok(buf)
}

fn count_invalid(metrics: &Metrics) {
    let labels = AdmissionLabels {
        kind: String::new(),
        operation: String::new(),
        decision: "invalid".into(),
    };
    metrics.admission_requests.get_or_create(&labels).inc();
}

async fn validate(State(state): State<WebhookState>, body: Body) -> Response {
    let started = Instant::now();
    if !state.synced.load(std::sync::atomic::Ordering::Acquire) {
        state
            .metrics
            .admission_requests
            .get_or_create(&AdmissionLabels {
                kind: String::new(),
                operation: String::new(),
                decision: "unavailable".into(),
            })
            .inc();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "onus: not synced with the cluster yet; the webhook's failurePolicy decides\n",
        )
            .into_response();
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(resp) => {
            count_invalid(&state.metrics);
            tracing::warn!("admission review too large");
            return resp;
        }
    };
    let snapshot = state.snapshots.borrow().clone();
    let result = review::review(&body, &snapshot, chrono::Utc::now());
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
