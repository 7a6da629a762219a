//! IAM policy document analysis (pure).
//!
//! Finds what `identity.least-privilege` forbids in an AWS IAM policy: full admin (`*` on `*`),
//! service-wide wildcards (`s3:*` on `*`), `Allow` with `NotAction`, and privilege-escalation
//! action sets. Deny statements without conditions subtract from what Allow statements grant.
//! Only statements on `Resource: "*"` (or `NotResource`) count for wildcards and escalation,
//! as in Cloudsplaining's "without resource constraints" analysis.

use serde::Serialize;
use serde_json::Value;

/// A parse problem in a policy document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IamError {
    #[error("policy document is not valid JSON: {0}")]
    Json(String),
    #[error("policy document: {0}")]
    Shape(String),
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

    /// The statement applies to every resource.
    pub fn on_any_resource(&self) -> bool {
        self.not_resource || self.resources.iter().any(|r| r == "*")
    }

    /// The statement matches this action (Action or NotAction semantics).
    pub fn matches_action(&self, action: &str) -> bool {
        let hit = self.actions.iter().any(|p| glob_match(p, action));
        hit != self.not_action
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDocument {
    pub statements: Vec<Statement>,
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
                format!(
                    "allows privilege escalation ({name}: {})",
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
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
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
    pi == p.len()
}

/// Privilege-escalation action sets (Rhino Security Labs' list, as used by Prowler and Cloudsplaining).
pub const ESCALATION_SETS: &[(&str, &[&str])] = &[
    ("CreateNewPolicyVersion", &["iam:CreatePolicyVersion"]),
    (
        "SetExistingDefaultPolicyVersion",
        &["iam:SetDefaultPolicyVersion"],
    ),
    (
        "PassExistingRoleToNewEc2Instance",
        &["iam:PassRole", "ec2:RunInstances"],
    ),
    ("CreateAccessKey", &["iam:CreateAccessKey"]),
    ("CreateLoginProfile", &["iam:CreateLoginProfile"]),
    ("UpdateLoginProfile", &["iam:UpdateLoginProfile"]),
    ("AttachUserPolicy", &["iam:AttachUserPolicy"]),
    ("AttachGroupPolicy", &["iam:AttachGroupPolicy"]),
    ("AttachRolePolicy", &["iam:AttachRolePolicy"]),
    ("PutUserPolicy", &["iam:PutUserPolicy"]),
    ("PutGroupPolicy", &["iam:PutGroupPolicy"]),
    ("PutRolePolicy", &["iam:PutRolePolicy"]),
    ("AddUserToGroup", &["iam:AddUserToGroup"]),
    (
        "UpdateRolePolicyToAssumeIt",
        &["iam:UpdateAssumeRolePolicy", "sts:AssumeRole"],
    ),
    (
        "PassExistingRoleToNewLambdaThenInvoke",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:InvokeFunction",
        ],
    ),
    (
        "PassExistingRoleToNewLambdaThenTriggerWithNewDynamo",
        &[
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:CreateEventSourceMapping",
        ],
    ),
    (
        "EditExistingLambdaFunctionWithRole",
        &["lambda:UpdateFunctionCode"],
    ),
    (
        "PassExistingRoleToNewGlueDevEndpoint",
        &["iam:PassRole", "glue:CreateDevEndpoint"],
    ),
    ("UpdateExistingGlueDevEndpoint", &["glue:UpdateDevEndpoint"]),
    (
        "PassExistingRoleToCloudFormation",
        &["iam:PassRole", "cloudformation:CreateStack"],
    ),
    (
        "PassExistingRoleToNewDataPipeline",
        &[
            "iam:PassRole",
            "datapipeline:CreatePipeline",
            "datapipeline:PutPipelineDefinition",
        ],
    ),
    (
        "PassExistingRoleToNewSageMakerNotebook",
        &[
            "iam:PassRole",
            "sagemaker:CreateNotebookInstance",
            "sagemaker:CreatePresignedNotebookInstanceUrl",
        ],
    ),
];

impl PolicyDocument {
    /// Is `action` on any resource denied outright (an unconditioned Deny on `*`)?
    fn denied(&self, action: &str) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Deny
                && !s.has_condition
                && s.on_any_resource()
                && s.matches_action(action)
        })
    }

    /// Is the whole pattern (e.g. `s3:*`, `*`) denied outright?
    fn pattern_denied(&self, pattern: &str) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Deny
                && !s.has_condition
                && s.on_any_resource()
                && !s.not_action
                && s.actions.iter().any(|d| covers(d, pattern))
        })
    }

    /// The first Allow statement on any resource that grants `action`, if not denied.
    fn granting(&self, action: &str) -> Option<(usize, &Statement)> {
        if self.denied(action) {
            return None;
        }
        self.statements.iter().enumerate().find(|(_, s)| {
            s.effect == Effect::Allow && s.on_any_resource() && s.matches_action(action)
        })
    }

    /// Everything `identity.least-privilege` forbids in this document.
    pub fn analyse(&self) -> Vec<IamFinding> {
        let mut findings = Vec::new();
        for (i, s) in self.statements.iter().enumerate() {
            if s.effect != Effect::Allow {
                continue;
            }
            if s.not_action {
                findings.push(IamFinding {
                    issue: IamIssue::AllowNotAction,
                    statement: s.label(i),
                    conditioned: s.has_condition,
                });
                continue;
            }
            if !s.on_any_resource() {
                continue;
            }
            for a in &s.actions {
                if a == "*" {
                    if !self.pattern_denied("*") {
                        findings.push(IamFinding {
                            issue: IamIssue::FullAdmin,
                            statement: s.label(i),
                            conditioned: s.has_condition,
                        });
                    }
                } else if let Some(service) = a.strip_suffix(":*")
                    && !service.contains('*')
                    && !self.pattern_denied(a)
                {
                    findings.push(IamFinding {
                        issue: IamIssue::ServiceWildcard {
                            service: service.to_ascii_lowercase(),
                        },
                        statement: s.label(i),
                        conditioned: s.has_condition,
                    });
                }
            }
        }
        // Full admin already implies every escalation; do not bury it in noise.
        if findings
            .iter()
            .any(|f| matches!(f.issue, IamIssue::FullAdmin | IamIssue::AllowNotAction))
        {
            return findings;
        }
        for (name, actions) in ESCALATION_SETS {
            let grants: Option<Vec<(usize, &Statement)>> =
                actions.iter().map(|a| self.granting(a)).collect();
            if let Some(grants) = grants {
                let (i, s) = grants[0];
                // A service wildcard finding already covers single-service sets.
                let services: std::collections::BTreeSet<&str> =
                    actions.iter().filter_map(|a| a.split(':').next()).collect();
                let covered = services.len() == 1
                    && findings.iter().any(|f| matches!(&f.issue, IamIssue::ServiceWildcard { service } if services.contains(service.as_str())));
                if !covered {
                    findings.push(IamFinding {
                        issue: IamIssue::PrivilegeEscalation {
                            name: name.to_string(),
                            actions: actions.iter().map(|a| a.to_string()).collect(),
                        },
                        statement: s.label(i),
                        conditioned: grants.iter().any(|(_, s)| s.has_condition),
                    });
                }
            }
        }
        findings
    }

    /// Statements of a resource policy (bucket policy) that let anyone in.
    /// A `Principal: "*"` Allow counts unless a condition narrows it to known sources.
    pub fn public_statements(&self) -> Vec<String> {
        const RESTRICTING: &[&str] = &[
            "aws:sourceip",
            "aws:sourcevpc",
            "aws:sourcevpce",
            "aws:sourcearn",
            "aws:sourceaccount",
            "aws:sourceowner",
            "aws:principalaccount",
            "aws:principalarn",
            "aws:principalorgid",
            "aws:principalorgpaths",
            "aws:userid",
            "aws:username",
            "s3:dataaccesspointaccount",
            "s3:dataaccesspointarn",
        ];
        self.statements
            .iter()
            .enumerate()
            .filter(|(_, s)| s.effect == Effect::Allow && s.principals.iter().any(|p| p == "*"))
            .filter(|(_, s)| {
                !s.condition_keys
                    .iter()
                    .any(|k| RESTRICTING.contains(&k.as_str()))
            })
            .map(|(i, s)| {
                format!(
                    "bucket policy {} allows Principal \"*\" ({})",
                    s.label(i),
                    s.actions.join(", ")
                )
            })
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

/// Does the deny pattern `d` match at least everything the allow pattern `a` matches?
fn covers(d: &str, a: &str) -> bool {
    d == "*" || d.eq_ignore_ascii_case(a) || (d.ends_with(":*") && glob_match(d, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(doc: &str) -> Vec<IamIssue> {
        parse(doc)
            .unwrap()
            .analyse()
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
        let f = parse(doc).unwrap().analyse();
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
        assert_eq!(public.public_statements().len(), 1);
        let anon = parse(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#).unwrap();
        assert_eq!(anon.public_statements().len(), 1);
        let vpc = parse(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1"}}}]}"#).unwrap();
        assert!(vpc.public_statements().is_empty());
        let tls = parse(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#).unwrap();
        assert!(tls.public_statements().is_empty());
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
        // The worst document that is still analysed stays cheap.
        let worst: Vec<String> = (0..100)
            .map(|_| format!("\"{}\"", "*a".repeat(64)))
            .collect();
        let doc = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":[{0}],"Resource":"*"}},{{"Effect":"Deny","Action":[{0}],"Resource":"*"}}]}}"#,
            worst.join(",")
        );
        let findings = parse(&doc).unwrap().analyse();
        assert!(findings.is_empty(), "{findings:?}");
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
