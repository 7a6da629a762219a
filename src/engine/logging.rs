//! Logging domain: a cloud audit trail for the account, access logs on the data.

use crate::model::ControlId::LoggingAuditTrail;
use crate::posture::{CloudResource, Posture, Source};

use super::cloud::found;
use super::{Ctx, Outcome};

pub(super) fn audit_trail(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    if let Some(trail) = &p.audit_trail {
        account_trail(ctx, p, &trail.logging_multi_region_trails);
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
        other => format!("turn on access logging for {other}"),
    };
    let what = format!(
        "{}{} has no server access logging, and the baseline asks for it",
        p.resource,
        found(found_at)
    );
    ctx.verdict(
        LoggingAuditTrail,
        "access-logging",
        Outcome::Fail,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

fn account_trail(ctx: &mut Ctx<'_>, p: &Posture, trails: &[String]) {
    if trails.is_empty() {
        let what = format!(
            "{} has no multi-region CloudTrail trail that is logging",
            p.resource
        );
        let fix = "`aws cloudtrail create-trail --name account-trail --s3-bucket-name LOG-BUCKET --is-multi-region-trail && aws cloudtrail start-logging --name account-trail`".to_string();
        ctx.verdict(
            LoggingAuditTrail,
            "cloud-trail",
            Outcome::Fail,
            Some(&p.resource),
            what,
            Some(fix),
        );
    } else {
        let what = format!(
            "{} is logged by multi-region trail {}",
            p.resource,
            trails.join(", ")
        );
        ctx.verdict(
            LoggingAuditTrail,
            "cloud-trail",
            Outcome::Pass,
            Some(&p.resource),
            what,
            None,
        );
    }
}
