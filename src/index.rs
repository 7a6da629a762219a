//! The index: every object onus watches, and the snapshot the engine reads.
//!
//! Pure: the watch plumbing feeds it upserts and deletes; the webhook reads published snapshots.
//! Rebuilding the snapshot from the objects keeps merged facts (several objects declaring one
//! bucket) correct when any of them changes or goes away.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::api::{Action, CloudResourceObject, object_name};
use crate::baseline::{BaselineSet, EffectiveBaseline};
use crate::check::is_judged_kind;
use crate::declared::is_declared_kind;
use crate::engine::{Verdict, evaluate};
use crate::inventory::{DeclaredMemo, Inventory};
use crate::object::{Object, ObjectRef};
use crate::posture::CloudResource;

/// An object as the index keeps it.
///
/// Objects that every snapshot reads (baselines, ServiceAccounts, ConfigMaps, declared cloud
/// resources) stay parsed. Objects that only the reconcile pass reads, once per pass (workloads,
/// Services, Ingresses, StorageClasses), are kept as their JSON text: a parsed Deployment costs
/// about ten times its text in map nodes, and clusters hold tens of thousands of them.
#[derive(Clone, Debug)]
pub enum Stored {
    Parsed(Arc<Object>),
    Packed(Arc<Packed>),
    /// A `CloudResource` object, read into its type once when it arrives.
    Cloud(Arc<Cloud>),
}

/// A `CloudResource` object as the index keeps it.
#[derive(Debug)]
pub struct Cloud {
    id: ObjectRef,
    /// The resource its spec names.
    pub resource: CloudResource,
    pub object: CloudResourceObject,
}

/// A `CloudResource` object read into its type, or why it cannot be.
fn read_cloud(o: &Object) -> Result<(CloudResource, CloudResourceObject), String> {
    let object: CloudResourceObject =
        serde_json::from_value(o.body.clone()).map_err(|e| e.to_string())?;
    let resource = object.spec.resource()?;
    // Only the object the leader writes counts: another one for the same resource (made by hand,
    // or by anyone else who may create them) must not shadow it.
    let name = object_name(&resource);
    if o.id.name != name {
        return Err(format!(
            "ignored: the CloudResource for {resource} is named {name}, and only onus writes it"
        ));
    }
    Ok((resource, object))
}

/// An object's identity and its JSON text.
#[derive(Debug)]
pub struct Packed {
    id: ObjectRef,
    json: Box<str>,
}

impl From<Object> for Stored {
    fn from(o: Object) -> Stored {
        // One that cannot be read stays parsed, and the snapshot reports it.
        if is_cloud_resource(&o)
            && let Ok((resource, object)) = read_cloud(&o)
        {
            return Stored::Cloud(Arc::new(Cloud {
                id: o.id,
                resource,
                object,
            }));
        }
        if !packs(&o.id) {
            return Stored::Parsed(Arc::new(o));
        }
        match serde_json::to_string(&o.body) {
            Ok(json) => Stored::Packed(Arc::new(Packed {
                id: o.id,
                json: json.into(),
            })),
            Err(_) => Stored::Parsed(Arc::new(o)),
        }
    }
}

impl Stored {
    pub fn id(&self) -> &ObjectRef {
        match self {
            Stored::Parsed(o) => &o.id,
            Stored::Packed(p) => &p.id,
            Stored::Cloud(c) => &c.id,
        }
    }

    /// The object, parsed again when it was packed.
    pub fn object(&self) -> Result<Cow<'_, Object>, serde_json::Error> {
        match self {
            Stored::Parsed(o) => Ok(Cow::Borrowed(o.as_ref())),
            Stored::Packed(p) => Ok(Cow::Owned(Object {
                id: p.id.clone(),
                body: serde_json::from_str(&p.json)?,
            })),
            Stored::Cloud(c) => Ok(Cow::Owned(Object {
                id: c.id.clone(),
                body: serde_json::to_value(&c.object)?,
            })),
        }
    }

    fn parsed(&self) -> Option<&Arc<Object>> {
        match self {
            Stored::Parsed(o) => Some(o),
            Stored::Packed(_) | Stored::Cloud(_) => None,
        }
    }

    fn cloud(&self) -> Option<&Arc<Cloud>> {
        match self {
            Stored::Cloud(c) => Some(c),
            _ => None,
        }
    }
}

fn is_cloud_resource(o: &Object) -> bool {
    o.group() == "onus.dev" && o.kind() == "CloudResource"
}

/// Judged kinds that the inventory does not read: only the reconcile pass parses them.
fn packs(id: &ObjectRef) -> bool {
    let (group, kind) = (id.group(), id.kind.as_str());
    is_judged_kind(group, kind)
        && !matches!((group, kind), ("", "ServiceAccount"))
        && !is_declared_kind(group, kind)
}

/// Objects by identity.
#[derive(Default, Debug)]
pub struct Index {
    objects: BTreeMap<ObjectRef, Stored>,
    declared: DeclaredMemo,
}

impl Index {
    pub fn upsert(&mut self, obj: impl Into<Stored>) {
        let stored = obj.into();
        // An update that changes nothing onus keeps (a status write, a resync) keeps the old
        // object, and with it what was derived from it.
        if let (Some(new), Some(Stored::Parsed(old))) =
            (stored.parsed(), self.objects.get(stored.id()))
            && old.body == new.body
        {
            return;
        }
        self.objects.insert(stored.id().clone(), stored);
    }

    pub fn delete(&mut self, id: &ObjectRef) {
        self.objects.remove(id);
    }

    /// Replace every object of one kind (a watch restarted and listed again).
    pub fn replace_kind(&mut self, api_version: &str, kind: &str, objects: Vec<Stored>) {
        self.objects
            .retain(|id, _| !(id.api_version == api_version && id.kind == kind));
        for o in objects {
            self.upsert(o);
        }
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Declared objects analysed so far, all snapshots together.
    pub fn declared_analysed(&self) -> u64 {
        self.declared.analysed
    }

    /// Build the snapshot the engine reads. Live postures come from the `CloudResource` objects;
    /// each expires `posture_max_age` after its audit.
    pub fn snapshot(&mut self, posture_max_age: chrono::Duration) -> Snapshot {
        let mut baselines = BaselineSet::default();
        let mut problems = Vec::new();
        let mut counts = BaselineCounts::default();
        let parsed = || self.objects.values().filter_map(Stored::parsed);
        let mut broken = Vec::new();
        for o in parsed().filter(|o| o.group() == "onus.dev" && !is_cloud_resource(o)) {
            let kind = o.kind();
            match add_stored(
                &mut baselines,
                kind,
                &o.id.name,
                o.namespace(),
                &o.body,
                "default",
            ) {
                None if kind == "ResponsibilityBaseline" => counts.namespaced += 1,
                None => counts.cluster += 1,
                Some(b) => {
                    // Stored anyway (made while onus was down, or past an older CRD schema): it
                    // must not silently unguard its namespaces.
                    problems.push(format!("{}: {}", o.id, b.error));
                    broken.push(b);
                    if o.namespace().is_some() {
                        counts.invalid_namespaced += 1;
                    } else {
                        counts.invalid_cluster += 1;
                    }
                }
            }
        }
        let objects = &self.objects;
        let mut inventory = Inventory::from_shared(
            objects
                .values()
                .filter_map(Stored::parsed)
                .filter(|o| o.group() != "onus.dev"),
            &mut self.declared,
        );
        let mut cloud = BTreeMap::new();
        let mut oldest_audit: Option<DateTime<Utc>> = None;
        for c in self.objects.values().filter_map(Stored::cloud) {
            if let Some(p) = c
                .object
                .status
                .as_ref()
                .and_then(|s| s.posture(&c.resource, posture_max_age))
            {
                // Unused resources are not re-audited; their age says nothing about the audits.
                let used = c
                    .object
                    .status
                    .as_ref()
                    .is_some_and(|s| s.unused_since.is_none());
                if let Some(at) = p.observed_at.filter(|_| used) {
                    oldest_audit = Some(oldest_audit.map_or(at, |o| o.min(at)));
                }
                inventory.live.replace(p);
            }
            cloud.insert(c.resource.clone(), c.clone());
        }
        for o in parsed().filter(|o| is_cloud_resource(o)) {
            if let Err(e) = read_cloud(o) {
                problems.push(format!("{}: {e}", o.id));
            }
        }
        let mut judged: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for (id, o) in self
            .objects
            .iter()
            .filter(|(id, _)| is_judged_kind(id.group(), &id.kind))
        {
            judged
                .entry(id.namespace.clone().unwrap_or_default())
                .or_default()
                .push(o.clone());
        }
        let baseline_objects = parsed()
            .filter(|o| o.group() == "onus.dev" && !is_cloud_resource(o))
            .map(|o| {
                let name = match o.namespace() {
                    Some(ns) => format!("{}/{ns}/{}", o.kind(), o.id.name),
                    None => format!("{}/{}", o.kind(), o.id.name),
                };
                (name, o.clone())
            })
            .collect();
        Snapshot {
            baselines,
            inventory,
            problems,
            counts,
            judged,
            baseline_objects,
            cloud,
            oldest_audit,
            broken,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaselineCounts {
    pub namespaced: usize,
    pub cluster: usize,
    /// Stored but impossible to compile, namespaced and cluster-scoped.
    pub invalid_namespaced: usize,
    pub invalid_cluster: usize,
}

/// Add a stored baseline object to `set`. One that cannot be compiled is added as its last
/// valid version (`status.lastValidSpec`, written by the leader) when that compiles, and is
/// returned as broken either way.
pub fn add_stored(
    set: &mut BaselineSet,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    body: &serde_json::Value,
    default_namespace: &str,
) -> Option<BrokenBaseline> {
    let error = crate::baseline::add_object(set, kind, name, body, default_namespace).err()?;
    let last_valid = body
        .pointer("/status/lastValidSpec")
        .filter(|s| s.is_object())
        .map(|spec| {
            let mut b = body.clone();
            b["spec"] = spec.clone();
            b
        });
    let under_last_valid = last_valid.is_some_and(|b| {
        crate::baseline::add_object(set, kind, name, &b, default_namespace).is_ok()
    });
    let mut broken = BrokenBaseline::new(kind, name, namespace, body, error);
    broken.under_last_valid = under_last_valid;
    Some(broken)
}

impl BrokenBaseline {
    pub fn new(
        kind: &str,
        name: &str,
        namespace: Option<&str>,
        body: &serde_json::Value,
        error: String,
    ) -> BrokenBaseline {
        let action = match body
            .pointer("/spec/action")
            .and_then(serde_json::Value::as_str)
        {
            Some("Warn") => Action::Warn,
            Some("Audit") => Action::Audit,
            _ => Action::Deny,
        };
        BrokenBaseline {
            name: match namespace {
                Some(ns) => format!("{kind}/{ns}/{name}"),
                None => format!("{kind}/{name}"),
            },
            namespace: namespace.map(str::to_string),
            action,
            error,
            under_last_valid: false,
        }
    }

    /// What a person should read about it.
    pub fn describe(&self) -> String {
        if self.under_last_valid {
            format!(
                "{} cannot be compiled: {}; judged under its last valid spec until it is fixed",
                self.name, self.error
            )
        } else {
            format!("{} cannot be compiled: {}", self.name, self.error)
        }
    }
}

/// A baseline the API server stores but onus cannot compile.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokenBaseline {
    /// `ResponsibilityBaseline/NAMESPACE/NAME` or `ClusterResponsibilityBaseline/NAME`.
    pub name: String,
    /// Its namespace; `None` for a cluster baseline, which may cover any namespace.
    pub namespace: Option<String>,
    /// Its `spec.action` when readable, else Deny.
    pub action: Action,
    pub error: String,
    /// Its last valid spec (from its status) applies in its place.
    pub under_last_valid: bool,
}

/// Of `broken`, those that may cover `ns`, given the baselines that apply there.
pub fn covering<'a>(
    broken: &'a [BrokenBaseline],
    ns: &str,
    applying: &[Arc<EffectiveBaseline>],
) -> Vec<&'a BrokenBaseline> {
    broken
        .iter()
        .filter(|b| match b.namespace.as_deref() {
            Some(n) => n == ns,
            None => !b.under_last_valid || applying.iter().any(|e| e.name == b.name),
        })
        .collect()
}

/// A namespace younger than this may have baselines the watches have not delivered yet.
const NEW_NAMESPACE_SECONDS: i64 = 30;

/// What the engine reads at one point in time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub baselines: BaselineSet,
    pub inventory: Inventory,
    /// Baselines that could not be compiled, with why.
    pub problems: Vec<String>,
    pub counts: BaselineCounts,
    /// Objects of judged kinds, by namespace ("" for cluster-scoped ones).
    pub judged: BTreeMap<String, Vec<Stored>>,
    /// Baseline objects by `EffectiveBaseline::name`, for their status.
    pub baseline_objects: BTreeMap<String, Arc<Object>>,
    /// `CloudResource` objects by the resource they describe.
    pub cloud: BTreeMap<CloudResource, Arc<Cloud>>,
    /// When the oldest live posture in the snapshot was audited.
    pub oldest_audit: Option<DateTime<Utc>>,
    /// Baselines that cannot be compiled.
    pub broken: Vec<BrokenBaseline>,
}

impl Snapshot {
    /// Judge one object under the baselines of its namespace (cluster-scoped objects: the cluster
    /// baselines without a namespace selector).
    pub fn judge(&self, obj: &Object, now: DateTime<Utc>) -> Vec<Verdict> {
        let ns = obj.namespace().unwrap_or("");
        let labels = if ns.is_empty() {
            BTreeMap::new()
        } else {
            self.inventory.namespace_labels(ns)
        };
        let applying = self.baselines.for_namespace(ns, &labels);
        let refs: Vec<&EffectiveBaseline> = applying.iter().map(|b| b.as_ref()).collect();
        evaluate(obj, &refs, &self.inventory, now)
    }

    /// Judge one object under the given baselines (read from the API server just now).
    pub fn judge_with(
        &self,
        obj: &Object,
        baselines: &[Arc<EffectiveBaseline>],
        now: DateTime<Utc>,
    ) -> Vec<Verdict> {
        let refs: Vec<&EffectiveBaseline> = baselines.iter().map(|b| b.as_ref()).collect();
        evaluate(obj, &refs, &self.inventory, now)
    }

    /// The snapshot cannot vouch for this namespace's baselines: it has not seen the namespace,
    /// or saw it created so recently that its baselines may still be on their way.
    pub fn unconfirmed(&self, ns: &str, now: DateTime<Utc>) -> bool {
        match self.inventory.namespace_created(ns) {
            None => !self.inventory.knows_namespace(ns),
            Some(at) => now - at < chrono::Duration::seconds(NEW_NAMESPACE_SECONDS),
        }
    }

    /// Broken baselines that may cover `ns`: its own, and broken cluster baselines, which cover
    /// every namespace (their selector cannot be trusted either) unless they are judged under a
    /// last valid version, whose selector then says where they apply.
    pub fn broken_for(&self, ns: &str) -> Vec<&BrokenBaseline> {
        let applying = self
            .baselines
            .for_namespace(ns, &self.inventory.namespace_labels(ns));
        covering(&self.broken, ns, &applying)
    }

    /// Namespaces that have at least one baseline.
    pub fn guarded(&self, ns: &str) -> bool {
        !self
            .baselines
            .for_namespace(ns, &self.inventory.namespace_labels(ns))
            .is_empty()
    }
}

/// Strip what onus never reads, to keep cached objects small.
pub fn slim(mut body: serde_json::Value) -> serde_json::Value {
    // Baselines keep their status and generation: the controller writes and compares them.
    let ours = body
        .get("apiVersion")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|v| v.starts_with("onus.dev/"));
    // Declared cloud kinds keep the cloud id their controller reports (ACK's `status.id`, a
    // security group's `sg-...`): references use it.
    let cloud_id = body.pointer("/status/id").cloned();
    if let Some(map) = body.as_object_mut()
        && !ours
    {
        map.remove("status");
        if let Some(id) = cloud_id {
            map.insert("status".into(), serde_json::json!({ "id": id }));
        }
    }
    // A Namespace keeps its creation time: a young one is confirmed on the request path.
    let namespace = body.get("kind").and_then(serde_json::Value::as_str) == Some("Namespace");
    if !namespace && let Some(meta) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("creationTimestamp");
    }
    if let Some(meta) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for field in [
            "managedFields",
            "uid",
            "selfLink",
            "ownerReferences",
            "finalizers",
        ] {
            meta.remove(field);
        }
        // Status writes to onus's own objects carry it as a precondition.
        if !ours {
            meta.remove("resourceVersion");
        }
        if !ours {
            meta.remove("generation");
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
            ann.remove("deployment.kubernetes.io/revision");
        }
    }
    body
}

/// Object counts per kind, for logs and metrics.
pub fn kinds(index: &Index) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for id in index.objects.keys() {
        *out.entry(id.kind.clone()).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX_AGE: chrono::Duration = chrono::Duration::minutes(15);

    fn obj(v: serde_json::Value) -> Object {
        Object::from_value(v, None).unwrap()
    }

    #[test]
    fn workloads_are_packed_and_read_back_whole() {
        let mut idx = Index::default();
        let deploy = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},
            "spec":{"template":{"spec":{"serviceAccountName":"web","containers":[{"name":"app","image":"nginx:latest"}]}}}});
        idx.upsert(obj(deploy.clone()));
        let sa = json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"web","namespace":"shop",
            "annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::123456789012:role/web"}}});
        idx.upsert(obj(sa));
        let snap = idx.snapshot(MAX_AGE);
        let judged = &snap.judged["shop"];
        assert_eq!(
            judged.len(),
            2,
            "the Deployment and the ServiceAccount are judged"
        );
        let stored = judged.iter().find(|s| s.id().kind == "Deployment").unwrap();
        assert!(matches!(stored, Stored::Packed(_)), "{stored:?}");
        assert_eq!(
            stored.object().unwrap().body,
            deploy,
            "nothing lost in packing"
        );
        let sa = judged
            .iter()
            .find(|s| s.id().kind == "ServiceAccount")
            .unwrap();
        assert!(
            matches!(sa, Stored::Parsed(_)),
            "the inventory reads ServiceAccounts"
        );
        // The packed workload still resolves its identity through the parsed ServiceAccount.
        let refs = crate::engine::references(&stored.object().unwrap(), &snap.inventory).0;
        assert!(
            refs.iter()
                .any(|r| r.resource.to_string().contains("role/web")),
            "{refs:?}"
        );
    }

    #[test]
    fn snapshot_follows_upserts_and_deletes() {
        let mut idx = Index::default();
        idx.upsert(obj(json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},"spec":{"provider":"aws","serviceModel":"iaas"}})));
        let bucket = json!({"apiVersion":"s3.services.k8s.aws/v1alpha1","kind":"Bucket","metadata":{"name":"bucket-1","namespace":"shop"},"spec":{"name":"bucket-1","acl":"public-read"}});
        idx.upsert(obj(bucket.clone()));
        let pod = obj(
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop","annotations":{"onus.dev/uses":"s3://bucket-1"}},"spec":{"containers":[]}}),
        );
        let now = Utc::now();
        let snap = idx.snapshot(MAX_AGE);
        assert!(snap.guarded("shop") && !snap.guarded("other"));
        let vs = snap.judge(&pod, now);
        assert!(
            vs.iter()
                .any(|v| v.control == crate::model::ControlId::DataPublicAccess
                    && v.result == crate::engine::Outcome::Fail)
        );
        // The bucket goes away: the reference is unknown again.
        idx.delete(&obj(bucket).id);
        let vs = idx.snapshot(MAX_AGE).judge(&pod, now);
        assert!(vs.iter().any(|v| v.rule == "unknown-posture"));
        // A pod in a namespace without baseline gets nothing.
        let other = obj(
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"other"},"spec":{"containers":[]}}),
        );
        assert!(idx.snapshot(MAX_AGE).judge(&other, now).is_empty());
    }

    #[test]
    fn postures_come_from_cloud_resource_objects_and_expire() {
        let mut idx = Index::default();
        idx.upsert(obj(json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},"spec":{"provider":"aws","serviceModel":"iaas","unknownCloudResources":"Deny"}})));
        let audited = Utc::now() - chrono::Duration::minutes(10);
        let record = |name: &str, public: bool| {
            obj(
                json!({"apiVersion":"onus.dev/v1alpha1","kind":"CloudResource","metadata":{"name":name},
                "spec":{"provider":"aws","kind":"s3-bucket","id":"shared"},
                "status":{"result":"ok","auditedAt":audited.to_rfc3339(),"public":public,
                    "posture":{"publicAccess":{"exposures": if public {vec!["ACL grant to AllUsers"]} else {vec![]},"guardOn":!public}}}}),
            )
        };
        idx.upsert(record("s3.shared", true));
        // A hand-made object for the same bucket that says "private" is ignored, and reported.
        idx.upsert(record("innocent-looking", false));
        let pod = obj(
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop","annotations":{"onus.dev/uses":"s3://shared"}},"spec":{"containers":[]}}),
        );
        let public = |vs: &[Verdict]| {
            vs.iter().any(|v| {
                v.control == crate::model::ControlId::DataPublicAccess
                    && v.result == crate::engine::Outcome::Fail
                    && v.rule != "unknown-posture"
            })
        };
        let snap = idx.snapshot(MAX_AGE);
        assert_eq!(
            snap.oldest_audit.map(|t| t.timestamp()),
            Some(audited.timestamp())
        );
        assert!(
            snap.problems.iter().any(|p| p.contains("innocent-looking")),
            "{:?}",
            snap.problems
        );
        assert!(public(&snap.judge(&pod, Utc::now())));
        // Older than the maximum age: not audited, so the baseline's Deny for unknown applies.
        let vs = idx
            .snapshot(chrono::Duration::minutes(5))
            .judge(&pod, Utc::now());
        assert!(!public(&vs), "{vs:#?}");
        let stale = vs
            .iter()
            .find(|v| v.rule == "unknown-posture")
            .expect("an unknown verdict");
        assert_eq!(stale.result, crate::engine::Outcome::Fail);
        assert!(
            stale.message.contains("audits have stopped"),
            "{}",
            stale.message
        );
        // What a manifest declares still counts when the audit is too old: an ACK Bucket that
        // says public-read is a failure, not an unknown.
        idx.upsert(obj(json!({"apiVersion":"s3.services.k8s.aws/v1alpha1","kind":"Bucket","metadata":{"name":"shared","namespace":"shop"},"spec":{"name":"shared","acl":"public-read"}})));
        let vs = idx
            .snapshot(chrono::Duration::minutes(5))
            .judge(&pod, Utc::now());
        assert!(public(&vs), "{vs:#?}");
    }

    #[test]
    fn a_declaration_counts_in_its_own_namespace_only() {
        let mut idx = Index::default();
        for ns in ["team-a", "team-b"] {
            idx.upsert(obj(json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":ns},"spec":{"provider":"aws","serviceModel":"iaas","unknownCloudResources":"Deny"}})));
        }
        // Team A declares team B's bucket as a clean, private ACK Bucket.
        idx.upsert(obj(json!({"apiVersion":"s3.services.k8s.aws/v1alpha1","kind":"Bucket","metadata":{"name":"decoy","namespace":"team-a"},
            "spec":{"name":"team-b-data","publicAccessBlock":{"blockPublicACLs":true,"ignorePublicACLs":true,"blockPublicPolicy":true,"restrictPublicBuckets":true},
                "encryption":{"rules":[{"applyServerSideEncryptionByDefault":{"sseAlgorithm":"AES256"}}]}}})));
        let pod = |ns: &str| {
            obj(
                json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":ns,"annotations":{"onus.dev/uses":"s3://team-b-data"}},"spec":{"containers":[]}}),
            )
        };
        let snap = idx.snapshot(MAX_AGE);
        let unknown = |vs: &[Verdict]| vs.iter().any(|v| v.rule == "unknown-posture");
        assert!(
            !unknown(&snap.judge(&pod("team-a"), Utc::now())),
            "known where it is declared"
        );
        assert!(
            unknown(&snap.judge(&pod("team-b"), Utc::now())),
            "not vouched for elsewhere"
        );
        // A cluster-scoped declaration (Crossplane) counts everywhere.
        idx.upsert(obj(json!({"apiVersion":"s3.aws.upbound.io/v1beta1","kind":"Bucket","metadata":{"name":"team-b-data"},"spec":{"forProvider":{"region":"us-east-1"}}})));
        let snap = idx.snapshot(MAX_AGE);
        assert!(!unknown(&snap.judge(&pod("team-b"), Utc::now())));
    }

    #[test]
    fn declared_objects_are_analysed_when_they_arrive_not_on_every_rebuild() {
        let mut idx = Index::default();
        idx.upsert(obj(json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},"spec":{"provider":"aws","serviceModel":"iaas"}})));
        let policy = |actions: &str| {
            obj(
                json!({"apiVersion":"iam.services.k8s.aws/v1alpha1","kind":"Policy","metadata":{"name":"p","namespace":"shop"},
                "spec":{"name":"p","policyDocument":format!(r#"{{"Statement":[{{"Effect":"Allow","Action":"{actions}","Resource":"*"}}]}}"#)}}),
            )
        };
        idx.upsert(policy("s3:GetObject"));
        idx.upsert(obj(json!({"apiVersion":"s3.services.k8s.aws/v1alpha1","kind":"Bucket","metadata":{"name":"b1","namespace":"shop"},"spec":{"name":"b1"}})));
        for _ in 0..5 {
            idx.snapshot(MAX_AGE);
        }
        assert_eq!(idx.declared_analysed(), 2, "each declared object once");
        // The same object again (a resync, a status write) is not news.
        idx.upsert(policy("s3:GetObject"));
        idx.snapshot(MAX_AGE);
        assert_eq!(idx.declared_analysed(), 2);
        // A new version that differs only in labels or annotations is not news either.
        let mut touched = policy("s3:GetObject");
        touched.body["metadata"]["annotations"] = json!({"controller.example.com/seen": "1"});
        idx.upsert(touched);
        idx.snapshot(MAX_AGE);
        assert_eq!(idx.declared_analysed(), 2);
        // A changed one is analysed again, and what it says now is what counts.
        idx.upsert(policy("*"));
        let snap = idx.snapshot(MAX_AGE);
        assert_eq!(idx.declared_analysed(), 3);
        let admin = snap.inventory.declared["shop"]
            .get(&CloudResource::IamPolicy("policy/p".into()))
            .expect("the policy is declared");
        assert!(format!("{admin:?}").contains("FullAdmin"), "{admin:?}");
        // A deleted one is forgotten.
        idx.delete(&policy("*").id);
        let snap = idx.snapshot(MAX_AGE);
        assert!(
            snap.inventory.declared["shop"]
                .get(&CloudResource::IamPolicy("policy/p".into()))
                .is_none()
        );
    }

    #[test]
    fn slim_drops_bulk() {
        let v = slim(
            json!({"apiVersion":"apps/v1","metadata":{"name":"x","uid":"u","generation":3,"managedFields":[{}],
            "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","keep":"1"}},"status":{"replicas":1}}),
        );
        assert!(v["metadata"].get("managedFields").is_none() && v["metadata"].get("uid").is_none());
        assert!(v.get("status").is_none());
        // A controller's cloud id stays (an ACK SecurityGroup's sg-...).
        let sg = slim(
            json!({"apiVersion":"ec2.services.k8s.aws/v1alpha1","kind":"SecurityGroup","metadata":{"name":"web"},
                "status":{"id":"sg-0123","conditions":[{"type":"ACK.ResourceSynced"}]}}),
        );
        assert_eq!(sg["status"], json!({"id": "sg-0123"}));
        assert_eq!(v["metadata"]["annotations"], json!({"keep":"1"}));
        let rb = slim(
            json!({"apiVersion":"onus.dev/v1alpha1","metadata":{"name":"b","generation":2},"status":{"summary":{}}}),
        );
        assert!(rb.get("status").is_some() && rb["metadata"]["generation"] == 2);
    }
}
