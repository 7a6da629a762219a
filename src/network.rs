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

/// The most (source, port range) pairs onus expands the rules of one NSG into, and the most
/// comparisons against deny rules it makes. Azure allows 1,000 rules per NSG and 4,000 prefixes
/// in all; a rule set past these is refused as unjudgeable rather than costing unbounded time
/// or memory.
pub const MAX_NSG_PAIRS: usize = 10_000;
const MAX_NSG_COMPARISONS: usize = 2_000_000;

/// Which addresses a deny rule's source shuts out, for shadowing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shuts {
    /// `*`, `Internet`, `Any`: every address of both families.
    Everything,
    /// `0.0.0.0/0`: IPv4 only.
    V4,
    /// `::/0`: IPv6 only.
    V6,
}

impl Shuts {
    fn of(source: &str) -> Option<Shuts> {
        let s = source.trim();
        if s == "*" || s.eq_ignore_ascii_case("internet") || s.eq_ignore_ascii_case("any") {
            return Some(Shuts::Everything);
        }
        match s.parse::<IpNet>() {
            Ok(IpNet::V4(n)) if n.prefix_len() == 0 => Some(Shuts::V4),
            Ok(IpNet::V6(n)) if n.prefix_len() == 0 => Some(Shuts::V6),
            _ => None,
        }
    }

    /// Does it shut out every internet address an allow from `source` admits? An allow from
    /// `*`/`Internet` admits both families, so only a deny of everything shuts it.
    fn covers(self, source: &str) -> bool {
        let family = match source.trim().parse::<IpNet>() {
            Ok(IpNet::V4(_)) => Some(Shuts::V4),
            Ok(IpNet::V6(_)) => Some(Shuts::V6),
            Err(_) => match source.trim().parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => Some(Shuts::V4),
                Ok(IpAddr::V6(_)) => Some(Shuts::V6),
                Err(_) => None,
            },
        };
        self == Shuts::Everything || family == Some(self)
    }
}

/// One NSG rule as read.
struct NsgRule {
    allow: bool,
    inbound: bool,
    /// `None` when absent: an allow without one is never shadowed, a deny never shadows.
    priority: Option<i64>,
    protocol: String,
    sources: Vec<String>,
    ranges: Vec<(u16, u16)>,
}

/// Read one rule's fields, refusing what Azure would not send: a field present with the wrong
/// type or an unreadable value is an error, never a rule that silently opens or shuts nothing.
fn nsg_rule(r: &Value, i: usize) -> Result<NsgRule, String> {
    let at = |f: &str| format!("rule {i}: {f}");
    let text = |f: &str| -> Result<Option<&str>, String> {
        match r.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!("{} is {other}, not a string", at(f))),
        }
    };
    let texts = |f: &str| -> Result<Vec<&str>, String> {
        match r.get(f) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| format!("{} holds {v}, not a string", at(f)))
                })
                .collect(),
            Some(other) => Err(format!("{} is {other}, not a list", at(f))),
        }
    };
    let one_of = |f: &str, a: &str, b: &str| -> Result<bool, String> {
        match text(f)?.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case(a) => Ok(true),
            Some(v) if v.eq_ignore_ascii_case(b) => Ok(false),
            Some(v) => Err(format!("{} is {v:?}, not {a} or {b}", at(f))),
            None => Err(format!("{} is missing", at(f))),
        }
    };
    let inbound = one_of("direction", "Inbound", "Outbound")?;
    let allow = one_of("access", "Allow", "Deny")?;
    let priority = match r.get("priority") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| format!("{} is {v}, not an integer", at("priority")))?,
        ),
    };
    let protocol = normalise_protocol(
        text("protocol")?.ok_or_else(|| format!("{} is missing", at("protocol")))?,
    );
    let sources: Vec<String> = text("sourceAddressPrefix")?
        .into_iter()
        .chain(texts("sourceAddressPrefixes")?)
        .map(str::to_string)
        .collect();
    let groups = r
        .get("sourceApplicationSecurityGroups")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if sources.is_empty() && !groups {
        return Err(format!(
            "{} has no sourceAddressPrefix(es) and no sourceApplicationSecurityGroups",
            at("source")
        ));
    }
    let ports: Vec<&str> = text("destinationPortRange")?
        .into_iter()
        .chain(texts("destinationPortRanges")?)
        .collect();
    if ports.is_empty() {
        return Err(format!("{} is missing", at("destinationPortRange(s)")));
    }
    let ranges = ports
        .iter()
        .map(|p| {
            parse_port_range(p).ok_or_else(|| {
                format!(
                    "{} holds {p:?}, not a port or range",
                    at("destinationPortRange")
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NsgRule {
        allow,
        inbound,
        priority,
        protocol,
        sources,
        ranges,
    })
}

/// The inbound rules of an Azure NSG that let traffic in, from the rules' properties as both ARM
/// (`securityRules[].properties`) and ASO (`spec`) spell them: singular and plural source and
/// port fields together, `*`/`Any`/`Internet` sources, Azure protocol names. An `Allow` from a
/// source is dropped when a `Deny` of higher precedence (lower priority number) shuts that
/// source's address family out of the whole port range for its protocol (`0.0.0.0/0` shuts
/// IPv4 only, `::/0` IPv6 only, `*`/`Internet`/`Any` both); partial overlaps are kept, which
/// errs toward a finding. A rule Azure would not send is an error.
pub fn nsg_ingress<'a>(rules: impl Iterator<Item = &'a Value>) -> Result<Vec<IngressRule>, String> {
    let mut parsed = Vec::new();
    let (mut sources, mut ranges) = (0usize, 0usize);
    for (i, r) in rules.enumerate() {
        let rule = nsg_rule(r, i)?;
        sources += rule.sources.len();
        ranges += rule.ranges.len();
        if sources > MAX_NSG_PAIRS || ranges > MAX_NSG_PAIRS {
            return Err(too_large());
        }
        if rule.inbound {
            parsed.push(rule);
        }
    }
    // Deny rules that shut something out, as (priority, protocol, what, range).
    let denies: Vec<(i64, &str, Shuts, (u16, u16))> = parsed
        .iter()
        .filter(|d| !d.allow)
        .filter_map(|d| Some((d.priority?, d)))
        .flat_map(|(p, d)| {
            d.sources
                .iter()
                .filter_map(|s| Shuts::of(s))
                .flat_map(move |shuts| {
                    d.ranges
                        .iter()
                        .map(move |&r| (p, d.protocol.as_str(), shuts, r))
                })
        })
        .collect();
    let mut comparisons = 0usize;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for rule in parsed.iter().filter(|r| r.allow) {
        for &(from, to) in &rule.ranges {
            for src in &rule.sources {
                comparisons += denies.len() + 1;
                if out.len() >= MAX_NSG_PAIRS || comparisons > MAX_NSG_COMPARISONS {
                    return Err(too_large());
                }
                let shut = rule.priority.is_some_and(|prio| {
                    denies.iter().any(|&(p, proto, shuts, (f, t))| {
                        p < prio
                            && (proto == "all" || proto == rule.protocol)
                            && f <= from
                            && to <= t
                            && shuts.covers(src)
                    })
                });
                if shut {
                    continue;
                }
                let r = IngressRule {
                    protocol: rule.protocol.clone(),
                    from_port: from,
                    to_port: to,
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

fn too_large() -> String {
    format!(
        "the rules expand to more than {MAX_NSG_PAIRS} (source, port range) pairs or {MAX_NSG_COMPARISONS} comparisons; onus does not judge a rule set this large"
    )
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

    fn nsg(rules: serde_json::Value) -> Result<Vec<String>, String> {
        let rules = rules.as_array().unwrap().clone();
        nsg_ingress(rules.iter()).map(|rs| {
            rs.iter()
                .map(|r| format!("{} {}-{} {}", r.protocol, r.from_port, r.to_port, r.source))
                .collect()
        })
    }

    fn allow(priority: i64, source: &str, port: &str) -> serde_json::Value {
        serde_json::json!({"direction": "Inbound", "access": "Allow", "priority": priority,
            "protocol": "Tcp", "sourceAddressPrefix": source, "destinationPortRange": port})
    }

    fn deny(priority: i64, source: &str, port: &str) -> serde_json::Value {
        serde_json::json!({"direction": "Inbound", "access": "Deny", "priority": priority,
            "protocol": "*", "sourceAddressPrefix": source, "destinationPortRange": port})
    }

    /// `0.0.0.0/0` shuts IPv4 only: what it does not shut of an allow stays open.
    #[test]
    fn a_deny_shuts_only_its_address_family() {
        let v4 = deny(100, "0.0.0.0/0", "*");
        assert_eq!(
            nsg(serde_json::json!([allow(300, "::/0", "22"), v4])).unwrap(),
            ["tcp 22-22 ::/0"]
        );
        assert_eq!(
            nsg(serde_json::json!([allow(300, "*", "22"), v4])).unwrap(),
            ["tcp 22-22 *"]
        );
        assert_eq!(
            nsg(serde_json::json!([allow(300, "52.0.0.0/8", "22"), v4])).unwrap(),
            Vec::<String>::new()
        );
        // A deny of everything shuts both; one after the allow (higher number) shuts nothing.
        let all = deny(100, "Internet", "0-65535");
        assert!(
            nsg(serde_json::json!([allow(300, "*", "22"), all]))
                .unwrap()
                .is_empty()
        );
        let late = deny(400, "*", "*");
        assert_eq!(
            nsg(serde_json::json!([allow(300, "*", "22"), late]))
                .unwrap()
                .len(),
            1
        );
        // Without a priority an allow is never shadowed, a deny never shadows.
        let mut unranked = allow(0, "*", "22");
        unranked.as_object_mut().unwrap().remove("priority");
        assert_eq!(
            nsg(serde_json::json!([unranked, deny(100, "*", "*")]))
                .unwrap()
                .len(),
            1
        );
    }

    /// What Azure would not send is an error, never a rule that silently opens or shuts nothing.
    #[test]
    fn unreadable_rule_fields_are_errors() {
        let with = |field: &str, value: serde_json::Value| {
            let mut r = allow(300, "*", "22");
            r.as_object_mut().unwrap().insert(field.into(), value);
            nsg(serde_json::json!([r]))
        };
        let without = |field: &str| {
            let mut r = allow(300, "*", "22");
            r.as_object_mut().unwrap().remove(field);
            nsg(serde_json::json!([r]))
        };
        for (field, value) in [
            ("destinationPortRange", serde_json::json!(22)),
            ("destinationPortRange", serde_json::json!("Any")),
            ("destinationPortRange", serde_json::json!("22,3389")),
            ("sourceAddressPrefix", serde_json::json!(["*"])),
            ("priority", serde_json::json!("200")),
            ("priority", serde_json::json!(200.5)),
            ("access", serde_json::json!("Permit")),
            ("direction", serde_json::json!("Sideways")),
        ] {
            assert!(with(field, value.clone()).is_err(), "{field}: {value}");
        }
        for field in [
            "direction",
            "access",
            "protocol",
            "destinationPortRange",
            "sourceAddressPrefix",
        ] {
            assert!(without(field).is_err(), "without {field}");
        }
        // Spacing and case are Azure's own leniency, not errors.
        assert_eq!(
            with("access", serde_json::json!(" allow ")).unwrap().len(),
            1
        );
        assert_eq!(
            with("direction", serde_json::json!("INBOUND"))
                .unwrap()
                .len(),
            1
        );
    }

    /// Rules without sources still cost comparisons: the bound counts them.
    #[test]
    fn the_work_per_nsg_is_bounded() {
        let ports: Vec<String> = (1..=5000).map(|p| p.to_string()).collect();
        let rules = serde_json::json!([
            {"direction": "Inbound", "access": "Allow", "priority": 300, "protocol": "Tcp",
             "sourceAddressPrefixes": ["1.0.0.0/8", "2.0.0.0/8"], "destinationPortRanges": ports},
            {"direction": "Inbound", "access": "Deny", "priority": 100, "protocol": "*",
             "sourceAddressPrefix": "*", "destinationPortRanges": ports},
        ]);
        assert!(nsg(rules).unwrap_err().contains("comparisons"));
    }
}
