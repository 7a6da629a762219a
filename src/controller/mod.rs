//! The reconcile loop: for each namespace with a baseline, find the cloud resources its
//! workloads use, audit their live posture, judge everything, and write what was found to the
//! baseline status, an OpenReports Report, Events and metrics.
//!
//! Only the leader (a Lease) reconciles; every replica serves the webhook, which reads the
//! same posture cache through the snapshots.

mod cache;
mod leader;
mod publish;
mod reconcile;
pub mod report;
mod status;

pub use cache::PostureCache;
pub use leader::{LeaderConfig, campaign, release};
pub use reconcile::{AuditSettings, Context, run_pass};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Reconcile forever while leading: a pass every `interval`.
pub async fn run(ctx: Arc<Context>, mut leading: watch::Receiver<bool>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = leading.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
        if !*leading.borrow() {
            continue;
        }
        run_pass(&ctx).await;
    }
}

/// Errors of one namespace's reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("writing to the API server: {0}")]
    Kube(#[from] kube::Error),
}
