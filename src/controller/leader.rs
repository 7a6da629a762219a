//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica writes
//! statuses, reports and events. Every replica keeps serving the webhook.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

/// Campaign forever; `tx` carries whether this replica leads.
pub async fn campaign(client: Client, cfg: LeaderConfig, tx: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut observed: Option<Observed> = None;
    loop {
        let leading = match try_acquire_or_renew(&api, &cfg, &mut observed).await {
            Ok(l) => l,
            Err(e) => {
                // Not a passing hiccup to a person running onus: without the Lease nothing is
                // audited and no status is written (a missing namespace is the usual cause).
                tracing::error!(error = %e, lease = %cfg.name, namespace = %cfg.namespace, "leader election: cannot take or renew the Lease; this replica does not reconcile");
                false
            }
        };
        // Only a change wakes the reconcile loop.
        tx.send_if_modified(|current| {
            let changed = *current != leading;
            if changed {
                tracing::info!(identity = %cfg.identity, leading, "leadership changed");
                *current = leading;
            }
            changed
        });
        tokio::time::sleep(cfg.renew_every).await;
    }
}

/// The Lease record as last seen, and when this replica saw it change. Expiry is measured on
/// the local clock from that moment, as client-go does: the holder's clock is never compared
/// with ours.
struct Observed {
    record: String,
    since: std::time::Instant,
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    cfg: &LeaderConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let duration = cfg.lease_duration.as_secs() as i32;
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let record = format!(
        "{:?}",
        (
            lease.metadata.resource_version.as_deref(),
            lease.spec.as_ref().and_then(|s| s.holder_identity.clone()),
            lease.spec.as_ref().and_then(|s| s.renew_time.clone()),
        )
    );
    if observed.as_ref().is_none_or(|o| o.record != record) {
        *observed = Some(Observed {
            record,
            since: std::time::Instant::now(),
        });
    }
    let unchanged_for = observed
        .as_ref()
        .map_or(Duration::ZERO, |o| o.since.elapsed());
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let held_for =
        Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration).max(0) as u64);
    let expired = spec.renew_time.is_none() || unchanged_for > held_for;
    if holder != cfg.identity && !expired && !holder.is_empty() {
        return Ok(false);
    }
    if holder != cfg.identity {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(cfg.identity.clone());
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration);
    // resourceVersion makes this a compare-and-swap: two replicas cannot both win.
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Give the Lease up (on shutdown), so another replica takes over at once rather than after
/// the lease duration. Only a Lease this replica holds is touched.
pub async fn release(client: Client, namespace: &str, name: &str, identity: &str) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let Ok(Some(mut lease)) = api.get_opt(name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(identity) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(lease = %name, "leader lease released"),
        Err(e) => tracing::warn!(lease = %name, error = %e, "cannot release the leader lease"),
    }
}
