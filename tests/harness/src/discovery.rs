//! Discovery documents (`/api`, `/apis`, `/apis/{group}`, `/api/v1`, `/apis/{group}/{version}`,
//! `/version`) for clients that discover kinds (kube's `Discovery`, kubectl).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::store::Store;

pub(crate) fn version() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-kaito-harness",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"
    })
}

pub(crate) fn core_versions() -> Value {
    json!({"kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

/// group -> served versions (preferred first).
fn group_versions(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in store.kinds().into_iter().filter(|k| !k.group.is_empty()) {
        let versions = out.entry(k.group.clone()).or_default();
        for v in k.versions {
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
    }
    out
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let gv: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": gv, "preferredVersion": gv.first().cloned().unwrap_or(Value::Null)})
}

pub(crate) fn groups(store: &Store) -> Value {
    let groups: Vec<Value> = group_versions(store)
        .iter()
        .map(|(g, v)| group_doc(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn group(store: &Store, group: &str) -> Option<Value> {
    let versions = group_versions(store).remove(group)?;
    let mut doc = group_doc(group, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

pub(crate) fn resources(store: &Store, group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<_> = store
        .kinds()
        .into_iter()
        .filter(|k| k.group == group && k.versions.iter().any(|v| v == version))
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for k in &kinds {
        resources.push(json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced,
                              "kind": k.kind, "verbs": verbs}));
        if k.status_subresource {
            resources.push(json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced,
                                  "kind": k.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
