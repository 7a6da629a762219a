//! EC2: a security group's ingress rules.

use super::*;

// Answers that mean the resource is gone.
pub(super) const EC2_NOT_FOUND: &[&str] = &["InvalidGroup.NotFound", "InvalidGroupId.Malformed"];

impl AwsAuditor {
    pub(super) async fn audit_security_group(
        &self,
        resource: &CloudResource,
        id: &str,
    ) -> Result<Posture, AwsError> {
        let out = self
            .call(
                "ec2",
                "DescribeSecurityGroups",
                self.ec2.describe_security_groups().group_ids(id).send(),
            )
            .await
            .map_err(|e| not_found(e, EC2_NOT_FOUND, "the security group"))?;
        let group = out
            .security_groups()
            .iter()
            .find(|g| g.group_id() == Some(id))
            .ok_or_else(|| AwsError::NotFound {
                what: "the security group".into(),
                source: Box::new(AwsError::Unreadable(
                    "DescribeSecurityGroups returned no such group".into(),
                )),
            })?;
        let mut p = Posture::new(resource.clone(), Source::Live);
        p.ingress = Some(ingress_rules(group.ip_permissions()));
        Ok(p)
    }
}

/// Ingress rules of a security group: one per source (IPv4 and IPv6 ranges, prefix lists,
/// other groups); protocol `-1` means every protocol and port.
pub fn ingress_rules(permissions: &[aws_sdk_ec2::types::IpPermission]) -> Vec<IngressRule> {
    let mut rules = Vec::new();
    for perm in permissions {
        let raw_protocol = perm.ip_protocol().unwrap_or("-1");
        let protocol = normalise_protocol(raw_protocol);
        let (from_port, to_port) = aws_port_range(
            raw_protocol,
            perm.from_port().map(i64::from),
            perm.to_port().map(i64::from),
        );
        let sources = perm
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip())
            .chain(perm.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()))
            .chain(
                perm.prefix_list_ids()
                    .iter()
                    .filter_map(|p| p.prefix_list_id()),
            )
            .chain(
                perm.user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id()),
            );
        for source in sources {
            let rule = IngressRule {
                protocol: protocol.clone(),
                from_port,
                to_port,
                source: source.to_string(),
            };
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
    rules
}
