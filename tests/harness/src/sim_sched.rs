//! A tiny scheduler for the workload simulators: the first Ready, non-deleting Node that
//! satisfies a pod's nodeSelector, required node affinity and NoSchedule/NoExecute taints.

use serde_json::Value;

use crate::kinds::ResourceKey;
use crate::meta;
use crate::store::Store;

fn label<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn requirement_ok(node: &Value, req: &Value) -> bool {
    let key = req["key"].as_str().unwrap_or("");
    let values: Vec<&str> = req["values"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let have = label(node, key);
    match req["operator"].as_str().unwrap_or("") {
        "In" => have.is_some_and(|h| values.contains(&h)),
        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(h), Some(v)) = (
                have.and_then(|h| h.parse::<i64>().ok()),
                values.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if req["operator"] == "Gt" {
                h > v
            } else {
                h < v
            }
        }
        _ => false,
    }
}

fn affinity_ok(node: &Value, spec: &Value) -> bool {
    let Some(terms) = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    // Terms are ORed, expressions within a term ANDed.
    terms.is_empty()
        || terms.iter().any(|t| {
            t["matchExpressions"]
                .as_array()
                .is_none_or(|exprs| exprs.iter().all(|r| requirement_ok(node, r)))
        })
}

fn tolerated(taint: &Value, tolerations: &[Value]) -> bool {
    tolerations.iter().any(|t| {
        let key_ok = match t["key"].as_str() {
            None | Some("") => t["operator"] == "Exists",
            Some(k) => Some(k) == taint["key"].as_str(),
        };
        let value_ok = t["operator"] == "Exists"
            || t["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or("");
        let effect_ok = t["effect"]
            .as_str()
            .is_none_or(|e| e.is_empty() || Some(e) == taint["effect"].as_str());
        key_ok && value_ok && effect_ok
    })
}

/// Whether a pod with this `spec` may run on `node`.
pub(crate) fn fits(node: &Value, spec: &Value) -> bool {
    if !node_ready(node) || meta::is_deleting(node) {
        return false;
    }
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .is_none_or(|sel| sel.iter().all(|(k, v)| label(node, k) == v.as_str()));
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let taints_ok = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_none_or(|ts| {
            ts.iter()
                .filter(|t| t["effect"] != "PreferNoSchedule")
                .all(|t| tolerated(t, &tolerations))
        });
    selector_ok && taints_ok && affinity_ok(node, spec)
}

/// The name of the first Node (by name) that fits, if any.
pub(crate) fn pick_node(store: &Store, spec: &Value) -> Option<String> {
    if let Some(name) = spec["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    let nodes = store
        .list_raw(&ResourceKey::new("", "nodes"), None, None)
        .ok()?;
    nodes
        .iter()
        .find(|n| fits(n, spec))
        .map(|n| meta::name(n).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_affinity_and_taints() {
        let node = json!({
            "metadata": {"name": "n", "labels": {"kaito.sh/workspace": "ws", "node.kubernetes.io/instance-type": "Standard_NC24ads_A100_v4"}},
            "spec": {"taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let tol =
            json!([{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
        let aff = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kaito.sh/workspace", "operator": "In", "values": ["ws"]}]}]}}});
        assert!(fits(&node, &json!({"tolerations": tol, "affinity": aff})));
        assert!(!fits(&node, &json!({"affinity": aff})), "untolerated taint");
        let other = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kaito.sh/workspace", "operator": "In", "values": ["other"]}]}]}}});
        assert!(!fits(
            &node,
            &json!({"tolerations": tol, "affinity": other})
        ));
        assert!(!fits(
            &node,
            &json!({"tolerations": tol, "nodeSelector": {"a": "b"}})
        ));
        let mut not_ready = node.clone();
        not_ready["status"]["conditions"][0]["status"] = json!("False");
        assert!(!fits(&not_ready, &json!({"tolerations": tol})));
    }
}
