//! The controls catalogue: stable ids, their domain, and their parameters.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Domain;

super::str_enum!(
    /// Stable control ids, used in messages, metrics, reports and exceptions.
    ControlId {
        DataPublicAccess = "data.public-access",
        DataEncryptionAtRest = "data.encryption-at-rest",
        DataEncryptionInTransit = "data.encryption-in-transit",
        IdentityLeastPrivilege = "identity.least-privilege",
        IdentityWorkloadIdentity = "identity.workload-identity",
        NetworkExposure = "network.exposure",
        NetworkSegmentation = "network.segmentation",
        HostOsIsolation = "host-os.isolation",
        ApplicationImageProvenance = "application.image-provenance",
        LoggingAuditTrail = "logging.audit-trail",
    }
);

#[allow(clippy::derivable_impls)] // the variants come from a macro
impl Default for ControlId {
    fn default() -> Self {
        ControlId::DataPublicAccess
    }
}

impl ControlId {
    pub fn domain(self) -> Domain {
        use ControlId::*;
        match self {
            DataPublicAccess | DataEncryptionAtRest | DataEncryptionInTransit => Domain::Data,
            IdentityLeastPrivilege | IdentityWorkloadIdentity => Domain::Identity,
            NetworkExposure | NetworkSegmentation => Domain::Network,
            HostOsIsolation => Domain::HostOs,
            ApplicationImageProvenance => Domain::Application,
            LoggingAuditTrail => Domain::Logging,
        }
    }

    /// One line: what the control guards.
    pub fn title(self) -> &'static str {
        use ControlId::*;
        match self {
            DataPublicAccess => "storage must not be readable or writable by anyone",
            DataEncryptionAtRest => "storage must be encrypted at rest",
            DataEncryptionInTransit => "traffic must be encrypted in transit",
            IdentityLeastPrivilege => {
                "workload identities must not hold wildcard or escalation rights"
            }
            IdentityWorkloadIdentity => "pods must use workload identity, not static cloud keys",
            NetworkExposure => {
                "nothing reachable from the internet on administrative or database ports"
            }
            NetworkSegmentation => "namespaces need a default-deny NetworkPolicy",
            HostOsIsolation => "containers must not reach into the host",
            ApplicationImageProvenance => "images must be pinned and come from allowed registries",
            LoggingAuditTrail => "cloud activity and data access must be logged",
        }
    }

    /// GitHub code scanning's `security-severity` (CVSS bands: 9.0+ critical, 7.0+ high, 4.0+
    /// medium): data anyone can read and admin rights are critical; a missing log is medium.
    pub fn security_severity(self) -> &'static str {
        use ControlId::*;
        match self {
            DataPublicAccess => "9.1",
            IdentityLeastPrivilege => "8.8",
            NetworkExposure | HostOsIsolation => "8.1",
            IdentityWorkloadIdentity => "7.5",
            DataEncryptionInTransit => "6.5",
            DataEncryptionAtRest | ApplicationImageProvenance => "5.9",
            LoggingAuditTrail => "5.0",
            NetworkSegmentation => "4.3",
        }
    }

    /// Controls that only ever report, whatever the baseline's action says.
    pub fn audit_only(self) -> bool {
        matches!(self, ControlId::NetworkSegmentation)
    }
}

/// The most ports `network.exposure`'s `forbiddenPorts` may list.
pub const MAX_FORBIDDEN_PORTS: usize = 1024;

/// Typed parameters of every control, with their defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlParameters {
    /// data.encryption-at-rest: require a customer-managed key (SSE-KMS / CMK / CMEK).
    pub require_customer_managed_key: bool,
    /// data.encryption-in-transit: require a bucket policy denying `aws:SecureTransport=false`.
    pub require_secure_transport_policy: bool,
    /// network.exposure: ports that must never be open to the internet.
    pub forbidden_ports: Vec<u16>,
    /// network.exposure: public ranges wider than these prefixes count as the internet.
    pub internet: crate::network::Internet,
    /// application.image-provenance: registries images may come from (prefix match); empty = any.
    pub allowed_registries: Vec<String>,
    /// application.image-provenance: require `@sha256:` digests.
    pub require_digest: bool,
    /// logging.audit-trail: require server access logging on referenced buckets.
    pub require_access_logging: bool,
    /// identity.workload-identity: extra env var names that hold static credentials.
    pub extra_credential_names: Vec<String>,
    /// host-os.isolation: hostPath prefixes that are allowed (read-only mounts only).
    pub allowed_host_paths: Vec<String>,
    /// data.public-access: AWS accounts a bucket may be shared with without a warning.
    pub trusted_accounts: Vec<String>,
    /// host-os.isolation: the Pod Security Standards profile enforced (`baseline` by default).
    pub pod_security: crate::engine::pod_security::Profile,
}

/// Default forbidden ports: SSH, RDP, and common databases/caches/admin consoles.
pub const DEFAULT_FORBIDDEN_PORTS: &[u16] = &[
    22, 23, 3389, 1433, 1521, 2375, 2376, 3306, 5432, 5984, 6379, 7000, 7001, 9042, 9200, 9300,
    11211, 27017, 27018,
];

#[allow(clippy::derivable_impls)] // the variants come from a macro
impl Default for ControlParameters {
    fn default() -> Self {
        ControlParameters {
            require_customer_managed_key: false,
            require_secure_transport_policy: false,
            forbidden_ports: DEFAULT_FORBIDDEN_PORTS.to_vec(),
            internet: crate::network::Internet::default(),
            allowed_registries: Vec::new(),
            require_digest: true,
            require_access_logging: false,
            extra_credential_names: Vec::new(),
            allowed_host_paths: Vec::new(),
            pod_security: Default::default(),
            trusted_accounts: Vec::new(),
        }
    }
}

/// A parameter that does not fit its control.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("control {control}: parameter {name:?}: {problem}")]
pub struct ParameterError {
    pub control: ControlId,
    pub name: String,
    pub problem: String,
}

impl ControlParameters {
    /// The parameter names a control accepts.
    pub fn names(control: ControlId) -> &'static [&'static str] {
        use ControlId::*;
        match control {
            DataEncryptionAtRest => &["requireCustomerManagedKey"],
            DataEncryptionInTransit => &["requireSecureTransportPolicy"],
            NetworkExposure => &["forbiddenPorts", "maxPublicPrefix", "maxPublicPrefixV6"],
            ApplicationImageProvenance => &["allowedRegistries", "requireDigest"],
            LoggingAuditTrail => &["requireAccessLogging"],
            IdentityWorkloadIdentity => &["extraCredentialNames"],
            HostOsIsolation => &["allowedHostPaths", "profile"],
            DataPublicAccess => &["trustedAccounts"],
            IdentityLeastPrivilege | NetworkSegmentation => &[],
        }
    }

    /// Apply the parameters a baseline gives for `control`.
    pub fn apply(
        &mut self,
        control: ControlId,
        params: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(), ParameterError> {
        for (name, value) in params {
            let err = |problem: &str| ParameterError {
                control,
                name: name.clone(),
                problem: problem.to_string(),
            };
            if !Self::names(control).contains(&name.as_str()) {
                let known = Self::names(control);
                return Err(err(&if known.is_empty() {
                    "this control takes no parameters".to_string()
                } else {
                    format!(
                        "unknown parameter; this control takes: {}",
                        known.join(", ")
                    )
                }));
            }
            match name.as_str() {
                "requireCustomerManagedKey" => {
                    self.require_customer_managed_key =
                        bool_of(value).ok_or_else(|| err("expected true or false"))?
                }
                "requireSecureTransportPolicy" => {
                    self.require_secure_transport_policy =
                        bool_of(value).ok_or_else(|| err("expected true or false"))?
                }
                "requireDigest" => {
                    self.require_digest =
                        bool_of(value).ok_or_else(|| err("expected true or false"))?
                }
                "requireAccessLogging" => {
                    self.require_access_logging =
                        bool_of(value).ok_or_else(|| err("expected true or false"))?
                }
                "forbiddenPorts" => {
                    let mut ports: Vec<u16> = value
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|v| v.as_u64().and_then(|n| u16::try_from(n).ok()))
                                .collect()
                        })
                        .ok_or_else(|| err("expected a list of port numbers 0-65535"))?;
                    ports.sort_unstable();
                    ports.dedup();
                    // Every open rule is compared with each: a list as long as the port space
                    // would make one review cost seconds.
                    if ports.len() > MAX_FORBIDDEN_PORTS {
                        return Err(err(&format!(
                            "{} ports; at most {MAX_FORBIDDEN_PORTS}",
                            ports.len()
                        )));
                    }
                    self.forbidden_ports = ports
                }
                "maxPublicPrefix" => {
                    self.internet.max_public_prefix_v4 = value
                        .as_u64()
                        .filter(|n| (1..=32).contains(n))
                        .map(|n| n as u8)
                        .ok_or_else(|| err("expected a prefix length 1-32"))?
                }
                "maxPublicPrefixV6" => {
                    self.internet.max_public_prefix_v6 = value
                        .as_u64()
                        .filter(|n| (1..=128).contains(n))
                        .map(|n| n as u8)
                        .ok_or_else(|| err("expected a prefix length 1-128"))?
                }
                "allowedRegistries" => {
                    self.allowed_registries =
                        strings_of(value).ok_or_else(|| err("expected a list of strings"))?
                }
                "extraCredentialNames" => {
                    self.extra_credential_names =
                        strings_of(value).ok_or_else(|| err("expected a list of strings"))?
                }
                "profile" => {
                    self.pod_security = match value.as_str() {
                        Some("baseline") => crate::engine::pod_security::Profile::Baseline,
                        Some("restricted") => crate::engine::pod_security::Profile::Restricted,
                        _ => return Err(err("expected baseline or restricted")),
                    }
                }
                "trustedAccounts" => {
                    let accounts = strings_of(value)
                        .filter(|a| {
                            a.iter()
                                .all(|x| x.len() == 12 && x.bytes().all(|b| b.is_ascii_digit()))
                        })
                        .ok_or_else(|| err("expected a list of 12-digit AWS account ids"))?;
                    self.trusted_accounts = accounts;
                }
                "allowedHostPaths" => {
                    self.allowed_host_paths =
                        strings_of(value).ok_or_else(|| err("expected a list of strings"))?
                }
                _ => return Err(err("unknown parameter")),
            }
        }
        Ok(())
    }
}

fn bool_of(v: &serde_json::Value) -> Option<bool> {
    v.as_bool()
}

fn strings_of(v: &serde_json::Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_round_trip_and_map_to_domains() {
        for &c in ControlId::ALL {
            assert_eq!(c.as_str().parse::<ControlId>().unwrap(), c);
            assert!(
                c.as_str().starts_with(c.domain().as_str()),
                "{c} sits in its domain"
            );
        }
        assert!(
            "data.public"
                .parse::<ControlId>()
                .unwrap_err()
                .contains("data.public-access")
        );
    }

    #[test]
    fn parameters_are_typed_and_unknown_ones_refused() {
        let mut p = ControlParameters::default();
        let params = BTreeMap::from([("forbiddenPorts".to_string(), json!([22, 8080]))]);
        p.apply(ControlId::NetworkExposure, &params).unwrap();
        assert_eq!(p.forbidden_ports, vec![22, 8080]);

        let bad = BTreeMap::from([("forbiddenPorts".to_string(), json!([70000]))]);
        assert!(p.apply(ControlId::NetworkExposure, &bad).is_err());
        let all: Vec<u16> = (1..=2000).collect();
        let long = BTreeMap::from([("forbiddenPorts".to_string(), json!(all))]);
        let e = p.apply(ControlId::NetworkExposure, &long).unwrap_err();
        assert!(e.to_string().contains("at most 1024"), "{e}");
        let prefixes = BTreeMap::from([
            ("maxPublicPrefix".to_string(), json!(24)),
            ("maxPublicPrefixV6".to_string(), json!(48)),
        ]);
        p.apply(ControlId::NetworkExposure, &prefixes).unwrap();
        assert!(p.internet.includes("52.94.0.0/16"));
        let wide = BTreeMap::from([("maxPublicPrefix".to_string(), json!(33))]);
        let e = p.apply(ControlId::NetworkExposure, &wide).unwrap_err();
        assert!(e.to_string().contains("1-32"), "{e}");
        let unknown = BTreeMap::from([("requireDigest".to_string(), json!(true))]);
        let e = p.apply(ControlId::NetworkExposure, &unknown).unwrap_err();
        assert!(e.to_string().contains("forbiddenPorts"), "{e}");
    }
}
