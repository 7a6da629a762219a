//! `onus check --live`: audit the AWS resources the manifests reference, with the standard
//! credential chain (and `AWS_ENDPOINT_URL`), before judging.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::baseline::BaselineSet;
use crate::cloud::aws::{AwsAuditor, no_observer};
use crate::engine::references;
use crate::inventory::Inventory;
use crate::model::Provider;
use crate::object::Object;
use crate::posture::{CloudResource, Posture};

/// Audit every AWS resource that objects in AWS-baselined namespaces use; results go into
/// `inventory.live`. A failure to set up the auditor makes every such resource an `error`.
pub fn audit(
    objects: &[&Object],
    baselines: &BaselineSet,
    inventory: &mut Inventory,
    default_ns: &str,
    now: DateTime<Utc>,
) {
    let mut wanted: BTreeSet<CloudResource> = BTreeSet::new();
    let mut settings = None;
    for obj in objects {
        let ns = obj.namespace().unwrap_or(default_ns);
        let bs = baselines.for_namespace(ns, &inventory.namespace_labels(ns));
        let Some(aws) = bs.iter().find(|b| b.provider == Provider::Aws) else {
            continue;
        };
        settings.get_or_insert_with(|| {
            (
                aws.aws_region.clone(),
                aws.aws_role_arn.clone(),
                aws.aws_account.clone(),
            )
        });
        wanted.extend(
            references(obj, inventory)
                .0
                .into_iter()
                .map(|r| r.resource)
                .filter(|r| r.provider() == Provider::Aws),
        );
    }
    let Some((region, role, account)) = settings else {
        return;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            for r in wanted {
                inventory.live.replace(Posture::failed(
                    r,
                    format!("starting the async runtime: {e}"),
                    now,
                ));
            }
            return;
        }
    };
    let postures: Vec<Posture> = runtime.block_on(async {
        let auditor = match AwsAuditor::new(region, role, no_observer()).await {
            Ok(a) => a,
            Err(e) => {
                return wanted
                    .iter()
                    .map(|r| Posture::failed(r.clone(), format!("AWS auditor: {e}"), now))
                    .collect();
            }
        };
        let account = match account {
            Some(a) => Some(a),
            None => auditor.account_id().await.ok(),
        };
        let mut all: Vec<CloudResource> = wanted.iter().cloned().collect();
        all.extend(account.map(CloudResource::AwsAccount));
        futures::stream::iter(all.iter())
            .map(|r| auditor.audit(r, now))
            .buffer_unordered(16)
            .collect()
            .await
    });
    for p in postures {
        if let CloudResource::AwsAccount(a) = &p.resource {
            inventory.aws_account = Some(a.clone());
        }
        inventory.live.replace(p);
    }
}
