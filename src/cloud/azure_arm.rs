//! Azure Resource Manager: the management-plane facts of a storage account that the blob
//! service does not show (Storage Accounts - Get Properties, api-version 2023-05-01):
//! `allowBlobPublicAccess`, `minimumTlsVersion`, `supportsHttpsTrafficOnly`,
//! `networkAcls.defaultAction` and `encryption.keySource`; and the rules of network security
//! groups (Network Security Groups - Get, api-version 2024-05-01).
//!
//! Token from `azure_identity` (scope `https://management.azure.com/.default`). No emulator for
//! ARM exists here: `ONUS_AZURE_ARM_ENDPOINT` points the client elsewhere (tests use a local
//! HTTPS server that answers with the documented JSON), `ONUS_AZURE_ARM_CA_FILE` adds a CA to
//! trust (a private cloud's, or the test server's). In emulator mode (a shared storage key and
//! no identity) no token is sent.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use serde_json::Value;

use super::azure::AzureError;
use super::{CallFailure, CallObserver, error_chain, one_line, read_bounded, retried};
use crate::posture::IngressRule;
use crate::refs::NsgId;

pub const ENDPOINT_ENV: &str = "ONUS_AZURE_ARM_ENDPOINT";
pub const CA_ENV: &str = "ONUS_AZURE_ARM_CA_FILE";
const API_VERSION: &str = "2023-05-01";
const NETWORK_API_VERSION: &str = "2024-05-01";
const SCOPE: &str = "https://management.azure.com/.default";
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A storage account's properties are a few KiB.
const MAX_BODY: usize = 1024 * 1024;

impl CallFailure for AzureError {
    fn http_status(&self) -> Option<u16> {
        match self {
            AzureError::Call { status, .. } => *status,
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, AzureError::Call { status, .. } if status.is_none_or(|s| s == 429 || s >= 500))
    }
}

/// What ARM says of a storage account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountFacts {
    /// `None`: the property is absent, which ARM documents as "public access is permitted".
    pub allow_blob_public_access: Option<bool>,
    pub minimum_tls_version: Option<String>,
    pub https_only: Option<bool>,
    /// `publicNetworkAccess` with `networkAcls`.
    pub network: crate::posture::StorageNetwork,
    /// `Microsoft.Storage` or `Microsoft.Keyvault`.
    pub key_source: Option<String>,
}

impl AccountFacts {
    /// From the documented JSON of Storage Accounts - Get Properties.
    pub fn from_json(v: &Value) -> Result<AccountFacts, String> {
        let props = v
            .get("properties")
            .filter(|p| p.is_object())
            .ok_or("no properties object")?;
        let text = |p: &str| props.pointer(p).and_then(Value::as_str).map(String::from);
        Ok(AccountFacts {
            allow_blob_public_access: props.get("allowBlobPublicAccess").and_then(Value::as_bool),
            minimum_tls_version: text("/minimumTlsVersion"),
            https_only: props
                .get("supportsHttpsTrafficOnly")
                .and_then(Value::as_bool),
            network: crate::posture::StorageNetwork::read(
                text("/publicNetworkAccess").as_deref(),
                props.get("networkAcls"),
            )?,
            key_source: text("/encryption/keySource"),
        })
    }

    /// The account's guard against public containers.
    pub fn guard(&self) -> Result<(), String> {
        match self.allow_blob_public_access {
            Some(false) => Ok(()),
            Some(true) => {
                Err("the account allows public blob access (allowBlobPublicAccess is true)".into())
            }
            None => Err(
                "the account does not forbid public blob access (allowBlobPublicAccess is not set)"
                    .into(),
            ),
        }
    }
}

/// Where a storage account lives in ARM.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub subscription: String,
    pub resource_group: String,
}

pub struct ArmClient {
    endpoint: String,
    http: reqwest::Client,
    token: Option<Arc<dyn TokenCredential>>,
    observe: CallObserver,
}

impl ArmClient {
    pub fn new(
        token: Option<Arc<dyn TokenCredential>>,
        observe: CallObserver,
    ) -> Result<ArmClient, AzureError> {
        let endpoint = match std::env::var(ENDPOINT_ENV) {
            Ok(e) if !e.trim().is_empty() => {
                let e = e.trim().trim_end_matches('/').to_string();
                match reqwest::Url::parse(&e) {
                    Ok(u) if u.host().is_some() => e,
                    _ => return Err(AzureError::BadEndpoint(ENDPOINT_ENV, e)),
                }
            }
            _ => "https://management.azure.com".to_string(),
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Ok(path) = std::env::var(CA_ENV)
            && !path.trim().is_empty()
        {
            let pem = std::fs::read(path.trim())
                .map_err(|e| AzureError::BadEndpoint(CA_ENV, format!("{path}: {e}")))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| AzureError::BadEndpoint(CA_ENV, format!("{path}: {e}")))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder
            .build()
            .map_err(|e| AzureError::Credentials(format!("HTTP client: {e}")))?;
        Ok(ArmClient {
            endpoint,
            http,
            token,
            observe,
        })
    }

    /// Storage Accounts - Get Properties; `Ok(None)` when ARM says there is no such account.
    pub async fn storage_account(
        &self,
        scope: &Scope,
        account: &str,
    ) -> Result<Option<AccountFacts>, AzureError> {
        let url = format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Storage/storageAccounts/{account}?api-version={API_VERSION}",
            self.endpoint,
            segment(&scope.subscription),
            segment(&scope.resource_group),
        );
        let op = "GetStorageAccountProperties";
        match self.get(op, &url).await? {
            Some(v) => AccountFacts::from_json(&v)
                .map(Some)
                .map_err(|message| AzureError::Call {
                    operation: op,
                    status: None,
                    code: None,
                    message: format!("the answer is not what ARM documents: {message}"),
                }),
            None => Ok(None),
        }
    }

    /// Network Security Groups - Get: the inbound rules that let traffic in, the user's and
    /// Azure's defaults alike; `Ok(None)` when ARM says there is no such group.
    pub async fn network_security_group(
        &self,
        id: &NsgId,
    ) -> Result<Option<Vec<IngressRule>>, AzureError> {
        let url = format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkSecurityGroups/{}?api-version={NETWORK_API_VERSION}",
            self.endpoint,
            segment(&id.subscription),
            segment(&id.resource_group),
            segment(&id.name),
        );
        let op = "GetNetworkSecurityGroup";
        match self.get(op, &url).await? {
            Some(v) => nsg_rules(&v).map(Some).map_err(|message| AzureError::Call {
                operation: op,
                status: None,
                code: None,
                message: format!("the answer is not what ARM documents: {message}"),
            }),
            None => Ok(None),
        }
    }

    async fn get(&self, operation: &'static str, url: &str) -> Result<Option<Value>, AzureError> {
        retried(&self.observe, "arm", operation, || {
            self.get_once(operation, url)
        })
        .await
    }

    async fn get_once(
        &self,
        operation: &'static str,
        url: &str,
    ) -> Result<Option<Value>, AzureError> {
        let call = |status: Option<u16>, code: Option<String>, message: String| AzureError::Call {
            operation,
            status,
            code,
            message,
        };
        let mut req = self.http.get(url);
        if let Some(t) = &self.token {
            let token = t
                .get_token(&[SCOPE], None)
                .await
                .map_err(|e| AzureError::Credentials(error_chain(&e)))?;
            req = req.bearer_auth(token.token.secret());
        }
        let rsp = req
            .send()
            .await
            .map_err(|e| call(None, None, error_chain(&e)))?;
        let status = rsp.status().as_u16();
        let body = read_bounded(rsp, MAX_BODY)
            .await
            .map_err(|e| call(Some(status), None, e))?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if (200..300).contains(&status) {
            return json
                .map(Some)
                .ok_or_else(|| call(Some(status), None, "the answer is not JSON".into()));
        }
        let code = json
            .as_ref()
            .and_then(|v| v.pointer("/error/code").and_then(Value::as_str))
            .map(String::from);
        if status == 404 && code.as_deref() == Some("ResourceNotFound") {
            return Ok(None);
        }
        let message = json
            .as_ref()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str))
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let message = one_line(&message, 300);
        let code = code.map(|c| one_line(&c, 80));
        Err(call(
            Some(status),
            code,
            format!("HTTP {status}: {message}"),
        ))
    }
}

/// The rules of a Network Security Group as ARM documents its JSON: `properties.securityRules`
/// and `properties.defaultSecurityRules`, each rule's fields under its own `properties`.
pub fn nsg_rules(v: &Value) -> Result<Vec<IngressRule>, String> {
    let props = v
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or("no properties object")?;
    let mut rules = Vec::new();
    for field in ["securityRules", "defaultSecurityRules"] {
        let list = match props.get(field) {
            // A group without rules of its own has none; ARM always lists Azure's defaults.
            None | Some(Value::Null) if field == "securityRules" => continue,
            None | Some(Value::Null) => return Err(format!("no {field}")),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(format!("{field} is not a list")),
        };
        for (i, r) in list.iter().enumerate() {
            rules.push(
                r.get("properties")
                    .filter(|p| p.is_object())
                    .ok_or_else(|| format!("{field}[{i}] has no properties object"))?,
            );
        }
    }
    crate::network::nsg_ingress(rules.into_iter())
}

/// A path segment from configuration, percent-encoded (subscription ids are UUIDs and resource
/// group names letters, digits and `-_.()`: anything else is encoded, not trusted).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'(' | b')' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape of "Storage Accounts - Get Properties" in the ARM REST reference.
    #[test]
    fn account_facts_as_arm_documents_them() {
        let v = json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/shop",
            "kind": "StorageV2",
            "properties": {
                "allowBlobPublicAccess": false,
                "minimumTlsVersion": "TLS1_2",
                "supportsHttpsTrafficOnly": true,
                "networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"},
                "encryption": {"keySource": "Microsoft.Keyvault", "services": {"blob": {"enabled": true}}}
            }
        });
        let f = AccountFacts::from_json(&v).unwrap();
        assert_eq!(f.guard(), Ok(()));
        assert_eq!(f.minimum_tls_version.as_deref(), Some("TLS1_2"));
        assert_eq!(f.key_source.as_deref(), Some("Microsoft.Keyvault"));
        assert_eq!(
            f.network.access,
            crate::posture::NetworkAccess::SelectedNetworks
        );
        // Absent means permitted (older accounts): not a guard.
        let old = AccountFacts::from_json(&json!({"properties": {}})).unwrap();
        assert!(old.guard().unwrap_err().contains("not set"));
        assert_eq!(
            old.network.access,
            crate::posture::NetworkAccess::AllNetworks
        );
        let private = json!({"properties": {"publicNetworkAccess": "Disabled", "networkAcls": {"defaultAction": "Allow"}}});
        assert_eq!(
            AccountFacts::from_json(&private).unwrap().network.access,
            crate::posture::NetworkAccess::Disabled
        );
        assert!(AccountFacts::from_json(&json!({"error": {}})).is_err());
        assert_eq!(segment("rg-1 /x"), "rg-1%20%2Fx");
    }

    /// The shape of "Network Security Groups - Get" in the ARM REST reference: the forms other
    /// scanners miss (plural fields next to singular ones, `Any`, `Internet`, `::/0`), a deny of
    /// higher precedence, and Azure's default rules.
    #[test]
    fn nsg_rules_as_arm_documents_them() {
        let rule = |name: &str, props: Value| json!({"name": name, "id": format!("/x/securityRules/{name}"), "properties": props});
        let v = json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/web",
            "name": "web",
            "properties": {
                "securityRules": [
                    rule("ssh", json!({"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
                        "sourceAddressPrefix": "Internet", "destinationAddressPrefix": "*", "access": "Allow",
                        "priority": 200, "direction": "Inbound"})),
                    rule("db", json!({"protocol": "*", "sourcePortRange": "*", "destinationPortRanges": ["5432", "6379-6380"],
                        "sourceAddressPrefixes": ["10.1.0.0/16", "::/0"], "access": "Allow", "priority": 210, "direction": "Inbound"})),
                    rule("rdp-shut", json!({"protocol": "Tcp", "destinationPortRange": "3389", "sourceAddressPrefix": "Any",
                        "access": "Allow", "priority": 300, "direction": "Inbound"})),
                    rule("deny-rdp", json!({"protocol": "*", "destinationPortRange": "3000-4000", "sourceAddressPrefix": "Internet",
                        "access": "Deny", "priority": 100, "direction": "Inbound"})),
                    rule("out", json!({"protocol": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*",
                        "access": "Allow", "priority": 100, "direction": "Outbound"})),
                ],
                "defaultSecurityRules": [
                    rule("AllowVnetInBound", json!({"protocol": "*", "destinationPortRange": "*", "sourceAddressPrefix": "VirtualNetwork",
                        "access": "Allow", "priority": 65000, "direction": "Inbound"})),
                    rule("DenyAllInBound", json!({"protocol": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*",
                        "access": "Deny", "priority": 65500, "direction": "Inbound"})),
                ]
            }
        });
        let rules = nsg_rules(&v).unwrap();
        let seen: Vec<String> = rules
            .iter()
            .map(|r| format!("{} {}-{} {}", r.protocol, r.from_port, r.to_port, r.source))
            .collect();
        assert_eq!(
            seen,
            [
                "tcp 22-22 Internet",
                "all 5432-5432 10.1.0.0/16",
                "all 5432-5432 ::/0",
                "all 6379-6380 10.1.0.0/16",
                "all 6379-6380 ::/0",
                "all 0-65535 VirtualNetwork",
            ]
        );
        // Not the documented shape: an error, never an empty rule set.
        assert!(nsg_rules(&json!({"error": {"code": "x"}})).is_err());
        assert!(nsg_rules(&json!({"properties": {"securityRules": {}}})).is_err());
        assert!(nsg_rules(&json!({"properties": {"securityRules": [{"name": "r"}]}})).is_err());
        assert!(
            nsg_rules(&json!({"properties": {}}))
                .unwrap_err()
                .contains("no defaultSecurityRules")
        );
        assert_eq!(
            nsg_rules(&json!({"properties": {"defaultSecurityRules": []}})).unwrap(),
            vec![]
        );
    }

    /// A rule set that would expand past the bound is refused, not judged in part.
    #[test]
    fn nsg_rule_sets_past_the_bound_are_refused() {
        let sources: Vec<String> = (0..200).map(|i| format!("10.0.{i}.0/24")).collect();
        let ports: Vec<String> = (1..=100).map(|p| p.to_string()).collect();
        let v = json!({"properties": {"securityRules": [{"properties": {
            "access": "Allow", "direction": "Inbound", "protocol": "Tcp", "priority": 100,
            "sourceAddressPrefixes": sources, "destinationPortRanges": ports}}],
            "defaultSecurityRules": []}});
        assert!(nsg_rules(&v).unwrap_err().contains("more than 10000"));
    }
}
