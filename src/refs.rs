//! Cloud references found in Kubernetes objects.
//!
//! Where they come from: the `onus.dev/uses` annotation, env values and ConfigMap values that hold
//! resource URIs, the ServiceAccount's IRSA role, and Service annotations for load balancers.

use serde_json::Value;

use crate::object::{Object, list};
use crate::posture::CloudResource;

/// Annotation naming the cloud resources a workload uses (comma-separated URIs).
pub const USES_ANNOTATION: &str = "onus.dev/uses";
pub const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const AZURE_WI_ANNOTATION: &str = "azure.workload.identity/client-id";
pub const GKE_WI_ANNOTATION: &str = "iam.gke.io/gcp-service-account";
pub const AWS_LB_SECURITY_GROUPS: &str =
    "service.beta.kubernetes.io/aws-load-balancer-security-groups";

/// A cloud resource a Kubernetes object uses, and where in the object it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub resource: CloudResource,
    pub found_at: String,
}

/// Workload kinds that carry a pod template, and where it sits.
pub fn pod_template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("spec.template"),
        "CronJob" => Some("spec.jobTemplate.spec.template"),
        _ => None,
    }
}

/// The pod template of a workload: its metadata and its pod spec.
pub struct PodTemplate<'a> {
    pub metadata: Option<&'a Value>,
    pub spec: &'a Value,
}

impl<'a> PodTemplate<'a> {
    pub fn of(obj: &'a Object) -> Option<PodTemplate<'a>> {
        let path = pod_template_path(obj.kind())?;
        let template = if path.is_empty() {
            Some(&obj.body)
        } else {
            obj.at(path)
        }?;
        Some(PodTemplate {
            metadata: template.get("metadata"),
            spec: template.get("spec")?,
        })
    }

    pub fn annotation(&self, key: &str) -> Option<&'a str> {
        self.metadata?.get("annotations")?.get(key)?.as_str()
    }

    /// The ServiceAccount pods run as.
    pub fn service_account(&self) -> &'a str {
        self.spec
            .get("serviceAccountName")
            .or_else(|| self.spec.get("serviceAccount"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }

    /// Every container: init, regular and ephemeral, with the list it sits in.
    pub fn containers(&self) -> impl Iterator<Item = (&'static str, &'a Value)> + '_ {
        ["initContainers", "containers", "ephemeralContainers"]
            .into_iter()
            .flat_map(move |field| list(self.spec, field).iter().map(move |c| (field, c)))
    }
}

/// Parse one URI or id into a cloud resource.
pub fn parse_reference(s: &str) -> Option<CloudResource> {
    let s = s.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Some(rest) = s.strip_prefix("s3://").or_else(|| s.strip_prefix("s3a://")) {
        let bucket = rest.split('/').next()?;
        return valid_bucket(bucket).then(|| CloudResource::S3Bucket(bucket.to_string()));
    }
    if let Some(rest) = s.strip_prefix("arn:aws:s3:::") {
        let bucket = rest.split('/').next()?;
        return valid_bucket(bucket).then(|| CloudResource::S3Bucket(bucket.to_string()));
    }
    if s.starts_with("arn:aws") {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        if parts.len() == 6 && parts[2] == "iam" {
            if parts[5].starts_with("role/") {
                return Some(CloudResource::IamRole(s.to_string()));
            }
            if parts[5].starts_with("policy/") {
                return Some(CloudResource::IamPolicy(s.to_string()));
            }
        }
        return None;
    }
    if let Some(rest) = s.strip_prefix("azblob://") {
        let mut it = rest.split('/');
        let (account, container) = (it.next()?, it.next()?);
        return (!account.is_empty() && !container.is_empty()).then(|| {
            CloudResource::AzureContainer {
                account: account.to_string(),
                container: container.to_string(),
            }
        });
    }
    if let Some(rest) = s.strip_prefix("https://") {
        let (host, path) = rest.split_once('/')?;
        let account = host.strip_suffix(".blob.core.windows.net")?;
        let container = path.split('/').next().filter(|c| !c.is_empty())?;
        return Some(CloudResource::AzureContainer {
            account: account.to_string(),
            container: container.to_string(),
        });
    }
    if let Some(rest) = s.strip_prefix("gs://") {
        let bucket = rest.split('/').next()?;
        return valid_bucket(bucket).then(|| CloudResource::GcsBucket(bucket.to_string()));
    }
    if let Some(id) = NsgId::parse(s) {
        return Some(CloudResource::AzureNsg(id.to_string()));
    }
    if let Some(id) = s.strip_prefix("sg-") {
        return (id.len() >= 8 && id.len() <= 17 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| CloudResource::SecurityGroup(s.to_string()));
    }
    None
}

/// An Azure network security group by its ARM resource id,
/// `/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Network/networkSecurityGroups/NAME`
/// (ARM matches the fixed segments without regard to case; `Display` writes them canonically).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsgId {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl NsgId {
    pub fn parse(s: &str) -> Option<NsgId> {
        let p: Vec<&str> = s.strip_prefix('/')?.split('/').collect();
        let fixed = [
            (0, "subscriptions"),
            (2, "resourceGroups"),
            (4, "providers"),
            (5, "Microsoft.Network"),
            (6, "networkSecurityGroups"),
        ];
        if p.len() != 8 || !fixed.iter().all(|&(i, f)| p[i].eq_ignore_ascii_case(f)) {
            return None;
        }
        // Subscription: a GUID; group: 1-90 of letters, digits and `-_.()`; NSG: 1-80 of
        // letters, digits and `-_.`; neither ends with `.` (Azure's rule, which also keeps `.`
        // and `..` from turning into other paths).
        let guid = p[1].len() == 36
            && p[1].bytes().enumerate().all(|(i, b)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            });
        let group = (1..=90).contains(&p[3].len())
            && !p[3].ends_with('.')
            && p[3]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b));
        let name = (1..=80).contains(&p[7].len())
            && !p[7].ends_with('.')
            && p[7]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        (guid && group && name).then(|| NsgId {
            subscription: p[1].to_ascii_lowercase(),
            resource_group: p[3].to_string(),
            name: p[7].to_string(),
        })
    }
}

impl std::fmt::Display for NsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkSecurityGroups/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=222).contains(&b.len())
        && b.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_')
        })
}

/// References inside a free-form value (env value, ConfigMap value): any token that parses.
pub fn references_in_text(text: &str) -> impl Iterator<Item = CloudResource> + '_ {
    // Cheap gate: most values hold no URI at all.
    let maybe = [
        "s3://",
        "s3a://",
        "arn:aws",
        "azblob://",
        ".blob.core.windows.net",
        "gs://",
        "sg-",
        "/subscriptions/",
    ]
    .iter()
    .any(|m| text.contains(m));
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '=' | '"' | '\'' | '(' | ')'))
        .filter(move |_| maybe)
        .filter_map(parse_reference)
}

/// Most cloud resources judged for one object; a workload that names more is an `error` verdict.
pub const MAX_REFERENCES: usize = 256;

/// A problem in the references of an object: one the user wrote on purpose (the
/// `onus.dev/uses` annotation) that is not a cloud resource, or more than onus judges.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadReference {
    #[error(
        "annotation {USES_ANNOTATION}: {0:?} is not a cloud resource URI (expected s3://NAME, arn:aws:s3:::NAME, azblob://ACCOUNT/CONTAINER, gs://NAME, arn:aws:iam::ACCOUNT:role/NAME, sg-ID or an NSG's ARM id)"
    )]
    NotAUri(String),
    #[error(
        "the object references more than {MAX_REFERENCES} cloud resources; onus judges the first {MAX_REFERENCES} and refuses to guess about the rest"
    )]
    TooMany,
    #[error("annotation {USES_ANNOTATION} holds {0} bad entries; only the first 10 are listed")]
    ManyBad(usize),
}

/// Parse the `onus.dev/uses` annotation.
pub fn uses_annotation(value: &str) -> (Vec<CloudResource>, Vec<BadReference>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut bad_count = 0usize;
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match parse_reference(entry) {
            Some(r) => ok.push(r),
            None => {
                bad_count += 1;
                if bad.len() < 10 {
                    bad.push(BadReference::NotAUri(crate::text::cut(entry, 200)));
                }
            }
        }
    }
    if bad_count > 10 {
        bad.push(BadReference::ManyBad(bad_count));
    }
    (ok, bad)
}

/// Looks up ConfigMap data, so that env values taken from ConfigMaps are followed.
pub trait ConfigMaps {
    fn config_map_data(&self, namespace: &str, name: &str) -> Option<&Value>;
}

/// Every cloud reference of a workload (without its ServiceAccount, which the engine resolves).
pub fn workload_references(
    obj: &Object,
    pod: &PodTemplate<'_>,
    config_maps: &dyn ConfigMaps,
    bad: &mut Vec<BadReference>,
) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    let mut seen: std::collections::HashSet<CloudResource> = std::collections::HashSet::new();
    let mut too_many = false;
    let mut push = |resource: CloudResource, found_at: String| {
        if seen.contains(&resource) {
            return;
        }
        if out.len() >= MAX_REFERENCES {
            too_many = true;
            return;
        }
        seen.insert(resource.clone());
        out.push(Reference { resource, found_at });
    };
    for value in [
        obj.annotation(USES_ANNOTATION),
        pod.annotation(USES_ANNOTATION),
    ]
    .into_iter()
    .flatten()
    {
        let (ok, errs) = uses_annotation(value);
        bad.extend(errs);
        for r in ok {
            push(r, format!("annotation {USES_ANNOTATION}"));
        }
    }
    let ns = obj.namespace().unwrap_or("default");
    for (_, c) in pod.containers() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        for e in list(c, "env") {
            let ename = e.get("name").and_then(Value::as_str).unwrap_or("?");
            if let Some(v) = e.get("value").and_then(Value::as_str) {
                for r in references_in_text(v) {
                    push(r, format!("env {ename} of container {cname}"));
                }
            }
            let cm_ref = e.get("valueFrom").and_then(|v| v.get("configMapKeyRef"));
            if let Some((cm, key)) =
                cm_ref.and_then(|r| Some((r.get("name")?.as_str()?, r.get("key")?.as_str()?)))
                && let Some(v) = config_maps
                    .config_map_data(ns, cm)
                    .and_then(|d| d.get(key))
                    .and_then(Value::as_str)
            {
                for r in references_in_text(v) {
                    push(
                        r,
                        format!("ConfigMap {cm} key {key} (env {ename} of container {cname})"),
                    );
                }
            }
        }
        for ef in list(c, "envFrom") {
            if let Some(cm) = ef
                .get("configMapRef")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                && let Some(data) = config_maps
                    .config_map_data(ns, cm)
                    .and_then(Value::as_object)
            {
                for (key, v) in data {
                    for r in v.as_str().into_iter().flat_map(references_in_text) {
                        push(
                            r,
                            format!("ConfigMap {cm} key {key} (envFrom of container {cname})"),
                        );
                    }
                }
            }
        }
    }
    if too_many {
        bad.push(BadReference::TooMany);
    }
    out
}

/// IRSA role of a ServiceAccount.
pub fn service_account_role(sa: &Object) -> Option<CloudResource> {
    sa.annotation(IRSA_ANNOTATION)
        .and_then(parse_reference)
        .filter(|r| matches!(r, CloudResource::IamRole(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse() {
        assert_eq!(
            parse_reference("s3://logs/2024/"),
            Some(CloudResource::S3Bucket("logs".into()))
        );
        assert_eq!(
            parse_reference("arn:aws:s3:::logs/*"),
            Some(CloudResource::S3Bucket("logs".into()))
        );
        assert_eq!(
            parse_reference("arn:aws:iam::123456789012:role/app"),
            Some(CloudResource::IamRole(
                "arn:aws:iam::123456789012:role/app".into()
            ))
        );
        assert_eq!(
            parse_reference("azblob://acct/files"),
            Some(CloudResource::AzureContainer {
                account: "acct".into(),
                container: "files".into()
            })
        );
        assert_eq!(
            parse_reference("https://acct.blob.core.windows.net/files/a.txt"),
            Some(CloudResource::AzureContainer {
                account: "acct".into(),
                container: "files".into()
            })
        );
        assert_eq!(
            parse_reference("gs://media"),
            Some(CloudResource::GcsBucket("media".into()))
        );
        assert_eq!(
            parse_reference("sg-0123456789abcdef0"),
            Some(CloudResource::SecurityGroup("sg-0123456789abcdef0".into()))
        );
        assert_eq!(parse_reference("sg-xyz"), None);
        let nsg = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/shop-rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg";
        assert_eq!(
            parse_reference(&nsg.to_lowercase().replace("shop-rg", "Shop-RG")),
            Some(CloudResource::AzureNsg(nsg.replace("shop-rg", "Shop-RG")))
        );
        assert_eq!(
            references_in_text(&format!("NSG={nsg}")).collect::<Vec<_>>(),
            vec![CloudResource::AzureNsg(nsg.into())]
        );
        // Another provider's resource, a bad GUID, a path that goes on, a name ARM refuses.
        for bad in [
            nsg.replace(
                "Microsoft.Network/networkSecurityGroups",
                "Microsoft.Storage/storageAccounts",
            ),
            nsg.replace("0b1f6471", "0b1f647x"),
            format!("{nsg}/securityRules/r1"),
            nsg.replace("web-nsg", "web/../nsg"),
            nsg.replace("web-nsg", "web%2Fnsg"),
            nsg.replace("web-nsg", ".."),
            nsg.replace("web-nsg", "."),
            nsg.replace("shop-rg", ".."),
        ] {
            assert_eq!(parse_reference(&bad), None, "{bad}");
        }
        assert_eq!(parse_reference("s3://UPPER"), None);
        assert_eq!(parse_reference("https://example.com/x"), None);
    }

    #[test]
    fn text_scanning_finds_embedded_uris() {
        let found: Vec<_> =
            references_in_text("--input=s3://raw-data/in --out gs://out-data").collect();
        assert_eq!(
            found,
            vec![
                CloudResource::S3Bucket("raw-data".into()),
                CloudResource::GcsBucket("out-data".into())
            ]
        );
        assert_eq!(references_in_text("postgres://db:5432").count(), 0);
    }

    #[test]
    fn bad_annotation_entries_are_reported() {
        let (ok, bad) = uses_annotation("s3://good, ftp://nope ,");
        assert_eq!(ok.len(), 1);
        assert_eq!(bad, vec![BadReference::NotAUri("ftp://nope".into())]);
        assert!(bad[0].to_string().contains("onus.dev/uses"));
        let many: Vec<String> = (0..50).map(|i| format!("ftp://{i}")).collect();
        let (_, bad) = uses_annotation(&many.join(","));
        assert_eq!(bad.len(), 11);
        assert_eq!(bad[10], BadReference::ManyBad(50));
    }

    #[test]
    fn references_per_object_are_bounded_and_deduplicated() {
        let uses: Vec<String> = (0..40_000)
            .map(|i| format!("s3://bucket-{}", i % 20_000))
            .collect();
        let obj = Object::from_value(
            serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a",
                "annotations":{"onus.dev/uses": uses.join(",")}},"spec":{"containers":[]}}),
            None,
        )
        .unwrap();
        let pod = PodTemplate::of(&obj).unwrap();
        struct NoMaps;
        impl ConfigMaps for NoMaps {
            fn config_map_data(&self, _: &str, _: &str) -> Option<&Value> {
                None
            }
        }
        let mut bad = Vec::new();
        let refs = workload_references(&obj, &pod, &NoMaps, &mut bad);
        assert_eq!(refs.len(), MAX_REFERENCES);
        assert_eq!(bad, vec![BadReference::TooMany]);
        let small = Object::from_value(
            serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a",
                "annotations":{"onus.dev/uses": "s3://aaa, s3://aaa, s3://bbb"}},"spec":{"containers":[]}}),
            None,
        )
        .unwrap();
        let mut bad = Vec::new();
        let refs =
            workload_references(&small, &PodTemplate::of(&small).unwrap(), &NoMaps, &mut bad);
        assert_eq!(refs.len(), 2);
        assert!(bad.is_empty());
    }
}
