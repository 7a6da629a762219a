//! IAM policy document analysis (pure).
//!
//! Finds what `identity.least-privilege` forbids in an AWS IAM policy: full admin (`*` on `*`),
//! service-wide wildcards (`s3:*` on `*`), `Allow` with `NotAction`, and privilege-escalation
//! paths from the published catalogues. Deny statements without conditions on `*` subtract from
//! what Allow statements grant (`Action` and `NotAction` alike). Only statements on every
//! resource of a kind (`*`, `arn:aws:iam::123:role/*`, or `NotResource`) count for wildcards and
//! escalation, as in Cloudsplaining's "without resource constraints" analysis. Resource policies
//! are public unless a condition's values narrow who may act.

mod condition;
mod escalation;

pub use condition::narrows;
pub use escalation::{ESCALATION_PATHS, EscalationPath, escalation_path};

use serde::Serialize;
use serde_json::Value;

/// A parse problem in a policy document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IamError {
    #[error("policy document is not valid JSON: {0}")]
    Json(String),
    #[error("policy document: {0}")]
    Shape(String),
    #[error(
        "too complex to analyse: onus stopped after {MAX_ANALYSIS_STEPS} wildcard-matching steps (its Action patterns are too many or too tangled for a bounded analysis; policies AWS accepts need far fewer), so it cannot say what the document grants"
    )]
    TooComplex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `Action` patterns, or `NotAction` patterns when `not_action` is set.
    pub actions: Vec<String>,
    /// The same patterns normalised once (lower case, runs of `*` folded), for matching.
    #[serde(skip)]
    patterns: Vec<String>,
    pub not_action: bool,
    pub resources: Vec<String>,
    pub not_resource: bool,
    /// `Principal` of resource policies (bucket policies): the AWS principals, `*` for anyone.
    pub principals: Vec<String>,
    pub has_condition: bool,
    /// Condition keys present (lower-case), e.g. `aws:securetransport`, `aws:sourceip`.
    pub condition_keys: Vec<String>,
    pub condition: Value,
}

impl Statement {
    fn label(&self, index: usize) -> String {
        match &self.sid {
            Some(sid) => format!("statement {sid:?}"),
            None => format!("statement #{}", index + 1),
        }
    }

    /// The statement matches this action (Action or NotAction semantics).
    pub fn matches_action(&self, action: &str) -> bool {
        self.matches(&action.to_ascii_lowercase(), &Meter::unbounded())
    }

    /// `matches_action` for a lower-case action, paid from `meter`.
    fn matches(&self, action: &str, meter: &Meter) -> bool {
        let hit = self.patterns.iter().any(|p| {
            star_match(
                p.as_bytes(),
                action.as_bytes(),
                |p, t| p == b'?' || p == t,
                meter,
            )
        });
        hit != self.not_action
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDocument {
    pub statements: Vec<Statement>,
}

/// A resource policy statement that grants other AWS accounts access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CrossAccountGrant {
    /// The other accounts it names.
    pub accounts: Vec<String>,
    /// Which statement, who, and read or write.
    pub description: String,
}

/// What is wrong with a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum IamIssue {
    /// `Action: "*"` on `Resource: "*"`.
    FullAdmin,
    /// `service:*` on `Resource: "*"`.
    ServiceWildcard { service: String },
    /// `Allow` with `NotAction`: grants everything not listed.
    AllowNotAction,
    /// A known privilege-escalation action set is granted.
    PrivilegeEscalation { name: String, actions: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IamFinding {
    pub issue: IamIssue,
    /// Which statement grants it.
    pub statement: String,
    /// The granting statement carries conditions (noted; it still grants under them).
    pub conditioned: bool,
}

impl IamIssue {
    /// The aspects of `policy-analysis` it fails, as compliance mappings name them: its own
    /// (the serde tag), and those it implies. An escalation path that a wider grant covers is
    /// not reported on its own, so the wider grant carries it: every action (`*`, or `Allow`
    /// with `NotAction`) includes every escalation and every service's wildcard, and `iam:*`
    /// includes the IAM-only escalation paths.
    pub fn aspects(&self) -> Vec<&'static str> {
        match self {
            IamIssue::FullAdmin => vec!["full-admin", "service-wildcard", "privilege-escalation"],
            IamIssue::AllowNotAction => vec!["allow-not-action", "privilege-escalation"],
            IamIssue::ServiceWildcard { service } if glob_match(service, "iam") => {
                vec!["service-wildcard", "privilege-escalation"]
            }
            IamIssue::ServiceWildcard { .. } => vec!["service-wildcard"],
            IamIssue::PrivilegeEscalation { .. } => vec!["privilege-escalation"],
        }
    }
}

impl IamFinding {
    pub fn describe(&self) -> String {
        let what = match &self.issue {
            IamIssue::FullAdmin => "allows every action (\"*\") on every resource".to_string(),
            IamIssue::ServiceWildcard { service } => {
                format!("allows {service}:* on every resource")
            }
            IamIssue::AllowNotAction => {
                "uses Allow with NotAction, granting everything not listed".to_string()
            }
            IamIssue::PrivilegeEscalation { name, actions } => {
                let how = escalation_path(name)
                    .map(|p| format!(": one can {} (path published by {})", p.how, p.source))
                    .unwrap_or_default();
                format!(
                    "allows privilege escalation {name} ({} on every resource){how}",
                    actions.join(" + ")
                )
            }
        };
        let cond = if self.conditioned {
            " (under a Condition)"
        } else {
            ""
        };
        format!("{} {what}{cond}", self.statement)
    }
}

/// Largest policy document analysed. AWS allows 10,240 characters for a role's inline policies
/// and 6,144 for a managed policy; anything far above that is not a policy AWS would accept.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;
/// Longest `Action`/`NotAction` entry. The longest IAM action names have about 70 characters;
/// the bound keeps wildcard matching cheap on hostile input.
pub const MAX_ACTION_CHARS: usize = 128;
/// Most `Action`/`NotAction` entries in one document.
pub const MAX_ACTIONS: usize = 1000;
/// Wildcard-matching steps one document's analysis may take. Realistic documents, AWS's largest
/// managed policies included, need a small fraction of this; hostile wildcards could otherwise
/// cost `actions² × length²`. Counted in steps, not time, so every replica decides alike.
pub const MAX_ANALYSIS_STEPS: u64 = 2_000_000;

/// Matching work left for one analysis. Once it is spent, every match answers `false` and the
/// analysis reports [`IamError::TooComplex`] instead of trusting those answers.
struct Meter(std::cell::Cell<u64>);

impl Meter {
    fn new(steps: u64) -> Meter {
        Meter(std::cell::Cell::new(steps))
    }

    fn unbounded() -> Meter {
        Meter::new(u64::MAX)
    }

    fn spent(&self) -> bool {
        self.0.get() == 0
    }

    /// Pay `steps`; `false` (and spent) when they are not there.
    fn pay(&self, steps: u64) -> bool {
        match self.0.get().checked_sub(steps) {
            Some(left) if left > 0 => {
                self.0.set(left);
                true
            }
            _ => {
                self.0.set(0);
                false
            }
        }
    }
}

/// Parse a policy document given as JSON text. IAM APIs return documents URL-encoded; both work.
pub fn parse(text: &str) -> Result<PolicyDocument, IamError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(IamError::Shape(format!(
            "the document has {} bytes; onus analyses at most {MAX_POLICY_BYTES} (AWS accepts 10,240)",
            text.len()
        )));
    }
    let trimmed = text.trim();
    let decoded;
    let text = if trimmed.starts_with('%') {
        decoded = percent_decode(trimmed);
        decoded.as_str()
    } else {
        trimmed
    };
    let value: Value = serde_json::from_str(text).map_err(|e| IamError::Json(e.to_string()))?;
    from_value(&value)
}

/// Parse a policy document already decoded to JSON.
pub fn from_value(value: &Value) -> Result<PolicyDocument, IamError> {
    let obj = value
        .as_object()
        .ok_or_else(|| IamError::Shape("expected a JSON object".into()))?;
    let stmts = get_ci(obj, "Statement").ok_or_else(|| IamError::Shape("no Statement".into()))?;
    let list: Vec<&Value> = match stmts {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![stmts],
        _ => {
            return Err(IamError::Shape(
                "Statement must be an object or a list".into(),
            ));
        }
    };
    let mut statements = Vec::with_capacity(list.len());
    let mut action_count = 0usize;
    for (i, s) in list.into_iter().enumerate() {
        let s = s
            .as_object()
            .ok_or_else(|| IamError::Shape(format!("statement #{} is not an object", i + 1)))?;
        let effect = match get_ci(s, "Effect").and_then(Value::as_str) {
            Some(e) if e.eq_ignore_ascii_case("allow") => Effect::Allow,
            Some(e) if e.eq_ignore_ascii_case("deny") => Effect::Deny,
            other => {
                return Err(IamError::Shape(format!(
                    "statement #{}: Effect must be Allow or Deny, got {other:?}",
                    i + 1
                )));
            }
        };
        let (actions, not_action) = match (get_ci(s, "Action"), get_ci(s, "NotAction")) {
            (Some(a), None) => (strings(a, i, "Action")?, false),
            (None, Some(a)) => (strings(a, i, "NotAction")?, true),
            _ => {
                return Err(IamError::Shape(format!(
                    "statement #{}: needs exactly one of Action or NotAction",
                    i + 1
                )));
            }
        };
        action_count += actions.len();
        if action_count > MAX_ACTIONS {
            return Err(IamError::Shape(format!(
                "more than {MAX_ACTIONS} Action/NotAction entries; onus does not analyse documents this large"
            )));
        }
        if let Some(long) = actions
            .iter()
            .find(|a| a.chars().count() > MAX_ACTION_CHARS)
        {
            return Err(IamError::Shape(format!(
                "statement #{}: an action of {} characters (longer than {MAX_ACTION_CHARS}; no IAM action is): {}...",
                i + 1,
                long.chars().count(),
                long.chars().take(40).collect::<String>()
            )));
        }
        let (resources, not_resource) = match (get_ci(s, "Resource"), get_ci(s, "NotResource")) {
            (Some(r), None) => (strings(r, i, "Resource")?, false),
            (None, Some(r)) => (strings(r, i, "NotResource")?, true),
            // Trust policies and some resource policies omit Resource: they apply to the resource itself.
            (None, None) => (vec!["*".to_string()], false),
            _ => {
                return Err(IamError::Shape(format!(
                    "statement #{}: has both Resource and NotResource",
                    i + 1
                )));
            }
        };
        let principals = match get_ci(s, "Principal") {
            None => Vec::new(),
            Some(Value::String(p)) => vec![p.clone()],
            Some(Value::Object(m)) => m
                .values()
                .flat_map(|v| match v {
                    Value::String(p) => vec![p.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect(),
            Some(_) => {
                return Err(IamError::Shape(format!(
                    "statement #{}: Principal has an unknown shape",
                    i + 1
                )));
            }
        };
        let condition = get_ci(s, "Condition").cloned().unwrap_or(Value::Null);
        let condition_keys = condition
            .as_object()
            .map(|ops| {
                ops.values()
                    .filter_map(Value::as_object)
                    .flat_map(|m| m.keys().map(|k| k.to_ascii_lowercase()))
                    .collect()
            })
            .unwrap_or_default();
        statements.push(Statement {
            sid: get_ci(s, "Sid").and_then(Value::as_str).map(str::to_string),
            effect,
            patterns: actions.iter().map(|a| normalise(a)).collect(),
            actions,
            not_action,
            resources,
            not_resource,
            principals,
            has_condition: condition.as_object().is_some_and(|c| !c.is_empty()),
            condition_keys,
            condition,
        });
    }
    Ok(PolicyDocument { statements })
}

fn get_ci<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn strings(v: &Value, i: usize, field: &str) -> Result<Vec<String>, IamError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    IamError::Shape(format!("statement #{}: {field} must hold strings", i + 1))
                })
            })
            .collect(),
        _ => Err(IamError::Shape(format!(
            "statement #{}: {field} must be a string or a list",
            i + 1
        ))),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// IAM action glob: `*` any run, `?` one character, case-insensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<u8> = pattern.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let t: Vec<u8> = text.bytes().map(|b| b.to_ascii_lowercase()).collect();
    star_match(&p, &t, |p, t| p == b'?' || p == t, &Meter::unbounded())
}

/// Greedy `*` matching with one backtrack point: linear in practice, `O(p * t)` at worst.
/// `single(p, t)` says whether pattern byte `p` (never `*`) matches text byte `t`. Each step is
/// paid from `meter`; with nothing left the answer is `false` (and the meter says why).
fn star_match(p: &[u8], t: &[u8], single: impl Fn(u8, u8) -> bool, meter: &Meter) -> bool {
    // Every call costs at least one step, early mismatches included: the number of calls is
    // what hostile documents multiply.
    if !meter.pay(1) {
        return false;
    }
    let budget = meter.0.get();
    let mut steps = 0u64;
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        steps += 1;
        if steps >= budget {
            meter.0.set(0);
            return false;
        }
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && single(p[pi], t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    meter.0.set(budget - steps);
    pi == p.len()
}

/// An action pattern, lower-case with runs of `*` folded: `S3:**` is `s3:*`.
fn normalise(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars().map(|c| c.to_ascii_lowercase()) {
        if !(c == '*' && out.ends_with('*')) {
            out.push(c);
        }
    }
    out
}

/// A normalised pattern with each part that matches every name written `*`: service and action
/// names are never shorter than a few characters, so `?*`, `*??` and `*:?*` grant as much as
/// `*` and `*:*` (failing closed on any part made only of `?` and at least one `*`).
fn every_name(pattern: &str) -> String {
    let all = |part: &str| part.contains('*') && part.bytes().all(|b| b == b'*' || b == b'?');
    if all(pattern) {
        return "*".into();
    }
    match pattern.split_once(':') {
        Some((service, action)) if all(action) => {
            let service = if all(service) { "*" } else { service };
            format!("{service}:*")
        }
        _ => pattern.to_string(),
    }
}

/// Does pattern `outer` match every action that pattern `inner` matches? Sound, not complete:
/// `false` when unsure, so a Deny is subtracted only when it surely covers the Allow.
fn contains(outer: &str, inner: &str) -> bool {
    contains_normalised(&normalise(outer), &normalise(inner), &Meter::unbounded())
}

/// `contains` for normalised patterns, paid from `meter`. `inner`'s wildcards are bytes that
/// only `*` in `outer` may match, and `?` in `outer` matches anything but a run.
fn contains_normalised(outer: &str, inner: &str, meter: &Meter) -> bool {
    star_match(
        outer.as_bytes(),
        inner.as_bytes(),
        |p, t| (p == b'?' && t != b'*') || p == t,
        meter,
    )
}

/// Can two patterns match a common action? `false` only when surely not: their literal
/// beginnings or endings differ.
fn may_overlap(a: &str, b: &str) -> bool {
    let lit = |s: &str, rev: bool| -> String {
        let it: Box<dyn Iterator<Item = char>> = if rev {
            Box::new(s.chars().rev())
        } else {
            Box::new(s.chars())
        };
        it.take_while(|c| *c != '*' && *c != '?').collect()
    };
    let agree = |x: &str, y: &str| x.starts_with(y) || y.starts_with(x);
    agree(&lit(a, false), &lit(b, false)) && agree(&lit(a, true), &lit(b, true))
}

/// Does a resource pattern cover every resource an action applies to? `*`, a wildcard service
/// or resource, or every resource of one type in an account (`arn:aws:iam::123:role/*`). For S3,
/// `bucket/*` is one bucket's objects, not every bucket.
pub fn broad_resource(r: &str) -> bool {
    if r == "*" {
        return true;
    }
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    let [arn, _partition, service, _region, _account, res] = parts.as_slice() else {
        return false;
    };
    if !arn.eq_ignore_ascii_case("arn") {
        return false;
    }
    if service.contains('*') || res.chars().all(|c| c == '*') {
        return true;
    }
    if service.eq_ignore_ascii_case("s3") {
        return res.starts_with('*');
    }
    // `TYPE/*`, `TYPE:*`, `TYPE/PATH*` with a wildcard-free type.
    match res.split_once(['/', ':']) {
        Some((kind, rest)) => {
            !kind.contains(['*', '?']) && rest.starts_with('*') && rest.chars().all(|c| c == '*')
        }
        None => false,
    }
}

impl Statement {
    /// The statement applies to every resource of the kinds its actions touch.
    fn broad(&self) -> bool {
        if self.not_resource {
            // Everything except the list: broad, unless the list is everything.
            return !self.resources.iter().any(|r| r == "*");
        }
        self.resources.iter().any(|r| broad_resource(r))
    }

    /// A Deny that surely applies: no condition, on `*`.
    fn sure_deny(&self) -> bool {
        self.effect == Effect::Deny
            && !self.has_condition
            && self.resources.iter().any(|r| r == "*")
            && !self.not_resource
    }
}

impl PolicyDocument {
    /// Is the lower-case `action` on any resource denied outright (an unconditioned Deny on `*`)?
    fn denied(&self, action: &str, meter: &Meter) -> bool {
        self.statements
            .iter()
            .any(|s| s.sure_deny() && s.matches(action, meter))
    }

    /// What remains of the normalised Allow pattern `allowed` once sure Denies are subtracted:
    /// patterns that still grant something (empty when all of it is denied).
    fn remaining(&self, allowed: &str, meter: &Meter) -> Vec<String> {
        let mut left = vec![allowed.to_string()];
        for d in self.statements.iter().filter(|s| s.sure_deny()) {
            if meter.spent() {
                return Vec::new();
            }
            left = if d.not_action {
                // Denies everything except its list: what is left is the overlap with the list,
                // as a set (a pattern kept twice would double the work of every later Deny).
                let mut kept: std::collections::BTreeSet<String> =
                    std::collections::BTreeSet::new();
                for q in &left {
                    let mut whole = false;
                    let mut parts = Vec::new();
                    for l in &d.patterns {
                        if !meter.pay((q.len() + l.len()) as u64) {
                            return Vec::new();
                        }
                        if contains_normalised(l, q, meter) {
                            whole = true;
                            break;
                        } else if contains_normalised(q, l, meter) {
                            parts.push(l);
                        } else if may_overlap(q, l) {
                            // Cannot tell what is left: keep it whole (fail closed).
                            whole = true;
                            break;
                        }
                    }
                    if whole {
                        kept.insert(q.clone());
                    } else {
                        kept.extend(parts.into_iter().cloned());
                    }
                }
                kept.into_iter().collect()
            } else {
                left.into_iter()
                    .filter(|q| !d.patterns.iter().any(|a| contains_normalised(a, q, meter)))
                    .collect()
            };
        }
        left
    }

    /// The first Allow statement on broad resources that grants the lower-case `action`, if not
    /// denied.
    fn granting(&self, action: &str, meter: &Meter) -> Option<(usize, &Statement)> {
        if self.denied(action, meter) {
            return None;
        }
        self.statements
            .iter()
            .enumerate()
            .find(|(_, s)| s.effect == Effect::Allow && s.broad() && s.matches(action, meter))
    }

    /// Everything `identity.least-privilege` forbids in this document. The work is bounded
    /// ([`MAX_ANALYSIS_STEPS`]); a document that needs more is [`IamError::TooComplex`], never a
    /// pass.
    pub fn analyse(&self) -> Result<Vec<IamFinding>, IamError> {
        let meter = Meter::new(MAX_ANALYSIS_STEPS);
        let findings = self.findings(&meter);
        if meter.spent() {
            return Err(IamError::TooComplex);
        }
        Ok(findings)
    }

    fn findings(&self, meter: &Meter) -> Vec<IamFinding> {
        let mut findings = Vec::new();
        for (i, s) in self.statements.iter().enumerate() {
            if s.effect != Effect::Allow {
                continue;
            }
            if meter.spent() {
                return findings;
            }
            // Allow + NotAction grants everything but its list; Denies may take most of it away.
            let granted: Vec<String> = if s.not_action {
                let left: Vec<String> = self
                    .remaining("*", meter)
                    .into_iter()
                    .filter(|q| !s.patterns.iter().any(|a| contains_normalised(a, q, meter)))
                    .collect();
                if left.iter().any(|q| q == "*") {
                    findings.push(IamFinding {
                        issue: IamIssue::AllowNotAction,
                        statement: s.label(i),
                        conditioned: s.has_condition,
                    });
                    continue;
                }
                left
            } else {
                s.patterns
                    .iter()
                    .flat_map(|a| self.remaining(a, meter))
                    .collect()
            };
            if !s.broad() {
                continue;
            }
            for left in granted {
                let left = every_name(&left);
                let issue = match left.strip_suffix(":*") {
                    _ if left == "*" => IamIssue::FullAdmin,
                    Some("*") => IamIssue::FullAdmin,
                    Some(service) if !service.contains(':') && !service.is_empty() => {
                        IamIssue::ServiceWildcard {
                            service: service.to_string(),
                        }
                    }
                    _ => continue,
                };
                if !findings.iter().any(|f: &IamFinding| f.issue == issue) {
                    findings.push(IamFinding {
                        issue,
                        statement: s.label(i),
                        conditioned: s.has_condition,
                    });
                }
            }
            if meter.spent() {
                return findings;
            }
        }
        // Full admin already implies every escalation; do not bury it in noise.
        if findings
            .iter()
            .any(|f| matches!(f.issue, IamIssue::FullAdmin | IamIssue::AllowNotAction))
        {
            return findings;
        }
        // Paths share actions (`iam:PassRole` is in dozens): look each up once.
        let mut granted: std::collections::HashMap<&str, Option<(usize, &Statement)>> =
            std::collections::HashMap::new();
        for path in ESCALATION_PATHS {
            let grants: Option<Vec<(usize, &Statement)>> = path
                .actions
                .iter()
                .map(|a| {
                    *granted
                        .entry(a)
                        .or_insert_with(|| self.granting(&a.to_ascii_lowercase(), meter))
                })
                .collect();
            let Some(grants) = grants else {
                continue;
            };
            let (i, s) = grants[0];
            // A service wildcard finding already covers single-service paths.
            let services: std::collections::BTreeSet<String> = path
                .actions
                .iter()
                .filter_map(|a| a.split(':').next())
                .map(str::to_ascii_lowercase)
                .collect();
            let covered = services.len() == 1
                && findings.iter().any(|f| {
                    matches!(&f.issue, IamIssue::ServiceWildcard { service } if services.iter().any(|x| glob_match(service, x)))
                });
            if !covered {
                findings.push(IamFinding {
                    issue: IamIssue::PrivilegeEscalation {
                        name: path.name.to_string(),
                        actions: path.actions.iter().map(|a| a.to_string()).collect(),
                    },
                    statement: s.label(i),
                    conditioned: grants.iter().any(|(_, s)| s.has_condition),
                });
            }
        }
        findings
    }

    /// Statements of a resource policy (bucket policy) that let anyone in: `Principal: "*"`
    /// allowed without a condition that narrows who (judged on its values, not its presence).
    pub fn public_statements(&self, internet: &crate::network::Internet) -> Vec<String> {
        self.statements
            .iter()
            .enumerate()
            .filter(|(_, s)| s.effect == Effect::Allow && s.principals.iter().any(|p| p == "*"))
            .filter(|(_, s)| !narrows(&s.condition, internet))
            .map(|(i, s)| {
                format!(
                    "bucket policy {} lets anyone (Principal \"*\") {} ({})",
                    s.label(i),
                    access(s),
                    s.actions.join(", ")
                )
            })
            .collect()
    }

    /// Statements of a resource policy that grant access to AWS accounts other than `own`, with
    /// the accounts they name.
    pub fn cross_account_grants(&self, own: &str) -> Vec<CrossAccountGrant> {
        let account_of = |p: &str| -> Option<String> {
            let id = if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
                p
            } else {
                p.strip_prefix("arn:")?.split(':').nth(3)?
            };
            (id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
        };
        self.statements
            .iter()
            .enumerate()
            .filter(|(_, s)| s.effect == Effect::Allow)
            .filter_map(|(i, s)| {
                let mut accounts: Vec<String> = s
                    .principals
                    .iter()
                    .filter_map(|p| account_of(p))
                    .filter(|a| a != own)
                    .collect();
                accounts.sort();
                accounts.dedup();
                (!accounts.is_empty()).then(|| CrossAccountGrant {
                    description: format!(
                        "policy {} lets account {} {} ({})",
                        s.label(i),
                        accounts.join(", "),
                        access(s),
                        s.actions.join(", ")
                    ),
                    accounts,
                })
            })
            .collect()
    }

    /// Statements of a resource policy that grant access to AWS accounts other than `own` and
    /// `trusted` (by account id or by a principal ARN in that account): who, and what.
    pub fn cross_account_statements(&self, own: &str, trusted: &[&str]) -> Vec<String> {
        self.cross_account_grants(own)
            .into_iter()
            .filter(|g| g.accounts.iter().any(|a| !trusted.contains(&a.as_str())))
            .map(|g| g.description)
            .collect()
    }

    /// A Deny on `aws:SecureTransport = false` exists.
    pub fn denies_insecure_transport(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Deny
                && s.condition_keys.iter().any(|k| k == "aws:securetransport")
                && s.condition
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("false")
        })
    }
}

/// "read", "write" or "read and write": what a statement's actions let one do to the data.
fn access(s: &Statement) -> &'static str {
    if s.not_action {
        return "read and write";
    }
    let read_only = |a: &str| {
        let a = normalise(a);
        ["s3:get", "s3:list", "s3:head", "s3:describe"]
            .iter()
            .any(|r| a.starts_with(r))
    };
    let read = |a: &str| {
        let a = normalise(a);
        read_only(&a) || contains(&a, "s3:getobject") || contains(&a, "s3:listbucket")
    };
    let any_write = s.actions.iter().any(|a| !read_only(a));
    let any_read = s.actions.iter().any(|a| read(a));
    match (any_read, any_write) {
        (true, true) => "read and write",
        (false, true) => "write",
        _ => "read",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(doc: &str) -> Vec<IamIssue> {
        parse(doc)
            .unwrap()
            .analyse()
            .unwrap()
            .into_iter()
            .map(|f| f.issue)
            .collect()
    }

    #[test]
    fn star_on_star_is_full_admin() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        assert_eq!(issues(doc), vec![IamIssue::FullAdmin]);
    }

    #[test]
    fn narrow_action_passes() {
        let doc =
            r#"{"Statement":[{"Effect":"Allow","Action":["logs:CreateLogGroup"],"Resource":"*"}]}"#;
        assert!(issues(doc).is_empty());
    }

    #[test]
    fn service_wildcard_on_star_fails_case_insensitively() {
        let doc = r#"{"Statement":{"Effect":"Allow","Action":"S3:*","Resource":["*"]}}"#;
        assert_eq!(
            issues(doc),
            vec![IamIssue::ServiceWildcard {
                service: "s3".into()
            }]
        );
    }

    #[test]
    fn service_wildcard_on_one_bucket_passes() {
        let doc = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::reports/*"}]}"#;
        assert!(issues(doc).is_empty());
    }

    #[test]
    fn allow_not_action_fails() {
        let doc = r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#;
        assert_eq!(issues(doc), vec![IamIssue::AllowNotAction]);
    }

    #[test]
    fn pass_role_with_run_instances_is_escalation() {
        let doc = r#"{"Statement":[{"Effect":"Allow","Action":["iam:PassRole","ec2:RunInstances"],"Resource":"*"}]}"#;
        let found = issues(doc);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(matches!(
            &found[0],
            IamIssue::PrivilegeEscalation { name, .. } if name == "PassExistingRoleToNewEc2Instance"
        ));
    }

    #[test]
    fn escalation_spread_over_statements_and_globs() {
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":"iam:Pass*","Resource":"*"},
            {"Effect":"Allow","Action":"ec2:Run?nstances","Resource":"*"}]}"#;
        assert!(matches!(
            issues(doc).as_slice(),
            [IamIssue::PrivilegeEscalation { .. }]
        ));
    }

    #[test]
    fn allow_cancelled_by_matching_deny_passes() {
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":"*","Resource":"*"},
            {"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        assert!(issues(doc).is_empty());
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":["iam:PassRole","ec2:RunInstances","s3:*"],"Resource":"*"},
            {"Effect":"Deny","Action":["iam:PassRole","s3:*"],"Resource":"*"}]}"#;
        assert!(issues(doc).is_empty());
    }

    #[test]
    fn conditioned_deny_does_not_subtract_and_conditions_are_noted() {
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}},
            {"Effect":"Deny","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
        let f = parse(doc).unwrap().analyse().unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].conditioned);
        assert!(f[0].describe().contains("under a Condition"));
    }

    #[test]
    fn url_encoded_documents_parse() {
        let doc = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
        assert_eq!(issues(doc), vec![IamIssue::FullAdmin]);
    }

    #[test]
    fn malformed_documents_say_what_is_wrong() {
        assert!(matches!(parse("{"), Err(IamError::Json(_))));
        let e = parse(r#"{"Statement":[{"Effect":"Maybe","Action":"*"}]}"#).unwrap_err();
        assert!(e.to_string().contains("Effect"), "{e}");
        let e = parse(r#"{"Statement":[{"Effect":"Allow"}]}"#).unwrap_err();
        assert!(e.to_string().contains("Action"), "{e}");
    }

    #[test]
    fn public_bucket_policy_statements() {
        let public = parse(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#).unwrap();
        assert_eq!(public.public_statements(&Default::default()).len(), 1);
        let anon = parse(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#).unwrap();
        assert_eq!(anon.public_statements(&Default::default()).len(), 1);
        let vpc = parse(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1"}}}]}"#).unwrap();
        assert!(vpc.public_statements(&Default::default()).is_empty());
        let tls = parse(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#).unwrap();
        assert!(tls.public_statements(&Default::default()).is_empty());
        assert!(tls.denies_insecure_transport());
    }

    #[test]
    fn hostile_documents_are_refused_quickly_with_a_reason() {
        let long = format!("*{}*", "a*".repeat(5000));
        let doc = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"{long}","Resource":"*"}},{{"Effect":"Deny","Action":"{long}","Resource":"*"}}]}}"#
        );
        let e = from_value(&serde_json::from_str(&doc).unwrap()).unwrap_err();
        assert!(e.to_string().contains("longer than 128"), "{e}");
        assert!(parse(&doc).is_err());
        let many: Vec<String> = (0..2500).map(|i| format!("\"s3:Get{i}*\"")).collect();
        let doc = format!(
            r#"{{"Statement":{{"Effect":"Allow","Action":[{}],"Resource":"*"}}}}"#,
            many.join(",")
        );
        assert!(parse(&doc).unwrap_err().to_string().contains("bytes"));
        let e = from_value(&serde_json::from_str(&doc).unwrap()).unwrap_err();
        assert!(e.to_string().contains("more than 1000"), "{e}");
        // Tangled wildcards within every size limit: the analysis stops at its bound and says
        // so, an error rather than a pass.
        let tangled: Vec<String> = (0..240)
            .map(|i| format!("\"{}{i}\"", "*a".repeat(28)))
            .collect();
        let doc = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":[{0}],"Resource":"*"}},{{"Effect":"Deny","Action":[{0}],"Resource":"*"}}]}}"#,
            tangled.join(",")
        );
        assert!(doc.len() < MAX_POLICY_BYTES);
        let e = parse(&doc).unwrap().analyse().unwrap_err();
        assert_eq!(e, IamError::TooComplex);
        assert!(
            e.to_string()
                .contains("cannot say what the document grants"),
            "{e}"
        );
        // Denies with NotAction lists that alternate a covered and an overlapping pattern used
        // to multiply what was left (272 s for a 6 KB document): what is left is a set now, and
        // every comparison is paid for.
        let list: Vec<&str> = (0..40)
            .map(|i| if i % 2 == 0 { "s3:az" } else { "s3:b*" })
            .collect();
        let mut statements =
            vec![serde_json::json!({"Effect": "Allow", "Action": "s3:*z", "Resource": "*"})];
        statements
            .extend((0..16).map(
                |_| serde_json::json!({"Effect": "Deny", "NotAction": list, "Resource": "*"}),
            ));
        let doc = from_value(&serde_json::json!({ "Statement": statements })).unwrap();
        let meter = Meter::new(MAX_ANALYSIS_STEPS / 100);
        assert!(doc.findings(&meter).is_empty());
        assert!(!meter.spent());
    }

    /// A document as large as AWS's biggest managed policies (1,000 `service:Verb*` entries
    /// over 200 services, with Denies) needs under a tenth of the analysis bound.
    #[test]
    fn large_realistic_documents_stay_far_inside_the_bound() {
        let verbs = ["Get*", "List*", "Describe*", "BatchGet*", "Search*"];
        let allow: Vec<String> = (0..988)
            .map(|i| format!("\"svc{}:{}\"", i / 5, verbs[i % 5]))
            .chain(["\"iam:PassRole\"".into(), "\"ec2:Run*\"".into()])
            .collect();
        let deny: Vec<String> = (0..10).map(|i| format!("\"svc{i}:Get*\"")).collect();
        let doc = from_value(&serde_json::json!({"Statement": [
            {"Effect": "Allow", "Action": serde_json::from_str::<Value>(&format!("[{}]", allow.join(","))).unwrap(), "Resource": "*"},
            {"Effect": "Deny", "Action": serde_json::from_str::<Value>(&format!("[{}]", deny.join(","))).unwrap(), "Resource": "*"}
        ]}))
        .unwrap();
        let meter = Meter::new(MAX_ANALYSIS_STEPS / 10);
        let findings = doc.findings(&meter);
        assert!(!meter.spent(), "needed more than a tenth of the bound");
        assert!(
            findings.iter().any(|f| matches!(&f.issue, IamIssue::PrivilegeEscalation { actions, .. } if actions.iter().any(|a| a == "ec2:RunInstances"))),
            "{findings:?}"
        );
        assert_eq!(doc.analyse(), Ok(findings));
    }

    #[test]
    fn wildcards_spelled_with_question_marks_are_still_wildcards() {
        let one = |a: &str| {
            format!(r#"{{"Statement":[{{"Effect":"Allow","Action":"{a}","Resource":"*"}}]}}"#)
        };
        for admin in ["?*", "*?", "*:?*", "?*:*"] {
            assert!(
                issues(&one(admin)).contains(&IamIssue::FullAdmin),
                "{admin}"
            );
        }
        for (a, service) in [("kms:?*", "kms"), ("secretsmanager:*?", "secretsmanager")] {
            assert!(
                issues(&one(a)).contains(&IamIssue::ServiceWildcard {
                    service: service.into()
                }),
                "{a}"
            );
        }
        // Real action names are long: a few required characters still match every one.
        assert!(
            issues(&one("kms:??*")).contains(&IamIssue::ServiceWildcard {
                service: "kms".into()
            })
        );
    }

    fn escalations(doc: &str) -> Vec<String> {
        issues(doc)
            .into_iter()
            .filter_map(|i| match i {
                IamIssue::PrivilegeEscalation { name, .. } => Some(name),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_spelling_of_everything_is_full_admin() {
        for a in ["*", "*:*", "**", "*:**", "**:*"] {
            let doc =
                format!(r#"{{"Statement":[{{"Effect":"Allow","Action":"{a}","Resource":"*"}}]}}"#);
            assert_eq!(issues(&doc), vec![IamIssue::FullAdmin], "{a}");
        }
        let doc = r#"{"Statement":[{"Effect":"Allow","Action":"s3:**","Resource":"*"}]}"#;
        assert_eq!(
            issues(doc),
            vec![IamIssue::ServiceWildcard {
                service: "s3".into()
            }]
        );
        // Every resource of a kind is every resource for the actions on that kind.
        let doc =
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::*"}]}"#;
        assert_eq!(issues(doc).len(), 1);
    }

    #[test]
    fn the_published_catalogue_of_escalation_paths_is_known() {
        let one = |a: &str| {
            format!(r#"{{"Statement":[{{"Effect":"Allow","Action":{a},"Resource":"*"}}]}}"#)
        };
        assert_eq!(
            escalations(&one(r#""ssm:SendCommand""#)),
            ["SsmSendCommand"]
        );
        assert_eq!(
            escalations(&one(r#""iam:UpdateAssumeRolePolicy""#)),
            ["UpdateAssumeRolePolicy"]
        );
        // Lower-case names are the same actions.
        assert_eq!(
            escalations(&one(r#"["iam:passrole","ec2:runinstances"]"#)),
            ["PassExistingRoleToNewEc2Instance"]
        );
        assert_eq!(
            escalations(&one(r#"["iam:PassRole","ecs:RunTask"]"#)),
            ["PassRoleToEcsRunTask"]
        );
        // Harmless alone.
        assert!(escalations(&one(r#""iam:PassRole""#)).is_empty());
        assert!(escalations(&one(r#""ec2:DescribeInstances""#)).is_empty());
        // Every path is well-formed and none is implied by another (minimal sets).
        for p in ESCALATION_PATHS {
            assert!(
                p.actions.iter().all(|a| a
                    .split_once(':')
                    .is_some_and(|(s, n)| !s.is_empty() && !n.is_empty() && !a.contains('*'))),
                "{}",
                p.name
            );
            for q in ESCALATION_PATHS.iter().filter(|q| q.name != p.name) {
                assert!(
                    !q.actions.iter().all(|a| p.actions.contains(a)),
                    "{} is implied by {}",
                    p.name,
                    q.name
                );
            }
            assert!(!p.how.is_empty() && !p.source.is_empty());
        }
        let f = parse(&one(r#""ssm:SendCommand""#))
            .unwrap()
            .analyse()
            .unwrap();
        let said = f[0].describe();
        assert!(
            said.contains("run commands on any managed instance") && said.contains("Prowler"),
            "{said}"
        );
    }

    #[test]
    fn pass_role_scoped_to_a_named_role_is_harmless_and_to_every_role_is_not() {
        let doc = |res: &str| {
            format!(
                r#"{{"Statement":[{{"Effect":"Allow","Action":"iam:PassRole","Resource":"{res}"}},{{"Effect":"Allow","Action":"ec2:RunInstances","Resource":"*"}}]}}"#
            )
        };
        assert!(escalations(&doc("arn:aws:iam::123456789012:role/app-worker")).is_empty());
        for broad in [
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::*:*",
            "arn:aws:*:*:*:*",
            "*",
        ] {
            assert_eq!(
                escalations(&doc(broad)),
                ["PassExistingRoleToNewEc2Instance"],
                "{broad}"
            );
        }
        assert!(broad_resource("arn:aws:s3:::*/*"));
        assert!(!broad_resource("arn:aws:s3:::reports/*"));
        assert!(!broad_resource("arn:aws:iam::123:role/app-*"));
    }

    #[test]
    fn deny_with_not_action_leaves_only_its_list() {
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":"*","Resource":"*"},
            {"Effect":"Deny","NotAction":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
        assert!(issues(doc).is_empty(), "{:?}", issues(doc));
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":"*","Resource":"*"},
            {"Effect":"Deny","NotAction":"s3:*","Resource":"*"}]}"#;
        assert_eq!(
            issues(doc),
            vec![IamIssue::ServiceWildcard {
                service: "s3".into()
            }]
        );
        // Allow NotAction cut down to one action by a Deny NotAction passes.
        let doc = r#"{"Statement":[
            {"Effect":"Allow","NotAction":"iam:*","Resource":"*"},
            {"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*"}]}"#;
        assert!(issues(doc).is_empty(), "{:?}", issues(doc));
        // A conditioned Deny is not sure to apply: nothing is subtracted.
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":"*","Resource":"*"},
            {"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:ViaAWSService":"false"}}}]}"#;
        assert_eq!(issues(doc), vec![IamIssue::FullAdmin]);
        // A Deny of everything but iam leaves iam: escalation through it is still reported.
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":["iam:CreateAccessKey","s3:*"],"Resource":"*"},
            {"Effect":"Deny","NotAction":"iam:*","Resource":"*"}]}"#;
        assert_eq!(escalations(doc), ["CreateAccessKey"]);
    }

    #[test]
    fn conditions_narrow_only_when_their_values_do() {
        let public = |cond: &str| {
            let doc = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{cond}}}]}}"#
            );
            !parse(&doc)
                .unwrap()
                .public_statements(&Default::default())
                .is_empty()
        };
        for open in [
            r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","52.0.0.0/8"]}}"#,
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            r#"{"StringLike":{"aws:PrincipalOrgID":"o-*"}}"#,
            r#"{"StringLike":{"aws:SourceVpce":"*"}}"#,
            r#"{"StringEqualsIfExists":{"aws:SourceVpce":"vpce-1a2b3c"}}"#,
            r#"{"ForAllValues:StringEquals":{"aws:PrincipalOrgID":"o-abc"}}"#,
            r#"{"StringNotEquals":{"aws:SourceAccount":"123456789012"}}"#,
            r#"{"Null":{"aws:SourceVpce":"false"}}"#,
            r#"{"StringLike":{"aws:Referer":"https://example.com/*"}}"#,
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/reader"}}"#,
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
        ] {
            assert!(public(open), "{open} does not narrow who");
        }
        for closed in [
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","203.0.113.0/24"]}}"#,
            r#"{"StringEquals":{"aws:PrincipalOrgID":"o-a1b2c3d4e5"}}"#,
            r#"{"StringEquals":{"aws:SourceVpce":"vpce-1a2b3c"}}"#,
            r#"{"StringEquals":{"AWS:SourceAccount":"123456789012"}}"#,
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/*"}}"#,
            r#"{"StringEquals":{"aws:SourceArn":"arn:aws:cloudfront::123456789012:distribution/E1"}}"#,
            r#"{"StringLike":{"aws:PrincipalOrgPaths":"o-a1b2c3d4e5/r-ab12/*"}}"#,
            r#"{"Bool":{"aws:SecureTransport":"true"},"StringEquals":{"aws:SourceVpce":"vpce-1"}}"#,
        ] {
            assert!(!public(closed), "{closed} narrows who");
        }
    }

    #[test]
    fn public_statements_say_read_or_write() {
        let say = |actions: &str| {
            let doc = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":{actions},"Resource":"arn:aws:s3:::b/*"}}]}}"#
            );
            parse(&doc).unwrap().public_statements(&Default::default())[0].clone()
        };
        assert!(say(r#""s3:GetObject""#).contains("lets anyone (Principal \"*\") read ("));
        assert!(say(r#""s3:PutObject""#).contains(") write ("));
        assert!(say(r#""s3:*""#).contains("read and write"));
        assert!(say(r#"["s3:GetObject","s3:DeleteObject"]"#).contains("read and write"));
    }

    #[test]
    fn cross_account_grants_name_the_account() {
        let doc = parse(r#"{"Statement":[
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::210987654321:root","123456789012"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}]}"#).unwrap();
        let found = doc.cross_account_statements("123456789012", &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("account 210987654321 read"), "{found:?}");
        assert!(
            doc.cross_account_statements("123456789012", &["210987654321"])
                .is_empty()
        );
    }

    #[test]
    fn glob() {
        assert!(glob_match("iam:*", "IAM:PassRole"));
        assert!(glob_match("*", "x:y"));
        assert!(glob_match("ec2:Describe*", "ec2:DescribeInstances"));
        assert!(!glob_match("ec2:Describe*", "ec2:RunInstances"));
        assert!(glob_match("s3:?etObject", "s3:GetObject"));
    }
}
