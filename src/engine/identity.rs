//! Identity domain: least privilege of workload identities, no static cloud keys in pods.

use serde_json::Value;

use crate::model::ControlId::{IdentityLeastPrivilege, IdentityWorkloadIdentity};
use crate::object::list;
use crate::posture::{CloudResource, Knowledge, Posture};
use crate::refs::PodTemplate;

use super::cloud::found;
use super::{Check, Ctx, Outcome};

/// Env names that carry static cloud credentials.
const CREDENTIAL_NAMES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "ARM_CLIENT_SECRET",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CREDENTIALS",
    "GOOGLE_CLOUD_KEYFILE_JSON",
    "GCLOUD_KEYFILE_JSON",
];

fn is_credential_name(name: &str, extra: &[String]) -> bool {
    let upper = name.to_ascii_uppercase();
    CREDENTIAL_NAMES.contains(&upper.as_str()) || extra.iter().any(|e| e.eq_ignore_ascii_case(name))
}

/// An AWS access key id (AKIA/ASIA + 16 upper-case alphanumerics) inside a value.
fn has_access_key_id(v: &str) -> bool {
    v.as_bytes().windows(20).any(|w| {
        (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
            && w[4..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })
}

pub(super) fn static_credentials(ctx: &mut Ctx<'_>, pod: &PodTemplate<'_>) {
    if !ctx.applies(IdentityWorkloadIdentity) {
        return;
    }
    let extra = ctx.b.params.extra_credential_names.clone();
    let mut found = Vec::new();
    for (_, c) in pod.containers() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        for e in list(c, "env") {
            let name = e.get("name").and_then(Value::as_str).unwrap_or("");
            let secret_key = e.get("valueFrom").and_then(|v| v.get("secretKeyRef"));
            if is_credential_name(name, &extra) {
                let from = match secret_key
                    .and_then(|s| s.get("name"))
                    .and_then(Value::as_str)
                {
                    Some(s) => format!("from Secret {s}"),
                    None => "inline".to_string(),
                };
                found.push(format!("env {name} ({from}) in container {cname}"));
            } else if let Some(key) = secret_key
                .and_then(|s| s.get("key"))
                .and_then(Value::as_str)
            {
                if is_credential_name(key, &extra) {
                    found.push(format!(
                        "env {name} takes Secret key {key} in container {cname}"
                    ));
                }
            } else if e
                .get("value")
                .and_then(Value::as_str)
                .is_some_and(has_access_key_id)
            {
                found.push(format!(
                    "env {name} holds an AWS access key id in container {cname}"
                ));
            }
        }
    }
    if found.is_empty() {
        let what = format!("{} carries no static cloud credentials", ctx.obj.id);
        ctx.verdict(
            IdentityWorkloadIdentity,
            "static-credentials",
            Outcome::Pass,
            None,
            what,
            None,
        );
        return;
    }
    let what = format!(
        "{} has static cloud credentials: {}",
        ctx.obj.id,
        found.join("; ")
    );
    let fix = match ctx.b.provider {
        crate::model::Provider::Aws => {
            "remove the keys and use IRSA or EKS Pod Identity: annotate the ServiceAccount with eks.amazonaws.com/role-arn, then `aws iam delete-access-key --user-name USER --access-key-id KEY`"
        }
        crate::model::Provider::Azure => {
            "remove the secret and use Azure Workload Identity: label the pod azure.workload.identity/use=true and annotate the ServiceAccount with azure.workload.identity/client-id, then `az ad app credential delete --id APP-ID --key-id KEY-ID`"
        }
        crate::model::Provider::Gcp => {
            "remove the key file and use GKE Workload Identity: annotate the ServiceAccount with iam.gke.io/gcp-service-account, then `gcloud iam service-accounts keys delete KEY-ID --iam-account SA-EMAIL`"
        }
    };
    ctx.verdict(
        IdentityWorkloadIdentity,
        "static-credentials",
        Outcome::Fail,
        None,
        what,
        Some(fix.to_string()),
    );
}

pub(super) fn least_privilege(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    let Some(own) = &p.iam else {
        return;
    };
    let mut check = Check::new("policy-analysis");
    let mut findings: Vec<String> = Vec::new();
    for f in own {
        for a in f.issue.aspects() {
            check.aspect(a);
        }
        findings.push(f.describe());
    }
    // Attached managed policies declared elsewhere in the snapshot.
    for arn in &p.attached_policies {
        let key = CloudResource::IamPolicy(arn.clone());
        if let Knowledge::Known(pol) = ctx.world.posture(ctx.namespace(), &key)
            && let Some(fs) = &pol.iam
        {
            for f in fs {
                for a in f.issue.aspects() {
                    check.aspect(a);
                }
                findings.push(format!("attached {arn}: {}", f.describe()));
            }
        }
    }
    if findings.is_empty() {
        let what = format!(
            "{}{} grants no wildcard or escalation rights",
            p.resource,
            found(found_at)
        );
        ctx.verdict(
            IdentityLeastPrivilege,
            "policy-analysis",
            Outcome::Pass,
            Some(&p.resource),
            what,
            None,
        );
        return;
    }
    let what = format!("{}{}: {}", p.resource, found(found_at), findings.join("; "));
    let fix = match p.resource.role_name() {
        Some(role) => format!(
            "replace wildcard statements with the actions the workload uses (IAM Access Analyzer can generate them); list what is attached with `aws iam list-attached-role-policies --role-name {role}` and `aws iam list-role-policies --role-name {role}`, then `aws iam detach-role-policy --role-name {role} --policy-arn ARN`"
        ),
        None => format!(
            "narrow {} to the actions and resources needed, then `aws iam create-policy-version --policy-arn ARN --policy-document file://narrow.json --set-as-default`",
            p.resource
        ),
    };
    ctx.verdict(
        IdentityLeastPrivilege,
        check,
        Outcome::Fail,
        Some(&p.resource),
        what,
        Some(fix),
    );
}
