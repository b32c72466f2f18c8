//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`path=value`, `path!=value` on dotted JSON paths such as `metadata.name`, `spec.nodeName`).
//!
//! Parsing is ours (kube only renders selectors); matching reuses `kube::core::Expression`.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::{Expression, SelectorExt};
use serde_json::Value;

use crate::error::ApiError;

/// A parsed `labelSelector` + `fieldSelector` pair; the empty filter matches everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    labels: Vec<Expression>,
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    pub fn parse(
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Self, ApiError> {
        let labels = match label_selector {
            Some(s) => parse_labels(s)?,
            None => Vec::new(),
        };
        let fields = match field_selector {
            Some(s) => parse_fields(s)?,
            None => Vec::new(),
        };
        Ok(Self { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels: BTreeMap<String, String> = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if !self.labels.iter().all(|e| e.matches(&labels)) {
            return false;
        }
        self.fields.iter().all(|(path, equal, want)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let have = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (&have == want) == *equal
        })
    }
}

/// Splits on commas that are not inside `( )`.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(expr: &str, rest: &str) -> Result<BTreeSet<String>, ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: {expr:?}: expected (values)"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn valid_key(key: &str, expr: &str) -> Result<String, ApiError> {
    let key = key.trim();
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "unable to parse requirement: {expr:?}: invalid label key {key:?}"
        )))
    }
}

pub fn parse_labels(selector: &str) -> Result<Vec<Expression>, ApiError> {
    let mut out = Vec::new();
    for expr in split_top_level(selector) {
        let parsed = if let Some((k, v)) = expr.split_once("!=") {
            Expression::NotEqual(valid_key(k, expr)?, v.trim().to_string())
        } else if let Some((k, v)) = expr.split_once("==") {
            Expression::Equal(valid_key(k, expr)?, v.trim().to_string())
        } else if let Some((k, v)) = expr.split_once('=') {
            Expression::Equal(valid_key(k, expr)?, v.trim().to_string())
        } else if let Some(key) = expr.strip_prefix('!') {
            Expression::DoesNotExist(valid_key(key, expr)?)
        } else if let Some((k, rest)) = expr.split_once(" notin ") {
            Expression::NotIn(valid_key(k, expr)?, parse_set(expr, rest)?)
        } else if let Some((k, rest)) = expr.split_once(" in ") {
            Expression::In(valid_key(k, expr)?, parse_set(expr, rest)?)
        } else {
            Expression::Exists(valid_key(expr, expr)?)
        };
        out.push(parsed);
    }
    Ok(out)
}

fn parse_fields(selector: &str) -> Result<Vec<(String, bool, String)>, ApiError> {
    let mut out = Vec::new();
    for expr in split_top_level(selector) {
        let (path, equal, value) = if let Some((k, v)) = expr.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = expr.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = expr.split_once('=') {
            (k, true, v)
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid field selector {expr:?}: expected key=value"
            )));
        };
        out.push((path.trim().to_string(), equal, value.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "spec": {"nodeName": "n1"}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "x", "tier": "gpu"}));
        let m = |s: &str| Filter::parse(Some(s), None).unwrap().matches(&o);
        assert!(m("app=x"));
        assert!(m("app==x,tier"));
        assert!(!m("app!=x"));
        assert!(m("tier in (gpu, cpu)"));
        assert!(!m("tier notin (gpu)"));
        assert!(m("missing notin (gpu),!missing"));
        assert!(!m("missing"));
        assert!(m("app in (x),tier in (a,gpu)"));
    }

    #[test]
    fn field_paths() {
        let o = obj(json!({}));
        let m = |s: &str| Filter::parse(None, Some(s)).unwrap().matches(&o);
        assert!(m("metadata.name=a,metadata.namespace=ns"));
        assert!(!m("metadata.name!=a"));
        assert!(m("spec.nodeName=n1"));
        assert!(m("status.phase="));
    }

    #[test]
    fn bad_selectors_are_400() {
        assert_eq!(parse_labels("a in x").unwrap_err().code(), 400);
        assert_eq!(parse_labels("a b=c").unwrap_err().code(), 400);
        assert_eq!(parse_fields("metadata.name").unwrap_err().code(), 400);
    }
}
