//! Network exposure analysis (pure): internet sources, port ranges, protocols.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::posture::IngressRule;

/// Is this rule source the whole internet? CIDRs `0.0.0.0/0` and `::/0` (any spelling with a zero
/// prefix), and Azure's tags `*`, `Internet`, `Any`.
pub fn is_internet(source: &str) -> bool {
    let s = source.trim();
    if s == "*" || s.eq_ignore_ascii_case("internet") || s.eq_ignore_ascii_case("any") {
        return true;
    }
    match s.parse::<IpNet>() {
        Ok(net) => net.prefix_len() == 0,
        // A bare unspecified address means "any" in several tools.
        Err(_) => s.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()),
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
pub fn exposure(rule: &IngressRule, forbidden: &[u16]) -> Option<String> {
    if !is_internet(&rule.source) {
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
            rule.source
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
        rule.source,
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

    #[test]
    fn internet_sources() {
        for s in ["0.0.0.0/0", "::/0", "*", "Internet", "any", "0.0.0.0", "::"] {
            assert!(is_internet(s), "{s}");
        }
        for s in [
            "10.0.0.0/8",
            "203.0.113.7/32",
            "VirtualNetwork",
            "sg-123",
            "2001:db8::/32",
        ] {
            assert!(!is_internet(s), "{s}");
        }
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
            exposure(&rule("tcp", 22, 22, "0.0.0.0/0"), &f)
                .unwrap()
                .contains("port 22")
        );
        assert!(
            exposure(&rule("tcp", 20, 30, "::/0"), &f)
                .unwrap()
                .contains("forbidden: 22")
        );
        assert!(
            exposure(&rule("all", 0, 65535, "Internet"), &f)
                .unwrap()
                .contains("all ports")
        );
        assert!(exposure(&rule("tcp", 443, 443, "0.0.0.0/0"), &f).is_none());
        assert!(exposure(&rule("tcp", 22, 22, "10.0.0.0/8"), &f).is_none());
        assert!(exposure(&rule("icmp", 0, 65535, "0.0.0.0/0"), &f).is_none());
    }
}
