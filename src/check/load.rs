//! Reading manifests: files and directories, multi-document YAML or JSON, `List` kinds.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A document that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", location(*.document, *.line))]
pub struct InputError {
    pub file: String,
    /// 1-based document index in the file, when the problem is inside one document.
    pub document: Option<usize>,
    pub line: Option<usize>,
    pub message: String,
}

fn location(document: Option<usize>, line: Option<usize>) -> String {
    match (document, line) {
        (Some(d), Some(l)) => format!(": document {d} (line {l})"),
        (Some(d), None) => format!(": document {d}"),
        _ => String::new(),
    }
}

/// One document read from a file.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: String,
    /// 1-based index of the document in its file.
    pub index: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    pub value: Value,
}

/// Read every document under `paths`. Problems are collected; everything readable is returned.
pub fn load(paths: &[PathBuf]) -> (Vec<Document>, Vec<InputError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let mut files = Vec::new();
        if let Err(e) = collect_files(path, &mut files) {
            errors.push(InputError {
                file: path.display().to_string(),
                document: None,
                line: None,
                message: e,
            });
            continue;
        }
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(text) => parse_stream(&f.display().to_string(), &text, &mut docs, &mut errors),
                Err(e) => errors.push(InputError {
                    file: f.display().to_string(),
                    document: None,
                    line: None,
                    message: e.to_string(),
                }),
            }
        }
    }
    (docs, errors)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list directory: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

/// Split a YAML stream into documents with their start lines, parse each, flatten Lists.
pub fn parse_stream(
    file: &str,
    text: &str,
    docs: &mut Vec<Document>,
    errors: &mut Vec<InputError>,
) {
    let mut chunks: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            chunks.push((start, std::mem::take(&mut current)));
            start = i + 2;
            if let Some(rest) = trimmed.strip_prefix("--- ") {
                current.push_str(rest);
                current.push('\n');
                start = i + 1;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    chunks.push((start, current));
    // Only comments or blank lines: not a document.
    chunks.retain(|(_, c)| {
        !c.lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    });
    let json = file.ends_with(".json");
    let parsed = parse_parallel(&chunks, json);
    for (i, ((line, chunk), value)) in chunks.iter().zip(parsed).enumerate() {
        let index = i + 1;
        // Point at the first line with content, past leading comments.
        let line = line
            + chunk
                .lines()
                .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                .count();
        match value {
            Ok(Value::Null) => {}
            Ok(v) => flatten(file, index, line, v, docs, errors),
            Err(message) => errors.push(InputError {
                file: file.to_string(),
                document: Some(index),
                line: Some(line),
                message,
            }),
        }
    }
}

/// YAML parsing dominates `onus check` on large inputs; documents are independent, so parse
/// them on every core.
fn parse_parallel(chunks: &[(usize, String)], json: bool) -> Vec<Result<Value, String>> {
    let parse = |c: &str| -> Result<Value, String> {
        if json {
            serde_json::from_str(c).map_err(|e| e.to_string())
        } else {
            serde_yaml_ng::from_str(c).map_err(|e| e.to_string())
        }
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads == 1 || chunks.len() < 64 {
        return chunks.iter().map(|(_, c)| parse(c)).collect();
    }
    let per = chunks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .chunks(per)
            .map(|part| {
                (
                    part.len(),
                    scope.spawn(move || part.iter().map(|(_, c)| parse(c)).collect::<Vec<_>>()),
                )
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| {
                h.join().unwrap_or_else(|_| {
                    vec![Err("the YAML parser failed on this document".to_string()); n]
                })
            })
            .collect()
    })
}

fn flatten(
    file: &str,
    index: usize,
    line: usize,
    v: Value,
    docs: &mut Vec<Document>,
    errors: &mut Vec<InputError>,
) {
    let is_list = v
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && v.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Value::Array(items) = v["items"].clone() {
            for item in items {
                flatten(file, index, line, item, docs, errors);
            }
        }
        return;
    }
    if !v.is_object() {
        errors.push(InputError {
            file: file.to_string(),
            document: Some(index),
            line: Some(line),
            message: "not a Kubernetes object (expected a mapping with apiVersion and kind)".into(),
        });
        return;
    }
    docs.push(Document {
        file: file.to_string(),
        index,
        line,
        value: v,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lists_and_lines() {
        let text = "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n- {apiVersion: v1, kind: Secret, metadata: {name: c}}\n--- \nkey: [unclosed\n";
        let (mut docs, mut errs) = (Vec::new(), Vec::new());
        parse_stream("x.yaml", text, &mut docs, &mut errs);
        assert_eq!(docs.len(), 3);
        assert_eq!((docs[0].index, docs[0].line), (1, 3));
        assert_eq!(docs[1].line, 8);
        assert_eq!(docs[1].index, 2);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].document, Some(3));
        assert!(
            errs[0]
                .to_string()
                .starts_with("x.yaml: document 3 (line 14)"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn scalars_are_not_objects() {
        let (mut docs, mut errs) = (Vec::new(), Vec::new());
        parse_stream("s.yaml", "just a string\n", &mut docs, &mut errs);
        assert!(docs.is_empty());
        assert!(errs[0].message.contains("not a Kubernetes object"));
    }
}
