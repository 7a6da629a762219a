//! `ResponsibilityBaseline` and `ClusterResponsibilityBaseline` (`onus.dev/v1alpha1`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{ControlId, Domain, Owner, Provider, ServiceModel};

/// What onus does when a control fails.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    JsonSchema,
)]
pub enum Action {
    /// Report only: the request is allowed and the finding is counted.
    Audit,
    /// Allow the request and return a warning to the client.
    Warn,
    /// Refuse the request.
    #[default]
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Audit => "Audit",
            Action::Warn => "Warn",
            Action::Deny => "Deny",
        }
    }
}

/// What a cloud resource that was referenced but not audited yet gets.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    JsonSchema,
)]
pub enum UnknownPolicy {
    Allow,
    #[default]
    Warn,
    Deny,
}

/// The spec shared by both baseline kinds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaselineSpec {
    /// Cloud the namespace runs on.
    pub provider: Provider,
    /// Service model the namespace consumes; decides who owns each security domain.
    pub service_model: ServiceModel,
    /// Default action for failing controls.
    #[serde(default)]
    pub action: Action,
    /// What a referenced cloud resource that has not been audited yet gets.
    #[serde(default)]
    pub unknown_cloud_resources: UnknownPolicy,
    /// Cells that override the preset responsibility matrix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["domain"]))]
    pub responsibilities: Vec<ResponsibilityOverride>,
    /// Per-control settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub controls: Vec<ControlSetting>,
    /// Resources exempted from a control, with a justification and an optional expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub exceptions: Vec<Exception>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpSettings>,
}

/// One overridden cell of the responsibility matrix.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ResponsibilityOverride {
    pub domain: Domain,
    pub owner: Owner,
}

/// Settings of one control.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlSetting {
    pub id: ControlId,
    /// Overrides the baseline's action for this control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Control parameters (see the README's section on each control).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "free_form_object")]
    pub parameters: BTreeMap<String, serde_json::Value>,
}

/// A resource exempted from a control.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "size(self.justification.trim()) >= 10", "message": "an exception needs a justification of at least 10 characters"}
]))]
pub struct Exception {
    /// The control this exception is for.
    pub control: ControlId,
    /// Objects exempted; `name` may hold `*` globs.
    #[schemars(length(min = 1, max = 64))]
    pub resources: Vec<ExceptionResource>,
    /// Why the gap is accepted; shown in reports.
    #[schemars(length(max = 1024))]
    pub justification: String,
    /// When the exception stops applying (RFC 3339). An expired exception is reported, not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ExceptionResource {
    /// Kubernetes kind, for example `Deployment` or `Bucket`; `*` for any kind.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Object name; may hold `*` globs.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d$"))]
    pub region: Option<String>,
    /// Role assumed for cross-account audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/.+$"))]
    pub role_arn: Option<String>,
    /// Account the namespace's resources live in (for the account-level audit trail check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d{12}$"))]
    pub account_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"))]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"))]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: Option<String>,
    /// Client id of the user-assigned identity audits run as (workload or managed identity);
    /// without it, the identity the environment names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"))]
    pub client_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// A namespaced responsibility baseline: applies to the namespace it lives in.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "onus.dev",
    version = "v1alpha1",
    kind = "ResponsibilityBaseline",
    plural = "responsibilitybaselines",
    shortname = "rb",
    category = "onus",
    namespaced,
    status = "BaselineStatus",
    doc = "Says which cloud and service model a namespace runs on, and so which security duties are the customer's.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.serviceModel"}"#,
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.action"}"#,
    printcolumn = r#"{"name":"Compliant","type":"string","jsonPath":".status.conditions[?(@.type==\"Compliant\")].status"}"#,
    printcolumn = r#"{"name":"Findings","type":"integer","jsonPath":".status.summary.fail"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ResponsibilityBaselineSpec {
    #[serde(flatten)]
    pub baseline: BaselineSpec,
}

/// A cluster-wide responsibility baseline: applies to every namespace its selector matches.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "onus.dev",
    version = "v1alpha1",
    kind = "ClusterResponsibilityBaseline",
    plural = "clusterresponsibilitybaselines",
    shortname = "crb",
    category = "onus",
    status = "BaselineStatus",
    doc = "A responsibility baseline for every namespace that namespaceSelector matches.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.serviceModel"}"#,
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.action"}"#,
    printcolumn = r#"{"name":"Compliant","type":"string","jsonPath":".status.conditions[?(@.type==\"Compliant\")].status"}"#,
    printcolumn = r#"{"name":"Findings","type":"integer","jsonPath":".status.summary.fail"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResponsibilityBaselineSpec {
    #[serde(flatten)]
    pub baseline: BaselineSpec,
    /// Namespaces this baseline applies to; empty matches every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// Observed state written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaselineStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The effective matrix: who owns each domain and what state its controls are in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matrix: Vec<DomainStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_audit_time: Option<DateTime<Utc>>,
    /// The last spec onus compiled. While the stored spec cannot be compiled (stored while onus
    /// was down, or past an older schema), its namespaces are judged under this one, and
    /// `Ready=False` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_spec")]
    pub last_valid_spec: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct DomainStatus {
    pub domain: Domain,
    pub owner: Owner,
    pub controls: Vec<ControlId>,
    /// `enforced`, `skipped` (the provider owns it) or `failing`.
    pub state: String,
}

/// Verdict counts by result.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Summary {
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    pub error: u64,
    pub skip: u64,
}

/// A copy of a spec, kept as it was: free-form, and structural.
fn free_form_spec(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "The last spec onus compiled, as it was written.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// `{type: object, x-kubernetes-preserve-unknown-fields: true}`: free-form, and structural.
fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Control parameters (see the README's section on each control).",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
