//! Network domain: nothing internet-facing on forbidden ports, default-deny segmentation.

use serde_json::Value;

use crate::model::ControlId::{NetworkExposure, NetworkSegmentation};
use crate::network::{exposure, normalise_protocol};
use crate::object::list;
use crate::posture::{CloudResource, IngressRule, NetworkAccess, Posture, StorageNetwork};
use crate::refs::{AWS_LB_SECURITY_GROUPS, Reference, parse_reference};

use super::cloud::{found, judge_references};
use super::{Check, Ctx, Outcome};

/// Annotations that make a cloud load balancer internal.
fn is_internal(ctx: &Ctx<'_>) -> bool {
    let a = |k: &str| ctx.obj.annotation(k);
    a("service.beta.kubernetes.io/aws-load-balancer-internal")
        .is_some_and(|v| v == "true" || v.starts_with("0.0.0.0/0") || v == "internal")
        || a("service.beta.kubernetes.io/aws-load-balancer-scheme") == Some("internal")
        || a("service.beta.kubernetes.io/azure-load-balancer-internal") == Some("true")
        || a("networking.gke.io/load-balancer-type") == Some("Internal")
        || a("cloud.google.com/load-balancer-type")
            .is_some_and(|v| v.eq_ignore_ascii_case("internal"))
}

/// A Service of type LoadBalancer that is internet-facing must not open forbidden ports to all.
pub(super) fn service(ctx: &mut Ctx<'_>) {
    if ctx.obj.str_at("spec.type") != Some("LoadBalancer") {
        return;
    }
    if !ctx.applies(NetworkExposure) {
        return;
    }
    // Security groups the load balancer uses are judged on their own posture too.
    let sg_refs: Vec<Reference> = ctx
        .obj
        .annotation(AWS_LB_SECURITY_GROUPS)
        .map(|v| {
            v.split(',')
                .filter_map(parse_reference)
                .map(|r| Reference {
                    resource: r,
                    found_at: format!("annotation {AWS_LB_SECURITY_GROUPS}"),
                })
                .collect()
        })
        .unwrap_or_default();
    if is_internal(ctx) {
        let what = format!("{} is an internal load balancer", ctx.obj.id);
        ctx.verdict(
            NetworkExposure,
            "load-balancer",
            Outcome::Pass,
            None,
            what,
            None,
        );
        judge_references(ctx, &sg_refs);
        return;
    }
    let mut ranges: Vec<String> = list(&ctx.obj.body, "spec.loadBalancerSourceRanges")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if let Some(a) = ctx
        .obj
        .annotation("service.beta.kubernetes.io/load-balancer-source-ranges")
    {
        ranges.extend(
            a.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    let internet = ctx.b.params.internet;
    let open_to_all = ranges.is_empty() || ranges.iter().any(|r| internet.includes(r));
    let source = if ranges.is_empty() {
        "0.0.0.0/0".to_string()
    } else {
        ranges
            .iter()
            .find(|r| internet.includes(r))
            .cloned()
            .unwrap_or_default()
    };
    let forbidden = ctx.b.params.forbidden_ports.clone();
    let mut gaps = Vec::new();
    if open_to_all {
        for p in list(&ctx.obj.body, "spec.ports") {
            let port = p
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok());
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            if let Some(port) = port {
                let rule = IngressRule {
                    protocol: normalise_protocol(proto),
                    from_port: port,
                    to_port: port,
                    source: source.clone(),
                };
                if let Some(why) = exposure(&rule, &forbidden, &internet) {
                    gaps.push(why);
                }
            }
        }
    }
    if gaps.is_empty() {
        let what = if open_to_all {
            format!("{} is internet-facing on allowed ports only", ctx.obj.id)
        } else {
            format!("{} is restricted to {}", ctx.obj.id, ranges.join(", "))
        };
        ctx.verdict(
            NetworkExposure,
            "load-balancer",
            Outcome::Pass,
            None,
            what,
            None,
        );
    } else {
        let what = format!(
            "{} is an internet-facing load balancer with {}{}",
            ctx.obj.id,
            gaps.join("; "),
            if ranges.is_empty() {
                " (no loadBalancerSourceRanges)"
            } else {
                ""
            }
        );
        let fix = "set spec.loadBalancerSourceRanges to the networks that need access, make the load balancer internal (service.beta.kubernetes.io/aws-load-balancer-scheme: internal, service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"), or reach the port through a bastion or SSM/Bastion service instead".to_string();
        ctx.verdict(
            NetworkExposure,
            "load-balancer",
            Outcome::Fail,
            None,
            what,
            Some(fix),
        );
    }
    judge_references(ctx, &sg_refs);
}

/// TCP ports that compliance mappings single out (CIS "remote administration ports", Prowler's
/// per-service checks): an open rule fails `tcp-N` for each it opens, forbidden or not.
pub const MAPPED_PORTS: &[u16] = &[
    22, 23, 1433, 1434, 1521, 2483, 3306, 3389, 5432, 5601, 6379, 9200, 9300, 11211, 27017, 27018,
];

/// The aspects of `ingress-rules` that a rule open to the internet fails.
fn open_aspects(rule: &IngressRule, check: &mut Check) {
    check.aspect("forbidden-port");
    if rule.from_port == 0 && rule.to_port == 65535 {
        check.aspect("all-ports");
    }
    if matches!(normalise_protocol(&rule.protocol).as_str(), "tcp" | "all") {
        // Only ports some requirement names are aspects: the others would only make the
        // aspect list (and the compliance lookup) as long as the baseline's port list.
        for p in MAPPED_PORTS {
            if (rule.from_port..=rule.to_port).contains(p) {
                check.aspect(format!("tcp-{p}"));
            }
        }
    }
}

/// Security group / NSG ingress rules.
pub(super) fn security_group(ctx: &mut Ctx<'_>, p: &Posture, found_at: Option<&str>) {
    let Some(rules) = &p.ingress else {
        return;
    };
    let forbidden = ctx.b.params.forbidden_ports.clone();
    let internet = ctx.b.params.internet;
    let open: Vec<(&IngressRule, String)> = rules
        .iter()
        .filter_map(|r| exposure(r, &forbidden, &internet).map(|w| (r, w)))
        .collect();
    if open.is_empty() {
        let what = format!(
            "{}{} opens no forbidden port to the internet",
            p.resource,
            found(found_at)
        );
        // Met: no forbidden port and not every port is open; ports the baseline allows say
        // nothing about requirements on them (Kibana's 5601 open is no pass for Kibana's check).
        let mut met = Check::new("ingress-rules").with(&["forbidden-port", "all-ports"]);
        for port in forbidden.iter().filter(|p| MAPPED_PORTS.contains(p)) {
            met.aspect(format!("tcp-{port}"));
        }
        ctx.verdict(
            NetworkExposure,
            met,
            Outcome::Pass,
            Some(&p.resource),
            what,
            None,
        );
        return;
    }
    let mut check = Check::new("ingress-rules");
    for (r, _) in &open {
        open_aspects(r, &mut check);
    }
    let what = format!(
        "{}{} allows {}",
        p.resource,
        found(found_at),
        open.iter()
            .map(|(_, w)| w.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let fix = match &p.resource {
        CloudResource::SecurityGroup(id) => open
            .iter()
            .map(|(r, _)| {
                let flag = if r.source.contains(':') { "--ip-permissions" } else { "--cidr" };
                if flag == "--cidr" {
                    let port = if r.protocol == "all" { "--protocol -1".to_string() } else { format!("--protocol {} --port {}", r.protocol, port_arg(r)) };
                    format!("`aws ec2 revoke-security-group-ingress --group-id {id} {port} --cidr {}`", r.source)
                } else {
                    format!(
                        "`aws ec2 revoke-security-group-ingress --group-id {id} --ip-permissions IpProtocol={},FromPort={},ToPort={},Ipv6Ranges=[{{CidrIpv6={}}}]`",
                        if r.protocol == "all" { "-1" } else { &r.protocol },
                        r.from_port,
                        r.to_port,
                        r.source
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(" and "),
        CloudResource::AzureNsg(n) => {
            let (group, name) = match crate::refs::NsgId::parse(n) {
                Some(id) => (id.resource_group, id.name),
                None => ("RG".to_string(), n.clone()),
            };
            format!(
                "`az network nsg rule list --resource-group {group} --nsg-name {name} -o table` to find the rule, then `az network nsg rule update --resource-group {group} --nsg-name {name} --name RULE --source-address-prefixes YOUR-CIDR` (or `--access Deny`)"
            )
        }
        other => format!("close the rule on {other}"),
    };
    ctx.verdict(
        NetworkExposure,
        check,
        Outcome::Fail,
        Some(&p.resource),
        what,
        Some(fix),
    );
}

/// A storage account's public endpoint: open to every network unless public network access is
/// disabled or the default action denies (CIS Azure: default network access rule set to deny);
/// with a default deny, an IP rule that lets in a range the baseline counts as the internet
/// opens it all the same.
pub(super) fn storage_network(
    ctx: &mut Ctx<'_>,
    p: &Posture,
    n: &StorageNetwork,
    found_at: Option<&str>,
) {
    let check = Check::new("storage-network");
    let name = match &p.resource {
        CloudResource::AzureStorageAccount(a) => a.as_str(),
        _ => "ACCOUNT",
    };
    let internet = ctx.b.params.internet;
    let wide: Vec<String> = n
        .ip_rules
        .iter()
        .filter(|r| internet.includes(r))
        .map(|r| internet.describe(r))
        .collect();
    let (outcome, what, fix) = match n.access {
        NetworkAccess::SelectedNetworks if !wide.is_empty() => (
            Outcome::Fail,
            format!("denies by default but its IP rules let in {}", wide.join(", ")),
            Some(format!(
                "`az storage account network-rule remove --account-name {name} --resource-group RG --ip-address RANGE` for each, and allow the addresses that need it"
            )),
        ),
        NetworkAccess::AllNetworks => (
            Outcome::Fail,
            "accepts connections from every network (public network access enabled, networkAcls.defaultAction Allow)".to_string(),
            Some(format!(
                "`az storage account update --name {name} --resource-group RG --default-action Deny` and allow the networks that need it with `az storage account network-rule add`, or `--public-network-access Disabled` behind a private endpoint"
            )),
        ),
        NetworkAccess::SelectedNetworks => (
            Outcome::Pass,
            "accepts connections only from selected networks (networkAcls.defaultAction Deny)".into(),
            None,
        ),
        NetworkAccess::Disabled => (
            Outcome::Pass,
            "has public network access disabled (private endpoints only)".into(),
            None,
        ),
    };
    let what = format!("{}{} {what}", p.resource, found(found_at));
    ctx.verdict(
        NetworkExposure,
        check,
        outcome,
        Some(&p.resource),
        what,
        fix,
    );
}

fn port_arg(r: &IngressRule) -> String {
    if r.from_port == r.to_port {
        r.from_port.to_string()
    } else {
        format!("{}-{}", r.from_port, r.to_port)
    }
}

/// Namespace-level: a default-deny ingress NetworkPolicy must exist.
pub(super) fn segmentation(ctx: &mut Ctx<'_>, namespace: &str) {
    if !ctx.applies(NetworkSegmentation) {
        return;
    }
    if ctx.world.has_default_deny(namespace) {
        let what = format!("namespace {namespace} has a default-deny NetworkPolicy");
        ctx.verdict(
            NetworkSegmentation,
            "default-deny",
            Outcome::Pass,
            None,
            what,
            None,
        );
    } else {
        let what = format!(
            "namespace {namespace} has no default-deny NetworkPolicy: every pod accepts traffic from anywhere in the cluster"
        );
        let fix = format!(
            "`kubectl -n {namespace} apply -f -` with a NetworkPolicy named default-deny: podSelector: {{}}, policyTypes: [Ingress] and no ingress rules; then allow what each workload needs"
        );
        ctx.verdict(
            NetworkSegmentation,
            "default-deny",
            Outcome::Fail,
            None,
            what,
            Some(fix),
        );
    }
}

/// Is this NetworkPolicy a default deny for ingress: empty pod selector, Ingress in policyTypes
/// (or implied), and no ingress rules?
pub fn is_default_deny(np: &Value) -> bool {
    let spec = np.get("spec");
    let selector_empty = spec.and_then(|s| s.get("podSelector")).is_none_or(|ps| {
        ps.as_object().is_none_or(|m| {
            m.values().all(|v| {
                v.as_object().is_some_and(|o| o.is_empty())
                    || v.as_array().is_some_and(|a| a.is_empty())
            })
        })
    });
    let types = spec
        .and_then(|s| s.get("policyTypes"))
        .and_then(Value::as_array);
    let ingress_type = types.is_none_or(|t| t.iter().any(|v| v.as_str() == Some("Ingress")));
    let no_rules = spec
        .and_then(|s| s.get("ingress"))
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    selector_empty && ingress_type && no_rules
}
