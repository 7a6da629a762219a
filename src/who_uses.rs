//! `onus who-uses ID`: the blast radius of a cloud resource, read from its `CloudResource` object.

use std::fmt::Write;

use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::api::{CloudResourceObject, CloudResourceSpec, CloudResourceStatus, object_name};
use crate::refs::parse_reference;

#[derive(Debug, thiserror::Error)]
pub enum WhoUsesError {
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error(
        "no CloudResource for {0:?}: no workload in a namespace with a baseline references it, or the onus leader has not published it yet (`kubectl get cloudresources`)"
    )]
    NotFound(String),
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

/// Find the `CloudResource` for `id`: by its derived name, else by `spec.id`.
pub async fn lookup(id: &str) -> Result<Found, WhoUsesError> {
    let client = kube::Client::try_default().await?;
    let api: Api<CloudResourceObject> = Api::all(client);
    let by_name = match parse_reference(id) {
        Some(r) => api.get_opt(&object_name(&r)).await?,
        None => None,
    };
    let obj = match by_name {
        Some(o) => o,
        None => {
            let wanted = id.trim();
            api.list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|o| o.spec.id == wanted || o.metadata.name.as_deref() == Some(wanted))
                .ok_or_else(|| WhoUsesError::NotFound(id.to_string()))?
        }
    };
    Ok(Found {
        name: obj.metadata.name.clone().unwrap_or_default(),
        spec: obj.spec,
        status: obj.status.unwrap_or_default(),
    })
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
            let _ = writeln!(
                out,
                "  audited {}{by}: {result}; public: {}; encrypted: {}",
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
