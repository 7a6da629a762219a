//! AdmissionReview in, decision out: the thin adapter between the API server and the engine.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api::Action;
use crate::engine::{Outcome, Verdict};
use crate::index::{Snapshot, slim};
use crate::object::Object;
use crate::text::cut;

/// A body that is not a usable AdmissionReview (answered with HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error(
        "expected an admission.k8s.io/v1 AdmissionReview, got apiVersion {api_version:?} kind {kind:?}"
    )]
    WrongKind { api_version: String, kind: String },
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("AdmissionReview request: {0}")]
    BadRequest(String),
}

/// The decision for one review.
#[derive(Debug)]
pub struct Decision {
    /// The AdmissionReview to send back.
    pub review: Value,
    /// `allow`, `deny`, `warn`, `audit` or `skip` (not judged), for metrics.
    pub decision: &'static str,
    /// The kind for metric labels: a kind onus judges, or `other`.
    pub kind: &'static str,
    /// The operation for metric labels: one of the five, or `other`.
    pub operation: &'static str,
    /// Failing verdicts that counted: (control, action).
    pub violations: Vec<(String, Action)>,
}

/// Warnings longer than this are cut by the API server; keep each readable.
const MAX_WARNING: usize = 400;

/// Metric label for a kind: a closed set (the kinds onus judges, its own, `other`), never a
/// string copied from the request.
fn kind_label(group: &str, kind: &str) -> &'static str {
    crate::check::judged_kind_name(group, kind).unwrap_or("other")
}

fn operation_label(op: &str) -> &'static str {
    match op {
        "CREATE" => "CREATE",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

/// Judge an AdmissionReview body against a snapshot.
pub fn review(
    body: &[u8],
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Result<Decision, ReviewError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(ReviewError::WrongKind {
            api_version: api_version.into(),
            kind: kind.into(),
        });
    }
    let req = v
        .get("request")
        .filter(|r| r.is_object())
        .ok_or(ReviewError::NoRequest)?;
    let uid = req
        .get("uid")
        .and_then(Value::as_str)
        .ok_or_else(|| ReviewError::BadRequest("no uid".into()))?;
    let operation = req.get("operation").and_then(Value::as_str).unwrap_or("");
    let group_kind = req.get("kind");
    let field = |f: &str| {
        group_kind
            .and_then(|k| k.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let sub = req.get("subResource").and_then(Value::as_str).unwrap_or("");

    let mut decision = Decision {
        review: Value::Null,
        decision: "skip",
        kind: kind_label(field("group"), field("kind")),
        operation: operation_label(operation),
        violations: Vec::new(),
    };
    let allow = |extra: Value| {
        let mut resp = json!({"uid": uid, "allowed": true});
        if let (Some(r), Some(e)) = (resp.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
    };
    // Removing an object never opens a gap; status writes come from controllers.
    let judged_op = matches!(operation, "CREATE" | "UPDATE");
    let judged_sub = sub.is_empty() || sub == "ephemeralcontainers";
    if !judged_op || !judged_sub {
        decision.review = allow(json!({}));
        return Ok(decision);
    }
    let body = req
        .get("object")
        .filter(|o| o.is_object())
        .cloned()
        .ok_or_else(|| ReviewError::BadRequest(format!("{operation} without object")))?;
    let namespace = req
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let mut body = slim(body);
    // Objects created with generateName have no name yet; the engine needs one to report.
    if body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none()
    {
        let generate = body
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert(
                "name".into(),
                Value::String(format!("{generate}<generated>")),
            );
        }
    }
    let obj = Object::from_value(body, namespace)
        .map_err(|e| ReviewError::BadRequest(format!("object: {e}")))?;

    if namespace.is_some_and(|ns| !snapshot.guarded(ns)) {
        decision.review = allow(json!({}));
        return Ok(decision);
    }
    let verdicts = snapshot.judge(&obj, now);
    let failing = |v: &&Verdict| matches!(v.result, Outcome::Fail | Outcome::Error);
    let denies: Vec<&Verdict> = verdicts.iter().filter(|v| v.denies()).collect();
    let warns: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| (failing(v) && v.action == Action::Warn) || v.result == Outcome::Warn)
        .collect();
    let audits: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| failing(v) && v.action == Action::Audit)
        .collect();
    decision.violations = denies
        .iter()
        .chain(&warns)
        .chain(&audits)
        .map(|v| (v.control.to_string(), v.action))
        .collect();

    let warnings: Vec<String> = warns
        .iter()
        .map(|v| cut(&format!("onus {}: {}", v.control, v.message), MAX_WARNING))
        .collect();
    let mut extra = json!({});
    if !warnings.is_empty() {
        extra["warnings"] = json!(warnings);
    }
    if !audits.is_empty() {
        let controls: Vec<&str> = audits.iter().map(|v| v.control.as_str()).collect();
        extra["auditAnnotations"] = json!({"violations": controls.join(","), "findings": cut(&audits.iter().map(|v| v.message.as_str()).collect::<Vec<_>>().join(" | "), 2000)});
    }
    decision.decision = if !denies.is_empty() {
        "deny"
    } else if !warns.is_empty() {
        "warn"
    } else if !audits.is_empty() {
        "audit"
    } else {
        "allow"
    };
    if denies.is_empty() {
        decision.review = allow(extra);
        return Ok(decision);
    }
    let mut resp = json!({
        "uid": uid,
        "allowed": false,
        "status": {"code": 403, "reason": "Forbidden", "message": deny_message(&obj, &denies)},
    });
    if let (Some(r), Some(e)) = (resp.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    decision.review =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp});
    Ok(decision)
}

/// One line per violated control: what, then how to fix.
fn deny_message(obj: &Object, denies: &[&Verdict]) -> String {
    let mut s = format!(
        "onus denied {} ({} customer-owned control{} failed)",
        obj.id,
        denies.len(),
        if denies.len() == 1 { "" } else { "s" }
    );
    for v in denies {
        let _ = write!(s, "\n- [{}] {}", v.control, v.message);
        if let Some(fix) = &v.remediation {
            let _ = write!(s, "\n  fix: {fix}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;

    fn snapshot(action: &str) -> Snapshot {
        let mut idx = Index::default();
        let rb = json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},
            "spec":{"provider":"aws","serviceModel":"iaas","action":action}});
        idx.upsert(Object::from_value(rb, None).unwrap());
        idx.snapshot(chrono::Duration::minutes(15))
    }

    fn body_for(op: &str, ns: &str, object: Value) -> Vec<u8> {
        body(op, ns, object)
    }

    fn body(op: &str, ns: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
            "request":{"uid":"u-1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":op,"namespace":ns,"object":object,"dryRun":false}
        }))
        .unwrap()
    }

    fn deployment(env: Value) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":[
            {"name":"app","image":"r.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000","env":env}]}}}})
    }

    #[test]
    fn deny_warn_audit_and_allow() {
        let keys = deployment(json!([{"name":"AWS_SECRET_ACCESS_KEY","value":"x"}]));
        let d = review(
            &body("CREATE", "shop", keys.clone()),
            &snapshot("Deny"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "deny");
        let r = &d.review["response"];
        assert_eq!(r["uid"], "u-1");
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 403);
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(
            msg.contains("[identity.workload-identity]") && msg.contains("fix:"),
            "{msg}"
        );

        let d = review(
            &body("CREATE", "shop", keys.clone()),
            &snapshot("Warn"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "warn");
        assert_eq!(d.review["response"]["allowed"], true);
        assert!(
            d.review["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("onus identity.workload-identity:")
        );

        let d = review(
            &body("CREATE", "shop", keys.clone()),
            &snapshot("Audit"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "audit");
        assert_eq!(
            d.review["response"]["auditAnnotations"]["violations"],
            "identity.workload-identity"
        );

        let clean = deployment(json!([]));
        let d = review(
            &body("CREATE", "shop", clean),
            &snapshot("Deny"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            (d.decision, d.review["response"]["allowed"].as_bool()),
            ("allow", Some(true))
        );
        // No baseline in the namespace: untouched.
        let d = review(
            &body("CREATE", "elsewhere", keys.clone()),
            &snapshot("Deny"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "skip");
        // Deletes are always allowed.
        let d = review(&body("DELETE", "shop", keys), &snapshot("Deny"), Utc::now()).unwrap();
        assert_eq!(d.review["response"]["allowed"], true);
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        let s = snapshot("Deny");
        assert!(matches!(
            review(b"not json", &s, Utc::now()),
            Err(ReviewError::NotJson(_))
        ));
        let wrong = br#"{"apiVersion":"v1","kind":"Pod"}"#;
        assert!(matches!(
            review(wrong, &s, Utc::now()),
            Err(ReviewError::WrongKind { .. })
        ));
        let no_req = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert_eq!(
            review(no_req, &s, Utc::now()).unwrap_err(),
            ReviewError::NoRequest
        );
        let no_obj = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE"}}"#;
        assert!(matches!(
            review(no_obj, &s, Utc::now()),
            Err(ReviewError::BadRequest(_))
        ));
    }

    #[test]
    fn metric_labels_come_from_closed_sets() {
        let snap = snapshot("Deny");
        let body = |kind: &str, op: &str| {
            serde_json::to_vec(&json!({
                "apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                "request":{"uid":"u","kind":{"group":"x.example","version":"v1","kind":kind},"operation":op,"namespace":"shop",
                    "object":{"apiVersion":"x.example/v1","kind":kind,"metadata":{"name":"a"}}}
            }))
            .unwrap()
        };
        let d = review(&body(&"K".repeat(100_000), "EXPLODE"), &snap, Utc::now()).unwrap();
        assert_eq!((d.kind, d.operation), ("other", "other"));
        let d = review(&body("Deployment", "CREATE"), &snap, Utc::now()).unwrap();
        assert_eq!((d.kind, d.operation), ("Deployment", "CREATE"));
        let deploy = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w"},"spec":{"template":{"spec":{"containers":[]}}}});
        let d = review(&body_for("UPDATE", "shop", deploy), &snap, Utc::now()).unwrap();
        assert_eq!((d.kind, d.operation), ("Deployment", "UPDATE"));
    }

    #[test]
    fn long_warnings_are_cut_on_char_boundaries() {
        let s = "é".repeat(300);
        let t = cut(&s, 101);
        assert!(t.len() <= 101 && t.ends_with("..."));
    }
}
