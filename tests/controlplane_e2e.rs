//! The test control plane itself: a real kube-apiserver 1.34 with etcd, kubectl and helm built
//! from their Go modules (hack/controlplane), and the third-party CRDs onus reads installing
//! into it and accepting objects.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{control_plane, repo_root};

/// The version a wrapper module in tests/controlplane pins for `module`.
fn pinned(wrapper: &str, module: &str) -> String {
    let path = repo_root()
        .join("tests/controlplane")
        .join(wrapper)
        .join("go.mod");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != module);
            words.next()?;
            words.next().map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("{module} not in {}", path.display()))
}

#[test]
fn kubectl_version_reports_the_pinned_kubernetes_1_34() {
    let cp = control_plane();
    let want = pinned("kube-apiserver", "k8s.io/kubernetes");
    assert!(
        want.starts_with("v1.34."),
        "wrapper pins {want}, expected a 1.34 release"
    );

    let v = cp
        .kubectl(&["version", "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(v["serverVersion"]["gitVersion"], json!(want), "{v:#}");
    assert_eq!(v["serverVersion"]["major"], json!("1"), "{v:#}");
    assert_eq!(v["serverVersion"]["minor"], json!("34"), "{v:#}");
    assert_eq!(
        v["clientVersion"]["gitVersion"],
        json!(want),
        "kubectl is not the one built: {v:#}"
    );

    // The same through plain HTTPS with the kubeconfig's client certificate.
    let raw = cp
        .kubectl(&["get", "--raw", "/version"])
        .expect_success()
        .json();
    assert_eq!(raw["gitVersion"], json!(want));
}

#[test]
fn admin_credentials_are_cluster_admin() {
    let cp = control_plane();
    let out = cp.kubectl(&["auth", "can-i", "*", "*", "--all-namespaces"]);
    assert_eq!(out.expect_success().stdout.trim(), "yes");
    let whoami = cp
        .kubectl(&["auth", "whoami", "-o", "json"])
        .expect_success()
        .json();
    let groups = whoami["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("system:masters"), "{whoami:#}");
}

#[test]
fn namespaces_are_fresh_per_test_and_usable() {
    let cp = control_plane();
    let a = cp.create_namespace("e2e");
    let b = cp.create_namespace("e2e");
    assert_ne!(a, b);
    cp.kubectl(&[
        "-n",
        &a,
        "create",
        "configmap",
        "probe",
        "--from-literal=k=v",
    ])
    .expect_success();
    let got = cp.kubectl(&[
        "-n",
        &a,
        "get",
        "configmap",
        "probe",
        "-o",
        "jsonpath={.data.k}",
    ]);
    assert_eq!(got.expect_success().stdout, "v");
    let missing = cp.kubectl(&["-n", &b, "get", "configmap", "probe"]);
    assert!(missing.expect_failure().contains("NotFound"), "{missing}");
}

#[tokio::test]
async fn kube_client_talks_to_the_control_plane() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{Api, PostParams};

    let cp = control_plane();
    let client = cp.client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(
        info.git_version,
        pinned("kube-apiserver", "k8s.io/kubernetes")
    );

    let ns = support::create_namespace(&client, "e2e-kube").await;
    let listed = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await
        .expect("get namespace");
    assert_eq!(listed.metadata.name.as_deref(), Some(ns.as_str()));

    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "from-kube" }, "data": { "source": "kube-rs" }
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    // What kube-rs wrote, kubectl reads.
    let out = cp.kubectl(&[
        "-n",
        &ns,
        "get",
        "configmap",
        "from-kube",
        "-o",
        "jsonpath={.data.source}",
    ]);
    assert_eq!(out.expect_success().stdout, "kube-rs");
}

#[test]
fn helm_version_is_the_pinned_release() {
    let cp = control_plane();
    let want = pinned("helm", "helm.sh/helm/v3");
    let out = cp.helm(&["version", "--short"]);
    let short = out.expect_success().stdout.trim().to_owned();
    assert!(
        short == want || short.starts_with(&format!("{want}+")),
        "helm says {short}, want {want}"
    );
}

/// Writes a tiny chart: one ConfigMap that echoes values and the Kubernetes version helm
/// targets, with a `kubeVersion` constraint.
fn tiny_chart(dir: &Path, kube_version: &str) -> PathBuf {
    let chart = dir.join("tiny");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: tiny\nversion: 0.1.0\nappVersion: \"1.0\"\nkubeVersion: \"{kube_version}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        chart.join("values.yaml"),
        "bucket: team-data\npublic: false\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/managed-by: {{ .Release.Service }}
data:
  bucket: {{ .Values.bucket | quote }}
  public: {{ .Values.public | quote }}
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
"#,
    )
    .unwrap();
    chart
}

fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("helm output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn helm_template_renders_a_chart() {
    let cp = control_plane();
    let tmp = tempfile::tempdir().unwrap();
    let chart = tiny_chart(tmp.path(), ">=1.20.0-0");
    let out = cp.helm(&[
        "template",
        "demo",
        chart.to_str().unwrap(),
        "--namespace",
        "apps",
        "--set",
        "bucket=audit-logs",
    ]);
    let docs = yaml_docs(&out.expect_success().stdout);
    assert_eq!(docs.len(), 1, "{out}");
    let cm = &docs[0];
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "demo-settings");
    assert_eq!(cm["metadata"]["namespace"], "apps");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert_eq!(
        cm["data"]["bucket"], "audit-logs",
        "--set wins over values.yaml"
    );
    assert_eq!(cm["data"]["public"], "false");

    // Against the cluster, helm sees the server's version, and the rendered object is valid.
    let ns = cp.create_namespace("e2e-helm");
    let out = cp.helm(&[
        "template",
        "demo",
        chart.to_str().unwrap(),
        "--namespace",
        &ns,
        "--validate",
    ]);
    let docs = yaml_docs(&out.expect_success().stdout);
    assert_eq!(
        docs[0]["data"]["kubeVersion"],
        json!(pinned("kube-apiserver", "k8s.io/kubernetes"))
    );
}

#[test]
fn helm_install_checks_kube_version_against_the_server() {
    let cp = control_plane();
    let tmp = tempfile::tempdir().unwrap();
    let ns = cp.create_namespace("e2e-helm");

    let fits = tiny_chart(&tmp.path().join("fits"), ">=1.34.0-0 <1.35.0-0");
    cp.helm(&[
        "install",
        "fits",
        fits.to_str().unwrap(),
        "--namespace",
        &ns,
        "--wait",
        "--timeout",
        "60s",
    ])
    .expect_success();
    let data = cp
        .kubectl(&[
            "-n",
            &ns,
            "get",
            "configmap",
            "fits-settings",
            "-o",
            "jsonpath={.data.bucket}",
        ])
        .expect_success()
        .stdout
        .clone();
    assert_eq!(data, "team-data");
    let list = cp
        .helm(&["list", "--namespace", &ns, "-o", "json"])
        .expect_success()
        .json();
    assert_eq!(list[0]["name"], "fits");
    assert_eq!(list[0]["status"], "deployed");

    let too_new = tiny_chart(&tmp.path().join("too-new"), ">=1.35.0-0");
    let out = cp.helm(&[
        "install",
        "too-new",
        too_new.to_str().unwrap(),
        "--namespace",
        &ns,
    ]);
    let err = out.expect_failure();
    assert!(
        err.contains("kubeVersion") || err.contains("incompatible"),
        "{out}"
    );
}

// ------------------------------------------------------------------ third-party CRDs

/// A minimal, realistic object per third-party CRD: the body (everything but apiVersion, kind
/// and metadata), valid in every served version, and a required field whose removal the API
/// server must reject with the given message.
struct Sample {
    file: &'static str,
    body: &'static str,
    required: Option<(&'static str, &'static str)>,
}

const SAMPLES: &[Sample] = &[
    Sample {
        file: "ec2.aws.upbound.io_securitygroupingressrules.yaml",
        body: "spec:\n  forProvider:\n    region: us-east-1\n    securityGroupId: sg-0123456789abcdef0\n    ipProtocol: tcp\n    fromPort: 22\n    toPort: 22\n    cidrIpv4: 0.0.0.0/0\n",
        required: Some((
            "/spec/forProvider/ipProtocol",
            "spec.forProvider.ipProtocol is a required parameter",
        )),
    },
    Sample {
        file: "ec2.services.k8s.aws_securitygroups.yaml",
        body: "spec:\n  name: web\n  description: web tier\n  vpcID: vpc-0123456789abcdef0\n  ingressRules:\n  - ipProtocol: tcp\n    fromPort: 443\n    toPort: 443\n    ipRanges:\n    - cidrIP: 10.0.0.0/8\n",
        required: Some(("/spec/description", "Required value")),
    },
    Sample {
        file: "iam.aws.upbound.io_policies.yaml",
        body: "spec:\n  forProvider:\n    policy: '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::team-data/*\"}]}'\n",
        required: Some((
            "/spec/forProvider/policy",
            "spec.forProvider.policy is a required parameter",
        )),
    },
    Sample {
        file: "iam.aws.upbound.io_roles.yaml",
        body: "spec:\n  forProvider:\n    assumeRolePolicy: '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"ec2.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}'\n    maxSessionDuration: 3600\n",
        required: Some((
            "/spec/forProvider/assumeRolePolicy",
            "spec.forProvider.assumeRolePolicy is a required parameter",
        )),
    },
    Sample {
        file: "iam.services.k8s.aws_policies.yaml",
        body: "spec:\n  name: read-team-data\n  policyDocument: '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}]}'\n",
        required: Some(("/spec/policyDocument", "Required value")),
    },
    Sample {
        file: "iam.services.k8s.aws_roles.yaml",
        body: "spec:\n  name: app\n  assumeRolePolicyDocument: '{\"Version\":\"2012-10-17\",\"Statement\":[]}'\n",
        required: Some(("/spec/assumeRolePolicyDocument", "Required value")),
    },
    Sample {
        file: "openreports.io_clusterreports.yaml",
        body: "source: onus\nsummary:\n  pass: 1\n  fail: 1\nresults:\n- policy: s3-public-access\n  rule: block-public-access\n  result: fail\n  severity: high\n  message: bucket team-data is public\n  source: onus\n",
        required: Some(("/results/0/policy", "Required value")),
    },
    Sample {
        file: "openreports.io_reports.yaml",
        body: "source: onus\nsummary:\n  pass: 1\n  fail: 1\nresults:\n- policy: s3-public-access\n  rule: block-public-access\n  result: fail\n  severity: high\n  message: bucket team-data is public\n  source: onus\n",
        required: Some(("/results/0/policy", "Required value")),
    },
    Sample {
        file: "s3.aws.upbound.io_bucketacls.yaml",
        body: "spec:\n  forProvider:\n    region: us-east-1\n    bucket: team-data\n    acl: private\n",
        required: Some(("/spec/forProvider/region", "Required value")),
    },
    Sample {
        file: "s3.aws.upbound.io_bucketpolicies.yaml",
        body: "spec:\n  forProvider:\n    region: us-east-1\n    bucket: team-data\n    policy: '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"s3:*\",\"Resource\":\"arn:aws:s3:::team-data/*\",\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"false\"}}}]}'\n",
        required: Some((
            "/spec/forProvider/policy",
            "spec.forProvider.policy is a required parameter",
        )),
    },
    Sample {
        file: "s3.aws.upbound.io_bucketpublicaccessblocks.yaml",
        body: "spec:\n  forProvider:\n    region: us-east-1\n    bucket: team-data\n    blockPublicAcls: true\n    blockPublicPolicy: true\n    ignorePublicAcls: true\n    restrictPublicBuckets: true\n",
        required: Some(("/spec/forProvider/region", "Required value")),
    },
    Sample {
        file: "s3.aws.upbound.io_buckets.yaml",
        body: "spec:\n  forProvider:\n    region: us-east-1\n    tags:\n      team: data\n",
        required: Some(("/spec/forProvider/region", "Required value")),
    },
    Sample {
        file: "s3.aws.upbound.io_bucketserversideencryptionconfigurations.yaml",
        body: "spec:\n  forProvider:\n    region: us-east-1\n    bucket: team-data\n    rule:\n    - bucketKeyEnabled: true\n",
        required: Some((
            "/spec/forProvider/rule",
            "spec.forProvider.rule is a required parameter",
        )),
    },
    Sample {
        file: "s3.services.k8s.aws_buckets.yaml",
        body: "spec:\n  name: team-data\n",
        required: Some(("/spec/name", "Required value")),
    },
    Sample {
        file: "storage.azure.com_storageaccountsblobservicescontainers.yaml",
        body: "spec:\n  owner:\n    name: teamstorage\n  azureName: team-data\n  publicAccess: None\n",
        required: Some(("/spec/owner", "Required value")),
    },
    Sample {
        file: "storage_v1beta1_storagebucket.yaml",
        body: "spec:\n  location: US\n  uniformBucketLevelAccess: true\n  publicAccessPrevention: enforced\n",
        required: None,
    },
    Sample {
        file: "wgpolicyk8s.io_clusterpolicyreports.yaml",
        body: "summary:\n  pass: 0\n  fail: 1\nresults:\n- policy: s3-public-access\n  rule: block-public-access\n  message: bucket team-data is public\n",
        required: Some(("/results/0/policy", "Required value")),
    },
    Sample {
        file: "wgpolicyk8s.io_policyreports.yaml",
        body: "summary:\n  pass: 0\n  fail: 1\nresults:\n- policy: s3-public-access\n  rule: block-public-access\n  message: bucket team-data is public\n",
        required: Some(("/results/0/policy", "Required value")),
    },
];

fn thirdparty_crds_dir() -> PathBuf {
    let dir = std::env::var_os("ONUS_THIRDPARTY_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/thirdparty-crds"));
    assert!(
        dir.is_dir(),
        "third-party CRDs not found at {} (set ONUS_THIRDPARTY_CRDS)",
        dir.display()
    );
    dir
}

/// Every leaf of `want` is present with the same value in `got`.
fn missing_leaves(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match want {
        Value::Object(m) => {
            for (k, v) in m {
                missing_leaves(v, &got[k.as_str()], &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                missing_leaves(
                    v,
                    got.get(i).unwrap_or(&Value::Null),
                    &format!("{path}[{i}]"),
                    out,
                );
            }
        }
        leaf => {
            // 22 and 22.0 are the same number to the API server.
            let same = leaf == got || (leaf.as_f64().is_some() && leaf.as_f64() == got.as_f64());
            if !same {
                out.push(format!("{path}: sent {leaf}, stored {got}"));
            }
        }
    }
}

/// `kubectl create`, retrying while the new type is not yet in discovery.
fn create_with_retry(cp: &support::ControlPlane, object: &Value) -> support::Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cp.kubectl_stdin(&["create", "-f", "-", "-o", "json"], &object.to_string());
        let not_yet = out.stderr.contains("no matches for kind")
            || out
                .stderr
                .contains("the server could not find the requested resource");
        if out.success() || !not_yet || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn thirdparty_crds_install_become_established_and_accept_objects() {
    let cp = control_plane();
    let dir = thirdparty_crds_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no CRDs in {}", dir.display());
    let without_sample: Vec<&String> = files
        .iter()
        .filter(|f| !SAMPLES.iter().any(|s| s.file == f.as_str()))
        .collect();
    assert!(
        without_sample.is_empty(),
        "add a Sample for {without_sample:?}"
    );

    // Install all of them the way a user would, then wait for the API server to serve them.
    let mut names = Vec::new();
    for file in &files {
        let path = dir.join(file);
        let out = cp.kubectl(&["apply", "--server-side", "-f", path.to_str().unwrap()]);
        assert!(
            out.expect_success().stdout.contains("serverside-applied"),
            "{out}"
        );
        let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        names.push(format!("crd/{}", crd["metadata"]["name"].as_str().unwrap()));
    }
    let mut wait = vec!["wait", "--for", "condition=Established", "--timeout", "60s"];
    wait.extend(names.iter().map(String::as_str));
    cp.kubectl(&wait).expect_success();

    let ns = cp.create_namespace("e2e-crds");
    let mut failures = Vec::new();
    let mut created = 0;
    for sample in SAMPLES {
        let crd: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join(sample.file)).unwrap())
                .unwrap();
        let live = cp
            .kubectl(&[
                "get",
                "crd",
                crd["metadata"]["name"].as_str().unwrap(),
                "-o",
                "json",
            ])
            .expect_success()
            .json();
        let names_accepted = live["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True");
        if !names_accepted {
            failures.push(format!(
                "{}: names not accepted: {:#}",
                sample.file, live["status"]
            ));
        }

        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap();
        let namespaced = crd["spec"]["scope"] == "Namespaced";
        let body: Value = serde_yaml_ng::from_str(sample.body).unwrap();
        let served = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["served"] == true);
        for version in served {
            let version = version["name"].as_str().unwrap();
            let name = format!("sample-{}", support::random_suffix());
            let mut object = body.clone();
            object["apiVersion"] = json!(format!("{group}/{version}"));
            object["kind"] = json!(kind);
            object["metadata"] = json!({ "name": name });
            if namespaced {
                object["metadata"]["namespace"] = json!(ns);
            }
            let what = format!("{kind}.{version}.{group}");

            let out = create_with_retry(cp, &object);
            if !out.success() {
                failures.push(format!("{what}: create failed: {}", out.stderr.trim()));
                continue;
            }
            created += 1;
            let mut get = vec![
                "get".to_owned(),
                format!("{plural}.{version}.{group}"),
                name.clone(),
            ];
            if namespaced {
                get.extend(["-n".to_owned(), ns.clone()]);
            }
            get.extend(["-o".to_owned(), "json".to_owned()]);
            let stored = cp.kubectl(&get).expect_success().json();
            let mut lost = Vec::new();
            missing_leaves(&body, &stored, "", &mut lost);
            if !lost.is_empty() {
                failures.push(format!("{what}: fields not kept: {lost:?}"));
            }
            if stored["apiVersion"] != object["apiVersion"] {
                failures.push(format!("{what}: read back as {}", stored["apiVersion"]));
            }

            if let Some((pointer, message)) = sample.required {
                let mut invalid = object.clone();
                invalid["metadata"]["name"] =
                    json!(format!("invalid-{}", support::random_suffix()));
                let (parent, field) = pointer.rsplit_once('/').unwrap();
                let removed = match invalid.pointer_mut(parent) {
                    Some(Value::Object(m)) => m.remove(field).is_some(),
                    _ => false,
                };
                assert!(removed, "{}: sample has no {pointer}", sample.file);
                let out = create_with_retry(cp, &invalid);
                if out.success() {
                    failures.push(format!("{what}: accepted an object without {pointer}"));
                } else if !out.stderr.contains(message) {
                    failures.push(format!(
                        "{what}: without {pointer}, expected '{message}', got: {}",
                        out.stderr.trim()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        created >= files.len(),
        "created {created} objects for {} CRDs",
        files.len()
    );
}
