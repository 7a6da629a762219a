//! Judging cloud resources: the ones a workload references and the ones a manifest declares.

use crate::declared::Declared;
use crate::model::ControlId::{self, *};
use crate::object::Object;
use crate::posture::{CloudResource, Knowledge, Posture};
use crate::refs::{self, PodTemplate, Reference};

use super::{Ctx, Outcome, World, data, identity, logging, network};

/// Controls that judge a kind of cloud resource; the first one carries "not audited yet".
fn controls_for(r: &CloudResource) -> &'static [ControlId] {
    use CloudResource::*;
    match r {
        S3Bucket(_) => &[
            DataPublicAccess,
            DataEncryptionAtRest,
            DataEncryptionInTransit,
            LoggingAuditTrail,
        ],
        AzureStorageAccount(_) => &[
            DataPublicAccess,
            DataEncryptionAtRest,
            DataEncryptionInTransit,
            NetworkExposure,
        ],
        AzureContainer { .. } => &[DataPublicAccess],
        GcsBucket(_) => &[DataPublicAccess, DataEncryptionAtRest, LoggingAuditTrail],
        IamRole(_) | IamPolicy(_) => &[IdentityLeastPrivilege],
        SecurityGroup(_) | AzureNsg(_) => &[NetworkExposure],
        AwsAccount(_) => &[LoggingAuditTrail],
    }
}

/// Every cloud resource an object uses (what the controller audits): workloads' annotations, env,
/// ConfigMaps and ServiceAccount role; a ServiceAccount's role; a Service's security groups.
/// References that do not parse are returned separately.
pub fn references(obj: &Object, world: &dyn World) -> (Vec<Reference>, Vec<refs::BadReference>) {
    let mut bad = Vec::new();
    let out = match PodTemplate::of(obj) {
        Some(pod) => {
            let mut out = refs::workload_references(obj, &pod, world, &mut bad);
            let ns = obj.namespace().unwrap_or("default");
            let sa = pod.service_account();
            if let Some(role) = world
                .service_account(ns, sa)
                .and_then(refs::service_account_role)
                && !out.iter().any(|r| r.resource == role)
            {
                out.push(Reference {
                    resource: role,
                    found_at: format!("ServiceAccount {sa} ({})", refs::IRSA_ANNOTATION),
                });
            }
            out
        }
        None if obj.group().is_empty() && obj.kind() == "ServiceAccount" => {
            refs::service_account_role(obj)
                .map(|r| Reference {
                    resource: r,
                    found_at: format!("annotation {}", refs::IRSA_ANNOTATION),
                })
                .into_iter()
                .collect()
        }
        None if obj.group().is_empty() && obj.kind() == "Service" => obj
            .annotation(refs::AWS_LB_SECURITY_GROUPS)
            .map(|v| {
                v.split(',')
                    .filter_map(refs::parse_reference)
                    .map(|r| Reference {
                        resource: r,
                        found_at: format!("annotation {}", refs::AWS_LB_SECURITY_GROUPS),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    (out, bad)
}

/// A workload's references; unreadable `onus.dev/uses` entries become `error` verdicts.
pub(super) fn workload_references(ctx: &mut Ctx<'_>) -> Vec<Reference> {
    let (out, bad) = references(ctx.obj, ctx.world);
    for b in bad {
        // A reference the user wrote on purpose but onus cannot read is an error, not a silent pass.
        ctx.verdict(
            DataPublicAccess,
            "reference",
            Outcome::Error,
            None,
            b.to_string(),
            Some("fix the annotation value".into()),
        );
    }
    out
}

/// Judge every referenced resource on what is known about it.
pub(super) fn judge_references(ctx: &mut Ctx<'_>, refs: &[Reference]) {
    for r in refs {
        let controls = controls_for(&r.resource);
        let ns = ctx.namespace();
        match ctx.world.posture(ns, &r.resource) {
            // Facts older than the maximum age are no facts: the audit stopped, so judge as unknown.
            Knowledge::Known(p) if p.expired(ctx.now) => {
                match ctx.world.declared_posture(ns, &r.resource) {
                    Some(d) => judge_posture(ctx, d, controls, Some(&r.found_at)),
                    None if ctx.applies(controls[0]) => ctx.stale(controls[0], r, p),
                    None => {}
                }
            }
            Knowledge::Known(p) => judge_posture(ctx, p, controls, Some(&r.found_at)),
            Knowledge::Unknown => {
                if ctx.applies(controls[0]) {
                    ctx.unknown(controls[0], r);
                }
            }
        }
        // A storage container is also judged on its account, when the account is known.
        if let CloudResource::AzureContainer { account, .. } = &r.resource {
            let acct = CloudResource::AzureStorageAccount(account.clone());
            if let Knowledge::Known(p) = ctx.world.posture(ns, &acct)
                && !p.expired(ctx.now)
            {
                judge_posture(ctx, p, controls_for(&acct), Some(&r.found_at));
            }
        }
    }
}

/// Judge a declared resource: its own facts, merged over what the snapshot already knows about
/// the same cloud resource (other objects that configure it).
pub(super) fn judge_declared(ctx: &mut Ctx<'_>, d: Declared) {
    let merged;
    let posture = match ctx.world.posture(ctx.namespace(), &d.posture.resource) {
        Knowledge::Known(known) if known.source == d.posture.source => {
            let mut m = known.clone();
            m.merge(&d.posture);
            // The object's own exposures replace what an older version of it said.
            if let (Some(mine), Some(pa)) = (&d.posture.public_access, m.public_access.as_mut()) {
                pa.exposures.clone_from(&mine.exposures);
            }
            merged = m;
            &merged
        }
        _ => &d.posture,
    };
    judge_posture(ctx, posture, d.controls, None);
}

/// Run the given controls on a posture.
pub(super) fn judge_posture(
    ctx: &mut Ctx<'_>,
    p: &Posture,
    controls: &[ControlId],
    found_at: Option<&str>,
) {
    for &control in controls {
        if !ctx.applies(control) {
            continue;
        }
        if let Some(err) = &p.error {
            let what = format!("{} could not be read: {err}", p.resource);
            let fix = match p.source {
                crate::posture::Source::Live => {
                    "fix what the error names (credentials, permissions, the endpoint or the resource itself), then audit again: the controller retries within its TTL, `onus check --live` on its next run"
                }
                crate::posture::Source::Declared => "fix the declaring manifest as the error says",
            };
            ctx.verdict(
                control,
                "posture",
                Outcome::Error,
                Some(&p.resource),
                what,
                Some(fix.into()),
            );
            continue;
        }
        match control {
            DataPublicAccess => data::public_access(ctx, p, found_at),
            DataEncryptionAtRest => data::encryption_at_rest(ctx, p, found_at),
            DataEncryptionInTransit => data::encryption_in_transit(ctx, p, found_at),
            IdentityLeastPrivilege => identity::least_privilege(ctx, p, found_at),
            NetworkExposure => match &p.storage_network {
                Some(n) => network::storage_network(ctx, p, n, found_at),
                None => network::security_group(ctx, p, found_at),
            },
            LoggingAuditTrail => logging::audit_trail(ctx, p, found_at),
            _ => {}
        }
    }
}

/// " (found in X)" for messages about referenced resources.
pub(super) fn found(found_at: Option<&str>) -> String {
    found_at
        .map(|f| format!(" (used via {f})"))
        .unwrap_or_default()
}
