//! Small accessors on JSON objects' `metadata`, and the apiserver's timestamp format.

use serde_json::{Map, Value};

pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

pub fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name").unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    str_at(obj, "/metadata/namespace").unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    str_at(obj, "/metadata/uid").unwrap_or("")
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    str_at(obj, "/metadata/resourceVersion").filter(|s| !s.is_empty())
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// `metadata` as a mutable map, created if absent (a non-object `metadata` is replaced).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("object ensured above");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("object ensured above")
}

/// The uids in `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Now, RFC 3339 with second precision, exactly as k8s-openapi's `Time` serialises it.
pub fn now() -> Value {
    let ts = k8s_openapi::jiff::Timestamp::now();
    let secs = k8s_openapi::jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts);
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(secs))
        .unwrap_or(Value::Null)
}

/// The object without `metadata` (and without `status` when `skip_status`): what a change
/// must touch to bump `metadata.generation`.
pub fn generation_relevant(obj: &Value, skip_status: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if skip_status {
            m.remove("status");
        }
    }
    v
}

/// Drops null and empty `metadata` collections, as the apiserver's `omitempty` fields do
/// (so `finalizers: []` reads back as absent, which kube's finalizer helper expects).
pub fn normalize(obj: &mut Value) {
    let md = meta_mut(obj);
    md.retain(|_, v| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    });
}
