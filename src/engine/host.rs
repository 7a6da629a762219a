//! Host OS domain: containers must not reach into the node when the node is the customer's.

use serde_json::Value;

use crate::model::ControlId::HostOsIsolation;
use crate::object::{list, truthy};
use crate::refs::PodTemplate;

use super::{Ctx, Outcome};

const DANGEROUS_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "DAC_READ_SEARCH",
    "BPF",
    "PERFMON",
];

pub(super) fn isolation(ctx: &mut Ctx<'_>, pod: &PodTemplate<'_>) {
    if !ctx.applies(HostOsIsolation) {
        return;
    }
    let mut gaps = Vec::new();
    for ns in ["hostNetwork", "hostPID", "hostIPC"] {
        if truthy(pod.spec.get(ns)) == Some(true) {
            gaps.push(format!("{ns}: true"));
        }
    }
    let allowed = &ctx.b.params.allowed_host_paths;
    for v in list(pod.spec, "volumes") {
        if let Some(path) = v
            .get("hostPath")
            .and_then(|h| h.get("path"))
            .and_then(Value::as_str)
        {
            let vname = v.get("name").and_then(Value::as_str).unwrap_or("?");
            if !allowed
                .iter()
                .any(|a| path == a || path.starts_with(&format!("{}/", a.trim_end_matches('/'))))
            {
                gaps.push(format!("hostPath volume {vname} mounts {path}"));
            }
        }
    }
    for (_, c) in pod.containers() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let sc = c.get("securityContext");
        if truthy(sc.and_then(|s| s.get("privileged"))) == Some(true) {
            gaps.push(format!("container {cname} is privileged"));
        }
        let caps: Vec<&str> = sc
            .and_then(|s| s.get("capabilities"))
            .map(|c| list(c, "add"))
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_str)
            .filter(|c| {
                DANGEROUS_CAPS.contains(&c.trim_start_matches("CAP_").to_ascii_uppercase().as_str())
            })
            .collect();
        if !caps.is_empty() {
            gaps.push(format!(
                "container {cname} adds capabilities {}",
                caps.join(", ")
            ));
        }
        for p in list(c, "ports") {
            if let Some(hp) = p.get("hostPort").and_then(Value::as_u64).filter(|p| *p > 0) {
                gaps.push(format!("container {cname} binds hostPort {hp}"));
            }
        }
    }
    if gaps.is_empty() {
        let what = format!("{} stays inside its containers", ctx.obj.id);
        ctx.verdict(
            HostOsIsolation,
            "host-access",
            Outcome::Pass,
            None,
            what,
            None,
        );
        return;
    }
    let what = format!("{} reaches into the node: {}", ctx.obj.id, gaps.join("; "));
    let fix = "drop privileged, hostNetwork/hostPID/hostIPC, hostPort and hostPath; use emptyDir, a PersistentVolumeClaim or a CSI driver instead; or add an exception with a justification for node agents".to_string();
    ctx.verdict(
        HostOsIsolation,
        "host-access",
        Outcome::Fail,
        None,
        what,
        Some(fix),
    );
}
