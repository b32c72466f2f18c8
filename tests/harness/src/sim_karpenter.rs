//! `KarpenterSim`: plays Karpenter / gpu-provisioner on `karpenter.sh/v1` NodeClaims.
//!
//! Per NodeClaim, one stage per step: launch (finalizer `karpenter.sh/termination`,
//! providerID, capacity, `Launched=True` — or the injected launch failure), register (a Node
//! with the instance-type, NodeClaim and well-known labels, taints, `nvidia.com/gpu` capacity,
//! Ready; `Registered=True`, `status.nodeName`), initialize (`Initialized=True`, `Ready=True`).
//! A deleting NodeClaim gets its Node deleted and its finalizer removed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::kinds::ResourceKey;
use crate::meta;
use crate::store::Store;

pub const TERMINATION_FINALIZER: &str = "karpenter.sh/termination";

/// How a launch fails: the `Launched` condition's status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchFailure {
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl LaunchFailure {
    /// An Azure cores-quota error, as gpu-provisioner surfaces it.
    pub fn quota() -> Self {
        Self {
            status: "False".into(),
            reason: "LaunchFailed".into(),
            message: "creating instance, OperationNotAllowed: Operation could not be completed as it results in \
                      exceeding approved Standard NCADS_A100_v4 Family Cores quota. Submit a request for Quota increase \
                      (InsufficientCapacity/quota)"
                .into(),
        }
    }

    /// Karpenter's insufficient-capacity error; KAITO treats this message as terminal.
    pub fn capacity() -> Self {
        Self {
            status: "False".into(),
            reason: "InsufficientCapacity".into(),
            message: "creating instance, insufficient capacity, all requested instance types were unavailable during launch".into(),
        }
    }
}

/// GPUs per instance type for the Node's `nvidia.com/gpu` capacity.
pub type GpuCount = Arc<dyn Fn(&str) -> u32 + Send + Sync>;

/// A few common SKUs; unknown ones get 1 GPU. Tests may plug in kaito-core's catalog.
pub fn default_gpu_count(sku: &str) -> u32 {
    match sku {
        "Standard_NC48ads_A100_v4" | "Standard_NC12s_v3" | "Standard_NC80adis_H100_v5" => 2,
        "Standard_NC96ads_A100_v4" | "Standard_NC24s_v3" | "g5.12xlarge" => 4,
        "Standard_ND96asr_v4"
        | "Standard_ND96amsr_A100_v4"
        | "Standard_ND96isr_H100_v5"
        | "p4d.24xlarge" => 8,
        s if s.starts_with("Standard_D") || s.starts_with("Standard_E") => 0,
        _ => 1,
    }
}

struct Config {
    gpus: GpuCount,
    fail_all: Option<LaunchFailure>,
    fail_next: VecDeque<LaunchFailure>,
}

/// The simulator; clone it freely (clones share configuration).
#[derive(Clone)]
pub struct KarpenterSim {
    store: Store,
    cfg: Arc<Mutex<Config>>,
}

/// A running simulator loop; dropping it stops the loop.
pub struct SimHandle(tokio::task::JoinHandle<()>);

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `step` whenever the store changes (and every 50 ms), pausing `delay` after progress.
pub(crate) fn spawn_loop(
    store: Store,
    delay: Duration,
    step: impl Fn() -> usize + Send + 'static,
) -> SimHandle {
    let mut rx = store.subscribe();
    SimHandle(tokio::spawn(async move {
        loop {
            if step() > 0 {
                tokio::time::sleep(delay).await;
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        }
    }))
}

/// Applies `f` to the object; true when that produced a new resourceVersion.
pub(crate) fn changed(
    store: &Store,
    key: &ResourceKey,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut Value),
) -> bool {
    let before = store
        .get_raw(key, ns, name)
        .and_then(|o| meta::resource_version(&o).map(str::to_string));
    match store.update_raw_with(key, ns, name, f) {
        Ok(after) => meta::resource_version(&after).map(str::to_string) != before,
        Err(_) => false,
    }
}

pub(crate) fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let generation = obj
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let conds = obj
        .as_object_mut()
        .and_then(|m| {
            m.entry("status")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        })
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    let new = json!({"type": kind, "status": status, "reason": reason, "message": message,
                     "lastTransitionTime": meta::now(), "observedGeneration": generation});
    match conds.iter_mut().find(|c| c["type"] == kind) {
        Some(c) if c["status"] == status && c["reason"] == reason => {}
        Some(c) => *c = new,
        None => conds.push(new),
    }
}

pub(crate) fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?["status"]
        .as_str()
}

/// The single value of an `In` requirement on `key`.
fn requirement(nc: &Value, key: &str) -> Option<String> {
    nc.pointer("/spec/requirements")?
        .as_array()?
        .iter()
        .find_map(|r| {
            (r["key"] == key && r["operator"] == "In")
                .then(|| r["values"][0].as_str().map(str::to_string))
                .flatten()
        })
}

impl KarpenterSim {
    pub fn new(store: Store) -> Self {
        let cfg = Config {
            gpus: Arc::new(default_gpu_count),
            fail_all: None,
            fail_next: VecDeque::new(),
        };
        Self {
            store,
            cfg: Arc::new(Mutex::new(cfg)),
        }
    }

    fn cfg(&self) -> std::sync::MutexGuard<'_, Config> {
        self.cfg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the SKU -> GPU count function used for Node capacity.
    pub fn with_gpu_count(self, f: impl Fn(&str) -> u32 + Send + Sync + 'static) -> Self {
        self.cfg().gpus = Arc::new(f);
        self
    }

    /// Every launch from now on fails this way (`None` to stop failing).
    pub fn fail_launches(&self, failure: Option<LaunchFailure>) {
        self.cfg().fail_all = failure;
    }

    /// The next launch fails this way (queued; one failure per launch).
    pub fn fail_next_launch(&self, failure: LaunchFailure) {
        self.cfg().fail_next.push_back(failure);
    }

    /// Advances every NodeClaim by one stage; returns how many changed.
    pub fn step(&self) -> usize {
        let key = ResourceKey::nodeclaims();
        let claims = self.store.list_raw(&key, None, None).unwrap_or_default();
        claims.iter().filter(|nc| self.advance(nc)).count()
    }

    /// Steps until nothing changes (at most 16 rounds); returns the total number of changes.
    pub fn settle(&self) -> usize {
        let mut total = 0;
        for _ in 0..16 {
            match self.step() {
                0 => break,
                n => total += n,
            }
        }
        total
    }

    /// Run mode: advances NodeClaims in the background, one stage every `delay`.
    pub fn spawn(&self, delay: Duration) -> SimHandle {
        let sim = self.clone();
        spawn_loop(self.store.clone(), delay, move || sim.step())
    }

    fn advance(&self, nc: &Value) -> bool {
        let name = meta::name(nc).to_string();
        if meta::is_deleting(nc) {
            return self.terminate(nc, &name);
        }
        match (
            condition(nc, "Launched"),
            condition(nc, "Registered"),
            condition(nc, "Initialized"),
        ) {
            (Some("False"), _, _) => false, // terminal launch failure
            (Some("True"), Some("True"), Some("True")) => false,
            (Some("True"), Some("True"), _) => self.initialize(&name),
            (Some("True"), _, _) => self.register(nc, &name),
            _ => self.launch(nc, &name),
        }
    }

    /// Whether the write changed anything (a no-op keeps the resourceVersion).
    fn update(&self, name: &str, f: impl FnOnce(&mut Value)) -> bool {
        changed(&self.store, &ResourceKey::nodeclaims(), "", name, f)
    }

    fn launch(&self, nc: &Value, name: &str) -> bool {
        let failure = {
            let mut cfg = self.cfg();
            cfg.fail_next.pop_front().or_else(|| cfg.fail_all.clone())
        };
        if let Some(f) = failure {
            // An unchanged failure is a no-op write (no new resourceVersion), so not progress.
            return self.update(name, |o| {
                set_condition(o, "Launched", &f.status, &f.reason, &f.message);
                set_condition(o, "Ready", &f.status, &f.reason, &f.message);
            });
        }
        let sku = requirement(nc, "node.kubernetes.io/instance-type")
            .unwrap_or_else(|| "Standard_NC24ads_A100_v4".into());
        let gpus = (self.cfg().gpus)(&sku);
        let provider_id = format!(
            "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_kaito/providers/\
             Microsoft.Compute/virtualMachineScaleSets/aks-{name}-12345678-vmss/virtualMachines/0"
        );
        self.update(name, |o| {
            let fins = meta::meta_mut(o).entry("finalizers").or_insert_with(|| json!([]));
            if let Some(a) = fins.as_array_mut()
                && !a.iter().any(|f| f == TERMINATION_FINALIZER)
            {
                a.push(json!(TERMINATION_FINALIZER));
            }
            let cap = json!({"cpu": "24", "memory": "220Gi", "ephemeral-storage": "1024Gi", "pods": "110",
                             "nvidia.com/gpu": gpus.to_string()});
            if let Some(status) = o.as_object_mut().map(|m| m.entry("status").or_insert_with(|| json!({}))) {
                status["providerID"] = json!(provider_id);
                status["imageID"] = json!("/CommunityGalleries/AKSUbuntu-38d80f77-467a-481f-a8d4-09b6d4220bd2/images/2204gen2containerd/versions/202501.01.0");
                status["capacity"] = cap.clone();
                status["allocatable"] = cap;
            }
            set_condition(o, "Launched", "True", "Launched", "");
            set_condition(o, "Registered", "Unknown", "AwaitingReconciliation", "object is awaiting reconciliation");
            set_condition(o, "Initialized", "Unknown", "AwaitingReconciliation", "object is awaiting reconciliation");
            set_condition(o, "Ready", "Unknown", "AwaitingReconciliation", "object is awaiting reconciliation");
        })
    }

    fn node_name(name: &str) -> String {
        format!("aks-{name}-12345678-vmss000000")
    }

    fn register(&self, nc: &Value, name: &str) -> bool {
        let node_name = Self::node_name(name);
        let sku = requirement(nc, "node.kubernetes.io/instance-type")
            .unwrap_or_else(|| "Standard_NC24ads_A100_v4".into());
        let mut labels: Map<String, Value> = nc
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // Karpenter copies single-valued In requirements to labels.
        for r in nc
            .pointer("/spec/requirements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if r["operator"] == "In"
                && let (Some(k), Some([v])) =
                    (r["key"].as_str(), r["values"].as_array().map(Vec::as_slice))
            {
                labels.insert(k.to_string(), v.clone());
            }
        }
        labels
            .entry("karpenter.sh/nodepool")
            .or_insert(json!("kaito"));
        labels.insert("node.kubernetes.io/instance-type".into(), json!(sku));
        labels.insert("kubernetes.io/os".into(), json!("linux"));
        labels.insert("kubernetes.io/arch".into(), json!("amd64"));
        labels.insert("kubernetes.io/hostname".into(), json!(node_name));
        labels.insert("karpenter.sh/registered".into(), json!("true"));
        let status = nc.get("status").cloned().unwrap_or_default();
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node_name, "labels": labels,
                "ownerReferences": [{"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "name": name,
                                     "uid": meta::uid(nc), "blockOwnerDeletion": true}]},
            "spec": {"providerID": status["providerID"], "taints": nc.pointer("/spec/taints").cloned().unwrap_or(json!([]))},
            "status": {"capacity": status["capacity"], "allocatable": status["allocatable"],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status", "lastHeartbeatTime": meta::now(),
                                "lastTransitionTime": meta::now()}],
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.34.0"}}
        });
        let nodes = ResourceKey::new("", "nodes");
        if self.store.get_raw(&nodes, "", &node_name).is_none()
            && self.store.create_raw(&nodes, node).is_err()
        {
            return false;
        }
        self.update(name, |o| {
            o["status"]["nodeName"] = json!(node_name);
            set_condition(o, "Registered", "True", "Registered", "");
        })
    }

    fn initialize(&self, name: &str) -> bool {
        let nodes = ResourceKey::new("", "nodes");
        let _ = self
            .store
            .update_raw_with(&nodes, "", &Self::node_name(name), |n| {
                if let Some(l) = n
                    .pointer_mut("/metadata/labels")
                    .and_then(Value::as_object_mut)
                {
                    l.insert("karpenter.sh/initialized".into(), json!("true"));
                }
            });
        self.update(name, |o| {
            set_condition(o, "Initialized", "True", "Initialized", "");
            set_condition(o, "Ready", "True", "Ready", "");
        })
    }

    fn terminate(&self, nc: &Value, name: &str) -> bool {
        if !meta::finalizers(nc)
            .iter()
            .any(|f| f == TERMINATION_FINALIZER)
        {
            return false; // someone else's finalizer: not ours to clear
        }
        let node = nc
            .pointer("/status/nodeName")
            .and_then(Value::as_str)
            .map_or_else(|| Self::node_name(name), str::to_string);
        let _ = self
            .store
            .delete_raw(&ResourceKey::new("", "nodes"), "", &node);
        self.update(name, |o| {
            if let Some(Value::Array(f)) = meta::meta_mut(o).get_mut("finalizers") {
                f.retain(|x| x != TERMINATION_FINALIZER);
            }
        })
    }
}
