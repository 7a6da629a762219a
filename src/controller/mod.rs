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

/// While leading, between passes: as soon as the snapshot shows it (at most once a second),
/// record each compiled spec as its baseline's `lastValidSpec` and mark broken baselines
/// Invalid with their Event. Neither needs the cloud, so neither waits for a pass, which can
/// take minutes when the cloud is slow.
pub async fn record(ctx: Arc<Context>) {
    let mut snaps = ctx.snapshots.clone();
    loop {
        if snaps.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let snap = snaps.borrow_and_update().clone();
        if !ctx.leading() {
            continue;
        }
        reconcile::write_invalid(&ctx, &snap).await;
        reconcile::record_valid_specs(&ctx, &snap).await;
    }
}

/// Errors of one namespace's reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("writing to the API server: {0}")]
    Kube(#[from] kube::Error),
}
