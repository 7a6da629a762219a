//! `onus check`: the engine on files, for deploy pipelines.

mod live;
mod load;
mod output;

pub use load::{Document, InputError, load, parse_stream};
pub use output::{Format, TextOptions, render, write};

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::baseline::BaselineSet;
use crate::declared::is_declared_kind;
use crate::engine::{Verdict, evaluate, evaluate_namespace};
use crate::inventory::Inventory;
use crate::object::Object;
use crate::refs::pod_template_path;

/// What to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub baselines: Vec<PathBuf>,
    pub paths: Vec<PathBuf>,
    pub namespace: String,
    pub now: DateTime<Utc>,
    /// Audit referenced AWS resources live before judging.
    pub live: bool,
}

/// Everything `onus check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub verdicts: Vec<Verdict>,
    /// Where each judged object came from: file, document index, line.
    pub sources: std::collections::HashMap<crate::object::ObjectRef, (String, usize, usize)>,
    pub objects: usize,
    pub judged: usize,
    /// Objects of kinds onus does not judge, by kind.
    pub skipped_kinds: std::collections::BTreeMap<String, usize>,
    /// Namespaces with objects but no baseline.
    pub unguarded_namespaces: BTreeSet<String>,
    pub baselines: usize,
    pub errors: Vec<InputError>,
}

impl CheckReport {
    /// 0: nothing at Deny; 1: at least one Deny verdict; 2: input or usage error.
    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if self.verdicts.iter().any(Verdict::denies) {
            1
        } else {
            0
        }
    }

    pub fn source_of(&self, r: &crate::object::ObjectRef) -> Option<(&str, usize, usize)> {
        self.sources.get(r).map(|s| (s.0.as_str(), s.1, s.2))
    }
}

/// Kinds that only give context (the snapshot), never verdicts of their own.
fn is_context_kind(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "ConfigMap" | "Namespace") | ("networking.k8s.io", "NetworkPolicy")
    ) || (group == "storage.azure.com" && kind == "StorageAccountsBlobService")
}

/// The kind's name as a `'static` string when the engine judges it (a closed set, for labels).
pub fn judged_kind_name(group: &str, kind: &str) -> Option<&'static str> {
    const BUILT_IN: &[&str] = &[
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "ReplicationController",
        "CronJob",
        "ServiceAccount",
        "Service",
        "Ingress",
        "StorageClass",
    ];
    if !is_judged_kind(group, kind) {
        return None;
    }
    BUILT_IN
        .iter()
        .chain(crate::declared::DECLARED_KINDS.iter().map(|(_, k, _)| k))
        .find(|k| **k == kind)
        .copied()
}

/// Kinds the engine gives verdicts on.
pub fn is_judged_kind(group: &str, kind: &str) -> bool {
    pod_template_path(kind).is_some()
        || matches!(
            (group, kind),
            ("", "ServiceAccount" | "Service")
                | ("networking.k8s.io" | "extensions", "Ingress")
                | ("storage.k8s.io", "StorageClass")
        )
        || is_declared_kind(group, kind)
}

/// Kinds judged on their own that no other object's verdict reads (workloads, Services,
/// Ingresses, StorageClasses): `onus check` parses and judges them last, a batch at a time, so
/// that it never holds them all. Everything else (baselines, ConfigMaps, ServiceAccounts,
/// NetworkPolicies, Namespaces, declared cloud resources) is read first.
fn is_streamed_kind(group: &str, kind: &str) -> bool {
    let service_account = group.is_empty() && kind == "ServiceAccount";
    is_judged_kind(group, kind)
        && !is_declared_kind(group, kind)
        && !is_context_kind(group, kind)
        && !service_account
        && group != "onus.dev"
}

/// How many streamed documents are parsed at once (on every core), then judged and dropped.
const BATCH: usize = 256;

/// Documents of one file left for the second pass.
struct Later {
    name: String,
    path: PathBuf,
    /// A digest of the whole text, to notice a file that changed between the passes (what the
    /// snapshot was built from must be what is judged).
    digest: [u8; 32],
    indexes: Vec<usize>,
}

/// Judges objects against the baselines and the snapshot, and records them in the report.
struct Judge<'a> {
    opts: &'a CheckOptions,
    baselines: &'a BaselineSet,
    inventory: &'a Inventory,
    /// Namespaces where pods run: segmentation is judged there at the end.
    namespaces: BTreeSet<String>,
}

impl Judge<'_> {
    fn judge(&mut self, obj: &Object, source: (&str, usize, usize), report: &mut CheckReport) {
        report.objects += 1;
        let ns = obj.namespace().unwrap_or(&self.opts.namespace).to_string();
        if !is_judged_kind(obj.group(), obj.kind()) {
            if !is_context_kind(obj.group(), obj.kind()) {
                *report
                    .skipped_kinds
                    .entry(format!("{}/{}", obj.id.api_version, obj.kind()))
                    .or_default() += 1;
            }
            return;
        }
        let applying = self
            .baselines
            .for_namespace(&ns, &self.inventory.namespace_labels(&ns));
        if applying.is_empty() {
            report.unguarded_namespaces.insert(ns);
            return;
        }
        // Segmentation matters where pods run.
        if pod_template_path(obj.kind()).is_some() {
            self.namespaces.insert(ns);
        }
        let refs: Vec<&crate::baseline::EffectiveBaseline> =
            applying.iter().map(|b| b.as_ref()).collect();
        report.judged += 1;
        report
            .sources
            .insert(obj.id.clone(), (source.0.to_string(), source.1, source.2));
        report
            .verdicts
            .extend(evaluate(obj, &refs, self.inventory, self.opts.now));
    }
}

/// Run the engine over the files: first everything the engine looks things up in, then the
/// workloads and Services, streamed.
pub fn run(opts: &CheckOptions) -> CheckReport {
    let mut report = CheckReport::default();
    let (baseline_docs, mut errors) = load(&opts.baselines);

    // Pass 1: parse what the snapshot needs; only locate what can be streamed (with --live the
    // audits need every reference first, so everything is read now).
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in &opts.paths {
        load::collect_files(p, &mut files, &mut seen, &mut errors);
    }
    let mut docs = baseline_docs;
    let mut later: Vec<Later> = Vec::new();
    // Files in the order they were read, baseline files first: the order of the output.
    let mut reading_order: Vec<String> = Vec::new();
    for d in &docs {
        if reading_order.last() != Some(&d.file) {
            reading_order.push(d.file.clone());
        }
    }
    for path in files {
        let name = path.display().to_string();
        reading_order.push(name.clone());
        let text = match load::read_file(&path) {
            Ok(t) => t,
            Err(message) => {
                errors.push(InputError {
                    file: name,
                    document: None,
                    line: None,
                    message,
                });
                continue;
            }
        };
        let chunks = load::split(&text);
        let (streamed, now): (Vec<&load::Chunk>, Vec<&load::Chunk>) = chunks
            .iter()
            .partition(|c| !opts.live && streamed_head(&c.text));
        load::parse_chunks(&name, &now, &mut docs, &mut errors);
        if !streamed.is_empty() {
            later.push(Later {
                name,
                path,
                digest: digest(&text),
                indexes: streamed.iter().map(|c| c.index).collect(),
            });
        }
    }

    let mut baselines = BaselineSet::default();
    let mut objects: Vec<(Object, String, usize, usize)> = Vec::new();
    for doc in docs {
        let err = |message: String| InputError {
            file: doc.file.clone(),
            document: Some(doc.index),
            line: Some(doc.line),
            message,
        };
        let obj = match Object::from_value(doc.value, Some(&opts.namespace)) {
            Ok(o) => o,
            Err(e) => {
                errors.push(err(format!("not a Kubernetes object: {e}")));
                continue;
            }
        };
        if obj.group() == "onus.dev" {
            let added = match obj.kind() {
                // Audit records of a cluster: nothing to judge offline.
                "CloudResource" => Ok(()),
                kind => crate::baseline::add_object(
                    &mut baselines,
                    kind,
                    &obj.id.name,
                    &obj.body,
                    &opts.namespace,
                ),
            };
            if let Err(m) = added {
                errors.push(err(m));
            }
            continue;
        }
        objects.push((obj, doc.file, doc.index, doc.line));
    }
    report.baselines = baselines.len();
    if baselines.is_empty() && errors.is_empty() {
        errors.push(InputError {
            file: opts.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            document: None,
            line: None,
            message: "no ResponsibilityBaseline or ClusterResponsibilityBaseline found: give one with --baseline or among the files".into(),
        });
    }

    let mut inventory = Inventory::from_objects(objects.iter().map(|(o, ..)| o));
    if opts.live {
        let judged: Vec<&Object> = objects
            .iter()
            .map(|(o, ..)| o)
            .filter(|o| is_judged_kind(o.group(), o.kind()))
            .collect();
        live::audit(
            &judged,
            &baselines,
            &mut inventory,
            &opts.namespace,
            opts.now,
        );
    }
    let mut judge = Judge {
        opts,
        baselines: &baselines,
        inventory: &inventory,
        namespaces: BTreeSet::new(),
    };
    for (obj, file, index, line) in &objects {
        judge.judge(obj, (file, *index, *line), &mut report);
    }
    drop(objects);

    // Pass 2: the streamed documents, a batch at a time.
    for l in later {
        stream(&l, &mut judge, &mut report, &mut errors);
    }

    let Judge { namespaces, .. } = judge;
    for ns in namespaces {
        let applying = baselines.for_namespace(&ns, &inventory.namespace_labels(&ns));
        let refs: Vec<&crate::baseline::EffectiveBaseline> =
            applying.iter().map(|b| b.as_ref()).collect();
        report
            .verdicts
            .extend(evaluate_namespace(&ns, &refs, &inventory, opts.now));
    }
    in_reading_order(&mut report, &reading_order);
    report.errors = errors;
    report
}

/// SHA-256 of a file's text.
fn digest(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// Is this document, by its plainly written head, of a streamed kind?
fn streamed_head(text: &str) -> bool {
    load::head(text).is_some_and(|(api, kind)| {
        let group = api.rsplit_once('/').map_or("", |(g, _)| g);
        is_streamed_kind(group, kind)
    })
}

/// Parse and judge the streamed documents of one file. The file is read again: if it changed
/// in between, what it says now is not what the snapshot was built from, and that is an error.
fn stream(
    l: &Later,
    judge: &mut Judge<'_>,
    report: &mut CheckReport,
    errors: &mut Vec<InputError>,
) {
    let changed = |errors: &mut Vec<InputError>, why: String| {
        errors.push(InputError {
            file: l.name.clone(),
            document: None,
            line: None,
            message: format!("changed while onus read it ({why}); run onus check again"),
        })
    };
    let text = match load::read_file(&l.path) {
        Ok(t) => t,
        Err(e) => return changed(errors, e),
    };
    if digest(&text) != l.digest {
        return changed(errors, "its content differs from the first read".into());
    }
    let chunks = load::split(&text);
    let wanted: Vec<&load::Chunk> = l.indexes.iter().map(|&i| &chunks[i - 1]).collect();
    if let Some(c) = wanted.iter().find(|c| !streamed_head(&c.text)) {
        return changed(
            errors,
            format!("document {} is no longer what it was", c.index),
        );
    }
    let mut docs = Vec::new();
    for batch in wanted.chunks(BATCH) {
        load::parse_chunks(&l.name, batch, &mut docs, errors);
        for doc in docs.drain(..) {
            let place = (doc.file.as_str(), doc.index, doc.line);
            match Object::from_value(doc.value, Some(&judge.opts.namespace)) {
                Ok(obj) if is_streamed_kind(obj.group(), obj.kind()) => {
                    judge.judge(&obj, place, report)
                }
                // The head said otherwise: never judge against a snapshot that missed it.
                Ok(obj) => errors.push(InputError {
                    file: l.name.clone(),
                    document: Some(place.1),
                    line: Some(place.2),
                    message: format!(
                        "read as {} {} but parsed as {}; onus did not judge it",
                        load::head(&chunks[place.1 - 1].text).map_or("?", |h| h.0),
                        load::head(&chunks[place.1 - 1].text).map_or("?", |h| h.1),
                        obj.id
                    ),
                }),
                Err(e) => errors.push(InputError {
                    file: l.name.clone(),
                    document: Some(place.1),
                    line: Some(place.2),
                    message: format!("not a Kubernetes object: {e}"),
                }),
            }
        }
    }
}

/// Verdicts in the order their objects were read (files as read, documents in each file);
/// namespace-wide verdicts last.
fn in_reading_order(report: &mut CheckReport, files: &[String]) {
    let mut position: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for f in files {
        let n = position.len();
        position.entry(f.as_str()).or_insert(n);
    }
    let key = |v: &Verdict| {
        report
            .sources
            .get(&v.resource)
            .map_or((usize::MAX, usize::MAX), |(f, i, _)| {
                (
                    position.get(f.as_str()).copied().unwrap_or(usize::MAX - 1),
                    *i,
                )
            })
    };
    let mut keyed: Vec<((usize, usize), Verdict)> = std::mem::take(&mut report.verdicts)
        .into_iter()
        .map(|v| (key(&v), v))
        .collect();
    // Stable: an object's verdicts keep the engine's order.
    keyed.sort_by_key(|(k, _)| *k);
    report.verdicts = keyed.into_iter().map(|(_, v)| v).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What was judged in the second pass must be what the snapshot was built from: a file
    /// whose content changed in between (same documents, same heads) is an error, not a mix.
    #[test]
    fn a_file_changed_between_the_passes_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        let first = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: x}]}\n";
        std::fs::write(&path, first.replace("image: x", "image: y")).unwrap();
        let opts = CheckOptions {
            baselines: Vec::new(),
            paths: vec![path.clone()],
            namespace: "default".into(),
            now: Utc::now(),
            live: false,
        };
        let (baselines, inventory) = (BaselineSet::default(), Inventory::default());
        let mut judge = Judge {
            opts: &opts,
            baselines: &baselines,
            inventory: &inventory,
            namespaces: BTreeSet::new(),
        };
        let later = Later {
            name: "app.yaml".into(),
            path,
            digest: digest(first),
            indexes: vec![1],
        };
        let (mut report, mut errors) = (CheckReport::default(), Vec::new());
        stream(&later, &mut judge, &mut report, &mut errors);
        assert_eq!(report.objects, 0, "nothing judged");
        assert!(
            errors[0].message.contains("changed while onus read it"),
            "{errors:?}"
        );
    }
}
