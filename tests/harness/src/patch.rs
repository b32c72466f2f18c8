//! PATCH bodies by content type: JSON patch (RFC 6902, `test` ops included), merge patch
//! (RFC 7386), strategic merge and server-side apply (both treated as merge patch).

use serde_json::Value;

use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(ApiError::Injected {
                code: 415,
                reason: "UnsupportedMediaType".into(),
                message: format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
            }),
        }
    }
}

/// Parses the request body: JSON for every kind, YAML also accepted for apply.
pub fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == PatchKind::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("apply patch body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "apply patch body is neither JSON ({json_err}) nor YAML ({e})"
                ))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "patch body is not valid JSON: {e}"
        ))),
    }
}

/// Applies `patch` to a copy of `current`; a failed `test` op or a bad path is 422 Invalid,
/// as the real apiserver reports it.
pub fn apply(kind: PatchKind, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            for op in ops.0 {
                // The apiserver's JSON patch (evanphx) lets `test` of a missing path against
                // null pass; kube's finalizer helper relies on it. json-patch does not.
                if let json_patch::PatchOperation::Test(t) = &op
                    && t.value.is_null()
                    && doc.pointer(t.path.as_str()).is_none_or(Value::is_null)
                {
                    continue;
                }
                json_patch::patch(&mut doc, &[op]).map_err(|e| {
                    ApiError::invalid(format!(
                        "the server rejected our request due to an error in our request: {e}"
                    ))
                })?;
            }
        }
        PatchKind::Merge | PatchKind::StrategicMerge | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "merge patch body must be a JSON object",
                ));
            }
            json_patch::merge(&mut doc, patch);
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_op_failure_is_422() {
        let cur = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": ["b"]},
            {"op": "remove", "path": "/metadata/finalizers/0"}
        ]);
        assert_eq!(
            apply(PatchKind::Json, &cur, &patch).unwrap_err().code(),
            422
        );
        let ok = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["a"]},
                        {"op": "remove", "path": "/metadata/finalizers/0"}]);
        let out = apply(PatchKind::Json, &cur, &ok).unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": []}}));
    }

    #[test]
    fn json_patch_test_null_passes_on_missing_path() {
        let cur = json!({"metadata": {"name": "a"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        let out = apply(PatchKind::Json, &cur, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        let present = json!({"metadata": {"finalizers": ["x"]}});
        assert_eq!(
            apply(PatchKind::Json, &present, &patch).unwrap_err().code(),
            422
        );
    }

    #[test]
    fn merge_patch_removes_nulls_and_replaces_lists() {
        let cur = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        let out = apply(PatchKind::Merge, &cur, &json!({"b": {"c": null}, "l": [3]})).unwrap();
        assert_eq!(out, json!({"a": 1, "b": {"d": 3}, "l": [3]}));
    }

    #[test]
    fn content_types_and_yaml_apply() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchKind::Merge
        );
        assert_eq!(
            PatchKind::from_content_type("text/plain")
                .unwrap_err()
                .code(),
            415
        );
        let v = parse_body(PatchKind::Apply, b"metadata:\n  labels:\n    a: b\n").unwrap();
        assert_eq!(v, json!({"metadata": {"labels": {"a": "b"}}}));
    }
}
