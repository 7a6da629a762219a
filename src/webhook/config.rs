//! The `ValidatingWebhookConfiguration` for onus: every kind the engine judges.

use serde_json::{Value, json};

use crate::declared::DECLARED_KINDS;

/// How the API server reaches onus.
#[derive(Clone, Debug)]
pub struct WebhookConfigOptions {
    pub name: String,
    /// `https://HOST:PORT/validate`, for webhooks outside the cluster (tests, local runs).
    pub url: Option<String>,
    /// Service namespace and name, for the in-cluster deployment.
    pub service: Option<(String, String)>,
    pub ca_bundle: Option<String>,
    /// `Fail` refuses requests when onus is unreachable; `Ignore` lets them through unjudged.
    pub failure_policy: String,
    pub timeout_seconds: u8,
    /// Namespaces never sent to onus, so it can never lock the cluster out of its own repair.
    pub excluded_namespaces: Vec<String>,
}

/// The rules: built-in kinds, then every declared cloud kind (served or not: a rule for a
/// resource the server does not have simply never matches).
pub fn rules() -> Vec<Value> {
    let ops = json!(["CREATE", "UPDATE"]);
    let mut rules = vec![
        json!({"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers", "serviceaccounts", "services"], "operations": ops}),
        json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"], "operations": ops}),
        json!({"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"], "operations": ops}),
        json!({"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "resources": ["ingresses"], "operations": ops}),
        json!({"apiGroups": ["storage.k8s.io"], "apiVersions": ["v1"], "resources": ["storageclasses"], "operations": ops, "scope": "Cluster"}),
        // onus's own kinds: a baseline onus cannot compile is refused, with the reason.
        json!({"apiGroups": ["onus.dev"], "apiVersions": ["v1alpha1"], "resources": ["responsibilitybaselines", "clusterresponsibilitybaselines"], "operations": ops}),
        // Only onus may change what a broken baseline falls back to.
        json!({"apiGroups": ["onus.dev"], "apiVersions": ["v1alpha1"], "resources": ["responsibilitybaselines/status", "clusterresponsibilitybaselines/status"], "operations": ["UPDATE"]}),
    ];
    let mut groups: Vec<&str> = DECLARED_KINDS.iter().map(|(g, _, _)| *g).collect();
    groups.dedup();
    for g in groups {
        let resources: Vec<&str> = DECLARED_KINDS
            .iter()
            .filter(|(gg, _, _)| *gg == g)
            .map(|(_, _, p)| *p)
            .collect();
        rules.push(json!({"apiGroups": [g], "apiVersions": ["*"], "resources": resources, "operations": ops}));
    }
    rules
}

/// The whole object, ready for `kubectl apply`.
pub fn validating_webhook_configuration(o: &WebhookConfigOptions) -> Value {
    let mut client = json!({});
    if let Some(url) = &o.url {
        client["url"] = json!(url);
    }
    if let Some((ns, name)) = &o.service {
        client["service"] =
            json!({"namespace": ns, "name": name, "path": "/validate", "port": 443});
    }
    if let Some(ca) = &o.ca_bundle {
        client["caBundle"] = json!(ca);
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": o.name, "labels": {"app.kubernetes.io/name": "onus"}},
        "webhooks": [{
            "name": "validate.onus.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": o.timeout_seconds,
            "failurePolicy": o.failure_policy,
            "matchPolicy": "Equivalent",
            "clientConfig": client,
            "namespaceSelector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": o.excluded_namespaces,
            }]},
            "rules": rules(),
        }],
    })
}
