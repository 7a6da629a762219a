//! A Kubernetes object as the engine sees it: identity plus the raw JSON body.
//!
//! The engine reads fields from JSON instead of typed structs: it must judge half-valid
//! manifests and third-party kinds without failing on fields it does not know.

use serde::Serialize;
use serde_json::Value;

/// Identity of a Kubernetes object, as verdicts and reports name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// API group, empty for the core group.
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((g, _)) => g,
            None => "",
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} in {ns}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// A parsed object.
#[derive(Clone, Debug)]
pub struct Object {
    pub id: ObjectRef,
    pub body: Value,
}

/// Why a document is not a Kubernetes object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    #[error("not a mapping")]
    NotAMapping,
    #[error("missing {0}")]
    Missing(&'static str),
}

impl Object {
    /// Wrap a JSON body; `default_namespace` applies when `metadata.namespace` is empty.
    pub fn from_value(body: Value, default_namespace: Option<&str>) -> Result<Object, ObjectError> {
        let map = body.as_object().ok_or(ObjectError::NotAMapping)?;
        let api_version = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or(ObjectError::Missing("apiVersion"))?;
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .ok_or(ObjectError::Missing("kind"))?;
        let meta = map.get("metadata");
        let name = meta
            .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
            .and_then(Value::as_str)
            .ok_or(ObjectError::Missing("metadata.name"))?;
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or(default_namespace)
            .map(str::to_string);
        Ok(Object {
            id: ObjectRef {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace,
                name: name.to_string(),
            },
            body,
        })
    }

    pub fn kind(&self) -> &str {
        &self.id.kind
    }

    pub fn group(&self) -> &str {
        self.id.group()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.id.namespace.as_deref()
    }

    /// Field at a dotted path (`spec.template.spec`).
    pub fn at(&self, path: &str) -> Option<&Value> {
        at(&self.body, path)
    }

    pub fn str_at(&self, path: &str) -> Option<&str> {
        self.at(path).and_then(Value::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.body
            .get("metadata")?
            .get("annotations")?
            .get(key)?
            .as_str()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.body.get("metadata")?.get("labels")?.get(key)?.as_str()
    }
}

/// Field at a dotted path.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Array at a dotted path, empty when absent.
pub fn list<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A boolean that may be written as a string (`"true"`), as annotations and parameters do.
pub fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}
