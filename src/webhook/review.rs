//! AdmissionReview in, decision out: the thin adapter between the API server and the engine.

use std::collections::BTreeSet;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::confirm::Confirmed;
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
/// Warnings returned at most (the API server caps their total size too).
const MAX_WARNINGS: usize = 20;
/// Violations listed one by one in a denial; the rest are counted.
const MAX_DENY_LINES: usize = 30;
/// Longest denial message.
const MAX_DENY_MESSAGE: usize = 16 * 1024;

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

/// The namespace a review is about, read without judging anything.
pub fn namespace_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Review {
        request: Option<Request>,
    }
    #[derive(serde::Deserialize)]
    struct Request {
        namespace: Option<String>,
    }
    serde_json::from_slice::<Review>(body)
        .ok()?
        .request?
        .namespace
        .filter(|n| !n.is_empty())
}

/// Judge an AdmissionReview body against a snapshot.
pub fn review(
    body: &[u8],
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Result<Decision, ReviewError> {
    review_with(body, snapshot, None, None, now)
}

/// `review`, with the baselines of the review's namespace as just read from the API server
/// (`confirmed`) instead of the snapshot's, for a namespace the snapshot cannot vouch for, and
/// the user onus itself writes as (`onus_user`), the only one allowed to change a baseline's
/// `status.lastValidSpec`.
pub fn review_with(
    body: &[u8],
    snapshot: &Snapshot,
    confirmed: Option<&Confirmed>,
    onus_user: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Decision, ReviewError> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    // The objects are moved out, not copied: they are most of the review.
    let mut take = |field: &str| {
        v.get_mut("request")
            .and_then(|r| r.get_mut(field))
            .map(Value::take)
    };
    let (new_object, old_object) = (take("object"), take("oldObject"));
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
    // A broken baseline falls back to its status.lastValidSpec: only onus may write it, or
    // whoever may write status could make a namespace's guard whatever they like.
    if sub == "status" && field("group") == "onus.dev" && operation == "UPDATE" {
        fn copy(o: &Option<Value>) -> Option<&Value> {
            o.as_ref()?.pointer("/status/lastValidSpec")
        }
        let by = req
            .pointer("/userInfo/username")
            .and_then(Value::as_str)
            .unwrap_or("");
        if copy(&new_object) != copy(&old_object) && onus_user != Some(by) {
            decision.decision = "deny";
            decision.review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                "uid": uid, "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": cut(&format!(
                    "onus denied the status update by {by}: only onus ({}) records status.lastValidSpec, the spec a broken baseline falls back to",
                    onus_user.unwrap_or("its own service account")
                ), MAX_DENY_MESSAGE)},
            }});
            return Ok(decision);
        }
    }
    // Removing an object never opens a gap; other status writes come from controllers.
    let judged_op = matches!(operation, "CREATE" | "UPDATE");
    let judged_sub = sub.is_empty() || sub == "ephemeralcontainers";
    if !judged_op || !judged_sub {
        decision.review = allow(json!({}));
        return Ok(decision);
    }
    let body = new_object
        .filter(|o| o.is_object())
        .ok_or_else(|| ReviewError::BadRequest(format!("{operation} without object")))?;
    let namespace = req
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let obj =
        object(body, namespace).map_err(|e| ReviewError::BadRequest(format!("object: {e}")))?;
    // An object on its way out (finalizers running) can only close gaps.
    if obj.at("metadata.deletionTimestamp").is_some() {
        decision.review = allow(json!({}));
        return Ok(decision);
    }
    let refuse = |decision: &mut Decision, message: String| {
        decision.decision = "deny";
        decision.review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": uid, "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": cut(&message, MAX_DENY_MESSAGE)},
        }});
    };

    // onus's own kinds: the same compile step as `onus check`, so a baseline that would not
    // guard anything is refused with the reason instead of stored.
    if obj.group() == "onus.dev" {
        let mut scratch = crate::baseline::BaselineSet::default();
        match crate::baseline::add_object(
            &mut scratch,
            obj.kind(),
            &obj.id.name,
            &obj.body,
            namespace.unwrap_or("default"),
        ) {
            Err(e) if obj.kind() != "CloudResource" => {
                refuse(&mut decision, format!("onus denied {}: {e}", obj.id))
            }
            _ => decision.review = allow(json!({})),
        }
        return Ok(decision);
    }

    // A baseline the API server stores but onus cannot compile never unguards its namespace.
    let broken_warnings: Vec<String>;
    {
        let broken = match confirmed {
            Some(c) => crate::index::covering(&c.broken, namespace.unwrap_or(""), &c.baselines),
            None => snapshot.broken_for(namespace.unwrap_or("")),
        };
        // One judged under its last valid spec guards as that spec does; the others refuse.
        let denying: Vec<String> = broken
            .iter()
            .filter(|b| b.action == Action::Deny && !b.under_last_valid)
            .map(|b| b.describe())
            .collect();
        if !denying.is_empty() {
            refuse(
                &mut decision,
                format!(
                    "onus denied {}: {}; creates and updates here are refused until it is fixed",
                    obj.id,
                    denying.join("; ")
                ),
            );
            return Ok(decision);
        }
        broken_warnings = broken
            .iter()
            .map(|b| cut(&format!("onus: {}", b.describe()), MAX_WARNING))
            .collect();
    }

    let guarded = match (confirmed, namespace) {
        (Some(c), _) => !c.baselines.is_empty(),
        (None, Some(ns)) => snapshot.guarded(ns),
        (None, None) => true,
    };
    let judge = |o: &Object| match confirmed {
        Some(c) => snapshot.judge_with(o, &c.baselines, now),
        None => snapshot.judge(o, now),
    };
    if !guarded && broken_warnings.is_empty() {
        decision.review = allow(json!({}));
        return Ok(decision);
    }
    let verdicts = judge(&obj);
    // Like Pod Security Admission and Kyverno's allowExistingViolations: an UPDATE is refused
    // only for gaps it opens. What already failed before it (a label added, a finalizer removed,
    // a replica count changed) is allowed, with a warning that the gap is still open.
    let before: BTreeSet<GapKey> = match (operation, old_object) {
        ("UPDATE", Some(old)) if old.is_object() => object(old, namespace)
            .map(|old| {
                judge(&old)
                    .iter()
                    .filter(|v| v.denies())
                    .map(gap_key)
                    .collect()
            })
            .unwrap_or_default(),
        _ => BTreeSet::new(),
    };
    let failing = |v: &&Verdict| matches!(v.result, Outcome::Fail | Outcome::Error);
    let all_denies: Vec<&Verdict> = verdicts.iter().filter(|v| v.denies()).collect();
    let opens_a_gap = all_denies.iter().any(|v| !before.contains(&gap_key(v)));
    let (denies, kept): (Vec<&Verdict>, Vec<&Verdict>) = if opens_a_gap {
        (all_denies, Vec::new())
    } else {
        (Vec::new(), all_denies)
    };
    let warns: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| (failing(v) && v.action == Action::Warn) || v.result == Outcome::Warn)
        .chain(kept.iter().copied())
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

    let mut warnings: Vec<String> = broken_warnings
        .into_iter()
        .chain(warns.iter().take(MAX_WARNINGS).map(|v| {
            let already = if before.contains(&gap_key(v)) && v.denies() {
                " (already failing before this update, so not refused; still a gap to close)"
            } else {
                ""
            };
            cut(
                &format!("onus {}: {}{already}", v.control, v.message),
                MAX_WARNING,
            )
        }))
        .collect();
    if warns.len() > MAX_WARNINGS {
        warnings.push(format!(
            "onus: {} more warnings not shown; `onus check` lists them all",
            warns.len() - MAX_WARNINGS
        ));
    }
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
    } else if !warns.is_empty() || !warnings.is_empty() {
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
        "status": {"code": 403, "reason": "Forbidden", "message": deny_message(&obj, &denies, &before)},
    });
    if let (Some(r), Some(e)) = (resp.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    decision.review =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp});
    Ok(decision)
}

/// What identifies a gap across two versions of an object.
type GapKey = (crate::model::ControlId, &'static str, Option<String>);

fn gap_key(v: &Verdict) -> GapKey {
    (v.control, v.rule, v.cloud_resource.clone())
}

/// The object of a review, as the engine reads it.
fn object(body: Value, namespace: Option<&str>) -> Result<Object, String> {
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
    Object::from_value(body, namespace).map_err(|e| e.to_string())
}

/// One line per violated control: what, then how to fix.
fn deny_message(obj: &Object, denies: &[&Verdict], before: &BTreeSet<GapKey>) -> String {
    let mut s = format!(
        "onus denied {} ({} customer-owned control{} failed)",
        obj.id,
        denies.len(),
        if denies.len() == 1 { "" } else { "s" }
    );
    for v in denies.iter().take(MAX_DENY_LINES) {
        let already = if before.contains(&gap_key(v)) {
            " (already failing before this update)"
        } else {
            ""
        };
        let _ = write!(s, "\n- [{}] {}{already}", v.control, v.message);
        if let Some(fix) = &v.remediation {
            let _ = write!(s, "\n  fix: {fix}");
        }
    }
    if denies.len() > MAX_DENY_LINES {
        let _ = write!(
            s,
            "\n- ... and {} more; `onus check` lists them all",
            denies.len() - MAX_DENY_LINES
        );
    }
    cut(&s, MAX_DENY_MESSAGE)
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

    fn update(ns: &str, old: Value, new: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
            "request":{"uid":"u-1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"UPDATE","namespace":ns,"object":new,"oldObject":old}
        }))
        .unwrap()
    }

    #[test]
    fn updates_are_refused_only_for_gaps_they_open() {
        let snap = snapshot("Deny");
        let keys = deployment(json!([{"name":"AWS_SECRET_ACCESS_KEY","value":"x"}]));
        let clean = deployment(json!([]));
        // A label added to an object that already fails: allowed, with a warning.
        let mut labelled = keys.clone();
        labelled["metadata"]["labels"] = json!({"team": "a"});
        let d = review(&update("shop", keys.clone(), labelled), &snap, Utc::now()).unwrap();
        assert_eq!(d.decision, "warn", "{}", d.review);
        assert_eq!(d.review["response"]["allowed"], true);
        let w = d.review["response"]["warnings"][0].as_str().unwrap();
        assert!(
            w.contains("identity.workload-identity") && w.contains("already failing"),
            "{w}"
        );
        // An update that opens the gap is refused.
        let d = review(
            &update("shop", clean.clone(), keys.clone()),
            &snap,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "deny");
        // One that keeps the old gap and opens a new one is refused, and says which was old.
        let mut worse = keys.clone();
        worse["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        let d = review(&update("shop", keys.clone(), worse), &snap, Utc::now()).unwrap();
        assert_eq!(d.decision, "deny");
        let msg = d.review["response"]["status"]["message"].as_str().unwrap();
        assert!(msg.contains("host-os.isolation"), "{msg}");
        assert!(
            msg.contains("(already failing before this update)"),
            "{msg}"
        );
        // Removing a finalizer after deletion: allowed whatever the object says.
        let mut leaving = keys.clone();
        leaving["metadata"]["deletionTimestamp"] = json!("2026-12-02T10:00:00Z");
        let d = review(&update("shop", keys.clone(), leaving), &snap, Utc::now()).unwrap();
        assert_eq!(d.review["response"]["allowed"], true);
        // A CREATE of a failing object is still refused.
        let d = review(&body("CREATE", "shop", keys), &snap, Utc::now()).unwrap();
        assert_eq!(d.decision, "deny");
    }

    #[test]
    fn answers_stay_small_whatever_the_object_holds() {
        let uses: Vec<String> = (0..40_000).map(|i| format!("s3://bucket-{i}")).collect();
        let mut many = deployment(json!([]));
        many["metadata"]["annotations"] = json!({"onus.dev/uses": uses.join(",")});
        let d = review(
            &body("CREATE", "shop", many.clone()),
            &snapshot("Deny"),
            Utc::now(),
        )
        .unwrap();
        // More references than onus judges: an error, so refused under Deny.
        assert_eq!(d.decision, "deny");
        let msg = d.review["response"]["status"]["message"].as_str().unwrap();
        assert!(msg.contains("more than 256"), "{msg}");
        assert!(msg.len() <= MAX_DENY_MESSAGE);
        let d = review(&body("CREATE", "shop", many), &snapshot("Warn"), Utc::now()).unwrap();
        let warnings = d.review["response"]["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), MAX_WARNINGS + 1, "{warnings:?}");
        assert!(serde_json::to_vec(&d.review).unwrap().len() < 64 * 1024);
    }

    #[test]
    fn baselines_onus_cannot_compile_are_refused_and_never_unguard() {
        let typo = json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},
            "spec":{"provider":"aws","serviceModel":"iaas","controls":[{"id":"network.exposure","parameters":{"forbiddenPort":22}}]}});
        let review_of = |object: &Value, kind: &str| {
            serde_json::to_vec(&json!({
                "apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                "request":{"uid":"u","kind":{"group":"onus.dev","version":"v1alpha1","kind":kind},"operation":"CREATE","namespace":"shop","object":object}
            }))
            .unwrap()
        };
        // At admission: refused with the same message `onus check` gives.
        let d = review(
            &review_of(&typo, "ResponsibilityBaseline"),
            &snapshot("Deny"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "deny");
        let msg = d.review["response"]["status"]["message"].as_str().unwrap();
        assert!(msg.contains("forbiddenPort"), "{msg}");
        // Even in a namespace without any baseline yet.
        let d = review(
            &review_of(&typo, "ResponsibilityBaseline"),
            &Index::default().snapshot(chrono::Duration::minutes(5)),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "deny");
        let mut fixed = typo.clone();
        fixed["spec"]["controls"][0]["parameters"] = json!({});
        let d = review(
            &review_of(&fixed, "ResponsibilityBaseline"),
            &snapshot("Deny"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.review["response"]["allowed"], true);

        // Stored anyway: the namespace is not unguarded; creates there are refused, naming it.
        let mut idx = Index::default();
        idx.upsert(Object::from_value(typo.clone(), None).unwrap());
        let snap = idx.snapshot(chrono::Duration::minutes(5));
        assert_eq!(snap.broken.len(), 1);
        assert_eq!(snap.counts.invalid_namespaced, 1);
        let clean = deployment(json!([]));
        let d = review(&body("CREATE", "shop", clean.clone()), &snap, Utc::now()).unwrap();
        assert_eq!(d.decision, "deny", "{}", d.review);
        let msg = d.review["response"]["status"]["message"].as_str().unwrap();
        assert!(
            msg.contains("ResponsibilityBaseline/shop/b cannot be compiled")
                && msg.contains("forbiddenPort"),
            "{msg}"
        );
        // Other namespaces are not its business.
        let d = review(&body("CREATE", "other", clean.clone()), &snap, Utc::now()).unwrap();
        assert_eq!(d.review["response"]["allowed"], true);
        // A broken baseline whose action is Warn warns instead.
        let mut warn = typo;
        warn["spec"]["action"] = json!("Warn");
        let mut idx = Index::default();
        idx.upsert(Object::from_value(warn, None).unwrap());
        let d = review(
            &body("CREATE", "shop", clean),
            &idx.snapshot(chrono::Duration::minutes(5)),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "warn");
        assert!(
            d.review["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .contains("cannot be compiled")
        );
    }

    #[test]
    fn a_broken_baseline_with_a_last_valid_spec_is_judged_under_it() {
        // Broken now; the leader recorded the last spec that compiled (which forbids port 22).
        let stored = json!({"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},
            "spec":{"provider":"aws","serviceModel":"iaas","controls":[{"id":"network.exposure","parameters":{"forbiddenPort":22}}]},
            "status":{"lastValidSpec":{"provider":"aws","serviceModel":"iaas","controls":[{"id":"network.exposure","parameters":{"forbiddenPorts":[22]}}]}}});
        let mut idx = Index::default();
        idx.upsert(Object::from_value(stored.clone(), None).unwrap());
        let snap = idx.snapshot(chrono::Duration::minutes(5));
        assert_eq!(snap.broken.len(), 1, "still reported as broken");
        assert!(snap.broken[0].under_last_valid);
        assert_eq!(snap.counts.invalid_namespaced, 1);
        // A clean workload is allowed, with a warning that names the broken baseline.
        let d = review(
            &body("CREATE", "shop", deployment(json!([]))),
            &snap,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.review["response"]["allowed"], true, "{}", d.review);
        let warning = d.review["response"]["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains("ResponsibilityBaseline/shop/b cannot be compiled")
                && warning.contains("last valid spec"),
            "{warning}"
        );
        // A Service open on 22 is refused by the last valid spec's control.
        let ssh = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"ssh"},
            "spec":{"type":"LoadBalancer","ports":[{"port":22}]}});
        let d = review(&body("CREATE", "shop", ssh), &snap, Utc::now()).unwrap();
        assert_eq!(d.decision, "deny", "{}", d.review);
        let msg = d.review["response"]["status"]["message"].as_str().unwrap();
        assert!(msg.contains("network.exposure"), "{msg}");
        // A last valid spec that does not compile either is no fallback: refused as broken.
        let mut both = stored;
        both["status"]["lastValidSpec"]["controls"][0]["parameters"] = json!({"nope": 1});
        let mut idx = Index::default();
        idx.upsert(Object::from_value(both, None).unwrap());
        let snap = idx.snapshot(chrono::Duration::minutes(5));
        assert!(!snap.broken[0].under_last_valid);
        let d = review(
            &body("CREATE", "shop", deployment(json!([]))),
            &snap,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "deny");
    }

    #[test]
    fn a_broken_cluster_baseline_warns_only_where_its_last_valid_selector_applies() {
        let crb = json!({"apiVersion":"onus.dev/v1alpha1","kind":"ClusterResponsibilityBaseline","metadata":{"name":"sel"},
            "spec":{"provider":"aws","serviceModel":"iaas","namespaceSelector":{"matchExpressions":[{"key":"tier","operator":"Bogus","values":["yy"]}]}},
            "status":{"lastValidSpec":{"provider":"aws","serviceModel":"iaas","namespaceSelector":{"matchLabels":{"tier":"yy"}}}}});
        let mut idx = Index::default();
        idx.upsert(Object::from_value(crb.clone(), None).unwrap());
        for (name, tier) in [("selected", "yy"), ("other", "zz")] {
            idx.upsert(Object::from_value(json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":name,"labels":{"tier":tier},
                "creationTimestamp":"2020-01-01T00:00:00Z"}}), None).unwrap());
        }
        let snap = idx.snapshot(chrono::Duration::minutes(5));
        let warned = |ns: &str| {
            let d = review(
                &body("CREATE", ns, deployment(json!([]))),
                &snap,
                Utc::now(),
            )
            .unwrap();
            d.review["response"]["warnings"]
                .as_array()
                .is_some_and(|w| {
                    w.iter()
                        .any(|x| x.as_str().unwrap_or("").contains("sel cannot be compiled"))
                })
        };
        assert!(warned("selected"));
        assert!(
            !warned("other"),
            "not its namespace under the last valid selector"
        );
        // Without a last valid version, its selector cannot be trusted: everywhere.
        let mut never = crb;
        never.as_object_mut().unwrap().remove("status");
        let mut idx = Index::default();
        idx.upsert(Object::from_value(never, None).unwrap());
        let snap = idx.snapshot(chrono::Duration::minutes(5));
        let d = review(
            &body("CREATE", "other", deployment(json!([]))),
            &snap,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "deny", "{}", d.review);
    }

    #[test]
    fn only_onus_may_change_what_a_broken_baseline_falls_back_to() {
        let status_update = |user: &str, old: Value, new: Value| {
            serde_json::to_vec(&json!({
                "apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                "request":{"uid":"u","kind":{"group":"onus.dev","version":"v1alpha1","kind":"ResponsibilityBaseline"},
                    "operation":"UPDATE","subResource":"status","namespace":"shop","userInfo":{"username":user},
                    "object":{"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},"status":new},
                    "oldObject":{"apiVersion":"onus.dev/v1alpha1","kind":"ResponsibilityBaseline","metadata":{"name":"b","namespace":"shop"},"status":old}}
            }))
            .unwrap()
        };
        let snap = snapshot("Deny");
        let onus = Some("system:serviceaccount:onus-system:onus");
        let weak =
            json!({"lastValidSpec":{"provider":"aws","serviceModel":"saas","action":"Audit"}});
        let strict = json!({"lastValidSpec":{"provider":"aws","serviceModel":"iaas"}});
        let judge = |user: &str, old: &Value, new: &Value| {
            review_with(
                &status_update(user, old.clone(), new.clone()),
                &snap,
                None,
                onus,
                Utc::now(),
            )
            .unwrap()
        };
        let d = judge("mallory", &strict, &weak);
        assert_eq!(d.decision, "deny", "{}", d.review);
        assert!(
            d.review["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("only onus")
        );
        // onus itself may, and anyone may write other status fields.
        assert_eq!(
            judge("system:serviceaccount:onus-system:onus", &strict, &weak).review["response"]["allowed"],
            true
        );
        let mut conditions = strict.clone();
        conditions["conditions"] = json!([]);
        assert_eq!(
            judge("mallory", &strict, &conditions).review["response"]["allowed"],
            true
        );
        // Not knowing its own name, onus lets nobody change it.
        let d = review_with(
            &status_update("mallory", strict.clone(), weak.clone()),
            &snap,
            None,
            None,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.decision, "deny");
    }

    #[test]
    fn metric_labels_come_from_closed_sets() {
        let snap = snapshot("Deny");
        let other = |kind: &str, op: &str| {
            serde_json::to_vec(&json!({
                "apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                "request":{"uid":"u","kind":{"group":"x.example","version":"v1","kind":kind},"operation":op,"namespace":"shop",
                    "object":{"apiVersion":"x.example/v1","kind":kind,"metadata":{"name":"a"}}}
            }))
            .unwrap()
        };
        let d = review(&other(&"K".repeat(100_000), "EXPLODE"), &snap, Utc::now()).unwrap();
        assert_eq!((d.kind, d.operation), ("other", "other"));
        let d = review(&other("Deployment", "CREATE"), &snap, Utc::now()).unwrap();
        assert_eq!((d.kind, d.operation), ("Deployment", "CREATE"));
        let deploy = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w"},"spec":{"template":{"spec":{"containers":[]}}}});
        let d = review(&body("UPDATE", "shop", deploy), &snap, Utc::now()).unwrap();
        assert_eq!((d.kind, d.operation), ("Deployment", "UPDATE"));
    }

    #[test]
    fn long_warnings_are_cut_on_char_boundaries() {
        let s = "é".repeat(300);
        let t = cut(&s, 101);
        assert!(t.len() <= 101 && t.ends_with("..."));
    }
}
