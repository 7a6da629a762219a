//! One OpenReports `Report` per namespace (`openreports.io/v1alpha1`), bounded in size and
//! written only when its content changes.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::engine::{Outcome, Verdict};
use crate::text::cut;

pub const REPORT_NAME: &str = "onus";
const HASH_ANNOTATION: &str = "onus.dev/content-hash";
/// Results kept one by one; the rest are folded into one result per control and outcome. With
/// every field at its bound a report stays under 1.25 MiB, below etcd's 1.5 MiB.
pub const MAX_RESULTS: usize = 400;
const MAX_MESSAGE: usize = 1024;
const MAX_REMEDIATION: usize = 512;

pub fn report_resource() -> ApiResource {
    ApiResource {
        group: "openreports.io".into(),
        version: "v1alpha1".into(),
        api_version: "openreports.io/v1alpha1".into(),
        kind: "Report".into(),
        plural: "reports".into(),
    }
}

fn severity(v: &Verdict) -> &'static str {
    match (v.result, v.action) {
        (Outcome::Fail | Outcome::Error, crate::api::Action::Deny) => "high",
        (Outcome::Fail | Outcome::Error, crate::api::Action::Warn) => "medium",
        (Outcome::Fail | Outcome::Error, crate::api::Action::Audit) => "low",
        _ => "info",
    }
}

fn result(v: &Verdict, ts: i64) -> Value {
    let mut props = BTreeMap::new();
    props.insert("owner", v.owner.as_str().to_string());
    props.insert("action", v.action.as_str().to_string());
    props.insert("baseline", v.baseline.clone());
    props.insert("provider", v.provider.as_str().to_string());
    props.insert("serviceModel", v.service_model.as_str().to_string());
    props.insert("domain", v.domain.as_str().to_string());
    if let Some(c) = &v.cloud_resource {
        props.insert("cloudResource", c.clone());
    }
    if let Some(f) = &v.remediation {
        props.insert("remediation", cut(f, MAX_REMEDIATION));
    }
    // Properties are strings: `framework=id id;framework=id`, which every check's ids fit.
    if !v.frameworks.is_empty() {
        props.insert("frameworks", cut(&v.frameworks.compact(), MAX_MESSAGE));
    }
    let mut resource = json!({"apiVersion": v.resource.api_version, "kind": v.resource.kind, "name": v.resource.name});
    if let Some(ns) = &v.resource.namespace {
        resource["namespace"] = json!(ns);
    }
    json!({
        "source": "onus",
        "policy": v.control.as_str(),
        "rule": v.rule,
        "result": v.result.as_str(),
        "severity": severity(v),
        "category": v.domain.as_str(),
        "scored": true,
        "message": cut(&v.message, MAX_MESSAGE),
        "properties": props,
        "resources": [resource],
        "timestamp": {"seconds": ts, "nanos": 0},
    })
}

/// The report body for a namespace. Findings come first; past `MAX_RESULTS`, the remaining
/// verdicts are folded into one result per control and outcome that says how many there were.
pub fn build(namespace: &str, verdicts: &[Verdict], ts: i64) -> Value {
    let mut ordered: Vec<&Verdict> = verdicts.iter().collect();
    ordered.sort_by_key(|v| (!v.is_finding(), v.control, v.resource.clone()));
    let mut results: Vec<Value> = ordered
        .iter()
        .take(MAX_RESULTS)
        .map(|v| result(v, ts))
        .collect();
    let mut folded: BTreeMap<(&str, &str, &str, &str), usize> = BTreeMap::new();
    for v in ordered.iter().skip(MAX_RESULTS) {
        let key = (
            v.control.as_str(),
            v.result.as_str(),
            v.provider.as_str(),
            v.service_model.as_str(),
        );
        *folded.entry(key).or_default() += 1;
    }
    for ((control, outcome, provider, model), n) in folded {
        results.push(json!({
            "source": "onus", "policy": control, "rule": "aggregated", "result": outcome, "scored": true,
            "message": format!("{n} more {outcome} results for {control} (the report keeps {MAX_RESULTS} results one by one)"),
            "properties": {"provider": provider, "serviceModel": model},
            "timestamp": {"seconds": ts, "nanos": 0},
        }));
    }
    let count = |o: Outcome| verdicts.iter().filter(|v| v.result == o).count();
    json!({
        "apiVersion": "openreports.io/v1alpha1",
        "kind": "Report",
        "metadata": {"name": REPORT_NAME, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "onus"}},
        "source": "onus",
        "scope": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
        "summary": {"pass": count(Outcome::Pass), "fail": count(Outcome::Fail), "warn": count(Outcome::Warn), "error": count(Outcome::Error), "skip": count(Outcome::Skip)},
        "results": results,
    })
}

/// Hash of what the report says, without timestamps.
pub fn content_hash(report: &Value) -> String {
    let mut stripped = report.clone();
    if let Some(rs) = stripped.get_mut("results").and_then(Value::as_array_mut) {
        for r in rs {
            if let Some(m) = r.as_object_mut() {
                m.remove("timestamp");
            }
        }
    }
    let mut h = DefaultHasher::new();
    stripped.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// What happened to a report.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Unchanged,
    Written,
    /// The Report CRD is not installed.
    NoCrd,
}

/// Server-side apply the report when its content hash differs from the stored one.
pub async fn write(
    client: &kube::Client,
    namespace: &str,
    mut report: Value,
) -> Result<Written, kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &report_resource());
    let hash = content_hash(&report);
    match api.get_opt(REPORT_NAME).await {
        Ok(Some(existing))
            if existing
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(HASH_ANNOTATION))
                == Some(&hash) =>
        {
            return Ok(Written::Unchanged);
        }
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Written::NoCrd),
        Err(e) => return Err(e),
    }
    report["metadata"]["annotations"] = json!({HASH_ANNOTATION: hash});
    let mut bytes = serde_json::to_vec(&report).unwrap_or_default().len();
    // Never above 1 MiB: drop individual results until it fits (the summary stays exact).
    while bytes > 900 * 1024 {
        let Some(rs) = report["results"].as_array_mut() else {
            break;
        };
        let keep = rs.len() * 3 / 4;
        rs.truncate(keep);
        bytes = serde_json::to_vec(&report).unwrap_or_default().len();
    }
    // `get_opt` reads a missing CRD as a missing object; the write tells them apart no better,
    // and either way there is no report to write: not an error of the pass.
    match api
        .patch(
            REPORT_NAME,
            &PatchParams::apply("onus").force(),
            &Patch::Apply(&report),
        )
        .await
    {
        Ok(_) => Ok(Written::Written),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Written::NoCrd),
        Err(e) => Err(e),
    }
}

/// Why a Report cannot be read back as evidence.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("listing Reports: {0}")]
    Kube(#[from] kube::Error),
    #[error(
        "the Report in namespace {namespace} holds {held} of its {total} {outcome} results (it was cut to fit etcd, or edited): judge the namespace from its manifests instead (`onus compliance ... PATH`)"
    )]
    Incomplete {
        namespace: String,
        outcome: &'static str,
        held: u64,
        total: u64,
    },
    #[error("the Report in namespace {namespace} holds a finding onus cannot read: {what}")]
    Unreadable { namespace: String, what: String },
}

/// Verdicts read back from onus's Reports, for `onus compliance --cluster`.
#[derive(Debug, Default)]
pub struct ReadBack {
    pub verdicts: Vec<Verdict>,
    /// Results that could not be read (written by another version), one line each.
    pub skipped: Vec<String>,
}

/// The verdicts a Report holds. Only results whose `source` is onus count. A result folded
/// into an `aggregated` one stands for its whole control, on the Report itself: a folded
/// failure fails every requirement of the control rather than none; so does a finding whose
/// rule or ids this onus does not know. A Report missing findings it counts, or holding a
/// finding onus cannot attribute to a control, is an error, never a partial pass.
pub fn read_back(report: &Value, out: &mut ReadBack) -> Result<(), ReadError> {
    let namespace = report["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let results = report["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    // Findings held, per outcome: fail, warn, error.
    let mut held = [0u64; 3];
    for r in results.iter().filter(|r| r["source"] == "onus") {
        let at = |what: &str| {
            format!(
                "Report in {namespace}: result {} on {}: {what}",
                r["policy"].as_str().unwrap_or("?"),
                r["resources"][0]["name"].as_str().unwrap_or("?")
            )
        };
        let slot = match r["result"].as_str() {
            Some("fail") => Some(0),
            Some("warn") => Some(1),
            Some("error") => Some(2),
            _ => None,
        };
        let v = match verdict_of(r, &namespace) {
            Ok(v) => v,
            Err(why) if slot.is_none() => {
                out.skipped.push(at(&why));
                continue;
            }
            Err(why) => {
                return Err(ReadError::Unreadable {
                    what: at(&why),
                    namespace: namespace.clone(),
                });
            }
        };
        if let Some(i) = slot {
            // `N more fail results for CONTROL`: the folded results count as held.
            let n = match v.rule {
                "aggregated" => r["message"]
                    .as_str()
                    .and_then(|m| m.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                _ => 1,
            };
            held[i] = held[i].saturating_add(n);
        }
        out.verdicts.push(v);
    }
    for (i, key) in ["fail", "warn", "error"].iter().enumerate() {
        let total = report["summary"][key].as_u64().unwrap_or(0);
        if held[i] < total {
            return Err(ReadError::Incomplete {
                namespace,
                outcome: key,
                held: held[i],
                total,
            });
        }
    }
    Ok(())
}

fn verdict_of(r: &Value, namespace: &str) -> Result<Verdict, String> {
    use crate::compliance::{FrameworkIds, known_rule};
    use crate::model::{ControlId, Owner, Provider, ServiceModel};
    let text = |v: &Value, what: &str| -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no {what}"))
    };
    let props = &r["properties"];
    let control: ControlId = text(&r["policy"], "policy")?.parse()?;
    let result = match text(&r["result"], "result")?.as_str() {
        "pass" => Outcome::Pass,
        "fail" => Outcome::Fail,
        "warn" => Outcome::Warn,
        "error" => Outcome::Error,
        "skip" => Outcome::Skip,
        other => return Err(format!("unknown result {other:?}")),
    };
    let finding = matches!(result, Outcome::Fail | Outcome::Warn | Outcome::Error);
    let rule_text = text(&r["rule"], "rule")?;
    // A finding of a check this onus does not know (a newer writer) stands for its control.
    let rule = match known_rule(&rule_text) {
        Some(rule) => rule,
        None if finding => "aggregated",
        None => return Err(format!("unknown rule {rule_text:?}")),
    };
    let aggregated = rule == "aggregated" && rule_text == "aggregated";
    let provider: Provider = match props["provider"].as_str() {
        Some(p) => p.parse()?,
        None => return Err("no provider (written by an older onus)".into()),
    };
    let service_model: ServiceModel = match props["serviceModel"].as_str() {
        Some(m) => m.parse()?,
        None => return Err("no serviceModel (written by an older onus)".into()),
    };
    let action = match props["action"].as_str() {
        Some("Audit") => crate::api::Action::Audit,
        Some("Warn") => crate::api::Action::Warn,
        _ => crate::api::Action::Deny,
    };
    let owner: Owner = props["owner"]
        .as_str()
        .unwrap_or("customer")
        .parse()
        .unwrap_or(Owner::Customer);
    let resource = if aggregated {
        crate::object::ObjectRef {
            api_version: "openreports.io/v1alpha1".into(),
            kind: "Report".into(),
            namespace: Some(namespace.to_string()),
            name: REPORT_NAME.into(),
        }
    } else {
        let o = &r["resources"][0];
        crate::object::ObjectRef {
            api_version: text(&o["apiVersion"], "resource apiVersion")?,
            kind: text(&o["kind"], "resource kind")?,
            namespace: o["namespace"].as_str().map(str::to_string),
            name: text(&o["name"], "resource name")?,
        }
    };
    let whole = || std::borrow::Cow::Borrowed(crate::compliance::for_control(control, provider));
    let frameworks = match (props["frameworks"].as_str(), rule) {
        (_, "aggregated") => whole(),
        (Some(compact), _) => match FrameworkIds::parse_compact(compact) {
            Ok(ids) => std::borrow::Cow::Owned(ids),
            // Ids this onus cannot read: a finding stands for its whole control.
            Err(_) if finding => whole(),
            Err(e) => return Err(e),
        },
        (None, _) => {
            std::borrow::Cow::Borrowed(crate::compliance::for_check(control, rule, provider))
        }
    };
    Ok(Verdict {
        control,
        rule,
        result,
        action,
        domain: control.domain(),
        owner,
        resource,
        cloud_resource: props["cloudResource"].as_str().map(str::to_string),
        message: r["message"].as_str().unwrap_or_default().to_string(),
        remediation: props["remediation"].as_str().map(str::to_string),
        baseline: props["baseline"].as_str().unwrap_or_default().to_string(),
        provider,
        service_model,
        frameworks,
    })
}

/// Every Report onus wrote (in `namespace`, or in every namespace), read back as verdicts.
pub async fn read_all(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<ReadBack, ReadError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &report_resource()),
        None => Api::all_with(client.clone(), &report_resource()),
    };
    let mut out = ReadBack::default();
    let mut params = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=onus");
    loop {
        let page = api.list(&params.clone().limit(100)).await?;
        for report in &page.items {
            if report.metadata.name.as_deref() != Some(REPORT_NAME) {
                continue;
            }
            let value = serde_json::to_value(report).unwrap_or_default();
            read_back(&value, &mut out)?;
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(out)
}

/// Remove the report of a namespace that no baseline covers any more.
pub async fn delete(client: &kube::Client, namespace: &str) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &report_resource());
    match api.delete(REPORT_NAME, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Action;
    use crate::model::{ControlId, Domain, Owner, Provider};
    use crate::object::ObjectRef;

    fn verdict(i: usize, result: Outcome) -> Verdict {
        Verdict {
            control: ControlId::DataPublicAccess,
            rule: "public-access",
            result,
            action: Action::Deny,
            domain: Domain::Data,
            owner: Owner::Customer,
            resource: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("shop".into()),
                name: format!("app-{i}"),
            },
            cloud_resource: Some(format!("s3://bucket-{i}")),
            message: "x".repeat(5000),
            remediation: Some("f".repeat(5000)),
            baseline: "ResponsibilityBaseline/shop/b".into(),
            provider: crate::model::Provider::Aws,
            // The longest ids any check carries (a failed trail audit stands for them all).
            service_model: crate::model::ServiceModel::Paas,
            frameworks: std::borrow::Cow::Borrowed(crate::compliance::for_check(
                ControlId::LoggingAuditTrail,
                "posture",
                crate::model::Provider::Aws,
            )),
        }
    }

    #[test]
    fn reports_are_bounded_and_exact_in_summary() {
        let mut vs: Vec<Verdict> = (0..3000).map(|i| verdict(i, Outcome::Pass)).collect();
        vs.extend((0..700).map(|i| verdict(i, Outcome::Fail)));
        let r = build("shop", &vs, 1);
        assert_eq!(r["summary"]["fail"], 700);
        assert_eq!(r["summary"]["pass"], 3000);
        let results = r["results"].as_array().unwrap();
        assert_eq!(results.len(), MAX_RESULTS + 2);
        assert!(
            results[..MAX_RESULTS].iter().all(|r| r["result"] == "fail"),
            "findings come first"
        );
        assert!(results.iter().any(|r| r["rule"] == "aggregated"
            && r["message"].as_str().unwrap().starts_with("3000 more pass")));
        assert!(serde_json::to_vec(&r).unwrap().len() < 1280 * 1024);
        assert_eq!(results[0]["properties"]["cloudResource"], "s3://bucket-0");
        assert!(results[0]["message"].as_str().unwrap().len() <= MAX_MESSAGE + 3);
    }

    /// What the controller wrote reads back as the verdicts it wrote; folded failures stand
    /// for their control on the Report; a Report cut short of its findings is refused.
    #[test]
    fn reports_read_back_as_the_verdicts_they_hold() {
        let mut vs: Vec<Verdict> = (0..500).map(|i| verdict(i, Outcome::Fail)).collect();
        vs.push(verdict(900, Outcome::Pass));
        let mut report = build("shop", &vs, 1);
        report["metadata"]["namespace"] = json!("shop");
        let mut back = ReadBack::default();
        read_back(&report, &mut back).unwrap();
        assert!(back.skipped.is_empty(), "{:?}", back.skipped);
        let first = &back.verdicts[0];
        assert_eq!(first.resource, vs[0].resource);
        assert_eq!(first.result, Outcome::Fail);
        assert_eq!(first.frameworks.as_ref(), vs[0].frameworks.as_ref());
        assert_eq!(first.service_model, crate::model::ServiceModel::Paas);
        let folded: Vec<&Verdict> = back
            .verdicts
            .iter()
            .filter(|v| v.rule == "aggregated")
            .collect();
        assert_eq!(folded.len(), 2, "one per control and outcome");
        assert!(folded.iter().all(|v| v.resource.kind == "Report"));
        let whole = crate::compliance::for_control(ControlId::DataPublicAccess, Provider::Aws);
        assert_eq!(folded[0].frameworks.as_ref(), whole);

        // The writer drops results to fit etcd: a Report that lost findings is no evidence.
        let mut cut = report.clone();
        cut["results"].as_array_mut().unwrap().truncate(300);
        let err = read_back(&cut, &mut ReadBack::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("holds 300 of its 500 fail results"),
            "{err}"
        );
        // A pass from a Report written before provider and model were recorded is skipped,
        // and said; a finding onus cannot attribute is an error.
        let mut old = build("shop", &[verdict(7, Outcome::Pass)], 1);
        old["metadata"]["namespace"] = json!("shop");
        old["results"][0]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("provider");
        let mut back = ReadBack::default();
        read_back(&old, &mut back).unwrap();
        assert!(back.verdicts.is_empty());
        assert!(
            back.skipped[0].contains("no provider"),
            "{:?}",
            back.skipped
        );
        let mut old = build("shop", &vs[..1], 1);
        old["metadata"]["namespace"] = json!("shop");
        old["results"][0]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("provider");
        let err = read_back(&old, &mut ReadBack::default()).unwrap_err();
        assert!(matches!(err, ReadError::Unreadable { .. }), "{err}");

        // Results of other tools are no evidence and do not stand in for onus's findings; a
        // finding of a check this onus does not know stands for its whole control; a folded
        // count cannot overflow.
        let mut mixed = build("shop", &vs[..2], 1);
        mixed["metadata"]["namespace"] = json!("shop");
        let results = mixed["results"].as_array_mut().unwrap();
        results[0]["rule"] = json!("from-a-newer-onus");
        results[1]["source"] = json!("kyverno");
        let err = read_back(&mixed, &mut ReadBack::default()).unwrap_err();
        assert!(err.to_string().contains("holds 1 of its 2 fail"), "{err}");
        mixed["summary"]["fail"] = json!(1);
        let mut back = ReadBack::default();
        read_back(&mixed, &mut back).unwrap();
        assert_eq!(back.verdicts.len(), 1);
        assert_eq!(back.verdicts[0].rule, "aggregated");
        assert_eq!(back.verdicts[0].resource.name, "app-0");
        assert_eq!(back.verdicts[0].frameworks.as_ref(), whole);
        let mut huge = report.clone();
        for r in huge["results"].as_array_mut().unwrap() {
            if r["rule"] == "aggregated" {
                r["message"] = json!("18446744073709551615 more fail results");
            }
        }
        read_back(&huge, &mut ReadBack::default()).unwrap();
    }

    #[test]
    fn hash_ignores_timestamps() {
        let vs = vec![verdict(1, Outcome::Fail)];
        assert_eq!(
            content_hash(&build("shop", &vs, 1)),
            content_hash(&build("shop", &vs, 99))
        );
        assert_ne!(
            content_hash(&build("shop", &vs, 1)),
            content_hash(&build("shop", &[verdict(2, Outcome::Fail)], 1))
        );
    }
}
