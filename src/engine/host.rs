//! Host OS domain: containers must not reach into the node when the node is the customer's, by
//! the Pod Security Standards (`baseline`, or `restricted` when the baseline asks).

use crate::model::ControlId::HostOsIsolation;
use crate::refs::PodTemplate;

use super::{Check, Ctx, Outcome, pod_security};

pub(super) fn isolation(ctx: &mut Ctx<'_>, pod: &PodTemplate<'_>) {
    if !ctx.applies(HostOsIsolation) {
        return;
    }
    let params = &ctx.b.params;
    let gaps = pod_security::gaps(pod, params.pod_security, &params.allowed_host_paths);
    if gaps.is_empty() {
        let what = format!("{} stays inside its containers", ctx.obj.id);
        let evaluated = pod_security::evaluated(params.pod_security);
        ctx.verdict(
            HostOsIsolation,
            Check::new("host-access").with(evaluated),
            Outcome::Pass,
            None,
            what,
            None,
        );
        return;
    }
    let profile = match ctx.b.params.pod_security {
        pod_security::Profile::Baseline => "baseline",
        pod_security::Profile::Restricted => "restricted",
    };
    let mut check = Check::new("host-access");
    for g in &gaps {
        check.aspect(g.aspect);
    }
    let texts: Vec<&str> = gaps
        .iter()
        .map(|g| g.text.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    let what = format!(
        "{} breaks the Pod Security Standards {profile} profile: {}",
        ctx.obj.id,
        texts.join("; ")
    );
    let fix = "drop privileged, hostNetwork/hostPID/hostIPC, hostPort, hostPath and capabilities beyond the profile's; no Unconfined seccomp/AppArmor, custom SELinux types or unsafe sysctls; use emptyDir, a PersistentVolumeClaim or a CSI driver instead; or add an exception with a justification for node agents".to_string();
    ctx.verdict(HostOsIsolation, check, Outcome::Fail, None, what, Some(fix));
}
