//! Whether a resource policy's Condition narrows who may act, judged on its values.

use serde_json::Value;

/// Condition keys that narrow who may act when their values do.
const IDENTITY_KEYS: &[&str] = &[
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:resourceorgid",
    "aws:username",
    "s3:dataaccesspointaccount",
    "kms:calleraccount",
];
const ARN_KEYS: &[&str] = &["aws:sourcearn", "aws:principalarn", "s3:dataaccesspointarn"];

/// Does a Condition block narrow who the statement lets in? Conditions are ANDed: one entry that
/// narrows is enough. An entry narrows only if its values do: `aws:SourceIp` of private ranges or
/// small public ones, account, VPC, endpoint and org ids without wildcards, ARNs with a fixed
/// account. Negated, `...IfExists`, `ForAllValues:` and `Null` operators never narrow (a request
/// without the key passes them), nor do keys a requester controls (`aws:Referer`).
pub fn narrows(condition: &Value, internet: &crate::network::Internet) -> bool {
    let Some(ops) = condition.as_object() else {
        return false;
    };
    ops.iter().any(|(op, entries)| {
        let op = op.to_ascii_lowercase();
        let op = op.strip_prefix("foranyvalue:").unwrap_or(&op);
        if op.starts_with("forallvalues:")
            || op.ends_with("ifexists")
            || op.contains("not")
            || op == "null"
            || op == "bool"
        {
            return false;
        }
        let Some(entries) = entries.as_object() else {
            return false;
        };
        entries.iter().any(|(key, values)| {
            let key = key.to_ascii_lowercase();
            let values: Vec<&str> = match values {
                Value::String(v) => vec![v.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if values.is_empty() {
                return false;
            }
            let wild = |v: &str| v.contains(['*', '?']);
            if key == "aws:sourceip" {
                return op == "ipaddress" && values.iter().all(|v| !internet.includes(v));
            }
            if IDENTITY_KEYS.contains(&key.as_str()) {
                return values.iter().all(|v| !v.is_empty() && !wild(v));
            }
            if key == "aws:userid" {
                // `ROLE-ID:*` is one role, any session.
                return values.iter().all(|v| {
                    v.split(':')
                        .next()
                        .is_some_and(|id| !id.is_empty() && !wild(id))
                });
            }
            if key == "aws:principalorgpaths" {
                return values.iter().all(|v| {
                    v.split('/')
                        .next()
                        .is_some_and(|org| !org.is_empty() && !wild(org))
                });
            }
            if ARN_KEYS.contains(&key.as_str()) {
                // A wildcard account lets anyone create a matching principal in their own.
                return values.iter().all(|v| {
                    let account = v.split(':').nth(4).unwrap_or("");
                    (!v.is_empty() && !wild(v)) || (!account.is_empty() && !wild(account))
                });
            }
            false
        })
    })
}
