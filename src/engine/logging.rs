//! Logging domain: a cloud audit trail for the account, access logs on the data.

use crate::model::ControlId::LoggingAuditTrail;
use crate::posture::{AuditTrail, CloudResource, Posture, Source, Trail};

use super::cloud::found;
use super::{Check, Ctx, Outcome};

pub(super) fn audit_trail(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    if let Some(trail) = &p.audit_trail {
        account_trail(ctx, p, trail);
        return;
    }
    if !ctx.b.params.require_access_logging {
        return;
    }
    let logging = match (p.access_logging, p.source) {
        (Some(l), _) => l,
        // Declared and silent about logging: none declared.
        (None, Source::Declared) => false,
        (None, Source::Live) => return,
    };
    if logging {
        let what = format!(
            "{}{} has server access logging",
            p.resource,
            found(found_at)
        );
        ctx.verdict(
            LoggingAuditTrail,
            "access-logging",
            Outcome::Pass,
            Some(&p.resource),
            what,
            None,
        );
        return;
    }
    let fix = match &p.resource {
        CloudResource::S3Bucket(b) => format!(
            "`aws s3api put-bucket-logging --bucket {b} --bucket-logging-status '{{\"LoggingEnabled\":{{\"TargetBucket\":\"LOG-BUCKET\",\"TargetPrefix\":\"{b}/\"}}}}'`"
        ),
        CloudResource::GcsBucket(b) => {
            format!("`gcloud storage buckets update gs://{b} --log-bucket=gs://LOG-BUCKET`")
        }
        CloudResource::AzureStorageAccount(a) => format!(
            "`az storage logging update --account-name {a} --services b --log rwd --retention 90` (or a diagnostic setting that sends StorageRead/StorageWrite/StorageDelete to a Log Analytics workspace)"
        ),
        other => format!("turn on access logging for {other}"),
    };
    let what = format!(
        "{}{} has no server access logging, and the baseline asks for it",
        p.resource,
        found(found_at)
    );
    ctx.verdict(
        LoggingAuditTrail,
        Check::new("access-logging").with(&[match &p.resource {
            CloudResource::S3Bucket(_) => "s3",
            CloudResource::GcsBucket(_) => "gcs",
            CloudResource::AzureStorageAccount(_) => "azure-storage",
            _ => "other",
        }]),
        Outcome::Fail,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

/// One property of a complete trail: (rule, whether a trail has it, what it is, the fix).
type TrailCheck = (&'static str, fn(&Trail) -> bool, &'static str, &'static str);

/// The account's trails against what CIS AWS Foundations asks, each its own check: a
/// multi-region trail that is logging management events (3.1), log file validation on it (3.2),
/// and its logs encrypted with KMS (3.5). The last two are judged on the complete trails only:
/// without one, the first check already fails.
fn account_trail(ctx: &mut Ctx<'_>, p: &Posture, trail: &AuditTrail) {
    let complete = trail.complete();
    if complete.is_empty() {
        let near: Vec<String> = trail
            .trails
            .iter()
            .filter(|t| t.multi_region)
            .map(|t| {
                let mut missing = Vec::new();
                if !t.logging {
                    missing.push("is not logging");
                }
                if !t.management_events {
                    missing.push("records no management events (reads and writes)");
                }
                format!("trail {} {}", t.name, missing.join(" and "))
            })
            .collect();
        let what = if near.is_empty() {
            format!(
                "{} has no multi-region CloudTrail trail that is logging (CIS AWS Foundations v7.0 4.1)",
                p.resource
            )
        } else {
            format!(
                "{} has no multi-region CloudTrail trail that is logging its management events (CIS AWS Foundations v7.0 4.1): {}",
                p.resource,
                near.join("; ")
            )
        };
        let fix = "`aws cloudtrail create-trail --name account-trail --s3-bucket-name LOG-BUCKET --is-multi-region-trail --enable-log-file-validation --kms-key-id KEY && aws cloudtrail start-logging --name account-trail` (an existing trail: `aws cloudtrail start-logging` and `aws cloudtrail put-event-selectors --trail-name T --event-selectors '[{\"ReadWriteType\":\"All\",\"IncludeManagementEvents\":true}]'`)".to_string();
        ctx.verdict(
            LoggingAuditTrail,
            "cloud-trail",
            Outcome::Fail,
            Some(&p.resource),
            what,
            Some(fix),
        );
        return;
    }
    let names = |ts: &[&Trail]| {
        ts.iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = format!(
        "{} is logged by multi-region trail {}",
        p.resource,
        names(&complete)
    );
    ctx.verdict(
        LoggingAuditTrail,
        "cloud-trail",
        Outcome::Pass,
        Some(&p.resource),
        what,
        None,
    );
    let checks: [TrailCheck; 2] = [
        (
            "trail-log-validation",
            |t| t.log_file_validation,
            "log file validation (CIS AWS Foundations v7.0 4.2): a changed or deleted log file would go unnoticed",
            "`aws cloudtrail update-trail --name TRAIL --enable-log-file-validation`",
        ),
        (
            "trail-kms-encryption",
            |t| t.kms_encrypted,
            "logs encrypted with a KMS key (CIS AWS Foundations v7.0 4.5)",
            "`aws cloudtrail update-trail --name TRAIL --kms-key-id KEY` (the key policy must let CloudTrail encrypt)",
        ),
    ];
    for (rule, holds, what_it_is, fix) in checks {
        let with: Vec<&Trail> = complete.iter().copied().filter(|t| holds(t)).collect();
        if with.is_empty() {
            let what = format!(
                "{}: trail {} has no {what_it_is}",
                p.resource,
                names(&complete)
            );
            ctx.verdict(
                LoggingAuditTrail,
                rule,
                Outcome::Fail,
                Some(&p.resource),
                what,
                Some(fix.replace("TRAIL", &complete[0].name)),
            );
        } else {
            let short = what_it_is.split(" (").next().unwrap_or(what_it_is);
            let what = format!("{}: trail {} has {short}", p.resource, names(&with));
            ctx.verdict(
                LoggingAuditTrail,
                rule,
                Outcome::Pass,
                Some(&p.resource),
                what,
                None,
            );
        }
    }
}
