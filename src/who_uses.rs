//! `onus who-uses ID`: the blast radius of a cloud resource, read from its `CloudResource` object.

use std::fmt::Write;

use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::api::{CloudResourceObject, CloudResourceSpec, CloudResourceStatus, object_name};
use crate::refs::parse_reference;

#[derive(Debug, thiserror::Error)]
pub enum WhoUsesError {
    #[error("reading the cluster: {0}")]
    Kube(#[from] kube::Error),
    #[error(
        "no CloudResource for {0:?}: no workload in a namespace with a baseline references it, or the onus leader has not published it yet (`kubectl get cloudresources`)"
    )]
    NotFound(String),
    #[error(
        "{0:?} names several resources ({1}); give it as a URI (s3://, gs://, azblob://, an ARN)"
    )]
    Ambiguous(String, String),
}

impl WhoUsesError {
    /// 2: nothing (or several things) by that id; 3: the cluster could not be read.
    pub fn exit_code(&self) -> u8 {
        match self {
            WhoUsesError::Kube(_) => 3,
            WhoUsesError::NotFound(_) | WhoUsesError::Ambiguous(..) => 2,
        }
    }
}

/// What the cluster knows about one cloud resource.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// The `CloudResource` object's name.
    pub name: String,
    pub spec: CloudResourceSpec,
    pub status: CloudResourceStatus,
}

impl Found {
    /// The resource fails a check (or could not be read).
    pub fn failing(&self) -> bool {
        !self.status.findings.is_empty()
    }
}

/// Find the `CloudResource` for `id`: by its derived name, else by `spec.id` or object name
/// among the objects onus itself writes (a hand-made one is ignored, as the webhook ignores it).
pub async fn lookup(id: &str) -> Result<Found, WhoUsesError> {
    let client = kube::Client::try_default().await?;
    let api: Api<CloudResourceObject> = Api::all(client);
    if let Some(r) = parse_reference(id) {
        return match api.get_opt(&object_name(&r)).await? {
            Some(o) => Ok(found(o)),
            None => Err(WhoUsesError::NotFound(id.to_string())),
        };
    }
    let wanted = id.trim();
    let mut hits: Vec<CloudResourceObject> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|o| {
            let name = o.metadata.name.as_deref().unwrap_or("");
            let genuine = o.spec.resource().is_ok_and(|r| object_name(&r) == name);
            genuine && (o.spec.id == wanted || name == wanted)
        })
        .collect();
    match hits.len() {
        0 => Err(WhoUsesError::NotFound(id.to_string())),
        1 => Ok(found(hits.remove(0))),
        _ => Err(WhoUsesError::Ambiguous(
            id.to_string(),
            hits.iter()
                .map(|o| format!("{} {}", o.spec.kind, o.spec.id))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

fn found(o: CloudResourceObject) -> Found {
    Found {
        name: o.metadata.name.clone().unwrap_or_default(),
        spec: o.spec,
        status: o.status.unwrap_or_default(),
    }
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

pub fn render_text(f: &Found) -> String {
    let s = &f.status;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} {} (CloudResource {})",
        f.spec.provider, f.spec.kind, f.spec.id, f.name
    );
    match (s.result, s.audited_at) {
        (Some(result), Some(at)) => {
            let by = s
                .auditor
                .as_ref()
                .and_then(|a| a.role.clone().or_else(|| a.account.clone()))
                .map(|w| format!(" as {w}"))
                .unwrap_or_default();
            let result = match result {
                crate::api::AuditResult::Ok => "ok".to_string(),
                crate::api::AuditResult::Error => {
                    format!("error: {}", s.message.as_deref().unwrap_or(""))
                }
            };
            let age = (chrono::Utc::now() - at).num_seconds().max(0);
            let _ = writeln!(
                out,
                "  audited {} ({age} s ago){by}: {result}; public: {}; encrypted: {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                yes_no(s.public),
                yes_no(s.encrypted)
            );
        }
        _ => {
            let _ = writeln!(out, "  not audited");
        }
    }
    if let Some(since) = s.unused_since {
        let _ = writeln!(out, "  unused since {}", since.to_rfc3339());
    }
    let _ = writeln!(out, "  findings: {}", s.finding_count);
    for finding in &s.findings {
        let _ = writeln!(
            out,
            "    {:<5} {:<26} {}",
            finding.result, finding.control, finding.message
        );
    }
    let _ = writeln!(out, "  used by: {}", s.used_by_count);
    if !s.used_by.is_empty() {
        let w = |get: fn(&crate::api::UsedBy) -> &str, title: &str| {
            s.used_by
                .iter()
                .map(|u| get(u).len())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        };
        let (wn, wk, wm) = (
            w(|u| &u.namespace, "NAMESPACE"),
            w(|u| &u.kind, "KIND"),
            w(|u| &u.name, "NAME"),
        );
        let _ = writeln!(
            out,
            "    {:<wn$}  {:<wk$}  {:<wm$}  FOUND IN",
            "NAMESPACE", "KIND", "NAME"
        );
        for u in &s.used_by {
            let _ = writeln!(
                out,
                "    {:<wn$}  {:<wk$}  {:<wm$}  {}",
                u.namespace, u.kind, u.name, u.found_at
            );
        }
        let more = s.used_by_count as usize - s.used_by.len().min(s.used_by_count as usize);
        if more > 0 {
            let _ = writeln!(out, "    ... and {more} more");
        }
    }
    if !s.declared_by.is_empty() {
        let _ = writeln!(out, "  declared by: {}", s.declared_by.join(", "));
    }
    out
}
