//! Reading manifests: files and directories, multi-document YAML or JSON, `List` kinds.

use std::collections::HashSet;
use std::io::Read;
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

/// Largest file read. A Kubernetes object is at most 1.5 MiB; a pipeline that renders more than
/// this into one file should split it.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Deepest flow nesting (`[`, `{`) in one document: no manifest needs more, and parsing deeply
/// nested flow collections costs time out of proportion.
pub const MAX_NESTING: usize = 64;

/// Read every document under `paths`. Problems are collected; everything readable is returned.
/// Directories are walked once each (symbolic links are followed, loops are not), and only
/// regular files are read.
pub fn load(paths: &[PathBuf]) -> (Vec<Document>, Vec<InputError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        let mut files = Vec::new();
        collect_files(path, &mut files, &mut seen, &mut errors);
        for f in files {
            match read_file(&f) {
                Ok(text) => parse_stream(&f.display().to_string(), &text, &mut docs, &mut errors),
                Err(message) => errors.push(InputError {
                    file: f.display().to_string(),
                    document: None,
                    line: None,
                    message,
                }),
            }
        }
    }
    (docs, errors)
}

pub fn read_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let too_big = || {
        format!(
            "larger than {} MiB; split it",
            MAX_FILE_BYTES / (1024 * 1024)
        )
    };
    if file.metadata().map_err(|e| e.to_string())?.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    // The size can change under us (a file still being written): never read past the limit.
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    Ok(text)
}

pub fn collect_files(
    path: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
    errors: &mut Vec<InputError>,
) {
    let error = |message: String| InputError {
        file: path.display().to_string(),
        document: None,
        line: None,
        message,
    };
    let real = match std::fs::canonicalize(path) {
        Ok(r) => r,
        Err(e) => return errors.push(error(format!("cannot read: {e}"))),
    };
    // A directory reached twice (a symbolic link to a parent, two links to one place) is walked
    // once; so is a file.
    if !seen.insert(real.clone()) {
        return;
    }
    let meta = match std::fs::metadata(&real) {
        Ok(m) => m,
        Err(e) => return errors.push(error(format!("cannot read: {e}"))),
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    if !meta.is_dir() {
        return errors.push(error(
            "not a regular file or a directory (a FIFO, socket or device): not read".into(),
        ));
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => return errors.push(error(format!("cannot list directory: {e}"))),
    };
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        let manifest = matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if p.is_dir() || manifest {
            collect_files(&p, out, seen, errors);
        }
    }
}

/// How deep `[`/`{` collections nest in a document, outside quoted strings and comments.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    let mut line_start = true;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if line_start || depth == 0 => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            (None, '[' | '{') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        line_start = c == '\n';
    }
    max
}

/// One document of a file, split from the stream but not parsed.
#[derive(Debug)]
pub struct Chunk {
    /// 1-based index of the document in its file.
    pub index: usize,
    /// 1-based line of its first line with content.
    pub line: usize,
    pub text: String,
}

/// Split a YAML stream into documents with their start lines; documents of only comments or
/// blank lines are dropped (their index is kept by the others).
pub fn split(text: &str) -> Vec<Chunk> {
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
    let blank = |c: &str| {
        c.lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    };
    chunks
        .into_iter()
        .filter(|(_, c)| !blank(c))
        .enumerate()
        .map(|(i, (line, text))| {
            // Point at the first line with content, past leading comments.
            let line = line
                + text
                    .lines()
                    .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                    .count();
            Chunk {
                index: i + 1,
                line,
                text,
            }
        })
        .collect()
}

/// `apiVersion` and `kind` of a document written in plain block style, read from its lines
/// at column 0 without parsing it (a block scalar's lines are indented, so a line at column 0
/// is a top-level key). `None` for anything else: flow style, JSON, a key given twice, a
/// value with quotes, anchors or tags. It only decides when a document is parsed, never what
/// it says.
pub fn head(text: &str) -> Option<(&str, &str)> {
    let (mut api, mut kind) = (None, None);
    for line in text.lines() {
        let field = if line.starts_with("apiVersion:") {
            &mut api
        } else if line.starts_with("kind:") {
            &mut kind
        } else {
            continue;
        };
        let value = line.split_once(':')?.1;
        let value = value.split(" #").next()?.trim();
        let plain = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-'));
        if !plain || field.replace(value).is_some() {
            return None;
        }
    }
    Some((api?, kind?))
}

/// Split a YAML stream into documents with their start lines, parse each, flatten Lists.
pub fn parse_stream(
    file: &str,
    text: &str,
    docs: &mut Vec<Document>,
    errors: &mut Vec<InputError>,
) {
    let chunks = split(text);
    let all: Vec<&Chunk> = chunks.iter().collect();
    parse_chunks(file, &all, docs, errors);
}

/// Parse documents of one file (on every core), flatten Lists.
pub fn parse_chunks(
    file: &str,
    chunks: &[&Chunk],
    docs: &mut Vec<Document>,
    errors: &mut Vec<InputError>,
) {
    let json = file.ends_with(".json");
    let parsed = parse_parallel(chunks, json);
    for (chunk, value) in chunks.iter().zip(parsed) {
        match value {
            Ok(Value::Null) => {}
            Ok(v) => flatten(file, chunk.index, chunk.line, v, docs, errors),
            Err(message) => errors.push(InputError {
                file: file.to_string(),
                document: Some(chunk.index),
                line: Some(chunk.line),
                message,
            }),
        }
    }
}

/// YAML parsing dominates `onus check` on large inputs; documents are independent, so parse
/// them on every core.
fn parse_parallel(chunks: &[&Chunk], json: bool) -> Vec<Result<Value, String>> {
    let parse = |c: &str| -> Result<Value, String> {
        let depth = flow_depth(c);
        if depth > MAX_NESTING {
            return Err(format!(
                "collections nested {depth} deep (more than {MAX_NESTING}); not a manifest onus reads"
            ));
        }
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
        return chunks.iter().map(|c| parse(&c.text)).collect();
    }
    let per = chunks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .chunks(per)
            .map(|part| {
                (
                    part.len(),
                    scope.spawn(move || part.iter().map(|c| parse(&c.text)).collect::<Vec<_>>()),
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
    fn symlink_loops_special_files_and_huge_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(".", root.join("self")).unwrap();
        std::os::unix::fs::symlink("a.yaml", root.join("again.yaml")).unwrap();
        let (docs, errors) = load(&[root.to_path_buf()]);
        assert_eq!(docs.len(), 1, "each file read once: {docs:?}");
        assert!(errors.is_empty(), "{errors:?}");

        let fifo = root.join("pipe.yaml");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let (_, errors) = load(std::slice::from_ref(&fifo));
        assert!(
            errors[0].message.contains("not a regular file"),
            "{errors:?}"
        );
        let (_, errors) = load(&[PathBuf::from("/dev/zero")]);
        assert!(
            errors[0].message.contains("not a regular file"),
            "{errors:?}"
        );

        let big = root.join("big.yaml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let (_, errors) = load(std::slice::from_ref(&big));
        assert!(
            errors[0].message.contains("larger than 32 MiB"),
            "{errors:?}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_and_ordinary_flow_style_is_not() {
        let deep = format!("a: {}{}\n", "[".repeat(20_000), "]".repeat(20_000));
        let (mut docs, mut errs) = (Vec::new(), Vec::new());
        parse_stream("deep.yaml", &deep, &mut docs, &mut errs);
        assert!(docs.is_empty());
        assert!(errs[0].message.contains("nested 20000 deep"), "{errs:?}");
        let fine = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '[[[[', labels: {a: \"{{{{\"}}\n# [[[[[[\ndata: {k: '[]'}\n";
        let (mut docs, mut errs) = (Vec::new(), Vec::new());
        parse_stream("fine.yaml", fine, &mut docs, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(docs.len(), 1);
        assert_eq!(flow_depth(fine), 2);
    }

    #[test]
    fn heads_are_read_only_where_plainly_written() {
        let block = "# c\napiVersion: apps/v1\nkind: Deployment # the app\nmetadata:\n  kind: x\n";
        assert_eq!(head(block), Some(("apps/v1", "Deployment")));
        for odd in [
            "{apiVersion: v1, kind: Pod}\n",
            "apiVersion: v1\nkind: Pod\nkind: ConfigMap\n",
            "apiVersion: v1\nkind: \"Pod\"\n",
            "apiVersion: v1\nkind: !!str Pod\n",
            "apiVersion: v1\nkind: &k Pod\n",
            "apiVersion: v1\n",
            "metadata: {name: x,\nkind: Pod, apiVersion: v1}\n",
        ] {
            assert_eq!(head(odd), None, "{odd}");
        }
    }

    #[test]
    fn scalars_are_not_objects() {
        let (mut docs, mut errs) = (Vec::new(), Vec::new());
        parse_stream("s.yaml", "just a string\n", &mut docs, &mut errs);
        assert!(docs.is_empty());
        assert!(errs[0].message.contains("not a Kubernetes object"));
    }
}
