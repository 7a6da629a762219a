//! Network exposure analysis (pure): internet sources, port ranges, protocols.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::posture::IngressRule;

/// What counts as "the internet" for a rule source: everything (`0.0.0.0/0`, `::/0`, Azure's
/// `*`, `Internet`, `Any`), and any public range wider than a prefix. `52.0.0.0/8` is not the
/// whole internet, but it is sixteen million addresses nobody vets; a rule open to it is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Internet {
    /// IPv4 public ranges with a shorter prefix than this count (`network.exposure`'s
    /// `maxPublicPrefix`, default 16).
    pub max_public_prefix_v4: u8,
    /// The same for IPv6 (`maxPublicPrefixV6`, default 32: a whole ISP's allocation).
    pub max_public_prefix_v6: u8,
}

impl Default for Internet {
    fn default() -> Self {
        Internet {
            max_public_prefix_v4: 16,
            max_public_prefix_v6: 32,
        }
    }
}

/// Address space that is not reachable from the internet: RFC 1918, loopback, link-local,
/// CGNAT (RFC 6598), "this network"; IPv6 loopback, link-local, unique-local, multicast and the
/// documentation prefix.
const NOT_PUBLIC: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "ff00::/8",
    "2001:db8::/32",
];

impl Internet {
    /// Does a rule open to `source` admit the internet? Sources that are not addresses
    /// (security group ids, Azure tags such as `VirtualNetwork`) do not.
    pub fn includes(&self, source: &str) -> bool {
        let s = source.trim();
        if s == "*" || s.eq_ignore_ascii_case("internet") || s.eq_ignore_ascii_case("any") {
            return true;
        }
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            // A bare unspecified address means "any" in several tools.
            Err(_) => return s.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()),
        };
        if net.prefix_len() == 0 {
            return true;
        }
        // IPv4-mapped IPv6 ranges are IPv4 ranges.
        let net = match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
                Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                    .map(IpNet::V4)
                    .unwrap_or(net),
                None => net,
            },
            other => other,
        };
        let private = NOT_PUBLIC
            .iter()
            .filter_map(|p| p.parse::<IpNet>().ok())
            .any(|block| block.contains(&net));
        if private {
            return false;
        }
        let max = match net {
            IpNet::V4(_) => self.max_public_prefix_v4,
            IpNet::V6(_) => self.max_public_prefix_v6,
        };
        net.prefix_len() < max
    }

    /// How a person should read `source` in a message.
    pub fn describe(&self, source: &str) -> String {
        match source.trim().parse::<IpNet>() {
            Ok(net) if net.prefix_len() > 0 => {
                let max = match net {
                    IpNet::V4(_) => self.max_public_prefix_v4,
                    IpNet::V6(_) => self.max_public_prefix_v6,
                };
                format!("{source} (a public range wider than /{max})")
            }
            _ => source.to_string(),
        }
    }
}

/// Normalise a protocol name: `-1`, `*`, `all` mean every protocol.
pub fn normalise_protocol(p: &str) -> String {
    let p = p.trim().to_ascii_lowercase();
    match p.as_str() {
        "-1" | "*" | "all" | "any" | "" => "all".to_string(),
        "6" => "tcp".to_string(),
        "17" => "udp".to_string(),
        "1" | "58" | "icmpv6" => "icmp".to_string(),
        _ => p,
    }
}

/// Parse an Azure-style port range: `22`, `20-25`, `*`.
pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    if s == "*" {
        return Some((0, 65535));
    }
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => s.parse().ok().map(|p| (p, p)),
    }
}

/// The most (source, port range) pairs onus expands the rules of one NSG into. Azure allows
/// 1,000 rules per NSG and 4,000 prefixes in all; a rule set past this is refused as unjudgeable
/// rather than costing unbounded memory.
pub const MAX_NSG_PAIRS: usize = 10_000;

/// The inbound rules of an Azure NSG that let traffic in, from the rules' properties as both ARM
/// (`securityRules[].properties`) and ASO (`spec`) spell them: singular and plural source and
/// port fields together, `*`/`Any`/`Internet` sources, Azure protocol names. An `Allow` is
/// dropped when a `Deny` of higher precedence (lower priority number) shuts the whole internet
/// out of all its ports for its protocol; partial overlaps are kept, which errs toward a finding.
pub fn nsg_ingress<'a>(rules: impl Iterator<Item = &'a Value>) -> Result<Vec<IngressRule>, String> {
    struct Rule {
        allow: bool,
        priority: i64,
        protocol: String,
        sources: Vec<String>,
        ranges: Vec<(u16, u16)>,
    }
    let mut parsed = Vec::new();
    for r in rules {
        let s = |k: &str| r.get(k).and_then(Value::as_str);
        let many = |k: &str| {
            r.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        if !s("direction").is_none_or(|d| d.eq_ignore_ascii_case("Inbound")) {
            continue;
        }
        parsed.push(Rule {
            allow: s("access").is_none_or(|a| a.eq_ignore_ascii_case("Allow")),
            priority: r
                .get("priority")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MAX),
            protocol: normalise_protocol(s("protocol").unwrap_or("*")),
            sources: s("sourceAddressPrefix")
                .into_iter()
                .chain(many("sourceAddressPrefixes"))
                .map(str::to_string)
                .collect(),
            ranges: s("destinationPortRange")
                .into_iter()
                .chain(many("destinationPortRanges"))
                .filter_map(parse_port_range)
                .collect(),
        });
    }
    let whole_internet = |src: &str| {
        let src = src.trim();
        matches!(src, "*" | "0.0.0.0/0")
            || src.eq_ignore_ascii_case("internet")
            || src.eq_ignore_ascii_case("any")
    };
    let shut = |allow: &Rule, protocol: &str, (from, to): (u16, u16)| {
        parsed.iter().any(|d| {
            !d.allow
                && d.priority < allow.priority
                && (d.protocol == "all" || d.protocol == protocol)
                && d.sources.iter().any(|s| whole_internet(s))
                && d.ranges.iter().any(|&(f, t)| f <= from && to <= t)
        })
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut pairs = 0usize;
    for rule in parsed.iter().filter(|r| r.allow) {
        for &range in &rule.ranges {
            if shut(rule, &rule.protocol, range) {
                continue;
            }
            for src in &rule.sources {
                pairs += 1;
                if pairs > MAX_NSG_PAIRS {
                    return Err(format!(
                        "the rules expand to more than {MAX_NSG_PAIRS} (source, port range) pairs; onus does not judge a rule set this large"
                    ));
                }
                let r = IngressRule {
                    protocol: rule.protocol.clone(),
                    from_port: range.0,
                    to_port: range.1,
                    source: src.clone(),
                };
                if seen.insert(r.clone()) {
                    out.push(r);
                }
            }
        }
    }
    Ok(out)
}

/// Port range of an AWS rule: protocol `all` or ports -1 mean every port.
pub fn aws_port_range(protocol: &str, from: Option<i64>, to: Option<i64>) -> (u16, u16) {
    if normalise_protocol(protocol) == "all" {
        return (0, 65535);
    }
    match (from, to) {
        (Some(f), Some(t)) if (0..=65535).contains(&f) && (0..=65535).contains(&t) && f <= t => {
            (f as u16, t as u16)
        }
        (Some(f), None) if (0..=65535).contains(&f) => (f as u16, f as u16),
        _ => (0, 65535),
    }
}

/// Why an ingress rule opens a forbidden port to the internet, if it does.
pub fn exposure(rule: &IngressRule, forbidden: &[u16], internet: &Internet) -> Option<String> {
    if !internet.includes(&rule.source) {
        return None;
    }
    let proto = normalise_protocol(&rule.protocol);
    if proto == "icmp" {
        return None;
    }
    let all_ports = rule.from_port == 0 && rule.to_port == 65535;
    if all_ports {
        return Some(format!(
            "{} open to {} on all ports",
            proto_label(&proto),
            internet.describe(&rule.source)
        ));
    }
    let hit: Vec<String> = forbidden
        .iter()
        .filter(|p| (rule.from_port..=rule.to_port).contains(p))
        .map(u16::to_string)
        .collect();
    if hit.is_empty() {
        return None;
    }
    let range = if rule.from_port == rule.to_port {
        format!("port {}", rule.from_port)
    } else {
        format!("ports {}-{}", rule.from_port, rule.to_port)
    };
    Some(format!(
        "{} {range} open to {} (forbidden: {})",
        proto_label(&proto),
        internet.describe(&rule.source),
        hit.join(", ")
    ))
}

fn proto_label(p: &str) -> String {
    if p == "all" {
        "all protocols".to_string()
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(proto: &str, from: u16, to: u16, src: &str) -> IngressRule {
        IngressRule {
            protocol: proto.into(),
            from_port: from,
            to_port: to,
            source: src.into(),
        }
    }

    fn is_internet(s: &str) -> bool {
        Internet::default().includes(s)
    }

    #[test]
    fn internet_sources() {
        for s in [
            "0.0.0.0/0",
            "::/0",
            "*",
            "Internet",
            "any",
            "0.0.0.0",
            "::",
            // Public and huge: open to millions of strangers.
            "52.0.0.0/8",
            "0.0.0.0/1",
            "128.0.0.0/1",
            "96.0.0.0/3",
            "203.0.0.0/15",
            "2600::/16",
            "2a00::/31",
            "::ffff:52.0.0.0/104",
        ] {
            assert!(is_internet(s), "{s}");
        }
        for s in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "127.0.0.0/8",
            "203.0.113.7/32",
            "198.51.100.0/24",
            "52.94.0.0/16",
            "VirtualNetwork",
            "sg-123",
            "2001:db8::/32",
            "fd00::/8",
            "fe80::/10",
            "2600:1f18::/32",
            "::ffff:10.0.0.0/104",
        ] {
            assert!(!is_internet(s), "{s}");
        }
        // The prefix is the baseline's to choose.
        let strict = Internet {
            max_public_prefix_v4: 24,
            max_public_prefix_v6: 48,
        };
        assert!(strict.includes("52.94.0.0/16") && strict.includes("2600:1f18::/32"));
        assert!(!strict.includes("52.94.1.0/24"));
    }

    #[test]
    fn ranges_and_protocols() {
        assert_eq!(parse_port_range("*"), Some((0, 65535)));
        assert_eq!(parse_port_range("20-25"), Some((20, 25)));
        assert_eq!(parse_port_range("3389"), Some((3389, 3389)));
        assert_eq!(parse_port_range("25-20"), None);
        assert_eq!(parse_port_range("ssh"), None);
        assert_eq!(aws_port_range("-1", Some(-1), Some(-1)), (0, 65535));
        assert_eq!(aws_port_range("tcp", Some(22), Some(22)), (22, 22));
        assert_eq!(normalise_protocol("ALL"), "all");
    }

    #[test]
    fn exposures() {
        let f = [22, 3389, 5432];
        assert!(
            exposure(&rule("tcp", 22, 22, "0.0.0.0/0"), &f, &Internet::default())
                .unwrap()
                .contains("port 22")
        );
        assert!(
            exposure(&rule("tcp", 20, 30, "::/0"), &f, &Internet::default())
                .unwrap()
                .contains("forbidden: 22")
        );
        assert!(
            exposure(&rule("all", 0, 65535, "Internet"), &f, &Internet::default())
                .unwrap()
                .contains("all ports")
        );
        assert!(
            exposure(
                &rule("tcp", 443, 443, "0.0.0.0/0"),
                &f,
                &Internet::default()
            )
            .is_none()
        );
        assert!(exposure(&rule("tcp", 22, 22, "10.0.0.0/8"), &f, &Internet::default()).is_none());
        assert!(
            exposure(
                &rule("icmp", 0, 65535, "0.0.0.0/0"),
                &f,
                &Internet::default()
            )
            .is_none()
        );
        let huge = exposure(&rule("tcp", 22, 22, "52.0.0.0/8"), &f, &Internet::default()).unwrap();
        assert!(
            huge.contains("52.0.0.0/8 (a public range wider than /16)"),
            "{huge}"
        );
    }
}
