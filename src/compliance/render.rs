//! `onus compliance` output: text for people, JSON for tools, Markdown for documents, CSV for
//! spreadsheets.

use std::fmt::Write;

use super::{Framework, Requirement};
use crate::model::{Provider, ServiceModel};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComplianceFormat {
    Text,
    Json,
    Markdown,
    Csv,
    /// An OSCAL component definition of onus (see `oscal`).
    OscalComponent,
    /// OSCAL assessment results of judging PATHs.
    OscalAssessmentResults,
}

/// What the rows are about, for the headings.
pub struct Heading {
    pub framework: Framework,
    pub provider: Provider,
    pub model: ServiceModel,
}

/// Render the rows; the OSCAL formats also need the verdicts they came from and the time.
pub fn render(
    rows: &[Requirement],
    heading: &Heading,
    format: ComplianceFormat,
    verdicts: &[crate::engine::Verdict],
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let (f, p, m) = (heading.framework, heading.provider, heading.model);
    match format {
        ComplianceFormat::Text => text(rows, heading),
        ComplianceFormat::Json => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        ComplianceFormat::Markdown => markdown(rows, heading),
        ComplianceFormat::Csv => csv(rows),
        ComplianceFormat::OscalComponent => {
            json(&super::oscal::component_definition(f, p, m, rows, now))
        }
        ComplianceFormat::OscalAssessmentResults => json(&super::oscal::assessment_results(
            f, p, m, rows, verdicts, now,
        )),
    }
}

fn status(r: &Requirement) -> &'static str {
    r.status.map_or("", |s| s.as_str())
}

fn summary(rows: &[Requirement], h: &Heading) -> String {
    let count = |o: crate::model::Owner| rows.iter().filter(|r| r.owner == o).count();
    format!(
        "{} under {} {}: {} requirements with evidence or a duty: {} the customer's, {} shared, {} the provider's",
        h.framework.title(),
        h.provider,
        h.model,
        rows.len(),
        count(crate::model::Owner::Customer),
        count(crate::model::Owner::Shared),
        count(crate::model::Owner::Provider),
    )
}

fn text(rows: &[Requirement], h: &Heading) -> String {
    let mut out = summary(rows, h) + "\n\n";
    for r in rows {
        let _ = write!(out, "{:<12} {:<8} {}", r.id, r.owner.as_str(), r.title);
        if r.status.is_some() {
            let _ = write!(out, "  [{}]", status(r));
        }
        out.push('\n');
        if !r.controls.is_empty() {
            let _ = writeln!(out, "             evidence: {}", r.controls.join(", "));
        }
        if !r.failing.is_empty() {
            let failing = crate::text::printable(&r.failing.join(", ")).into_owned();
            let _ = writeln!(out, "             failing: {failing}");
        }
        for c in &r.responsibility {
            let _ = writeln!(out, "             {}: {} ({})", c.domain, c.owner, c.source);
        }
    }
    out
}

/// A Markdown table cell: pipes and HTML escaped, lines joined, other control characters
/// escaped (the file is read in terminals too).
fn cell(s: &str) -> String {
    let joined = s.replace(['\n', '\r'], " ");
    crate::text::printable(&joined)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

fn markdown(rows: &[Requirement], h: &Heading) -> String {
    let mut out = format!("# {}\n\n{}\n\n", h.framework.title(), summary(rows, h));
    let with_status = rows.iter().any(|r| {
        r.status
            .is_some_and(|s| s != super::RequirementStatus::OutsideReach)
    });
    out.push_str("| requirement | title | owner | onus evidence |");
    out.push_str(if with_status { " status |\n" } else { "\n" });
    out.push_str("|---|---|---|---|");
    out.push_str(if with_status { "---|\n" } else { "\n" });
    for r in rows {
        let evidence = if r.controls.is_empty() {
            status(r).to_string()
        } else {
            r.controls
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            out,
            "| {} | {} | {} | {} |",
            cell(&r.id),
            cell(&r.title),
            r.owner,
            cell(&evidence)
        );
        if with_status {
            let mut s = status(r).to_string();
            if !r.failing.is_empty() {
                s = format!("{s}: {}", r.failing.join(", "));
            }
            let _ = write!(out, " {} |", cell(&s));
        }
        out.push('\n');
    }
    out
}

/// A CSV field, quoted when it must be.
/// A CSV field: quoted when it must be; control characters other than line breaks escaped.
fn field(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '\n' | '\r' => c.to_string(),
            c => crate::text::printable(c.encode_utf8(&mut [0; 4])).into_owned(),
        })
        .collect();
    let s = s.as_str();
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(rows: &[Requirement]) -> String {
    let mut out = String::from("id,title,owner,controls,status,failing,source\n");
    for r in rows {
        let line = [
            field(&r.id),
            field(&r.title),
            r.owner.to_string(),
            field(&r.controls.join(" ")),
            field(status(r)),
            field(&r.failing.join(" ")),
            field(&r.source.join(" ")),
        ];
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_files_cannot_break_a_table_or_a_row() {
        assert_eq!(
            cell("a|b\r\n<img onerror=x>"),
            "a\\|b  &lt;img onerror=x&gt;"
        );
        assert_eq!(field("a\rb"), "\"a\rb\"");
        assert_eq!(field("plain"), "plain");
    }
}
