//! `onus check --live`: audit the cloud resources the manifests reference, before judging.
//! AWS with the standard credential chain (and `AWS_ENDPOINT_URL`); Azure with workload
//! identity, a service principal or managed identity (and `ONUS_AZURE_BLOB_ENDPOINT` /
//! `ONUS_AZURE_STORAGE_KEY` for emulators); GCP with application default credentials (and
//! `STORAGE_EMULATOR_HOST`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::baseline::BaselineSet;
use crate::cloud::{Auditor, Credentials, no_observer};
use crate::engine::references;
use crate::inventory::Inventory;
use crate::model::Provider;
use crate::object::Object;
use crate::posture::{CloudResource, Posture};

/// How many audits run at once, per provider.
const CONCURRENCY: usize = 16;
/// How long the audits of one `onus check --live` may take in all: an endpoint that never
/// answers costs each audit its retries, and a run must end. What is not audited by then is
/// an `error`.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Audit every resource that objects in namespaces baselined for its provider use, with the
/// credentials of each baseline that covers it (tenants with different credentials are audited
/// apart, as the controller does); results go into `inventory.live`, merged where several
/// credentials read the same resource. A failure to set up an auditor makes each of its
/// resources an `error`.
pub fn audit(
    objects: &[&Object],
    baselines: &BaselineSet,
    inventory: &mut Inventory,
    default_ns: &str,
    now: DateTime<Utc>,
) {
    // What each set of credentials audits; AWS groups also audit the account's trails.
    let mut groups: BTreeMap<Credentials, (BTreeSet<CloudResource>, Option<String>)> =
        BTreeMap::new();
    for obj in objects {
        let ns = obj.namespace().unwrap_or(default_ns);
        let bs = baselines.for_namespace(ns, &inventory.namespace_labels(ns));
        let refs = references(obj, inventory).0;
        for b in bs.iter() {
            let group = groups.entry(Credentials::of(b)).or_default();
            if b.provider == Provider::Aws && group.1.is_none() {
                group.1 = b.aws_account.clone();
            }
            for r in refs.iter().filter(|r| r.resource.provider() == b.provider) {
                group.0.extend(r.resource.parent());
                group.0.insert(r.resource.clone());
            }
        }
    }
    if groups.is_empty() {
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            for r in groups.into_values().flat_map(|(w, _)| w) {
                inventory.live.replace(Posture::failed(
                    r,
                    format!("starting the async runtime: {e}"),
                    now,
                ));
            }
            return;
        }
    };
    // Every group at once, under one deadline.
    let postures: Vec<Vec<Posture>> = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        futures::future::join_all(groups.iter().map(|(credentials, (wanted, account))| {
            audit_with(credentials, wanted, account.clone(), now, deadline)
        }))
        .await
    });
    for ((_, (wanted, _)), mut postures) in groups.iter().zip(postures) {
        let audited: BTreeSet<CloudResource> =
            postures.iter().map(|p| p.resource.clone()).collect();
        postures.extend(wanted.iter().filter(|r| !audited.contains(r)).map(|r| {
            Posture::failed(
                r.clone(),
                format!(
                    "not audited within {} s (the --live deadline): the endpoint is slow or does not answer",
                    DEADLINE.as_secs()
                ),
                now,
            )
        }));
        for p in postures {
            if let CloudResource::AwsAccount(a) = &p.resource {
                inventory.aws_account = Some(a.clone());
            }
            // The same resource audited with other credentials too: the reads are merged fact
            // by fact (a read without management-plane facts takes nothing from one with
            // them) and a failed read wins, so that no tenant's broken credentials turn into
            // a pass for another.
            inventory.live.add(p);
        }
    }
}

async fn audit_with(
    credentials: &Credentials,
    wanted: &BTreeSet<CloudResource>,
    account: Option<String>,
    now: DateTime<Utc>,
    deadline: tokio::time::Instant,
) -> Vec<Posture> {
    let auditor = match Auditor::new(credentials, no_observer()).await {
        Ok(a) => a,
        Err(e) => {
            return wanted
                .iter()
                .map(|r| Posture::failed(r.clone(), e.clone(), now))
                .collect();
        }
    };
    let mut all: Vec<CloudResource> = wanted.iter().cloned().collect();
    if let Some(aws) = auditor.aws() {
        let account = match account {
            Some(a) => Some(a),
            None => aws.account_id().await.ok(),
        };
        all.extend(account.map(CloudResource::AwsAccount));
    }
    futures::stream::iter(all.iter())
        .map(|r| auditor.audit(r, now))
        .buffer_unordered(CONCURRENCY)
        .take_until(tokio::time::sleep_until(deadline))
        .collect()
        .await
}
