//! The Pod Security Standards, `baseline` and `restricted` profiles, as the Kubernetes
//! documentation defines them (concepts/security/pod-security-standards, v1.34): what a pod
//! template does that its profile forbids, one line per gap. `tests/conformance` holds the
//! fixtures of Kubernetes' own Pod Security Admission, which these rules must agree with.

use serde_json::Value;

use crate::object::{list, truthy};
use crate::refs::PodTemplate;

/// Which profile a baseline enforces (`host-os.isolation`'s `profile` parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    #[default]
    Baseline,
    Restricted,
}

/// Capabilities the baseline profile lets a container add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls the baseline profile allows (the "safe" set).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// SELinux types the baseline profile allows (empty is allowed too).
const SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Volume types the restricted profile allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn str_at<'a>(v: Option<&'a Value>, path: &[&str]) -> Option<&'a str> {
    let mut cur = v?;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// One thing a pod does that its profile forbids: the aspect of the profile it breaks (what
/// compliance mappings key on) and what to tell the user. A gap with no text only adds an aspect
/// to another gap (NET_RAW is one of the capabilities beyond the profile).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub aspect: &'static str,
    pub text: String,
}

impl Gap {
    fn new(aspect: &'static str, text: String) -> Gap {
        Gap { aspect, text }
    }
}

/// The aspects `profile` evaluates: a pod that passes meets these, and only these (the
/// baseline profile does not ask for a seccomp profile or for NET_RAW to be dropped).
pub fn evaluated(profile: Profile) -> &'static [&'static str] {
    match profile {
        Profile::Baseline => &ASPECTS[..BASELINE_ASPECTS],
        Profile::Restricted => ASPECTS,
    }
}

/// How many of [`ASPECTS`], from the start, the baseline profile evaluates.
const BASELINE_ASPECTS: usize = 13;

/// Every aspect [`gaps`] may name: the baseline profile's, then the restricted profile's.
pub const ASPECTS: &[&str] = &[
    "host-network",
    "host-pid",
    "host-ipc",
    "windows-hostprocess",
    "host-path",
    "sysctls",
    "apparmor",
    "selinux",
    "privileged",
    "capabilities-baseline",
    "proc-mount",
    "host-port",
    "probe-host",
    // restricted
    "restricted-volume-types",
    "seccomp",
    "capability-net-raw",
    "restricted-run-as-non-root",
    "restricted-allow-privilege-escalation",
    "restricted-capabilities-drop-all",
];

/// Gaps of `pod` against `profile`. `allowed_host_paths` is onus's own relaxation of the
/// profiles' hostPath rule (node agents that need one directory).
pub fn gaps(pod: &PodTemplate<'_>, profile: Profile, allowed_host_paths: &[String]) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let spec = pod.spec;
    let pod_sc = spec.get("securityContext");

    // Baseline: host namespaces.
    for (ns, ns_aspect) in [
        ("hostNetwork", "host-network"),
        ("hostPID", "host-pid"),
        ("hostIPC", "host-ipc"),
    ] {
        if truthy(spec.get(ns)) == Some(true) {
            gaps.push(Gap::new(ns_aspect, format!("{ns}: true")));
        }
    }
    // Baseline: Windows HostProcess, at pod and container level.
    if truthy(
        pod_sc
            .and_then(|s| s.get("windowsOptions"))
            .and_then(|w| w.get("hostProcess")),
    ) == Some(true)
    {
        gaps.push(Gap::new(
            "windows-hostprocess",
            "the pod is a Windows HostProcess pod".into(),
        ));
    }
    // Baseline: hostPath volumes.
    for v in list(spec, "volumes") {
        let vname = v.get("name").and_then(Value::as_str).unwrap_or("?");
        if let Some(path) = str_at(Some(v), &["hostPath", "path"]) {
            let allowed = allowed_host_paths
                .iter()
                .any(|a| path == a || path.starts_with(&format!("{}/", a.trim_end_matches('/'))));
            if !allowed {
                gaps.push(Gap::new(
                    "host-path",
                    format!("hostPath volume {vname} mounts {path}"),
                ));
            }
        }
        if profile == Profile::Restricted {
            let kind = v
                .as_object()
                .and_then(|m| m.keys().find(|k| k.as_str() != "name"))
                .map(String::as_str);
            if let Some(kind) = kind.filter(|k| !RESTRICTED_VOLUMES.contains(k) && *k != "hostPath")
            {
                gaps.push(Gap::new(
                    "restricted-volume-types",
                    format!("volume {vname} is of type {kind}, which the restricted profile does not allow"),
                ));
            }
        }
    }
    // Baseline: pod-level seccomp, SELinux, AppArmor, sysctls.
    judge_context(pod_sc, "the pod", &mut gaps);
    for s in list(pod_sc.unwrap_or(&Value::Null), "sysctls") {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        if !SAFE_SYSCTLS.contains(&name) {
            gaps.push(Gap::new(
                "sysctls",
                format!("sysctl {name} is not in the safe set"),
            ));
        }
    }
    // AppArmor annotations (before the field existed).
    if let Some(ann) = pod
        .metadata
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for (k, v) in ann {
            let Some(container) = k.strip_prefix("container.apparmor.security.beta.kubernetes.io/")
            else {
                continue;
            };
            let v = v.as_str().unwrap_or("");
            if !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")) {
                gaps.push(Gap::new(
                    "apparmor",
                    format!("container {container} runs with AppArmor profile {v}"),
                ));
            }
        }
    }

    let windows = str_at(Some(spec), &["os", "name"]) == Some("windows");
    let pod_non_root = truthy(pod_sc.and_then(|s| s.get("runAsNonRoot")));
    let pod_seccomp = str_at(pod_sc, &["seccompProfile", "type"]);
    for (_, c) in pod.containers() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let who = format!("container {cname}");
        let sc = c.get("securityContext");
        if truthy(sc.and_then(|s| s.get("privileged"))) == Some(true) {
            gaps.push(Gap::new("privileged", format!("{who} is privileged")));
        }
        if truthy(
            sc.and_then(|s| s.get("windowsOptions"))
                .and_then(|w| w.get("hostProcess")),
        ) == Some(true)
        {
            gaps.push(Gap::new(
                "windows-hostprocess",
                format!("{who} is a Windows HostProcess container"),
            ));
        }
        let allowed: &[&str] = match profile {
            Profile::Baseline => BASELINE_CAPABILITIES,
            Profile::Restricted => &["NET_BIND_SERVICE"],
        };
        // Exact names, as Pod Security Admission compares them: runtimes also accept `chown` or
        // `CAP_CHOWN`, and a spelling nobody reviewed is refused rather than guessed at.
        let beyond: Vec<&str> = sc
            .and_then(|s| s.get("capabilities"))
            .map(|c| list(c, "add"))
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_str)
            .filter(|c| !c.is_empty() && !allowed.contains(c))
            .collect();
        if !beyond.is_empty() {
            gaps.push(Gap::new(
                "capabilities-baseline",
                format!("{who} adds capabilities {}", beyond.join(", ")),
            ));
            if beyond.contains(&"NET_RAW") {
                gaps.push(Gap::new("capability-net-raw", String::new()));
            }
        }
        if let Some(pm) = str_at(sc, &["procMount"]).filter(|p| *p != "Default") {
            gaps.push(Gap::new(
                "proc-mount",
                format!("{who} sets procMount: {pm}"),
            ));
        }
        for p in list(c, "ports") {
            if let Some(hp) = p.get("hostPort").and_then(Value::as_u64).filter(|p| *p > 0) {
                gaps.push(Gap::new("host-port", format!("{who} binds hostPort {hp}")));
            }
        }
        // Probes and lifecycle hooks aimed at another host (v1.34): the kubelet would connect
        // there from the node.
        let handlers = ["livenessProbe", "readinessProbe", "startupProbe"]
            .into_iter()
            .map(|p| (p.to_string(), c.get(p)))
            .chain(["postStart", "preStop"].into_iter().map(|h| {
                (
                    format!("lifecycle.{h}"),
                    c.get("lifecycle").and_then(|l| l.get(h)),
                )
            }));
        for (name, handler) in handlers {
            for kind in ["httpGet", "tcpSocket"] {
                if let Some(host) = str_at(handler, &[kind, "host"]).filter(|h| !h.is_empty()) {
                    gaps.push(Gap::new(
                        "probe-host",
                        format!("{who} {name} {kind} targets host {host}"),
                    ));
                }
            }
        }
        judge_context(sc, &who, &mut gaps);

        if profile != Profile::Restricted {
            continue;
        }
        let non_root = truthy(sc.and_then(|s| s.get("runAsNonRoot"))).or(pod_non_root);
        if non_root != Some(true) {
            gaps.push(Gap::new(
                "restricted-run-as-non-root",
                format!("{who} may run as root (runAsNonRoot is not true)"),
            ));
        }
        let user = sc
            .and_then(|s| s.get("runAsUser"))
            .or_else(|| pod_sc.and_then(|s| s.get("runAsUser")))
            .and_then(Value::as_i64);
        if user == Some(0) {
            gaps.push(Gap::new(
                "restricted-run-as-non-root",
                format!("{who} runs as user 0"),
            ));
        }
        if windows {
            continue;
        }
        if truthy(sc.and_then(|s| s.get("allowPrivilegeEscalation"))) != Some(false) {
            gaps.push(Gap::new(
                "restricted-allow-privilege-escalation",
                format!(
                    "{who} allows privilege escalation (allowPrivilegeEscalation is not false)"
                ),
            ));
        }
        let drops = sc
            .and_then(|s| s.get("capabilities"))
            .map(|c| list(c, "drop"))
            .unwrap_or(&[]);
        let drops = |cap: &str| drops.iter().any(|c| c.as_str() == Some(cap));
        if !drops("ALL") {
            gaps.push(Gap::new(
                "restricted-capabilities-drop-all",
                format!("{who} does not drop ALL capabilities"),
            ));
            // Runtimes grant NET_RAW by default; only dropping it (or ALL) takes it away.
            if !drops("NET_RAW") {
                gaps.push(Gap::new("capability-net-raw", String::new()));
            }
        }
        let seccomp = str_at(sc, &["seccompProfile", "type"]).or(pod_seccomp);
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            gaps.push(Gap::new(
                "seccomp",
                format!("{who} has no seccomp profile (RuntimeDefault or Localhost)"),
            ));
        }
    }
    gaps
}

/// Seccomp, AppArmor and SELinux of one security context (the pod's or a container's).
fn judge_context(sc: Option<&Value>, who: &str, gaps: &mut Vec<Gap>) {
    if str_at(sc, &["seccompProfile", "type"]) == Some("Unconfined") {
        gaps.push(Gap::new(
            "seccomp",
            format!("{who} runs with seccomp Unconfined"),
        ));
    }
    if str_at(sc, &["appArmorProfile", "type"]) == Some("Unconfined") {
        gaps.push(Gap::new(
            "apparmor",
            format!("{who} runs with AppArmor Unconfined"),
        ));
    }
    let selinux = sc.and_then(|s| s.get("seLinuxOptions"));
    if let Some(t) =
        str_at(selinux, &["type"]).filter(|t| !t.is_empty() && !SELINUX_TYPES.contains(t))
    {
        gaps.push(Gap::new("selinux", format!("{who} sets SELinux type {t}")));
    }
    for field in ["user", "role"] {
        if let Some(v) = str_at(selinux, &[field]).filter(|v| !v.is_empty()) {
            gaps.push(Gap::new(
                "selinux",
                format!("{who} sets SELinux {field} {v}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn judge(spec: Value, profile: Profile) -> Vec<String> {
        let body = json!({"metadata": {}, "spec": spec});
        let pod = PodTemplate {
            metadata: body.get("metadata"),
            spec: &body["spec"],
        };
        gaps(&pod, profile, &[])
            .into_iter()
            .filter(|g| !g.text.is_empty())
            .map(|g| g.text)
            .collect()
    }

    fn container(sc: Value) -> Value {
        json!({"containers": [{"name": "app", "image": "x", "securityContext": sc}]})
    }

    /// A container that meets the restricted profile.
    fn hardened() -> Value {
        json!({"runAsNonRoot": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    }

    #[test]
    fn the_baseline_profile_evaluates_only_its_own_aspects() {
        let base = evaluated(Profile::Baseline);
        assert_eq!(base.last(), Some(&"probe-host"));
        assert!(base.contains(&"host-network") && !base.contains(&"seccomp"));
        assert!(!base.iter().any(|a| a.starts_with("restricted-")));
        assert_eq!(evaluated(Profile::Restricted), ASPECTS);
    }

    #[test]
    fn baseline_allows_what_it_lists_and_nothing_else() {
        assert!(judge(container(json!({})), Profile::Baseline).is_empty());
        let fine = container(
            json!({"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN", "KILL"]},
            "seccompProfile": {"type": "RuntimeDefault"}, "seLinuxOptions": {"type": "container_t"},
            "appArmorProfile": {"type": "Localhost"}, "procMount": "Default"}),
        );
        assert!(judge(fine, Profile::Baseline).is_empty());
        for (sc, says) in [
            (
                json!({"capabilities": {"add": ["NET_RAW"]}}),
                "adds capabilities NET_RAW",
            ),
            (json!({"capabilities": {"add": ["sys_admin"]}}), "sys_admin"),
            // Allowed names only as written: other spellings are refused.
            (json!({"capabilities": {"add": ["CAP_CHOWN"]}}), "CAP_CHOWN"),
            (json!({"privileged": true}), "privileged"),
            (json!({"procMount": "Unmasked"}), "procMount: Unmasked"),
            (
                json!({"seccompProfile": {"type": "Unconfined"}}),
                "seccomp Unconfined",
            ),
            (
                json!({"appArmorProfile": {"type": "Unconfined"}}),
                "AppArmor Unconfined",
            ),
            (
                json!({"seLinuxOptions": {"type": "spc_t"}}),
                "SELinux type spc_t",
            ),
            (
                json!({"seLinuxOptions": {"user": "system_u"}}),
                "SELinux user",
            ),
            (
                json!({"windowsOptions": {"hostProcess": true}}),
                "HostProcess",
            ),
        ] {
            let g = judge(container(sc.clone()), Profile::Baseline);
            assert!(g.iter().any(|l| l.contains(says)), "{sc}: {g:?}");
        }
        let pod = json!({"hostPID": true, "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"},
            {"name": "net.ipv4.tcp_syncookies", "value": "1"}]}, "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]});
        let g = judge(pod, Profile::Baseline);
        assert_eq!(g.len(), 4, "{g:?}");
        assert!(g.iter().any(|l| l.contains("kernel.msgmax")));
        // AppArmor set the old way, by annotation.
        let body = json!({"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
            "spec": container(json!({}))});
        let pod = PodTemplate {
            metadata: body.get("metadata"),
            spec: &body["spec"],
        };
        assert!(
            gaps(&pod, Profile::Baseline, &[])[0]
                .text
                .contains("AppArmor profile unconfined")
        );
    }

    #[test]
    fn restricted_adds_its_own_rules() {
        assert!(judge(container(hardened()), Profile::Restricted).is_empty());
        // What baseline allows, restricted does not.
        let g = judge(container(json!({})), Profile::Restricted);
        for says in [
            "runAsNonRoot",
            "allowPrivilegeEscalation",
            "drop ALL",
            "seccomp",
        ] {
            assert!(g.iter().any(|l| l.contains(says)), "{says}: {g:?}");
        }
        let mut chown = hardened();
        chown["capabilities"]["add"] = json!(["CHOWN"]);
        assert!(judge(container(chown), Profile::Restricted)[0].contains("CHOWN"));
        let mut root = hardened();
        root["runAsUser"] = json!(0);
        assert!(judge(container(root), Profile::Restricted)[0].contains("user 0"));
        // Pod-level settings count for every container.
        let pod = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "d", "emptyDir": {}}, {"name": "n", "nfs": {"server": "x", "path": "/"}}]});
        let g = judge(pod, Profile::Restricted);
        assert_eq!(g.len(), 1, "{g:?}");
        assert!(g[0].contains("volume n is of type nfs"));
    }
}
