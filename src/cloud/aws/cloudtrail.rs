//! CloudTrail: the account's trails, as CIS AWS Foundations asks of them.

use super::*;

impl AwsAuditor {
    pub(super) async fn audit_account(
        &self,
        resource: &CloudResource,
        id: &str,
    ) -> Result<Posture, AwsError> {
        let mine = self.account_id().await?;
        if id != mine {
            return Err(AwsError::WrongAccount {
                resource: resource.to_string(),
                resource_account: id.to_string(),
                credentials_account: mine,
            });
        }
        let trails = self
            .call(
                "cloudtrail",
                "DescribeTrails",
                self.cloudtrail
                    .describe_trails()
                    .include_shadow_trails(true)
                    .send(),
            )
            .await?;
        // Only multi-region trails can satisfy CIS AWS 3.1; the rest are listed as they are.
        let mut seen = std::collections::BTreeSet::new();
        let listed: Vec<&aws_sdk_cloudtrail::types::Trail> = trails
            .trail_list()
            .iter()
            .filter(|t| t.name().is_some())
            .filter(|t| seen.insert(t.trail_arn().or(t.name()).map(str::to_string)))
            .collect();
        let read = try_join_all(listed.iter().map(|t| async move {
            let name = t.name().unwrap_or_default().to_string();
            let id = t.trail_arn().map_or_else(|| name.clone(), str::to_string);
            let multi_region = t.is_multi_region_trail() == Some(true);
            let (logging, management_events) = if multi_region {
                let status = self.call(
                    "cloudtrail",
                    "GetTrailStatus",
                    self.cloudtrail.get_trail_status().name(&id).send(),
                );
                let selectors = self.call(
                    "cloudtrail",
                    "GetEventSelectors",
                    self.cloudtrail.get_event_selectors().trail_name(&id).send(),
                );
                let (status, selectors) = tokio::try_join!(status, selectors)?;
                (
                    status.is_logging() == Some(true),
                    records_management_events(&selectors),
                )
            } else {
                (false, false)
            };
            Ok::<_, AwsError>(Trail {
                name,
                multi_region,
                logging,
                management_events,
                log_file_validation: t.log_file_validation_enabled() == Some(true),
                kms_encrypted: t.kms_key_id().is_some_and(|k| !k.is_empty()),
            })
        }))
        .await?;
        let mut p = Posture::new(resource.clone(), Source::Live);
        p.audit_trail = Some(AuditTrail { trails: read });
        Ok(p)
    }
}

/// Does a trail record management events, reads and writes? No selectors means AWS's default
/// (all management events); basic selectors need one with `IncludeManagementEvents` and
/// `ReadWriteType: All`; advanced selectors need one selecting `eventCategory = Management`
/// without narrowing it to reads or writes.
pub(super) fn records_management_events(
    s: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
) -> bool {
    let basic = s.event_selectors();
    let advanced = s.advanced_event_selectors();
    if basic.is_empty() && advanced.is_empty() {
        return true;
    }
    let basic_ok = basic.iter().any(|e| {
        e.include_management_events() != Some(false)
            && e.read_write_type()
                .is_none_or(|t| *t == aws_sdk_cloudtrail::types::ReadWriteType::All)
    });
    let advanced_ok = advanced.iter().any(|a| {
        let fields = a.field_selectors();
        let management = fields
            .iter()
            .any(|f| f.field() == "eventCategory" && f.equals().iter().any(|v| v == "Management"));
        let narrowed = fields.iter().any(|f| f.field() == "readOnly");
        management && !narrowed
    });
    basic_ok || advanced_ok
}
