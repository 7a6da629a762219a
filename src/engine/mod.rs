//! The engine: judges one Kubernetes object against the baselines of its namespace.
//!
//! Pure: no I/O, no clock (the caller passes `now`), no global state. The CLI, the webhook and the
//! controller all call `evaluate`.

mod application;
mod cloud;
mod data;
mod host;
mod identity;
mod logging;
mod network;
pub mod pod_security;
mod verdict;

pub use network::is_default_deny;

pub use cloud::references;
pub use verdict::{Check, Outcome, Verdict, strictest};

/// Every aspect a finding of `rule` may name (what `data/compliance/mappings.csv` may key on;
/// a test holds the two together).
pub fn aspects(rule: &str) -> Vec<String> {
    let names: &[&str] = match rule {
        "host-access" => pod_security::ASPECTS,
        "policy-analysis" => &[
            "full-admin",
            "service-wildcard",
            "allow-not-action",
            "privilege-escalation",
        ],
        "public-access" => &[
            "s3-acl",
            "s3-policy",
            "s3-block-public-access",
            "azure-blob",
            "gcs-all-users",
            "gcs-public-access-prevention",
        ],
        "default-encryption" => &[
            "s3",
            "s3-cmk",
            "azure-storage",
            "azure-storage-cmk",
            "gcs",
            "gcs-cmk",
            "other",
            "other-cmk",
        ],
        "transport" => &[
            "azure-https-only",
            "azure-min-tls-1.2",
            "s3-secure-transport-policy",
        ],
        "volume-encryption" => &["ebs", "ebs-cmk", "azure-disk-cmk", "gce-pd-cmk"],
        "ingress-rules" => {
            let mut out = vec!["forbidden-port".to_string(), "all-ports".to_string()];
            out.extend(network::MAPPED_PORTS.iter().map(|p| format!("tcp-{p}")));
            return out;
        }
        "image-reference" => &["pinned", "allowed-registries"],
        "access-logging" => &["s3", "gcs", "azure-storage", "other"],
        _ => &[],
    };
    names.iter().map(ToString::to_string).collect()
}

use chrono::{DateTime, Utc};

use crate::api::{Action, UnknownPolicy};
use crate::baseline::{EffectiveBaseline, ExceptionState};
use crate::declared::{NameResolver, declared};
use crate::model::{ControlId, Owner};
use crate::object::{Object, ObjectRef};
use crate::posture::{CloudResource, PostureLookup};
use crate::refs::{ConfigMaps, PodTemplate, Reference};

/// What the engine may read besides the object: the snapshot of the cluster (or of the files
/// `onus check` read) and the posture cache.
pub trait World: PostureLookup + ConfigMaps + NameResolver {
    fn service_account(&self, namespace: &str, name: &str) -> Option<&Object>;
    /// The namespace has a NetworkPolicy that denies all ingress by default.
    fn has_default_deny(&self, namespace: &str) -> bool;
    /// The AWS account audits run in, when a baseline does not name one.
    fn aws_account(&self) -> Option<&str> {
        None
    }
    /// Why the audits' AWS account is not known, when looking it up failed.
    fn aws_account_error(&self) -> Option<&str> {
        None
    }
}

/// Judge one object under every baseline that applies to its namespace; where baselines
/// disagree, the strictest verdict of each check wins.
pub fn evaluate(
    obj: &Object,
    baselines: &[&EffectiveBaseline],
    world: &dyn World,
    now: DateTime<Utc>,
) -> Vec<Verdict> {
    match baselines {
        [] => Vec::new(),
        [one] => evaluate_one(obj, one, world, now),
        many => strictest(
            many.iter()
                .flat_map(|b| evaluate_one(obj, b, world, now))
                .collect(),
        ),
    }
}

/// Namespace-level checks (`network.segmentation`), judged on the Namespace itself.
pub fn evaluate_namespace(
    namespace: &str,
    baselines: &[&EffectiveBaseline],
    world: &dyn World,
    now: DateTime<Utc>,
) -> Vec<Verdict> {
    let subject = Object {
        id: ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: namespace.to_string(),
        },
        body: serde_json::Value::Null,
    };
    let all = baselines
        .iter()
        .flat_map(|b| {
            let mut ctx = Ctx::new(&subject, b, world, now);
            network::segmentation(&mut ctx, namespace);
            // The account's audit trail, once an audit has seen it.
            let account = b.aws_account.as_deref().or_else(|| world.aws_account());
            if let (crate::model::Provider::Aws, None, Some(e)) =
                (b.provider, account, world.aws_account_error())
                && ctx.applies(ControlId::LoggingAuditTrail)
            {
                ctx.verdict(
                    ControlId::LoggingAuditTrail,
                    "posture",
                    Outcome::Error,
                    None,
                    format!("the AWS account's audit trail could not be checked: {e}"),
                    Some("give the baseline aws.accountId, or let onus's credentials call sts:GetCallerIdentity".into()),
                );
            }
            if let (crate::model::Provider::Aws, Some(acct)) = (b.provider, account) {
                let r = Reference {
                    resource: CloudResource::AwsAccount(acct.to_string()),
                    found_at: "the baseline's AWS account".into(),
                };
                if matches!(
                    world.posture(namespace, &r.resource),
                    crate::posture::Knowledge::Known(p) if !p.expired(now)
                ) {
                    cloud::judge_references(&mut ctx, &[r]);
                }
            }
            ctx.out
        })
        .collect();
    strictest(all)
}

fn evaluate_one(
    obj: &Object,
    b: &EffectiveBaseline,
    world: &dyn World,
    now: DateTime<Utc>,
) -> Vec<Verdict> {
    let mut ctx = Ctx::new(obj, b, world, now);
    if let Some(pod) = PodTemplate::of(obj) {
        identity::static_credentials(&mut ctx, &pod);
        host::isolation(&mut ctx, &pod);
        application::image_provenance(&mut ctx, &pod);
        let refs = cloud::workload_references(&mut ctx);
        cloud::judge_references(&mut ctx, &refs);
        return ctx.out;
    }
    match (obj.group(), obj.kind()) {
        ("", "ServiceAccount") => {
            let refs: Vec<Reference> = crate::refs::service_account_role(obj)
                .map(|r| Reference {
                    resource: r,
                    found_at: format!("annotation {}", crate::refs::IRSA_ANNOTATION),
                })
                .into_iter()
                .collect();
            cloud::judge_references(&mut ctx, &refs);
        }
        ("", "Service") => network::service(&mut ctx),
        ("networking.k8s.io" | "extensions", "Ingress") => data::ingress_tls(&mut ctx),
        ("storage.k8s.io", "StorageClass") => data::storage_class(&mut ctx),
        _ => {
            if let Some(d) = declared(obj, world) {
                cloud::judge_declared(&mut ctx, d);
            }
        }
    }
    ctx.out
}

/// Evaluation state for one object under one baseline.
pub(crate) struct Ctx<'a> {
    pub obj: &'a Object,
    pub b: &'a EffectiveBaseline,
    pub world: &'a dyn World,
    pub now: DateTime<Utc>,
    pub out: Vec<Verdict>,
    gated: u32,
}

/// The outcome of asking whether a control runs on this object.
impl<'a> Ctx<'a> {
    /// The namespace whose declarations count for this object ("" for cluster-scoped objects;
    /// the Namespace itself for namespace-level checks).
    pub fn namespace(&self) -> &'a str {
        let obj: &'a Object = self.obj;
        match obj.namespace() {
            Some(ns) => ns,
            None if obj.kind() == "Namespace" => &obj.id.name,
            None => "",
        }
    }

    fn new(
        obj: &'a Object,
        b: &'a EffectiveBaseline,
        world: &'a dyn World,
        now: DateTime<Utc>,
    ) -> Ctx<'a> {
        Ctx {
            obj,
            b,
            world,
            now,
            out: Vec::new(),
            gated: 0,
        }
    }

    /// Does `control` run here? When it does not (disabled, or the provider's duty), a single
    /// `skip` verdict with the reason is recorded for this object.
    pub fn applies(&mut self, control: ControlId) -> bool {
        let owner = self.b.owner(control);
        let bit = 1u32
            << (ControlId::ALL
                .iter()
                .position(|c| *c == control)
                .unwrap_or(0));
        let first = self.gated & bit == 0;
        self.gated |= bit;
        let reason = if self.b.disabled(control) {
            format!("disabled by {}", self.b.name)
        } else if !owner.customer_has_duty() {
            format!(
                "the {} domain is the provider's duty under {} {} ({})",
                control.domain(),
                self.b.provider,
                self.b.model,
                self.source_of(control)
            )
        } else {
            return true;
        };
        if first {
            self.push(
                control,
                "applicability".into(),
                Outcome::Skip,
                None,
                reason,
                None,
            );
        }
        false
    }

    fn source_of(&self, control: ControlId) -> &'static str {
        self.b
            .matrix
            .cells()
            .into_iter()
            .find(|c| c.domain == control.domain())
            .map(|c| c.source)
            .unwrap_or("")
    }

    /// Record a verdict. Failures carry who owns the duty and why; exceptions are applied here.
    pub fn verdict(
        &mut self,
        control: ControlId,
        check: impl Into<Check>,
        outcome: Outcome,
        cloud: Option<&CloudResource>,
        what: String,
        remediation: Option<String>,
    ) {
        let mut outcome = outcome;
        let mut what = what;
        if matches!(outcome, Outcome::Fail | Outcome::Warn) {
            match self
                .b
                .exception(control, self.obj.kind(), &self.obj.id.name, self.now)
            {
                ExceptionState::Active(e) => {
                    outcome = Outcome::Skip;
                    let until = e
                        .expires
                        .map(|t| format!(" until {}", t.to_rfc3339()))
                        .unwrap_or_default();
                    what = format!("{what} [exempted{until}: {}]", e.justification);
                }
                ExceptionState::Expired(e) => {
                    let at = e.expires.map(|t| t.to_rfc3339()).unwrap_or_default();
                    what = format!(
                        "{what} [exception expired {at}, no longer applied: {}]",
                        e.justification
                    );
                }
                ExceptionState::None => {}
            }
        }
        if matches!(outcome, Outcome::Fail | Outcome::Warn | Outcome::Error) {
            let owner = self.b.owner(control);
            let duty = match owner {
                Owner::Customer => "the customer's duty",
                Owner::Shared => "a shared duty, the customer's part",
                Owner::Provider => "the provider's duty",
            };
            what = format!(
                "{what}; {duty} under {} {} ({})",
                self.b.provider,
                self.b.model,
                self.source_of(control)
            );
        }
        self.push(control, check.into(), outcome, cloud, what, remediation);
    }

    fn push(
        &mut self,
        control: ControlId,
        check: Check,
        outcome: Outcome,
        cloud: Option<&CloudResource>,
        message: String,
        remediation: Option<String>,
    ) {
        self.out.push(Verdict {
            control,
            rule: check.rule,
            result: outcome,
            action: self.b.action(control),
            domain: control.domain(),
            owner: self.b.owner(control),
            resource: self.obj.id.clone(),
            cloud_resource: cloud.map(ToString::to_string),
            message,
            remediation,
            baseline: self.b.name.clone(),
            provider: self.b.provider,
            service_model: self.b.model,
            frameworks: crate::compliance::for_verdict(control, &check, self.b.provider),
        });
    }

    /// The verdict for a referenced resource nobody has audited yet.
    pub fn unknown(&mut self, control: ControlId, r: &Reference) {
        let what = format!(
            "{} (found in {}) has not been audited yet",
            r.resource, r.found_at
        );
        self.unaudited(control, r, what);
    }

    /// The verdict for a resource whose last audit is older than the maximum age: judged as
    /// not audited, never on the old facts.
    pub fn stale(&mut self, control: ControlId, r: &Reference, p: &crate::posture::Posture) {
        let when = p
            .observed_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "an unknown time".into());
        let what = format!(
            "{} (found in {}) was last audited at {when}, longer ago than the posture's maximum age: audits have stopped",
            r.resource, r.found_at
        );
        self.unaudited(control, r, what);
    }

    fn unaudited(&mut self, control: ControlId, r: &Reference, what: String) {
        let (outcome, tail) = match self.b.unknown {
            UnknownPolicy::Allow => (Outcome::Skip, "allowed by unknownCloudResources: Allow"),
            UnknownPolicy::Warn => (Outcome::Warn, "unknownCloudResources: Warn"),
            UnknownPolicy::Deny => (Outcome::Fail, "unknownCloudResources: Deny"),
        };
        let action = if self.b.unknown == UnknownPolicy::Warn {
            Some(Action::Warn)
        } else {
            None
        };
        let what = format!("{what}; {tail}");
        let remediation = Some("declare the resource in the same manifests (ACK, Crossplane, ASO, Config Connector) or wait for the audit; `onus check --live` audits it now".to_string());
        self.verdict(
            control,
            "unknown-posture",
            outcome,
            Some(&r.resource),
            what,
            remediation,
        );
        if let (Some(a), Some(last)) = (action, self.out.last_mut()) {
            last.action = a.min(last.action);
        }
    }
}

#[cfg(test)]
mod tests;
