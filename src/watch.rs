//! Watches that keep the index fresh: baselines, namespaces, ServiceAccounts, ConfigMaps,
//! NetworkPolicies, and the declared cloud kinds that the API server actually serves.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::discovery::Discovery;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};

use crate::declared::DECLARED_KINDS;
use crate::index::{Index, Snapshot, Stored, slim};
use crate::object::{Object, ObjectRef};

/// A change for the index.
#[derive(Debug)]
pub enum Change {
    Upsert(Stored),
    Delete(ObjectRef),
    /// A watch listed everything of one kind (start or restart).
    Replace {
        api_version: String,
        kind: String,
        objects: Vec<Stored>,
        /// Set once the index holds these objects.
        synced: Arc<AtomicBool>,
    },
}

/// Kinds that are always watched: (group, version, kind, plural).
const CORE_KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "onus.dev",
        "v1alpha1",
        "ResponsibilityBaseline",
        "responsibilitybaselines",
    ),
    (
        "onus.dev",
        "v1alpha1",
        "ClusterResponsibilityBaseline",
        "clusterresponsibilitybaselines",
    ),
    // Audited postures, published by the leader: every replica judges from these.
    ("onus.dev", "v1alpha1", "CloudResource", "cloudresources"),
    ("", "v1", "Namespace", "namespaces"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("", "v1", "ConfigMap", "configmaps"),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    // Judged kinds, for the reconcile loop.
    ("", "v1", "Pod", "pods"),
    ("", "v1", "Service", "services"),
    ("", "v1", "ReplicationController", "replicationcontrollers"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    ("storage.k8s.io", "v1", "StorageClass", "storageclasses"),
];

/// Kinds only needed to resolve names of declared resources.
const CONTEXT_KINDS: &[(&str, &str)] = &[("storage.azure.com", "StorageAccountsBlobService")];

fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn to_object(ar: &ApiResource, d: DynamicObject) -> Option<Object> {
    // Pods, ReplicaSets and Jobs made by a controller are judged through their owner.
    let owned = d
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true));
    if owned && matches!(ar.kind.as_str(), "Pod" | "ReplicaSet" | "Job") {
        return None;
    }
    let mut body = serde_json::to_value(&d).ok()?;
    // List responses may omit apiVersion and kind on items.
    body["apiVersion"] = ar.api_version.clone().into();
    body["kind"] = ar.kind.clone().into();
    Object::from_value(slim(body), None).ok()
}

/// Which watches are failing, and since when: `/readyz` and the metrics read it.
#[derive(Debug, Default)]
pub struct WatchHealth {
    failing: std::sync::Mutex<std::collections::BTreeMap<String, std::time::Instant>>,
}

impl WatchHealth {
    fn failed(&self, kind: &str) {
        let mut f = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        f.entry(kind.to_string())
            .or_insert_with(std::time::Instant::now);
    }

    fn recovered(&self, kind: &str) {
        let mut f = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if f.remove(kind).is_some() {
            tracing::info!(%kind, "watch recovered");
        }
    }

    /// Watches failing for longer than `bound`, with for how long.
    pub fn failing_longer_than(&self, bound: Duration) -> Vec<(String, Duration)> {
        let f = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        f.iter()
            .map(|(k, since)| (k.clone(), since.elapsed()))
            .filter(|(_, d)| *d > bound)
            .collect()
    }
}

/// Watch one kind until the channel closes, retrying with backoff.
async fn watch_kind(
    client: Client,
    ar: ApiResource,
    tx: mpsc::Sender<(std::time::Instant, Change)>,
    synced: Arc<AtomicBool>,
    health: Arc<WatchHealth>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let mut buffer = Vec::new();
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let name = format!("{}.{}", ar.plural, ar.group);
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            health.recovered(&name);
        }
        let change = match event {
            Ok(Event::Init) => {
                buffer.clear();
                continue;
            }
            Ok(Event::InitApply(d)) => {
                buffer.extend(to_object(&ar, d).map(Stored::from));
                continue;
            }
            // The index marks the kind synced once it holds these objects.
            Ok(Event::InitDone) => Change::Replace {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
                objects: std::mem::take(&mut buffer),
                synced: synced.clone(),
            },
            Ok(Event::Apply(d)) => match to_object(&ar, d) {
                Some(o) => Change::Upsert(o.into()),
                None => continue,
            },
            Ok(Event::Delete(d)) => match to_object(&ar, d) {
                Some(o) => Change::Delete(o.id),
                None => continue,
            },
            Err(e) => {
                health.failed(&name);
                tracing::warn!(kind = %ar.kind, group = %ar.group, error = %e, "watch failed; retrying");
                continue;
            }
        };
        if tx.send((std::time::Instant::now(), change)).await.is_err() {
            return;
        }
    }
}

/// Runs every watch and publishes snapshots. `ready` turns true once every initial watch (the
/// core kinds and the declared kinds served at start) has listed its objects and a snapshot
/// with them is published.
pub struct Watches {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub ready: Arc<AtomicBool>,
    pub health: Arc<WatchHealth>,
    pub lag: Arc<IndexLag>,
}

/// How far the published snapshot is behind what the watches received: since when the oldest
/// change not yet in a snapshot has waited. A busy index answers fast from an old snapshot, and
/// no other probe would notice.
#[derive(Debug, Default)]
pub struct IndexLag {
    pending_since: std::sync::Mutex<Option<std::time::Instant>>,
}

impl IndexLag {
    fn received(&self, at: std::time::Instant) {
        let mut p = self.pending_since.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|since| at < since) {
            *p = Some(at);
        }
    }

    fn published(&self) {
        *self.pending_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How long the oldest unpublished change has waited (zero when none waits).
    pub fn current(&self) -> Duration {
        self.pending_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |since| since.elapsed())
    }
}

/// Start the watches. The returned future runs them (and rediscovery) until it is dropped.
pub fn start(
    client: Client,
    posture_max_age: Duration,
    rediscover_every: Duration,
) -> (Watches, impl std::future::Future<Output = ()> + Send) {
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let ready = Arc::new(AtomicBool::new(false));
    let health = Arc::new(WatchHealth::default());
    let lag = Arc::new(IndexLag::default());
    let watches = Watches {
        snapshots: snap_rx,
        ready: ready.clone(),
        health: health.clone(),
        lag: lag.clone(),
    };
    let run = async move {
        let (tx, rx) = mpsc::channel::<(std::time::Instant, Change)>(1024);
        let mut tasks = tokio::task::JoinSet::new();
        let mut started: BTreeSet<(String, String)> = BTreeSet::new();
        let mut core_synced = Vec::new();
        for (g, v, k, p) in CORE_KINDS {
            let flag = Arc::new(AtomicBool::new(false));
            core_synced.push(flag.clone());
            started.insert((g.to_string(), k.to_string()));
            tasks.spawn(watch_kind(
                client.clone(),
                api_resource(g, v, k, p),
                tx.clone(),
                flag,
                health.clone(),
            ));
        }
        // The declared kinds served at start gate readiness as the core kinds do: a replica
        // that has not listed the ACK Policies in a namespace would judge without them. Kinds
        // that appear later are watched when discovered.
        let mut backoff = Duration::from_secs(1);
        let first = loop {
            match discover_declared(&client, &started).await {
                Ok(found) => break found,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "discovery of declared cloud kinds failed; not ready until it succeeds");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        };
        for ar in first {
            tracing::info!(group = %ar.group, kind = %ar.kind, "watching declared cloud kind");
            let flag = Arc::new(AtomicBool::new(false));
            core_synced.push(flag.clone());
            started.insert((ar.group.clone(), ar.kind.clone()));
            tasks.spawn(watch_kind(
                client.clone(),
                ar,
                tx.clone(),
                flag,
                health.clone(),
            ));
        }
        let max_age = chrono::Duration::from_std(posture_max_age).unwrap_or(chrono::Duration::MAX);
        // The index and its rebuilds are CPU work: they get a thread of their own, so a busy
        // cluster slows the snapshots down, never the webhook's async workers.
        let (stopped_tx, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::runtime::Handle::current();
        let spawned = std::thread::Builder::new()
            .name("onus-index".into())
            .spawn(move || {
                handle.block_on(keep_index(rx, snap_tx, ready, core_synced, max_age, lag));
                let _ = stopped_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the index thread");
            return;
        }
        let mut discover = tokio::time::interval_at(
            tokio::time::Instant::now() + rediscover_every,
            rediscover_every,
        );
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = discover.tick() => {
                    let found = discover_declared(&client, &started).await.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "discovery of declared cloud kinds failed; retrying later");
                        Vec::new()
                    });
                    for ar in found {
                        tracing::info!(group = %ar.group, kind = %ar.kind, "watching declared cloud kind");
                        started.insert((ar.group.clone(), ar.kind.clone()));
                        tasks.spawn(watch_kind(client.clone(), ar, tx.clone(), Arc::new(AtomicBool::new(false)), health.clone()));
                    }
                }
            }
        }
    };
    (watches, run)
}

/// Shortest time between two snapshots; a rebuild that takes longer than this waits as long as
/// it took, so rebuilding uses at most half a core however busy the cluster is.
const MIN_REBUILD_GAP: Duration = Duration::from_millis(50);

/// Apply changes to the index and publish snapshots, until every sender is gone.
async fn keep_index(
    mut rx: mpsc::Receiver<(std::time::Instant, Change)>,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    ready: Arc<AtomicBool>,
    core_synced: Vec<Arc<AtomicBool>>,
    max_age: chrono::Duration,
    lag: Arc<IndexLag>,
) {
    let mut index = Index::default();
    let mut dirty = true;
    let mut problems: Vec<String> = Vec::new();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            change = rx.recv() => {
                let Some((received, change)) = change else {
                    return;
                };
                lag.received(received);
                match change {
                    Change::Upsert(o) => index.upsert(o),
                    Change::Delete(id) => index.delete(&id),
                    Change::Replace { api_version, kind, objects, synced } => {
                        index.replace_kind(&api_version, &kind, objects);
                        synced.store(true, Ordering::Release);
                    }
                }
                dirty = true;
            }
            () = tokio::time::sleep_until(next), if dirty => {
                let began = tokio::time::Instant::now();
                let snap = index.snapshot(max_age);
                // Say what cannot be used, once per change, not once per rebuild.
                for p in snap.problems.iter().filter(|p| !problems.contains(*p)) {
                    tracing::error!(problem = %p, "an object onus reads cannot be used");
                }
                problems.clone_from(&snap.problems);
                let _ = snap_tx.send(Arc::new(snap));
                let waited = lag.current();
                if waited > Duration::from_secs(5) {
                    tracing::warn!(seconds = waited.as_secs_f64(), "the index is behind: a snapshot came out this long after the oldest change in it");
                }
                lag.published();
                dirty = false;
                next = tokio::time::Instant::now() + MIN_REBUILD_GAP.max(began.elapsed());
                if core_synced.iter().all(|f| f.load(Ordering::Acquire)) && !ready.swap(true, Ordering::AcqRel) {
                    tracing::info!(objects = index.len(), "watches synced; ready");
                }
            }
        }
    }
}

/// Declared (and context) kinds that the server serves and that are not watched yet.
async fn discover_declared(
    client: &Client,
    started: &BTreeSet<(String, String)>,
) -> Result<Vec<ApiResource>, kube::Error> {
    let mut wanted: HashMap<&str, Vec<&str>> = HashMap::new();
    for (g, k, _) in DECLARED_KINDS {
        wanted.entry(g).or_default().push(k);
    }
    for (g, k) in CONTEXT_KINDS {
        wanted.entry(g).or_default().push(k);
    }
    let groups: Vec<&str> = wanted.keys().copied().collect();
    let discovery = Discovery::new(client.clone()).filter(&groups).run().await?;
    let mut out = Vec::new();
    for (group, kinds) in wanted {
        let Some(api_group) = discovery.get(group) else {
            continue;
        };
        for kind in kinds {
            if started.contains(&(group.to_string(), kind.to_string())) {
                continue;
            }
            if let Some((ar, _)) = api_group.recommended_kind(kind) {
                out.push(ar);
            }
        }
    }
    Ok(out)
}
