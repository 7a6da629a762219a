//! `onus check`: the engine on files, for deploy pipelines.

mod live;
mod load;
mod output;

pub use load::{Document, InputError, load, parse_stream};
pub use output::{Format, TextOptions, render};

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

/// Run the engine over the files.
pub fn run(opts: &CheckOptions) -> CheckReport {
    let mut report = CheckReport::default();
    let (baseline_docs, mut errors) = load(&opts.baselines);
    let (docs, more) = load(&opts.paths);
    errors.extend(more);

    let mut baselines = BaselineSet::default();
    let mut objects: Vec<(Object, &Document)> = Vec::new();
    for doc in baseline_docs.iter().chain(docs.iter()) {
        let err = |message: String| InputError {
            file: doc.file.clone(),
            document: Some(doc.index),
            line: Some(doc.line),
            message,
        };
        let obj = match Object::from_value(doc.value.clone(), Some(&opts.namespace)) {
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
                    &doc.value,
                    &opts.namespace,
                ),
            };
            if let Err(m) = added {
                errors.push(err(m));
            }
            continue;
        }
        objects.push((obj, doc));
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

    let mut inventory = Inventory::from_objects(objects.iter().map(|(o, _)| o));
    if opts.live {
        let judged: Vec<&Object> = objects
            .iter()
            .map(|(o, _)| o)
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
    let mut namespaces = BTreeSet::new();
    report.objects = objects.len();
    for (obj, doc) in &objects {
        let ns = obj.namespace().unwrap_or(&opts.namespace).to_string();
        if !is_judged_kind(obj.group(), obj.kind()) {
            if !is_context_kind(obj.group(), obj.kind()) {
                *report
                    .skipped_kinds
                    .entry(format!("{}/{}", obj.id.api_version, obj.kind()))
                    .or_default() += 1;
            }
            continue;
        }
        let applying = baselines.for_namespace(&ns, &inventory.namespace_labels(&ns));
        if applying.is_empty() {
            report.unguarded_namespaces.insert(ns);
            continue;
        }
        // Segmentation matters where pods run.
        if pod_template_path(obj.kind()).is_some() {
            namespaces.insert(ns);
        }
        let refs: Vec<&crate::baseline::EffectiveBaseline> =
            applying.iter().map(|b| b.as_ref()).collect();
        report.judged += 1;
        report
            .sources
            .insert(obj.id.clone(), (doc.file.clone(), doc.index, doc.line));
        report
            .verdicts
            .extend(evaluate(obj, &refs, &inventory, opts.now));
    }
    for ns in namespaces {
        let applying = baselines.for_namespace(&ns, &inventory.namespace_labels(&ns));
        let refs: Vec<&crate::baseline::EffectiveBaseline> =
            applying.iter().map(|b| b.as_ref()).collect();
        report
            .verdicts
            .extend(evaluate_namespace(&ns, &refs, &inventory, opts.now));
    }
    report.errors = errors;
    report
}
