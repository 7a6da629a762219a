//! The snapshot the engine reads: ServiceAccounts, ConfigMaps, NetworkPolicies, namespaces and
//! declared cloud postures. `onus check` fills it from files; the webhook keeps it fresh from watches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::declared::{Declared, NameResolver, declared, is_declared_kind};
use crate::engine::World;
use crate::object::{Object, ObjectRef};
use crate::posture::{CloudResource, Knowledge, PostureLookup, PostureMap};
use crate::refs::ConfigMaps;

/// What each declared object said at the last build. Analysing declared objects (an IAM
/// Policy's statements above all) is the costly part of a rebuild; the index keeps the same
/// `Arc` for an object until it changes, so an unchanged object is analysed once.
#[derive(Debug, Default)]
pub struct DeclaredMemo {
    entries: HashMap<ObjectRef, (Arc<Object>, u64, Option<Declared>)>,
    /// The names they were resolved through: when these change, everything is analysed again.
    names: HashMap<(String, String, String), String>,
    /// Objects analysed, all builds together (for tests and logs).
    pub analysed: u64,
}

/// What a declared object's facts depend on: its spec and status, and the external-name
/// annotation that names the cloud resource (everything `declared()` reads).
fn fingerprint(o: &Object) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    o.id.hash(&mut h);
    o.annotation("crossplane.io/external-name").hash(&mut h);
    for part in ["spec", "status"] {
        // serde_json's Display of a Value is deterministic for the same value.
        o.body.get(part).map(|v| v.to_string()).hash(&mut h);
    }
    h.finish()
}

#[derive(Clone, Debug, Default)]
pub struct Inventory {
    service_accounts: HashMap<(String, String), Object>,
    config_maps: HashMap<(String, String), Value>,
    default_deny: HashSet<String>,
    namespace_labels: HashMap<String, BTreeMap<String, String>>,
    namespace_created: HashMap<String, chrono::DateTime<chrono::Utc>>,
    /// Cloud names of managed objects: (group, kind, name) -> external name.
    cloud_names: HashMap<(String, String, String), String>,
    /// Declared postures, merged per cloud resource, by the namespace of the declaring objects
    /// ("" for cluster-scoped ones). A declaration counts in its own namespace (cluster-scoped
    /// ones everywhere), never in another: one team's clean `Bucket` must not vouch for a
    /// bucket another team uses.
    pub declared: HashMap<String, PostureMap>,
    /// Live postures (from audits); they win over declared facts.
    pub live: PostureMap,
    /// The account of the credentials audits run with.
    pub aws_account: Option<String>,
    /// Why that account could not be found out, when it could not.
    pub aws_account_error: Option<String>,
}

impl Inventory {
    /// Build from a set of objects: first names, then everything that needs them.
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a Object> + Clone) -> Inventory {
        let mut inv = Inventory::default();
        for o in objects.clone() {
            inv.index_names(o);
        }
        for o in objects {
            inv.add(o);
        }
        inv
    }

    /// Build from the index's objects, reusing what `memo` remembers of declared objects that
    /// have not changed since the last build (nor have the names they resolve through).
    pub fn from_shared<'a>(
        objects: impl IntoIterator<Item = &'a Arc<Object>> + Clone,
        memo: &mut DeclaredMemo,
    ) -> Inventory {
        let mut inv = Inventory::default();
        for o in objects.clone() {
            inv.index_names(o);
        }
        if memo.names != inv.cloud_names {
            memo.entries.clear();
            memo.names.clone_from(&inv.cloud_names);
        }
        let mut seen = HashMap::with_capacity(memo.entries.len());
        for o in objects {
            if !is_declared_kind(o.group(), o.kind()) {
                inv.add(o);
                continue;
            }
            let (print, d) = match memo.entries.remove(&o.id) {
                Some((same, print, d)) if Arc::ptr_eq(&same, o) => (print, d),
                // A new version whose facts are the same (labels, annotations, a controller's
                // touch): what it said still holds.
                Some((_, print, d)) if print == fingerprint(o) => (print, d),
                _ => {
                    memo.analysed += 1;
                    (fingerprint(o), declared(o, &inv))
                }
            };
            if let Some(d) = &d {
                inv.add_declared(o, d.posture.clone());
            }
            seen.insert(o.id.clone(), (o.clone(), print, d));
        }
        // What is not seen again is gone from the index.
        memo.entries = seen;
        inv
    }

    fn index_names(&mut self, o: &Object) {
        let key = |n: &str| (o.group().to_string(), o.kind().to_string(), n.to_string());
        let cloud = match (o.group(), o.kind()) {
            (g, _) if g.ends_with(".aws.upbound.io") => Some(
                o.annotation("crossplane.io/external-name")
                    .unwrap_or(&o.id.name)
                    .to_string(),
            ),
            ("iam.services.k8s.aws", _) | ("s3.services.k8s.aws", _) => {
                Some(o.str_at("spec.name").unwrap_or(&o.id.name).to_string())
            }
            // A blobServices object resolves to the account that owns it.
            ("storage.azure.com", "StorageAccountsBlobService") => {
                o.str_at("spec.owner.name").map(|owner| {
                    self.cloud_names
                        .get(&(
                            "storage.azure.com".into(),
                            "StorageAccount".into(),
                            owner.to_string(),
                        ))
                        .cloned()
                        .unwrap_or_else(|| owner.to_string())
                })
            }
            ("storage.azure.com", _) | ("network.azure.com", _) => {
                Some(o.str_at("spec.azureName").unwrap_or(&o.id.name).to_string())
            }
            _ => None,
        };
        if let Some(c) = cloud {
            self.cloud_names.insert(key(&o.id.name), c);
        }
    }

    /// Add or replace one object.
    pub fn add(&mut self, o: &Object) {
        let ns = || o.namespace().unwrap_or("default").to_string();
        match (o.group(), o.kind()) {
            ("", "ServiceAccount") => {
                self.service_accounts
                    .insert((ns(), o.id.name.clone()), o.clone());
            }
            ("", "ConfigMap") => {
                let data = o
                    .at("data")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default()));
                self.config_maps.insert((ns(), o.id.name.clone()), data);
            }
            ("networking.k8s.io", "NetworkPolicy") => {
                if crate::engine::is_default_deny(&o.body) {
                    self.default_deny.insert(ns());
                }
            }
            ("", "Namespace") => {
                let labels = o
                    .at("metadata.labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                self.namespace_labels.insert(o.id.name.clone(), labels);
                if let Some(at) = o
                    .str_at("metadata.creationTimestamp")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                {
                    self.namespace_created
                        .insert(o.id.name.clone(), at.with_timezone(&chrono::Utc));
                }
            }
            _ => {
                if let Some(d) = declared(o, self) {
                    self.add_declared(o, d.posture);
                }
            }
        }
    }

    fn add_declared(&mut self, o: &Object, posture: crate::posture::Posture) {
        // Crossplane's classic managed resources are cluster-scoped (even when a file given to
        // `onus check` puts them in the default namespace).
        let ns = if o.group().ends_with(".aws.upbound.io") {
            String::new()
        } else {
            o.namespace().unwrap_or("").to_string()
        };
        self.declared.entry(ns).or_default().add(posture);
    }

    /// Namespaces seen as objects.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespace_labels.keys().map(String::as_str)
    }

    /// A Namespace object of this name has been seen.
    pub fn knows_namespace(&self, ns: &str) -> bool {
        self.namespace_labels.contains_key(ns)
    }

    /// When the namespace was created, when known.
    pub fn namespace_created(&self, ns: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.namespace_created.get(ns).copied()
    }

    /// Namespace labels as known; `kubernetes.io/metadata.name` is implied by the selector code.
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespace_labels.get(ns).cloned().unwrap_or_default()
    }

    /// What objects in `namespace` (and cluster-scoped ones) declare about `r`.
    fn declared_in(&self, namespace: &str, r: &CloudResource) -> Option<&crate::posture::Posture> {
        self.declared
            .get(namespace)
            .and_then(|m| m.get(r))
            .or_else(|| self.declared.get("").and_then(|m| m.get(r)))
    }

    fn lookup(&self, namespace: &str, r: &CloudResource) -> Option<&crate::posture::Posture> {
        self.live.get(r).or_else(|| self.declared_in(namespace, r))
    }
}

impl PostureLookup for Inventory {
    fn declared_posture(
        &self,
        namespace: &str,
        resource: &CloudResource,
    ) -> Option<&crate::posture::Posture> {
        self.declared_in(namespace, resource)
    }

    fn posture(&self, namespace: &str, resource: &CloudResource) -> Knowledge<'_> {
        if let Some(p) = self.lookup(namespace, resource) {
            return Knowledge::Known(p);
        }
        // Declared IAM objects are known by name only; an ARN reference falls back to the name.
        let by_name = match resource {
            CloudResource::IamRole(arn) if arn.starts_with("arn:") => resource
                .role_name()
                .map(|n| CloudResource::IamRole(format!("role/{n}"))),
            CloudResource::IamPolicy(arn) if arn.starts_with("arn:") => arn
                .rsplit('/')
                .next()
                .map(|n| CloudResource::IamPolicy(format!("policy/{n}"))),
            _ => None,
        };
        match by_name.as_ref().and_then(|r| self.lookup(namespace, r)) {
            Some(p) => Knowledge::Known(p),
            None => Knowledge::Unknown,
        }
    }
}

impl ConfigMaps for Inventory {
    fn config_map_data(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.config_maps
            .get(&(namespace.to_string(), name.to_string()))
    }
}

impl NameResolver for Inventory {
    fn cloud_name(
        &self,
        group: &str,
        kind: &str,
        _namespace: Option<&str>,
        name: &str,
    ) -> Option<String> {
        self.cloud_names
            .get(&(group.to_string(), kind.to_string(), name.to_string()))
            .cloned()
    }
}

impl World for Inventory {
    fn service_account(&self, namespace: &str, name: &str) -> Option<&Object> {
        self.service_accounts
            .get(&(namespace.to_string(), name.to_string()))
    }

    fn has_default_deny(&self, namespace: &str) -> bool {
        self.default_deny.contains(namespace)
    }

    fn aws_account(&self) -> Option<&str> {
        self.aws_account.as_deref()
    }

    fn aws_account_error(&self) -> Option<&str> {
        self.aws_account_error.as_deref()
    }
}
