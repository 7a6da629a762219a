//! `onus check` output: text for people, JSON for tools, SARIF 2.1.0 for code scanning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::json;

use crate::api::Action;
use crate::compliance::{self, FrameworkIds};
use crate::engine::{Outcome, Verdict};
use crate::model::{ControlId, Provider};
use crate::object::ObjectRef;
use crate::text::printable;

use super::CheckReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

/// How text output looks; JSON and SARIF always carry everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextOptions {
    pub colour: bool,
    /// Print the framework requirement ids under each finding.
    pub frameworks: bool,
}

/// Render the report.
pub fn render(report: &CheckReport, format: Format, options: TextOptions) -> String {
    let mut out = Vec::new();
    // Writing to memory fails only if serialising fails, which these types cannot.
    let _ = write(report, format, options, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Write the report to `out` as it is serialised, without building it in memory first (the
/// JSON of 10,000 objects' verdicts is tens of MB).
pub fn write(
    report: &CheckReport,
    format: Format,
    options: TextOptions,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    match format {
        Format::Text => out.write_all(text(report, options).as_bytes())?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report.verdicts)?;
            out.write_all(b"\n")?;
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut out, &sarif(report))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

struct Paint(bool);

impl Paint {
    fn code(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn label(v: &Verdict) -> &'static str {
    match (v.result, v.action) {
        (Outcome::Fail, Action::Deny) => "DENY",
        (Outcome::Fail, Action::Warn) => "WARN",
        (Outcome::Fail, Action::Audit) => "AUDIT",
        (Outcome::Error, _) => "ERROR",
        (Outcome::Warn, _) => "WARN",
        (Outcome::Pass, _) => "PASS",
        (Outcome::Skip, _) => "SKIP",
    }
}

fn text(report: &CheckReport, options: TextOptions) -> String {
    let paint = Paint(options.colour);
    let mut out = String::new();
    // Group findings by object, in the order objects were read; failing controls first.
    let mut order: Vec<&ObjectRef> = Vec::new();
    let mut by_object: BTreeMap<&ObjectRef, Vec<&Verdict>> = BTreeMap::new();
    for v in report.verdicts.iter().filter(|v| v.is_finding()) {
        if !by_object.contains_key(&v.resource) {
            order.push(&v.resource);
        }
        by_object.entry(&v.resource).or_default().push(v);
    }
    for obj in order {
        let mut vs = by_object.remove(obj).unwrap_or_default();
        vs.sort_by_key(|v| (!v.denies(), v.result != Outcome::Fail, v.control));
        let place = report
            .source_of(obj)
            .map(|(f, _, l)| format!("  ({}:{l})", printable(f)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}{}",
            paint.code("1", &printable(&obj.to_string())),
            paint.code("2", &place)
        );
        for v in vs {
            let tag = label(v);
            let tag = match tag {
                "DENY" | "ERROR" => paint.code("1;31", tag),
                "WARN" => paint.code("1;33", tag),
                _ => paint.code("1;36", tag),
            };
            let _ = writeln!(
                out,
                "  {tag:<5} {}  {}",
                paint.code("1", v.control.as_str()),
                printable(&v.message)
            );
            if let Some(fix) = &v.remediation {
                let _ = writeln!(
                    out,
                    "        {} {}",
                    paint.code("32", "fix:"),
                    printable(fix)
                );
            }
            if options.frameworks && !v.frameworks.is_empty() {
                let ids: Vec<String> = v
                    .frameworks
                    .0
                    .iter()
                    .map(|(f, ids)| format!("{f} {}", ids.join(", ")))
                    .collect();
                let _ = writeln!(
                    out,
                    "        {} {}",
                    paint.code("34", "frameworks:"),
                    ids.join("; ")
                );
            }
        }
        out.push('\n');
    }
    let count = |o: Outcome| report.verdicts.iter().filter(|v| v.result == o).count();
    let denies = report.verdicts.iter().filter(|v| v.denies()).count();
    let _ = writeln!(
        out,
        "{} objects read, {} judged under {} baseline(s): {} fail ({} deny), {} error, {} warn, {} pass, {} skip",
        report.objects,
        report.judged,
        report.baselines,
        count(Outcome::Fail),
        denies,
        count(Outcome::Error),
        count(Outcome::Warn),
        count(Outcome::Pass),
        count(Outcome::Skip)
    );
    if !report.skipped_kinds.is_empty() {
        let kinds: Vec<String> = report
            .skipped_kinds
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        let _ = writeln!(
            out,
            "not judged (kinds onus does not check): {}",
            printable(&kinds.join(", "))
        );
    }
    if !report.unguarded_namespaces.is_empty() {
        let ns: Vec<&str> = report
            .unguarded_namespaces
            .iter()
            .map(String::as_str)
            .collect();
        let _ = writeln!(
            out,
            "no baseline applies to namespace(s): {}",
            printable(&ns.join(", "))
        );
    }
    out
}

/// The SARIF log. Results are made one at a time as they are written: the log of 10,000
/// objects' findings is hundreds of MB as a JSON tree. Fields in the order `serde_json` sorts
/// them, as before.
#[derive(serde::Serialize)]
struct SarifLog<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    runs: [SarifRun<'a>; 1],
    version: &'static str,
}

#[derive(serde::Serialize)]
struct SarifRun<'a> {
    results: SarifResults<'a>,
    tool: serde_json::Value,
}

struct SarifResults<'a>(&'a CheckReport);

impl serde::Serialize for SarifResults<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let report = self.0;
        s.collect_seq(
            report
                .verdicts
                .iter()
                .filter(|v| v.is_finding())
                .map(|v| sarif_result(report, v)),
        )
    }
}

fn sarif(report: &CheckReport) -> SarifLog<'_> {
    // A rule's ids: every check of the control, under the providers judged in this run.
    let mut providers: BTreeSet<Provider> = report.verdicts.iter().map(|v| v.provider).collect();
    if providers.is_empty() {
        providers.extend(Provider::ALL);
    }
    let rules: Vec<serde_json::Value> = ControlId::ALL
        .iter()
        .map(|c| {
            let mut ids = FrameworkIds::default();
            for p in &providers {
                ids.merge(compliance::for_control(*c, *p));
            }
            json!({
                "id": c.as_str(),
                "name": c.as_str(),
                "shortDescription": {"text": c.title()},
                "fullDescription": {"text": format!("{} (domain: {})", c.title(), c.domain())},
                "helpUri": format!("https://onus.dev/controls#{}", c.as_str().replace('.', "-")),
                "properties": {
                    "domain": c.domain().as_str(),
                    "tags": ["security", "shared-responsibility", c.domain().as_str()],
                    "security-severity": c.security_severity(),
                    "frameworks": ids,
                },
            })
        })
        .collect();
    SarifLog {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        runs: [SarifRun {
            results: SarifResults(report),
            tool: json!({"driver": {
                "name": "onus",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://onus.dev",
                "rules": rules,
            }}),
        }],
        version: "2.1.0",
    }
}

fn sarif_result(report: &CheckReport, v: &Verdict) -> serde_json::Value {
    let level = match (v.result, v.action) {
        (Outcome::Warn, _) | (_, Action::Warn) => "warning",
        (_, Action::Deny) => "error",
        (_, Action::Audit) => "note",
    };
    let tags: Vec<String> = std::iter::once("security".to_string())
        .chain(v.frameworks.tags())
        .collect();
    let mut r = json!({
        "ruleId": v.control.as_str(),
        "ruleIndex": ControlId::ALL.iter().position(|c| *c == v.control).unwrap_or(0),
        "level": level,
        "message": {"text": match &v.remediation { Some(f) => format!("{} Fix: {f}", v.message), None => v.message.clone() }},
        "properties": {
            "tags": tags,
            "frameworks": v.frameworks,
            "result": v.result.as_str(),
            "action": v.action.as_str(),
            "owner": v.owner.as_str(),
            "rule": v.rule,
            "cloudResource": v.cloud_resource,
            "baseline": v.baseline,
        },
        "partialFingerprints": {"onus/v1": format!("{}|{}|{}|{}", v.control, v.rule, v.resource, v.cloud_resource.as_deref().unwrap_or(""))},
    });
    let logical = json!([{"name": v.resource.name, "fullyQualifiedName": v.resource.to_string(), "kind": "object"}]);
    let location = match report.source_of(&v.resource) {
        Some((file, _, line)) => json!([{
            "physicalLocation": {"artifactLocation": {"uri": file}, "region": {"startLine": line}},
            "logicalLocations": logical,
        }]),
        None => json!([{"logicalLocations": logical}]),
    };
    r["locations"] = location;
    r
}
