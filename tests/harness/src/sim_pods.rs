//! Pod lifecycle shared by the workload simulators (the kubelet's part): create from a
//! template, bind to a fitting Node and run (Ready), terminate with an exit code.

use serde_json::{Value, json};

use crate::kinds::ResourceKey;
use crate::meta;
use crate::sim_karpenter::changed;
use crate::store::Store;

pub(crate) fn pods() -> ResourceKey {
    ResourceKey::new("", "pods")
}

/// Pods of `ns` controlled by the object with `owner_uid`, by name.
pub(crate) fn owned_pods(store: &Store, ns: &str, owner_uid: &str) -> Vec<Value> {
    store
        .list_raw(&pods(), Some(ns), None)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| meta::owner_uids(p).iter().any(|u| u == owner_uid))
        .collect()
}

pub(crate) fn phase(pod: &Value) -> &str {
    meta::str_at(pod, "/status/phase").unwrap_or("Pending")
}

pub(crate) fn is_terminal(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

pub(crate) fn is_ready(pod: &Value) -> bool {
    phase(pod) == "Running"
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
}

/// Creates a Pending pod from `owner`'s pod template (at `/spec/template`).
pub(crate) fn create_from_template(
    store: &Store,
    owner: &Value,
    name: &str,
    extra_labels: Value,
) -> Option<Value> {
    let template = owner.pointer("/spec/template").cloned().unwrap_or_default();
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    if let (Some(l), Some(extra)) = (labels.as_object_mut(), extra_labels.as_object()) {
        l.extend(extra.clone());
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": meta::namespace(owner), "labels": labels,
            "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta::name(owner),
                                 "uid": meta::uid(owner), "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
        "status": {"phase": "Pending"}
    });
    store.create_raw(&pods(), pod).ok()
}

fn set_pod_condition(
    pod: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    crate::sim_karpenter::set_condition(
        pod,
        kind,
        status,
        reason.unwrap_or(""),
        message.unwrap_or(""),
    );
}

/// Binds a Pending pod to a fitting Node and makes it Running and Ready; if no Node fits,
/// marks it Unschedulable. Returns whether anything changed.
pub(crate) fn schedule_and_run(store: &Store, pod: &Value) -> bool {
    if phase(pod) != "Pending" || meta::is_deleting(pod) {
        return false;
    }
    let (ns, name) = (
        meta::namespace(pod).to_string(),
        meta::name(pod).to_string(),
    );
    let spec = pod.get("spec").cloned().unwrap_or_default();
    let Some(node) = crate::sim_sched::pick_node(store, &spec) else {
        return changed(store, &pods(), &ns, &name, |p| {
            set_pod_condition(
                p,
                "PodScheduled",
                "False",
                Some("Unschedulable"),
                Some(
                    "0/1 nodes are available: no node matches the pod's node affinity/selector or tolerates its taints",
                ),
            );
        });
    };
    changed(store, &pods(), &ns, &name, |p| {
        p["spec"]["nodeName"] = json!(node);
        let now = meta::now();
        let containers: Vec<Value> = spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true, "started": true,
                            "restartCount": 0, "state": {"running": {"startedAt": now}}}))
            .collect();
        let st = &mut p["status"];
        st["phase"] = json!("Running");
        st["hostIP"] = json!("10.224.0.4");
        st["podIP"] = json!("10.244.1.10");
        st["startTime"] = now.clone();
        st["containerStatuses"] = json!(containers);
        for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            set_pod_condition(p, c, "True", None, None);
        }
    })
}

/// Terminates a pod: `Succeeded` (exit 0) or `Failed` (exit 1), with an optional
/// termination message on every container.
pub(crate) fn terminate(
    store: &Store,
    pod: &Value,
    succeeded: bool,
    message: Option<&str>,
) -> bool {
    let (ns, name) = (
        meta::namespace(pod).to_string(),
        meta::name(pod).to_string(),
    );
    changed(store, &pods(), &ns, &name, |p| {
        let now = meta::now();
        let (code, reason) = if succeeded {
            (0, "Completed")
        } else {
            (1, "Error")
        };
        let names: Vec<Value> = p
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| c["name"].clone())
            .collect();
        let statuses: Vec<Value> = names
            .into_iter()
            .map(|n| {
                let mut term = json!({"exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now});
                if let Some(m) = message {
                    term["message"] = json!(m);
                }
                json!({"name": n, "ready": false, "started": false, "restartCount": 0, "state": {"terminated": term}})
            })
            .collect();
        p["status"]["phase"] = json!(if succeeded { "Succeeded" } else { "Failed" });
        p["status"]["containerStatuses"] = json!(statuses);
        set_pod_condition(p, "Ready", "False", Some("PodCompleted"), None);
        set_pod_condition(p, "ContainersReady", "False", Some("PodCompleted"), None);
    })
}
