//! Publishing what the leader audited as `CloudResource` objects, which every replica watches.
//!
//! Writes happen only when content changes: `auditedAt` alone moves at most once per TTL, so a
//! steady cluster causes no write storm. What is already published is read from the watch (the
//! snapshot), so a new leader compares against the same objects the old one wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use crate::api::{
    Auditor, CloudResourceObject, CloudResourceSpec, CloudResourceStatus, MAX_FINDINGS,
    MAX_USED_BY, ResourceFinding, UsedBy, object_name,
};
use crate::engine::{Outcome, Verdict};
use crate::index::Snapshot;
use crate::metrics::OperationLabels;
use crate::object::ObjectRef;
use crate::posture::{CloudResource, Posture};
use crate::text::cut;

use super::reconcile::Context;

/// Writes to the API server at once.
const WRITES_IN_FLIGHT: usize = 16;
const MAX_FINDING_MESSAGE: usize = 512;
const MAX_FOUND_AT: usize = 256;
/// A status above this is written with its lists cut down (counts stay exact); etcd refuses
/// objects over 1.5 MiB, and a status that cannot be written is a posture nobody sees.
const MAX_STATUS_BYTES: usize = 256 * 1024;

/// What one pass learned about how a cloud resource is used.
#[derive(Debug, Default)]
pub struct Usage {
    pub used_by: BTreeSet<UsedBy>,
    pub declared_by: BTreeSet<String>,
    /// Failing and unreadable checks: (control, rule, result) -> the first message.
    pub findings: BTreeMap<(String, &'static str, &'static str), String>,
    /// The audit of this pass, and who ran it; `None` when the leader does not audit it.
    pub audit: Option<(Posture, Auditor)>,
}

/// Usage of every resource the pass saw, with lookup by the name verdicts carry.
#[derive(Debug, Default)]
pub struct Usages {
    pub by_resource: BTreeMap<CloudResource, Usage>,
    by_display: std::collections::HashMap<String, CloudResource>,
}

impl Usages {
    pub fn entry(&mut self, r: &CloudResource) -> &mut Usage {
        if !self.by_resource.contains_key(r) {
            self.by_display.insert(r.to_string(), r.clone());
        }
        self.by_resource.entry(r.clone()).or_default()
    }

    /// Record the failing verdicts about resources this pass knows.
    pub fn add_findings(&mut self, verdicts: &[Verdict]) {
        for v in verdicts {
            let result = match v.result {
                Outcome::Fail => "fail",
                Outcome::Error => "error",
                _ => continue,
            };
            // "Not audited yet" says nothing about the resource itself.
            if v.rule == "unknown-posture" {
                continue;
            }
            let Some(r) = v
                .cloud_resource
                .as_ref()
                .and_then(|c| self.by_display.get(c))
            else {
                continue;
            };
            if let Some(u) = self.by_resource.get_mut(r) {
                u.findings
                    .entry((v.control.to_string(), v.rule, result))
                    .or_insert_with(|| cut(&v.message, MAX_FINDING_MESSAGE));
            }
        }
    }
}

/// The state of a resource, for Events on the `CloudResource` itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    NotAudited,
    Good,
    Bad,
    Unreadable,
}

fn health(s: Option<&CloudResourceStatus>) -> Health {
    let Some(s) = s else {
        return Health::NotAudited;
    };
    if s.findings.iter().any(|f| f.result == "fail") {
        Health::Bad
    } else if s.result == Some(crate::api::AuditResult::Error) {
        Health::Unreadable
    } else if s.result.is_none() {
        Health::NotAudited
    } else {
        Health::Good
    }
}

/// The status a used resource should have now, or `None` when `current` already says it.
pub fn next_status(
    usage: &Usage,
    current: Option<&CloudResourceStatus>,
    ttl: chrono::Duration,
) -> Option<CloudResourceStatus> {
    let mut next = match &usage.audit {
        Some((p, auditor)) => {
            let mut s = CloudResourceStatus::audited(p);
            s.auditor = Some(auditor.clone());
            s
        }
        None => CloudResourceStatus::default(),
    };
    next.used_by = usage.used_by.iter().take(MAX_USED_BY).cloned().collect();
    next.used_by_count = usage.used_by.len() as u32;
    next.declared_by = usage
        .declared_by
        .iter()
        .take(MAX_FINDINGS)
        .cloned()
        .collect();
    next.findings = usage
        .findings
        .iter()
        .take(MAX_FINDINGS)
        .map(|((control, _, result), message)| ResourceFinding {
            control: control.clone(),
            result: (*result).to_string(),
            message: message.clone(),
        })
        .collect();
    next.finding_count = usage.findings.len() as u32;
    if serde_json::to_vec(&next).map_or(0, |v| v.len()) > MAX_STATUS_BYTES {
        next.used_by.clear();
        next.declared_by.clear();
        for f in &mut next.findings {
            f.message = cut(&f.message, 128);
        }
    }
    let Some(cur) = current else {
        return Some(next);
    };
    // The same facts audited again within a TTL: keep the published time, write nothing.
    if let (Some(was), Some(now)) = (cur.audited_at, next.audited_at)
        && now >= was
        && now - was < ttl
    {
        let mut same_time = next.clone();
        same_time.audited_at = Some(was);
        if &same_time == cur {
            return None;
        }
    }
    (&next != cur).then_some(next)
}

/// The status of a resource nothing uses any more: usage cleared, `unusedSince` set.
fn unused_status(cur: &CloudResourceStatus, now: DateTime<Utc>) -> CloudResourceStatus {
    let mut next = cur.clone();
    next.used_by.clear();
    next.used_by_count = 0;
    next.declared_by.clear();
    next.findings.clear();
    next.finding_count = 0;
    next.unused_since = Some(cur.unused_since.unwrap_or(now));
    next
}

enum Write {
    Create(CloudResourceSpec, CloudResourceStatus),
    Update(CloudResourceStatus),
    Delete,
}

/// Publish this pass's view: create, update or delete `CloudResource` objects where they differ
/// from what the watch shows.
pub async fn publish(ctx: &Context, usages: Usages, now: DateTime<Utc>) {
    let snap: Arc<Snapshot> = ctx.snapshots.borrow().clone();
    let ttl = chrono::Duration::from_std(ctx.settings.posture_ttl).unwrap_or(chrono::Duration::MAX);
    let grace =
        chrono::Duration::from_std(ctx.settings.unused_grace).unwrap_or(chrono::Duration::MAX);
    let mut writes: Vec<(CloudResource, Option<CloudResourceStatus>, Write)> = Vec::new();
    for (r, usage) in &usages.by_resource {
        let published = snap.cloud.get(r);
        let current = published.and_then(|c| c.object.status.clone());
        let Some(next) = next_status(usage, current.as_ref(), ttl) else {
            continue;
        };
        let w = match published {
            Some(_) => Write::Update(next),
            None => Write::Create(CloudResourceSpec::of(r), next),
        };
        writes.push((r.clone(), current, w));
    }
    for (r, c) in &snap.cloud {
        if usages.by_resource.contains_key(r) {
            continue;
        }
        let cur = c.object.status.clone().unwrap_or_default();
        match cur.unused_since {
            Some(since) if now - since >= grace => writes.push((r.clone(), None, Write::Delete)),
            Some(_) => {}
            None => writes.push((
                r.clone(),
                Some(cur.clone()),
                Write::Update(unused_status(&cur, now)),
            )),
        }
    }
    if writes.is_empty() {
        return;
    }
    tracing::debug!(writes = writes.len(), "publishing cloud resources");
    futures::stream::iter(writes)
        .for_each_concurrent(WRITES_IN_FLIGHT, |(r, before, w)| async move {
            write(ctx, &r, before, w).await;
        })
        .await;
}

async fn write(ctx: &Context, r: &CloudResource, before: Option<CloudResourceStatus>, w: Write) {
    if !ctx.leading() {
        return;
    }
    let api: Api<CloudResourceObject> = Api::all(ctx.client.clone());
    let name = object_name(r);
    let pp = PatchParams::apply("onus").force();
    let count = |operation: &str| {
        ctx.metrics
            .cloud_resource_writes
            .get_or_create(&OperationLabels {
                operation: operation.into(),
            })
            .inc();
    };
    let result: Result<Option<CloudResourceStatus>, kube::Error> = async {
        match w {
            Write::Delete => {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
                count("delete");
                Ok(None)
            }
            Write::Create(spec, status) => {
                let labels = json!({
                    "app.kubernetes.io/managed-by": "onus",
                    "onus.dev/provider": spec.provider.as_str(),
                    "onus.dev/kind": spec.kind.as_str(),
                });
                let obj = json!({
                    "apiVersion": "onus.dev/v1alpha1",
                    "kind": "CloudResource",
                    "metadata": {"name": name, "labels": labels},
                    "spec": spec,
                });
                match api.patch(&name, &pp, &Patch::Apply(&obj)).await {
                    Ok(_) => {}
                    // Someone made an object under this name for another resource (spec is
                    // immutable): the name is onus's, so replace it.
                    Err(kube::Error::Api(e)) if e.code == 422 => {
                        tracing::warn!(object = %name, error = %e.message, "replacing a CloudResource whose spec is not the resource its name derives from");
                        api.delete(&name, &DeleteParams::default()).await?;
                        count("delete");
                        api.patch(&name, &pp, &Patch::Apply(&obj)).await?;
                    }
                    Err(e) => return Err(e),
                }
                count("create");
                apply_status(&api, &name, &pp, &status).await?;
                count("update");
                Ok(Some(status))
            }
            Write::Update(status) => {
                apply_status(&api, &name, &pp, &status).await?;
                count("update");
                Ok(Some(status))
            }
        }
    }
    .await;
    match result {
        Ok(Some(status)) => {
            let (was, is) = (health(before.as_ref()), health(Some(&status)));
            if was != is {
                announce(ctx, r, &name, was, is, &status).await;
            }
        }
        Ok(None) => {}
        Err(e) => {
            count("error");
            tracing::warn!(resource = %r, object = %name, error = %e, "cannot publish the cloud resource");
        }
    }
}

async fn apply_status(
    api: &Api<CloudResourceObject>,
    name: &str,
    pp: &PatchParams,
    status: &CloudResourceStatus,
) -> Result<(), kube::Error> {
    let patch = json!({
        "apiVersion": "onus.dev/v1alpha1",
        "kind": "CloudResource",
        "status": status,
    });
    api.patch_status(name, pp, &Patch::Apply(&patch)).await?;
    Ok(())
}

/// One Event on the `CloudResource` when its posture turns bad, unreadable or good again.
async fn announce(
    ctx: &Context,
    r: &CloudResource,
    name: &str,
    was: Health,
    is: Health,
    status: &CloudResourceStatus,
) {
    let (type_, reason, note) = match is {
        Health::Bad => {
            let what: Vec<String> = status
                .findings
                .iter()
                .filter(|f| f.result == "fail")
                .map(|f| format!("[{}] {}", f.control, f.message))
                .collect();
            (
                EventType::Warning,
                "PostureDegraded",
                format!(
                    "{r} now fails {} check(s), used by {} object(s): {}",
                    status.finding_count,
                    status.used_by_count,
                    what.join("; ")
                ),
            )
        }
        Health::Unreadable => (
            EventType::Warning,
            "AuditFailed",
            format!(
                "{r} cannot be read: {}",
                status.message.as_deref().unwrap_or("audit failed")
            ),
        ),
        Health::Good if was != Health::NotAudited => (
            EventType::Normal,
            "PostureRestored",
            format!("{r} passes every check again"),
        ),
        _ => return,
    };
    let object = ObjectRef {
        api_version: "onus.dev/v1alpha1".into(),
        kind: "CloudResource".into(),
        namespace: None,
        name: name.to_string(),
    };
    super::reconcile::publish_event(ctx, &object, type_, reason, note).await;
}

/// One `usedBy` entry. Each part is cut: an env var name (part of `foundAt`) can be as long as
/// a manifest allows, and 50 of them must not push the object past etcd's limit.
pub fn used_by(namespace: &str, kind: &str, name: &str, found_at: &str) -> UsedBy {
    UsedBy {
        namespace: namespace.into(),
        kind: cut(kind, 64),
        name: name.into(),
        found_at: cut(found_at, MAX_FOUND_AT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::{PublicAccess, Source};

    fn audited(public: bool, at: DateTime<Utc>) -> (Posture, Auditor) {
        let mut p = Posture::new(CloudResource::S3Bucket("b".into()), Source::Live);
        p.observed_at = Some(at);
        p.public_access = Some(PublicAccess {
            exposures: if public {
                vec!["ACL grant to AllUsers".into()]
            } else {
                vec![]
            },
            guard: Some(Ok(())),
        });
        (p, Auditor::default())
    }

    fn usage(public: bool, at: DateTime<Utc>, users: usize) -> Usage {
        let mut u = Usage {
            audit: Some(audited(public, at)),
            ..Default::default()
        };
        for i in 0..users {
            u.used_by.insert(used_by(
                "shop",
                "Deployment",
                &format!("web-{i:03}"),
                "env BUCKET",
            ));
        }
        if public {
            u.findings.insert(
                ("data.public-access".into(), "acl", "fail"),
                "s3://b is public".into(),
            );
        }
        u
    }

    #[test]
    fn only_changes_and_ttl_refreshes_are_written() {
        let ttl = chrono::Duration::minutes(5);
        let t0 = Utc::now();
        let first = next_status(&usage(true, t0, 3), None, ttl).expect("created");
        assert_eq!(first.used_by_count, 3);
        assert_eq!(first.public, Some(true));
        assert_eq!(health(Some(&first)), Health::Bad);
        // Re-audited a minute later with the same facts: nothing to write.
        let t1 = t0 + chrono::Duration::minutes(1);
        assert_eq!(next_status(&usage(true, t1, 3), Some(&first), ttl), None);
        // A TTL later: the audit time is refreshed.
        let t2 = t0 + ttl;
        let refreshed = next_status(&usage(true, t2, 3), Some(&first), ttl).expect("refresh");
        assert_eq!(refreshed.audited_at, Some(t2));
        // A new user or a changed fact is written at once.
        assert!(next_status(&usage(true, t1, 4), Some(&first), ttl).is_some());
        let fixed = next_status(&usage(false, t1, 3), Some(&first), ttl).expect("fixed");
        assert_eq!(health(Some(&fixed)), Health::Good);
    }

    #[test]
    fn used_by_is_bounded_with_an_exact_count() {
        let s = next_status(
            &usage(false, Utc::now(), 120),
            None,
            chrono::Duration::minutes(5),
        )
        .unwrap();
        assert_eq!(s.used_by.len(), MAX_USED_BY);
        assert_eq!(s.used_by_count, 120);
        assert_eq!(
            s.used_by[0].name, "web-000",
            "sorted, so every leader writes the same"
        );
    }

    #[test]
    fn unused_resources_keep_their_facts_and_get_a_date() {
        let t0 = Utc::now();
        let s = next_status(&usage(true, t0, 2), None, chrono::Duration::minutes(5)).unwrap();
        let u = unused_status(&s, t0);
        assert_eq!((u.used_by_count, u.unused_since), (0, Some(t0)));
        assert_eq!(u.public, Some(true));
        // A second pass does not move the date.
        let later = unused_status(&u, t0 + chrono::Duration::minutes(3));
        assert_eq!(later.unused_since, Some(t0));
    }

    #[test]
    fn findings_come_from_failing_verdicts_on_known_resources() {
        let mut us = Usages::default();
        let r = CloudResource::S3Bucket("b".into());
        us.entry(&r);
        let v = |result, rule| Verdict {
            control: crate::model::ControlId::DataPublicAccess,
            rule,
            result,
            action: crate::api::Action::Deny,
            domain: crate::model::Domain::Data,
            owner: crate::model::Owner::Customer,
            resource: crate::object::ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("shop".into()),
                name: "web".into(),
            },
            cloud_resource: Some(r.to_string()),
            message: "public".into(),
            remediation: None,
            baseline: "b".into(),
            provider: crate::model::Provider::Aws,
            service_model: crate::model::ServiceModel::Paas,
            frameworks: std::borrow::Cow::Borrowed(crate::compliance::for_check(
                crate::model::ControlId::DataPublicAccess,
                rule,
                crate::model::Provider::Aws,
            )),
        };
        us.add_findings(&[
            v(Outcome::Fail, "acl"),
            v(Outcome::Pass, "policy"),
            v(Outcome::Warn, "unknown-posture"),
            v(Outcome::Fail, "unknown-posture"),
        ]);
        let f = &us.by_resource[&r].findings;
        assert_eq!(f.len(), 1, "{f:?}");
    }
}
