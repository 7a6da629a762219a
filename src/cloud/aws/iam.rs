//! IAM: a role's inline and attached managed policies, and managed policies, through the same
//! analysis as declared documents.

use super::*;

// Answers that mean the resource is gone.
pub(super) const IAM_NOT_FOUND: &[&str] = &["NoSuchEntity"];

impl AwsAuditor {
    pub(super) async fn audit_role(&self, resource: &CloudResource) -> Result<Posture, AwsError> {
        let name = resource
            .role_name()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| AwsError::Unreadable(format!("{resource}: no role name")))?;
        self.check_account(resource).await?;
        let gone = |e| not_found(e, IAM_NOT_FOUND, "the role");
        let (inline, attached) =
            tokio::join!(self.inline_policy_names(name), self.attached_policies(name));
        let (inline, attached) = (inline.map_err(gone)?, attached.map_err(gone)?);

        let inline_docs = try_join_all(inline.iter().map(|policy| async move {
            let out = self
                .call(
                    "iam",
                    "GetRolePolicy",
                    self.iam
                        .get_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send(),
                )
                .await
                .map_err(gone)?;
            Ok::<_, AwsError>((
                format!("inline policy {policy}"),
                out.policy_document().to_string(),
            ))
        }));
        let attached_docs = try_join_all(attached.iter().map(|arn| async move {
            let doc = self.policy_document(arn).await?;
            Ok::<_, AwsError>((format!("attached {arn}"), doc))
        }));
        let (inline_docs, attached_docs) = tokio::try_join!(inline_docs, attached_docs)?;

        let mut findings = Vec::new();
        for (label, doc) in inline_docs.iter().chain(&attached_docs) {
            findings.extend(analyse(label, doc)?);
        }
        let mut p = Posture::new(resource.clone(), Source::Live);
        p.iam = Some(findings);
        p.attached_policies = attached;
        Ok(p)
    }

    pub(super) async fn inline_policy_names(&self, role: &str) -> Result<Vec<String>, AwsError> {
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .call(
                    "iam",
                    "ListRolePolicies",
                    self.iam
                        .list_role_policies()
                        .role_name(role)
                        .set_marker(marker.take())
                        .send(),
                )
                .await?;
            names.extend(out.policy_names().iter().cloned());
            match out.marker() {
                Some(m) if out.is_truncated() => marker = Some(m.to_string()),
                _ => return Ok(names),
            }
        }
    }

    pub(super) async fn attached_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .call(
                    "iam",
                    "ListAttachedRolePolicies",
                    self.iam
                        .list_attached_role_policies()
                        .role_name(role)
                        .set_marker(marker.take())
                        .send(),
                )
                .await?;
            arns.extend(
                out.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_string)),
            );
            match out.marker() {
                Some(m) if out.is_truncated() => marker = Some(m.to_string()),
                _ => return Ok(arns),
            }
        }
    }

    /// The default version's document of a managed policy.
    pub(super) async fn policy_document(&self, arn: &str) -> Result<String, AwsError> {
        let gone = |e| not_found(e, IAM_NOT_FOUND, &format!("policy {arn}"));
        let policy = self
            .call(
                "iam",
                "GetPolicy",
                self.iam.get_policy().policy_arn(arn).send(),
            )
            .await
            .map_err(gone)?;
        let version = policy
            .policy()
            .and_then(|p| p.default_version_id())
            .ok_or_else(|| {
                AwsError::Unreadable(format!("GetPolicy: {arn} has no default version"))
            })?;
        let out = self
            .call(
                "iam",
                "GetPolicyVersion",
                self.iam
                    .get_policy_version()
                    .policy_arn(arn)
                    .version_id(version)
                    .send(),
            )
            .await
            .map_err(gone)?;
        out.policy_version()
            .and_then(|v| v.document())
            .map(str::to_string)
            .ok_or_else(|| {
                AwsError::Unreadable(format!("GetPolicyVersion: {arn} {version} has no document"))
            })
    }

    pub(super) async fn audit_policy(
        &self,
        resource: &CloudResource,
        policy: &str,
    ) -> Result<Posture, AwsError> {
        let arn = if policy.starts_with("arn:") {
            self.check_account(resource).await?;
            policy.to_string()
        } else {
            // Declared policies are known by name (`policy/NAME` or `NAME`): ours.
            let name = policy.rsplit('/').next().unwrap_or(policy);
            let account = self.account_id().await?;
            format!(
                "arn:{}:iam::{account}:policy/{name}",
                partition(&self.region)
            )
        };
        let doc = self.policy_document(&arn).await?;
        let mut p = Posture::new(resource.clone(), Source::Live);
        p.iam = Some(analyse(&format!("policy {arn}"), &doc)?);
        Ok(p)
    }
}

/// IAM findings of one policy document, each statement label prefixed with `label: `.
pub(super) fn analyse(label: &str, document: &str) -> Result<Vec<IamFinding>, AwsError> {
    let unreadable = |e: crate::iam::IamError| AwsError::Unreadable(format!("{label}: {e}"));
    let doc = crate::iam::parse(document).map_err(unreadable)?;
    Ok(doc
        .analyse()
        .map_err(unreadable)?
        .into_iter()
        .map(|mut f| {
            f.statement = format!("{label}: {}", f.statement);
            f
        })
        .collect())
}
