//! One reconcile pass over every namespace that has a baseline.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::watch;

use crate::api::BaselineStatus;
use crate::baseline::EffectiveBaseline;
use crate::cloud::{Auditor as CloudAuditor, CallObserver, Credentials};
use crate::declared::declared;
use crate::engine::{Outcome, Verdict, evaluate, evaluate_namespace, references};
use crate::index::Snapshot;
use crate::metrics::{
    CloudCallLabels, CloudResourceLabels, CloudServiceLabels, FindingLabels, Metrics, ResultLabels,
};
use crate::model::Provider;
use crate::object::{Object, ObjectRef};
use crate::posture::{CloudResource, Posture};
use crate::text::cut;

use super::cache::AuditKey;
use super::publish::{self, Usages};
use super::report::{self, Written};
use super::status::{self, Tallies};
use super::{PostureCache, ReconcileError};

/// Events published at once.
const EVENTS_IN_FLIGHT: usize = 16;

/// How audits run.
#[derive(Clone, Debug)]
pub struct AuditSettings {
    /// How long a cloud audit result is trusted.
    pub posture_ttl: std::time::Duration,
    /// How many cloud audits run at once.
    pub concurrency: usize,
    /// How long a `CloudResource` nothing uses is kept before it is deleted.
    pub unused_grace: std::time::Duration,
}

/// Shared by every pass.
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub cache: PostureCache,
    pub recorder: Recorder,
    pub settings: AuditSettings,
    /// Whether this replica holds the Lease: a pass stops writing the moment it does not.
    leading: watch::Receiver<bool>,
    /// The missing OpenReports CRD was reported once.
    no_report_crd: std::sync::atomic::AtomicBool,
    /// Status writes happen when content changes, and at least this often (lastAuditTime).
    pub status_refresh: std::time::Duration,
    auditors: tokio::sync::Mutex<HashMap<Credentials, Result<Arc<CloudAuditor>, String>>>,
    accounts: tokio::sync::Mutex<HashMap<Credentials, Option<String>>>,
    state: Mutex<PassState>,
}

/// What earlier passes wrote, to write only differences.
#[derive(Default)]
struct PassState {
    findings: HashMap<String, BTreeSet<FindingKey>>,
    finding_labels: HashMap<String, Vec<FindingLabels>>,
    statuses: HashMap<String, (BaselineStatus, Instant)>,
    reported: BTreeSet<String>,
    resource_labels: Vec<CloudResourceLabels>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FindingKey {
    control: &'static str,
    rule: &'static str,
    object: ObjectRef,
    cloud: Option<String>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Metrics,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        recorder: Recorder,
        settings: AuditSettings,
        leading: watch::Receiver<bool>,
    ) -> Context {
        Context {
            leading,
            no_report_crd: Default::default(),
            client,
            metrics,
            snapshots,
            cache: PostureCache::new(settings.posture_ttl),
            recorder,
            status_refresh: settings.posture_ttl,
            settings,
            auditors: Default::default(),
            accounts: Default::default(),
            state: Default::default(),
        }
    }

    /// Still the leader? Checked between namespaces and before every write, so a replica that
    /// lost its Lease mid-pass does not overwrite what the new leader writes.
    pub(super) fn leading(&self) -> bool {
        *self.leading.borrow()
    }

    fn observer(&self, provider: Provider) -> CallObserver {
        let m = self.metrics.clone();
        Arc::new(
            move |service: &'static str,
                  operation: &'static str,
                  outcome: &'static str,
                  took: std::time::Duration| {
                m.cloud_requests
                    .get_or_create(&CloudCallLabels {
                        provider: provider.as_str().into(),
                        service: service.into(),
                        operation: operation.into(),
                        outcome: outcome.into(),
                    })
                    .inc();
                m.cloud_request_duration
                    .get_or_create(&CloudServiceLabels {
                        provider: provider.as_str().into(),
                        service: service.into(),
                    })
                    .observe(took.as_secs_f64());
            },
        )
    }

    async fn auditor(&self, key: &Credentials) -> Result<Arc<CloudAuditor>, String> {
        let mut auditors = self.auditors.lock().await;
        if let Some(a) = auditors.get(key) {
            return a.clone();
        }
        let made = CloudAuditor::new(key, self.observer(key.provider()))
            .await
            .map(Arc::new);
        if let Err(e) = &made {
            tracing::warn!(error = %e, credentials = ?key, "cannot set up the auditor");
        }
        auditors.insert(key.clone(), made.clone());
        made
    }

    /// The account audits run in: the baseline's `aws.accountId`, else the credentials' account.
    async fn account(&self, key: &Credentials, declared: Option<&str>) -> Result<String, String> {
        if let Some(a) = declared {
            return Ok(a.to_string());
        }
        let mut accounts = self.accounts.lock().await;
        if let Some(Some(a)) = accounts.get(key) {
            return Ok(a.clone());
        }
        let found = match self.auditor(key).await {
            Ok(a) => match a.aws() {
                Some(a) => a.account_id().await.map_err(|e| {
                    tracing::warn!(error = %e, "cannot read the AWS account id");
                    format!("cannot read the AWS account id (STS GetCallerIdentity): {e}")
                }),
                None => Err("not AWS credentials".to_string()),
            },
            Err(e) => Err(e),
        };
        // A failed lookup is retried on the next pass.
        if let Ok(a) = &found {
            accounts.insert(key.clone(), Some(a.clone()));
        }
        found
    }

    /// The posture of `r` from the cache, else from what is published (a new leader does not
    /// audit again what its predecessor audited within the TTL), else audited now.
    async fn audit(
        &self,
        k: &AuditKey,
        published: Option<&Posture>,
        now: DateTime<Utc>,
    ) -> (Posture, bool) {
        let (r, key) = k;
        self.cache
            .get(k, published, now, || async {
                match self.auditor(key).await {
                    Ok(a) => a.audit(r, now).await,
                    Err(e) => Posture::failed(r.clone(), e, now),
                }
            })
            .await
    }
}

/// What an earlier leader published for this resource, when it read it with these credentials.
fn published_by<'a>(snap: &'a Snapshot, (r, key): &AuditKey) -> Option<&'a Posture> {
    let auditor = snap
        .cloud
        .get(r)?
        .object
        .status
        .as_ref()?
        .auditor
        .as_ref()?;
    key.recorded(auditor)
        .then(|| snap.inventory.live.get(r))
        .flatten()
}

/// The credentials of the namespace's baseline for `provider`.
fn credentials(bs: &[Arc<EffectiveBaseline>], provider: Provider) -> Option<Credentials> {
    bs.iter()
        .find(|b| b.provider == provider)
        .map(|b| Credentials::of(b))
}

/// Reconcile every namespace with a baseline, then write baseline statuses.
pub async fn run_pass(ctx: &Context) {
    let started = Instant::now();
    let snap = ctx.snapshots.borrow().clone();
    let now = Utc::now();

    // 1. Which namespaces, under which baselines.
    let mut candidates: BTreeSet<String> = snap
        .judged
        .keys()
        .filter(|k| !k.is_empty())
        .cloned()
        .collect();
    candidates.extend(snap.inventory.namespaces().map(str::to_string));
    candidates.extend(
        snap.baseline_objects
            .values()
            .filter_map(|o| o.namespace().map(str::to_string)),
    );
    let mut plan: BTreeMap<String, Vec<Arc<EffectiveBaseline>>> = BTreeMap::new();
    for ns in candidates {
        let bs = snap
            .baselines
            .for_namespace(&ns, &snap.inventory.namespace_labels(&ns));
        if !bs.is_empty() {
            plan.insert(ns, bs);
        }
    }

    // 2. The cloud resources their objects use or declare; AWS ones audited once per set of
    //    credentials (the namespace's baseline), so tenants with different roles never share an
    //    audit.
    let mut usages = Usages::default();
    // Which objects declare which resources: analysing declared objects (IAM documents) is CPU
    // work, kept off the async workers like judging is, so probes and reviews keep answering.
    let declarers = {
        let (snap, namespaces) = (snap.clone(), plan.keys().cloned().collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || {
            let mut out: Vec<(CloudResource, String)> = Vec::new();
            for ns in &namespaces {
                for obj in unpacked(&snap, ns) {
                    if let Some(d) = declared(&obj, &snap.inventory) {
                        let by = cut(&format!("{}/{ns}/{}", obj.kind(), obj.id.name), 256);
                        out.push((d.posture.resource, by));
                    }
                }
            }
            out
        })
        .await
    };
    match declarers {
        Ok(found) => {
            for (resource, by) in found {
                usages.entry(&resource).declared_by.insert(by);
            }
        }
        Err(e) => {
            // Publishing without the declarers would mark declared resources unused: stop.
            tracing::error!(error = %e, "finding declared resources failed; the pass stops here");
            ctx.metrics
                .reconciles
                .get_or_create(&ResultLabels {
                    result: "error".into(),
                })
                .inc();
            return;
        }
    }
    let mut wanted: BTreeSet<AuditKey> = BTreeSet::new();
    let mut ns_account: HashMap<String, Result<String, String>> = HashMap::new();
    for (ns, bs) in &plan {
        let keys: Vec<Credentials> = Provider::ALL
            .iter()
            .filter_map(|p| credentials(bs, *p))
            .collect();
        for obj in unpacked(&snap, ns) {
            for r in references(&obj, &snap.inventory).0 {
                usages.entry(&r.resource).used_by.insert(publish::used_by(
                    ns,
                    obj.kind(),
                    &obj.id.name,
                    &r.found_at,
                ));
                if let Some(key) = keys.iter().find(|k| k.provider() == r.resource.provider()) {
                    if let Some(parent) = r.resource.parent() {
                        usages.entry(&parent).used_by.insert(publish::used_by(
                            ns,
                            obj.kind(),
                            &obj.id.name,
                            &r.found_at,
                        ));
                        wanted.insert((parent, key.clone()));
                    }
                    wanted.insert((r.resource, key.clone()));
                }
            }
        }
        let aws = bs.iter().find(|b| b.provider == Provider::Aws);
        let (Some(aws), Some(key)) = (aws, credentials(bs, Provider::Aws)) else {
            continue;
        };
        let account = ctx.account(&key, aws.aws_account.as_deref()).await;
        if let Ok(a) = &account {
            let r = CloudResource::AwsAccount(a.clone());
            usages.entry(&r);
            wanted.insert((r, key.clone()));
        }
        ns_account.insert(ns.clone(), account);
    }
    // Futures made first (they start when polled): a closure inside the stream would make this
    // future impossible to spawn (rustc cannot prove it `Send` for every lifetime).
    let audits: Vec<_> = wanted
        .iter()
        .map(|k| ctx.audit(k, published_by(&snap, k), now))
        .collect();
    let audited: Vec<(Posture, bool)> = futures::stream::iter(audits)
        .buffer_unordered(ctx.settings.concurrency.max(1))
        .collect()
        .await;
    ctx.cache.retain(|k| wanted.contains(k));
    let fresh = audited.iter().filter(|(_, a)| *a).count();
    let mut key_account: HashMap<Credentials, Option<String>> = HashMap::new();
    for (ns, bs) in &plan {
        if let Some(key) = credentials(bs, Provider::Aws) {
            let acct = ns_account.get(ns).and_then(|a| a.clone().ok());
            key_account.entry(key).or_insert(acct);
        }
    }
    // What every replica judges from: per resource, the first audit that succeeded (in the
    // order of the credentials), else the first failure. A tenant whose role cannot read a
    // bucket does not hide what another tenant's role read.
    let mut by_key: BTreeMap<Credentials, crate::posture::PostureMap> = BTreeMap::new();
    for (r, key) in &wanted {
        let live = by_key
            .entry(key.clone())
            .or_insert_with(|| ctx.cache.postures(key));
        let Some(p) = live.get(r) else {
            continue;
        };
        let usage = usages.entry(r);
        let better = match &usage.audit {
            None => true,
            Some((old, _)) => old.error.is_some() && p.error.is_none(),
        };
        if better {
            let auditor = key.record(key_account.get(key).cloned().flatten());
            usage.audit = Some((p.clone(), auditor));
        }
    }

    // 3. Judge, namespace by namespace (each on the audits of its own credentials), and write
    //    what changed.
    let mut inventory = Arc::new(snap.inventory.clone());
    let mut tallies = Tallies::new();
    for (ns, bs) in &plan {
        if !ctx.leading() {
            tracing::warn!(namespace = %ns, "leadership lost: the pass stops here");
            return;
        }
        let t = Instant::now();
        {
            // The judging task of the previous namespace has ended: no copy is made here.
            let inv = Arc::make_mut(&mut inventory);
            // The audits of this namespace's own credentials, one set per provider.
            let mut live = crate::posture::PostureMap::default();
            for key in Provider::ALL.iter().filter_map(|p| credentials(bs, *p)) {
                for p in by_key.get(&key).into_iter().flat_map(|m| m.iter()) {
                    live.replace(p.clone());
                }
            }
            inv.live = live;
            // A failed account lookup is an `error` on the account's audit trail, never silence.
            (inv.aws_account, inv.aws_account_error) = match ns_account.get(ns) {
                Some(Ok(a)) => (Some(a.clone()), None),
                Some(Err(e)) => (None, Some(e.clone())),
                None => (None, None),
            };
        }
        // Judging thousands of objects is CPU work: off the async workers, so the webhook's
        // accept loop, /metrics and /readyz keep answering during a pass.
        let judging = {
            let (snap, inventory, bs, ns) =
                (snap.clone(), inventory.clone(), bs.clone(), ns.clone());
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&EffectiveBaseline> = bs.iter().map(|b| b.as_ref()).collect();
                let mut verdicts: Vec<Verdict> = Vec::new();
                for obj in unpacked(&snap, &ns) {
                    verdicts.extend(evaluate(&obj, &refs, inventory.as_ref(), now));
                }
                verdicts.extend(evaluate_namespace(&ns, &refs, inventory.as_ref(), now));
                verdicts
            })
        };
        let verdicts = match judging.await {
            Ok(v) => v,
            Err(e) => {
                // Never write an empty report for a namespace that could not be judged.
                tracing::error!(namespace = %ns, error = %e, "judging the namespace failed");
                ctx.metrics
                    .reconciles
                    .get_or_create(&ResultLabels {
                        result: "error".into(),
                    })
                    .inc();
                continue;
            }
        };
        for v in &verdicts {
            tallies.entry(v.baseline.clone()).or_default().add(v);
        }
        usages.add_findings(&verdicts);
        let result = write_namespace(ctx, ns, &verdicts, now).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        if let Err(e) = result {
            tracing::warn!(namespace = %ns, error = %e, "reconcile failed");
        }
        ctx.metrics
            .reconciles
            .get_or_create(&ResultLabels {
                result: label.into(),
            })
            .inc();
        ctx.metrics
            .reconcile_duration
            .observe(t.elapsed().as_secs_f64());
    }

    // 4. What was audited, for every replica's webhook.
    let resources = usages.by_resource.len();
    if !ctx.leading() {
        tracing::warn!("leadership lost: the pass stops before publishing");
        return;
    }
    publish::publish(ctx, usages, now).await;

    // 5. Baseline statuses, reports of namespaces no baseline covers any more, gauges.
    write_statuses(ctx, &snap, &tallies, now).await;
    let stale: Vec<String> = {
        let mut st = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = st
            .reported
            .iter()
            .filter(|ns| !plan.contains_key(*ns))
            .cloned()
            .collect();
        for ns in &gone {
            st.reported.remove(ns);
            for l in st.finding_labels.remove(ns).unwrap_or_default() {
                ctx.metrics.findings.remove(&l);
            }
            st.findings.remove(ns);
        }
        gone
    };
    for ns in stale {
        if let Err(e) = report::delete(&ctx.client, &ns).await {
            tracing::warn!(namespace = %ns, error = %e, "cannot delete the report");
        }
    }
    let mut by_kind: BTreeMap<CloudResourceLabels, i64> = BTreeMap::new();
    for r in wanted.iter().map(|(r, _)| r).collect::<BTreeSet<_>>() {
        *by_kind
            .entry(CloudResourceLabels {
                provider: r.provider().as_str().into(),
                kind: r.kind().into(),
            })
            .or_default() += 1;
    }
    {
        let mut st = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
        for l in st.resource_labels.drain(..) {
            if !by_kind.contains_key(&l) {
                ctx.metrics.cloud_resources.remove(&l);
            }
        }
        for (l, n) in &by_kind {
            ctx.metrics.cloud_resources.get_or_create(l).set(*n);
            st.resource_labels.push(l.clone());
        }
    }
    release_free_memory();
    tracing::info!(
        namespaces = plan.len(),
        resources,
        audited = fresh,
        took_ms = started.elapsed().as_millis() as u64,
        "reconcile pass done"
    );
}

/// The judged objects of a namespace, parsed one at a time as the pass reads them.
fn unpacked<'a>(snap: &'a Snapshot, ns: &str) -> impl Iterator<Item = Cow<'a, Object>> {
    snap.judged
        .get(ns)
        .into_iter()
        .flatten()
        .filter_map(|s| match s.object() {
            Ok(o) => Some(o),
            // Packed by onus from a parsed object; failing to read it back is a bug, not input.
            Err(e) => {
                tracing::error!(object = %s.id(), error = %e, "cannot read a stored object back");
                None
            }
        })
}

async fn write_namespace(
    ctx: &Context,
    ns: &str,
    verdicts: &[Verdict],
    now: DateTime<Utc>,
) -> Result<(), ReconcileError> {
    // Findings gauge: exact counts for this namespace, stale label sets removed.
    let mut counts: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
    for v in verdicts {
        *counts
            .entry((v.control.to_string(), v.result.as_str()))
            .or_default() += 1;
    }
    let labels: Vec<FindingLabels> = counts
        .iter()
        .map(|((control, result), _)| FindingLabels {
            namespace: ns.into(),
            control: control.clone(),
            result: (*result).into(),
        })
        .collect();
    let (opened, closed) = {
        let mut st = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
        for old in st.finding_labels.remove(ns).unwrap_or_default() {
            if !labels.contains(&old) {
                ctx.metrics.findings.remove(&old);
            }
        }
        for (l, ((_, _), n)) in labels.iter().zip(counts.iter()) {
            ctx.metrics.findings.get_or_create(l).set(*n);
        }
        st.finding_labels.insert(ns.into(), labels);

        // Events only for findings that appear or clear.
        let now_failing: BTreeMap<FindingKey, &Verdict> = verdicts
            .iter()
            .filter(|v| matches!(v.result, Outcome::Fail | Outcome::Error))
            .map(|v| {
                (
                    FindingKey {
                        control: v.control.as_str(),
                        rule: v.rule,
                        object: v.resource.clone(),
                        cloud: v.cloud_resource.clone(),
                    },
                    v,
                )
            })
            .collect();
        let before = st.findings.remove(ns).unwrap_or_default();
        let opened: Vec<Verdict> = now_failing
            .iter()
            .filter(|(k, _)| !before.contains(k))
            .map(|(_, v)| (*v).clone())
            .collect();
        let closed: Vec<FindingKey> = before
            .iter()
            .filter(|k| !now_failing.contains_key(k))
            .cloned()
            .collect();
        st.findings
            .insert(ns.into(), now_failing.keys().cloned().collect());
        st.reported.insert(ns.into());
        (opened, closed)
    };
    // One API call per event: a first pass over thousands of failing workloads would take
    // minutes one by one.
    let events = opened
        .into_iter()
        .map(|v| {
            let note = format!("[{}] {}", v.control, v.message);
            (v.resource, EventType::Warning, "GapOpened", note)
        })
        .chain(closed.into_iter().map(|k| {
            let what = k.cloud.map(|c| format!(" on {c}")).unwrap_or_default();
            let note = format!("[{}] the {} finding{what} has cleared", k.control, k.rule);
            (k.object, EventType::Normal, "GapClosed", note)
        }));
    futures::stream::iter(events)
        .for_each_concurrent(EVENTS_IN_FLIGHT, |(obj, type_, reason, note)| async move {
            publish_event(ctx, &obj, type_, reason, note).await
        })
        .await;

    if !ctx.leading() {
        return Ok(());
    }
    let body = report::build(ns, verdicts, now.timestamp());
    match report::write(&ctx.client, ns, body).await? {
        Written::NoCrd => {
            if !ctx
                .no_report_crd
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    "the OpenReports Report CRD (reports.openreports.io) is not installed: findings go to baseline status, Events and metrics only"
                );
            }
        }
        Written::Written => tracing::debug!(namespace = %ns, "report updated"),
        Written::Unchanged => {}
    }
    Ok(())
}

/// One Event on `obj` (a workload, a baseline, a `CloudResource`), from the leader only.
pub(super) async fn publish_event(
    ctx: &Context,
    obj: &ObjectRef,
    type_: EventType,
    reason: &str,
    note: String,
) {
    if !ctx.leading() {
        return;
    }
    let reference = ObjectReference {
        api_version: Some(obj.api_version.clone()),
        kind: Some(obj.kind.clone()),
        name: Some(obj.name.clone()),
        namespace: obj.namespace.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(cut(&note, 1000)),
        action: "Audit".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        tracing::warn!(object = %obj, error = %e, "cannot publish event");
    }
}

/// A baseline object as the watch shows it.
pub(super) struct Recorded<'a> {
    pub object: Option<&'a Arc<Object>>,
    pub generation: Option<i64>,
    pub status: Option<BaselineStatus>,
    pub resource_version: Option<&'a str>,
}

pub(super) fn recorded<'a>(snap: &'a Snapshot, name: &str) -> Recorded<'a> {
    let object = snap.baseline_objects.get(name);
    Recorded {
        object,
        generation: object
            .and_then(|o| o.at("metadata.generation"))
            .and_then(serde_json::Value::as_i64),
        status: object
            .and_then(|o| o.at("status"))
            .and_then(|s| serde_json::from_value(s.clone()).ok()),
        resource_version: object.and_then(|o| o.str_at("metadata.resourceVersion")),
    }
}

/// Record, for each baseline that compiles, its spec as `lastValidSpec`, as soon as the
/// snapshot shows it: a broken version stored later falls back to exactly this spec.
pub(super) async fn record_valid_specs(ctx: &Context, snap: &Snapshot) {
    for b in snap.baselines.all() {
        if snap.broken.iter().any(|x| x.name == b.name) {
            continue;
        }
        let r = recorded(snap, &b.name);
        let Some(obj) = r.object else {
            continue;
        };
        let spec = status::keepable(obj.at("spec"));
        let mut next = r.status.clone().unwrap_or_default();
        if next.last_valid_spec == spec {
            continue;
        }
        next.last_valid_spec = spec;
        if !ctx.leading() {
            return;
        }
        match status::write(&ctx.client, &b.name, &next, r.resource_version).await {
            Ok(()) => tracing::debug!(baseline = %b.name, "recorded the last valid spec"),
            Err(e) => status_write_failed(ctx, &b.name, &e),
        }
    }
}

/// A status write that lost a race with an edit (409) is not a failure: the next round writes
/// from the new version.
fn status_write_failed(ctx: &Context, name: &str, e: &kube::Error) {
    if matches!(e, kube::Error::Api(s) if s.code == 409) {
        tracing::debug!(baseline = %name, "baseline changed since this status was made; written next time");
        return;
    }
    tracing::warn!(baseline = %name, error = %e, "cannot write status");
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels {
            result: "error".into(),
        })
        .inc();
}

/// Broken baselines say so in their status (Ready=False, reason Invalid) and with one Event per
/// change: nobody reads logs when a namespace silently loses its guard.
pub(super) async fn write_invalid(ctx: &Context, snap: &Snapshot) {
    for b in &snap.broken {
        let r = recorded(snap, &b.name);
        let next = status::invalid_status(
            &b.error,
            b.under_last_valid,
            r.generation,
            r.status.as_ref(),
        );
        let said = |s: &BaselineStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| (c.status.clone(), c.message.clone(), c.observed_generation))
        };
        if r.status.as_ref().and_then(said) == said(&next) || !ctx.leading() {
            continue;
        }
        tracing::error!(baseline = %b.name, error = %b.error, "baseline cannot be compiled");
        if let Err(e) = status::write(&ctx.client, &b.name, &next, r.resource_version).await {
            status_write_failed(ctx, &b.name, &e);
            continue;
        }
        if let Some(o) = r.object {
            let note = b.describe();
            publish_event(ctx, &o.id, EventType::Warning, "InvalidBaseline", note).await;
        }
    }
}

async fn write_statuses(ctx: &Context, snap: &Snapshot, tallies: &Tallies, now: DateTime<Utc>) {
    write_invalid(ctx, snap).await;
    for b in snap.baselines.all() {
        // One judged under its last valid spec is still broken: its status says so (above).
        if snap.broken.iter().any(|x| x.name == b.name) {
            continue;
        }
        let r = recorded(snap, &b.name);
        let empty = status::Tally::default();
        let next = status::status_for(
            &b,
            r.object.and_then(|o| o.at("spec")),
            tallies.get(&b.name).unwrap_or(&empty),
            r.generation,
            r.status.as_ref(),
            now,
        );
        let due = {
            let st = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
            match (st.statuses.get(&b.name), &r.status) {
                (Some((written, at)), Some(cur)) => {
                    !status::same_content(written, &next)
                        || !status::same_content(cur, &next)
                        || at.elapsed() >= ctx.status_refresh
                }
                _ => true,
            }
        };
        if !due {
            continue;
        }
        if !ctx.leading() {
            return;
        }
        match status::write(&ctx.client, &b.name, &next, r.resource_version).await {
            Ok(()) => {
                ctx.state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .statuses
                    .insert(b.name.clone(), (next, Instant::now()));
            }
            Err(e) => status_write_failed(ctx, &b.name, &e),
        }
    }
}

/// A pass allocates and frees a lot (objects judged, verdicts, reports); hand the freed pages
/// back to the OS after each pass: mimalloc's (the binary's allocator) and glibc's (what C code
/// allocates with malloc).
fn release_free_memory() {
    // SAFETY: mi_collect only frees mimalloc's unused pages; it takes no pointers.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the OS; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
