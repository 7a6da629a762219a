//! `onus check --live`: audit the cloud resources the manifests reference, before judging.
//! AWS with the standard credential chain (and `AWS_ENDPOINT_URL`); Azure with workload
//! identity, a service principal or managed identity (and `ONUS_AZURE_BLOB_ENDPOINT` /
//! `ONUS_AZURE_STORAGE_KEY` for emulators); GCP with application default credentials (and
//! `STORAGE_EMULATOR_HOST`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::baseline::BaselineSet;
use crate::cloud::aws::AwsAuditor;
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

/// Audit every resource that objects in namespaces baselined for its provider use; results go
/// into `inventory.live`. A failure to set up an auditor makes each of its resources an
/// `error`.
pub fn audit(
    objects: &[&Object],
    baselines: &BaselineSet,
    inventory: &mut Inventory,
    default_ns: &str,
    now: DateTime<Utc>,
) {
    let mut aws_wanted: BTreeSet<CloudResource> = BTreeSet::new();
    let mut aws_settings = None;
    // Azure and GCP: the first baseline's credentials per provider, and what they audit.
    let mut others: Vec<(Credentials, BTreeSet<CloudResource>)> = Vec::new();
    for obj in objects {
        let ns = obj.namespace().unwrap_or(default_ns);
        let bs = baselines.for_namespace(ns, &inventory.namespace_labels(ns));
        if let Some(aws) = bs.iter().find(|b| b.provider == Provider::Aws) {
            aws_settings.get_or_insert_with(|| {
                (
                    aws.aws_region.clone(),
                    aws.aws_role_arn.clone(),
                    aws.aws_account.clone(),
                )
            });
        }
        for b in bs.iter().filter(|b| b.provider != Provider::Aws) {
            if !others.iter().any(|(o, _)| o.provider() == b.provider) {
                others.push((Credentials::of(b), BTreeSet::new()));
            }
        }
        let baselined = |p: Provider| bs.iter().any(|b| b.provider == p);
        for r in references(obj, inventory).0 {
            let p = r.resource.provider();
            if !baselined(p) {
                continue;
            }
            if p == Provider::Aws {
                aws_wanted.insert(r.resource);
            } else if let Some((_, wanted)) = others.iter_mut().find(|(c, _)| c.provider() == p) {
                wanted.extend(r.resource.parent());
                wanted.insert(r.resource);
            }
        }
    }
    if aws_settings.is_none() && others.is_empty() {
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let all = others.into_iter().flat_map(|(_, w)| w);
            for r in aws_wanted.into_iter().chain(all) {
                inventory.live.replace(Posture::failed(
                    r,
                    format!("starting the async runtime: {e}"),
                    now,
                ));
            }
            return;
        }
    };
    // Every provider at once, under one deadline.
    let postures: Vec<Posture> = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let aws = async {
            match aws_settings {
                Some((region, role, account)) => {
                    audit_aws(region, role, account, &aws_wanted, now, deadline).await
                }
                None => Vec::new(),
            }
        };
        let rest = futures::future::join_all(
            others
                .iter()
                .map(|(credentials, wanted)| audit_with(credentials, wanted, now, deadline)),
        );
        let (mut all, rest) = futures::future::join(aws, rest).await;
        all.extend(rest.into_iter().flatten());
        all
    });
    let audited: BTreeSet<&CloudResource> = postures.iter().map(|p| &p.resource).collect();
    let late: Vec<Posture> = aws_wanted
        .iter()
        .chain(others.iter().flat_map(|(_, w)| w))
        .filter(|r| !audited.contains(r))
        .map(|r| {
            Posture::failed(
                r.clone(),
                format!(
                    "not audited within {} s (the --live deadline): the endpoint is slow or does not answer",
                    DEADLINE.as_secs()
                ),
                now,
            )
        })
        .collect();
    let postures: Vec<Posture> = postures.into_iter().chain(late).collect();
    for p in postures {
        if let CloudResource::AwsAccount(a) = &p.resource {
            inventory.aws_account = Some(a.clone());
        }
        inventory.live.replace(p);
    }
}

async fn audit_aws(
    region: Option<String>,
    role: Option<String>,
    account: Option<String>,
    wanted: &BTreeSet<CloudResource>,
    now: DateTime<Utc>,
    deadline: tokio::time::Instant,
) -> Vec<Posture> {
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
        .buffer_unordered(CONCURRENCY)
        .take_until(tokio::time::sleep_until(deadline))
        .collect()
        .await
}

async fn audit_with(
    credentials: &Credentials,
    wanted: &BTreeSet<CloudResource>,
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
    futures::stream::iter(wanted.iter())
        .map(|r| auditor.audit(r, now))
        .buffer_unordered(CONCURRENCY)
        .take_until(tokio::time::sleep_until(deadline))
        .collect()
        .await
}
