//! Effective baselines: a baseline spec compiled for evaluation, and which baselines apply to a
//! namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::{
    Action, BaselineSpec, ClusterResponsibilityBaseline, Exception, ResponsibilityBaseline,
    UnknownPolicy,
};
use crate::model::{
    ControlId, ControlParameters, Matrix, Owner, ParameterError, Provider, ServiceModel,
};

/// A baseline that cannot be used as written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BaselineError {
    #[error("{baseline}: {source}")]
    Parameter {
        baseline: String,
        source: ParameterError,
    },
    #[error("{baseline}: control {control} is listed more than once in spec.controls")]
    DuplicateControl {
        baseline: String,
        control: ControlId,
    },
    #[error("{baseline}: domain {domain} is listed more than once in spec.responsibilities")]
    DuplicateDomain { baseline: String, domain: String },
    #[error("{baseline}: namespaceSelector: {problem}")]
    Selector { baseline: String, problem: String },
}

/// A baseline ready for the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveBaseline {
    /// `ResponsibilityBaseline/NAMESPACE/NAME` or `ClusterResponsibilityBaseline/NAME`.
    pub name: String,
    pub provider: Provider,
    pub model: ServiceModel,
    pub matrix: Matrix,
    pub action: Action,
    pub unknown: UnknownPolicy,
    overrides: BTreeMap<ControlId, (Option<Action>, bool)>,
    pub params: ControlParameters,
    pub exceptions: Vec<Exception>,
    pub aws_account: Option<String>,
    pub aws_region: Option<String>,
    pub aws_role_arn: Option<String>,
    /// The identity Azure audits run as (`azure.clientId`), and where the namespace's storage
    /// accounts live in ARM (`azure.subscriptionId`, `azure.resourceGroup`).
    pub azure_client_id: Option<String>,
    pub azure_subscription: Option<String>,
    pub azure_resource_group: Option<String>,
    /// The project GCP audits are for (`gcp.projectId`).
    pub gcp_project: Option<String>,
}

/// How an exception stands for one object.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExceptionState<'a> {
    None,
    Active(&'a Exception),
    Expired(&'a Exception),
}

impl EffectiveBaseline {
    pub fn compile(
        name: impl Into<String>,
        spec: &BaselineSpec,
    ) -> Result<EffectiveBaseline, BaselineError> {
        let name = name.into();
        let mut params = ControlParameters::default();
        let mut overrides = BTreeMap::new();
        for c in &spec.controls {
            if overrides.insert(c.id, (c.action, c.disabled)).is_some() {
                return Err(BaselineError::DuplicateControl {
                    baseline: name,
                    control: c.id,
                });
            }
            params
                .apply(c.id, &c.parameters)
                .map_err(|source| BaselineError::Parameter {
                    baseline: name.clone(),
                    source,
                })?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &spec.responsibilities {
            if !seen.insert(r.domain) {
                return Err(BaselineError::DuplicateDomain {
                    baseline: name,
                    domain: r.domain.to_string(),
                });
            }
        }
        Ok(EffectiveBaseline {
            matrix: Matrix::resolve(spec.provider, spec.service_model, &spec.responsibilities),
            provider: spec.provider,
            model: spec.service_model,
            action: spec.action,
            unknown: spec.unknown_cloud_resources,
            overrides,
            params,
            exceptions: spec.exceptions.clone(),
            aws_account: spec.aws.as_ref().and_then(|a| a.account_id.clone()),
            aws_region: spec.aws.as_ref().and_then(|a| a.region.clone()),
            aws_role_arn: spec.aws.as_ref().and_then(|a| a.role_arn.clone()),
            azure_client_id: spec.azure.as_ref().and_then(|a| a.client_id.clone()),
            azure_subscription: spec.azure.as_ref().and_then(|a| a.subscription_id.clone()),
            azure_resource_group: spec.azure.as_ref().and_then(|a| a.resource_group.clone()),
            gcp_project: spec.gcp.as_ref().and_then(|g| g.project_id.clone()),
            name,
        })
    }

    pub fn owner(&self, control: ControlId) -> Owner {
        self.matrix.owner(control.domain())
    }

    pub fn disabled(&self, control: ControlId) -> bool {
        self.overrides.get(&control).is_some_and(|o| o.1)
    }

    /// The action a failure of this control gets.
    pub fn action(&self, control: ControlId) -> Action {
        if control.audit_only() {
            return Action::Audit;
        }
        self.overrides
            .get(&control)
            .and_then(|o| o.0)
            .unwrap_or(self.action)
    }

    /// Does an exception cover this object for this control?
    pub fn exception(
        &self,
        control: ControlId,
        kind: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> ExceptionState<'_> {
        let mut expired = None;
        for e in self.exceptions.iter().filter(|e| e.control == control) {
            let hit = e.resources.iter().any(|r| {
                (r.kind == "*" || r.kind == kind) && crate::iam::glob_match(&r.name, name)
            });
            if !hit {
                continue;
            }
            match e.expires {
                Some(t) if t <= now => expired = Some(e),
                _ => return ExceptionState::Active(e),
            }
        }
        expired.map_or(ExceptionState::None, ExceptionState::Expired)
    }
}

/// All baselines known, and which of them apply to a namespace.
#[derive(Clone, Debug, Default)]
pub struct BaselineSet {
    namespaced: BTreeMap<String, Vec<Arc<EffectiveBaseline>>>,
    cluster: Vec<(Option<LabelSelector>, Arc<EffectiveBaseline>)>,
}

impl BaselineSet {
    pub fn add_namespaced(
        &mut self,
        rb: &ResponsibilityBaseline,
        default_namespace: &str,
    ) -> Result<(), BaselineError> {
        let ns = rb
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_string());
        let name = format!(
            "ResponsibilityBaseline/{ns}/{}",
            rb.metadata.name.as_deref().unwrap_or("")
        );
        let b = EffectiveBaseline::compile(name, &rb.spec.baseline)?;
        self.namespaced.entry(ns).or_default().push(Arc::new(b));
        Ok(())
    }

    pub fn add_cluster(
        &mut self,
        crb: &ClusterResponsibilityBaseline,
    ) -> Result<(), BaselineError> {
        let name = format!(
            "ClusterResponsibilityBaseline/{}",
            crb.metadata.name.as_deref().unwrap_or("")
        );
        if let Some(sel) = &crb.spec.namespace_selector {
            validate_selector(sel).map_err(|problem| BaselineError::Selector {
                baseline: name.clone(),
                problem,
            })?;
        }
        let b = EffectiveBaseline::compile(name, &crb.spec.baseline)?;
        self.cluster
            .push((crb.spec.namespace_selector.clone(), Arc::new(b)));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.namespaced.is_empty() && self.cluster.is_empty()
    }

    /// Every baseline, namespaced ones first.
    pub fn all(&self) -> Vec<Arc<EffectiveBaseline>> {
        self.namespaced
            .values()
            .flatten()
            .chain(self.cluster.iter().map(|(_, b)| b))
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.namespaced.values().map(Vec::len).sum::<usize>() + self.cluster.len()
    }

    /// Baselines that apply to a namespace with these labels. When several apply, the engine
    /// keeps the strictest verdict of each check.
    pub fn for_namespace(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Arc<EffectiveBaseline>> {
        let mut out: Vec<Arc<EffectiveBaseline>> =
            self.namespaced.get(namespace).cloned().unwrap_or_default();
        for (sel, b) in &self.cluster {
            if sel
                .as_ref()
                .is_none_or(|s| selector_matches(s, namespace, labels))
            {
                out.push(b.clone());
            }
        }
        out
    }
}

fn validate_selector(sel: &LabelSelector) -> Result<(), String> {
    for e in sel.match_expressions.iter().flatten() {
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.as_ref().is_none_or(Vec::is_empty) => {
                return Err(format!(
                    "operator {} on key {} needs values",
                    e.operator, e.key
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => return Err(format!("unknown operator {other:?} on key {}", e.key)),
        }
    }
    Ok(())
}

/// Kubernetes label selector semantics; `kubernetes.io/metadata.name` is always set.
pub fn selector_matches(
    sel: &LabelSelector,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let get = |k: &str| -> Option<&str> {
        if k == "kubernetes.io/metadata.name" {
            Some(labels.get(k).map(String::as_str).unwrap_or(namespace))
        } else {
            labels.get(k).map(String::as_str)
        }
    };
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v.as_str()));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or(&[]);
        match e.operator.as_str() {
            "In" => get(&e.key).is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => get(&e.key).is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => get(&e.key).is_some(),
            "DoesNotExist" => get(&e.key).is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// A baseline object (either kind), as the API server stores it, added to `set`: the one
/// compile step that `onus check`, the webhook and the snapshot share, with the same messages.
pub fn add_object(
    set: &mut BaselineSet,
    kind: &str,
    name: &str,
    body: &serde_json::Value,
    default_namespace: &str,
) -> Result<(), String> {
    match kind {
        "ResponsibilityBaseline" => serde_json::from_value::<ResponsibilityBaseline>(body.clone())
            .map_err(|e| format!("invalid ResponsibilityBaseline {name}: {e}"))
            .and_then(|rb| {
                set.add_namespaced(&rb, default_namespace)
                    .map_err(|e| e.to_string())
            }),
        "ClusterResponsibilityBaseline" => {
            serde_json::from_value::<ClusterResponsibilityBaseline>(body.clone())
                .map_err(|e| format!("invalid ClusterResponsibilityBaseline {name}: {e}"))
                .and_then(|crb| set.add_cluster(&crb).map_err(|e| e.to_string()))
        }
        other => Err(format!("unknown onus.dev kind {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ControlSetting, ExceptionResource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn spec() -> BaselineSpec {
        BaselineSpec {
            provider: Provider::Aws,
            service_model: ServiceModel::Iaas,
            ..Default::default()
        }
    }

    #[test]
    fn control_action_overrides_and_audit_only_controls() {
        let mut s = spec();
        s.action = Action::Warn;
        s.controls = vec![ControlSetting {
            id: ControlId::DataPublicAccess,
            action: Some(Action::Deny),
            ..Default::default()
        }];
        let b = EffectiveBaseline::compile("b", &s).unwrap();
        assert_eq!(b.action(ControlId::DataPublicAccess), Action::Deny);
        assert_eq!(b.action(ControlId::HostOsIsolation), Action::Warn);
        assert_eq!(b.action(ControlId::NetworkSegmentation), Action::Audit);
    }

    #[test]
    fn duplicate_controls_are_refused() {
        let mut s = spec();
        s.controls = vec![
            ControlSetting {
                id: ControlId::DataPublicAccess,
                ..Default::default()
            },
            ControlSetting {
                id: ControlId::DataPublicAccess,
                ..Default::default()
            },
        ];
        assert!(matches!(
            EffectiveBaseline::compile("b", &s),
            Err(BaselineError::DuplicateControl { .. })
        ));
    }

    #[test]
    fn exceptions_apply_until_they_expire() {
        let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut s = spec();
        s.exceptions = vec![Exception {
            control: ControlId::HostOsIsolation,
            resources: vec![ExceptionResource {
                kind: "DaemonSet".into(),
                name: "node-*".into(),
            }],
            justification: "node agent needs the host".into(),
            expires: Some("2026-12-31T00:00:00Z".parse().unwrap()),
        }];
        let b = EffectiveBaseline::compile("b", &s).unwrap();
        assert!(matches!(
            b.exception(
                ControlId::HostOsIsolation,
                "DaemonSet",
                "node-exporter",
                now
            ),
            ExceptionState::Active(_)
        ));
        assert!(matches!(
            b.exception(
                ControlId::HostOsIsolation,
                "Deployment",
                "node-exporter",
                now
            ),
            ExceptionState::None
        ));
        assert!(matches!(
            b.exception(
                ControlId::DataPublicAccess,
                "DaemonSet",
                "node-exporter",
                now
            ),
            ExceptionState::None
        ));
        let later: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            b.exception(
                ControlId::HostOsIsolation,
                "DaemonSet",
                "node-exporter",
                later
            ),
            ExceptionState::Expired(_)
        ));
    }

    #[test]
    fn selectors() {
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("env".to_string(), "prod".to_string())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec!["kube-system".into()]),
            }]),
        };
        assert!(selector_matches(&sel, "shop", &labels));
        assert!(!selector_matches(&sel, "kube-system", &labels));
        assert!(!selector_matches(&sel, "shop", &BTreeMap::new()));
        assert!(selector_matches(
            &LabelSelector::default(),
            "any",
            &BTreeMap::new()
        ));
    }
}
