//! What kaito asks AKS for: pool names and the agent pool body (backends.md §1.3-1.4).

use std::collections::BTreeMap;

use azure_core::time::OffsetDateTime;
use kaito_core::api::names::{LABEL_WORKSPACE, LABEL_WORKSPACE_NAMESPACE};
use kaito_core::traits::{NodeRequirements, WorkspaceRef};
use sha2::{Digest, Sha256};

use super::models::{AgentPool, AgentPoolProperties};
use crate::Error;

/// Node label: `gpu` for N-series VM sizes, else `cpu` (as gpu-provisioner sets it).
pub const LABEL_MACHINE_TYPE: &str = "kaito.sh/machine-type";
/// Node label: when the pool was created, UTC, `2006-01-02T15-04-05Z` (label values allow no `:`).
pub const LABEL_CREATION_TIMESTAMP: &str = "kaito.sh/creation-timestamp";
/// Node label marking pools this provisioner owns; garbage collection only touches these.
/// Deliberately not `karpenter.sh/nodepool`: gpu-provisioner's GC would delete such pools.
pub const LABEL_NODE_PROVISIONER: &str = "kaito.sh/node-provisioner";
/// Value of [`LABEL_NODE_PROVISIONER`].
pub const PROVISIONER_NAME: &str = "aks";
/// Node label AKS puts on every node of a pool (newer form).
pub const LABEL_AKS_AGENTPOOL: &str = "kubernetes.azure.com/agentpool";
/// Node label AKS puts on every node of a pool (older form).
pub const LABEL_AGENTPOOL: &str = "agentpool";

/// One pool per node; two decimal digits of index keep names within 12 characters.
pub const MAX_NODES: u32 = 100;
/// Hex digits of the workspace hash in a pool name (`ws` + 8 + 2 digits = 12).
const HASH_DIGITS: usize = 8;
/// Longest label value Kubernetes accepts.
const MAX_LABEL_VALUE: usize = 63;

/// The pool for node `index` of a workspace: `ws` + 8 hex of sha256(namespace/name) + 2 digits.
///
/// Deterministic (unlike kaito's NodeClaim names, which hash the time) so that after a restart
/// the pool being created is found by name instead of a second one being started.
pub fn pool_name(ws: &WorkspaceRef, index: u32) -> Result<String, Error> {
    if index >= MAX_NODES {
        return Err(Error::invalid(
            format!("workspace {}/{} resource.count", ws.namespace, ws.name),
            format!("the aks provisioner creates at most {MAX_NODES} nodes per workspace"),
        ));
    }
    let digest = Sha256::digest(format!("{}/{}", ws.namespace, ws.name).as_bytes());
    let hash = hex::encode(digest);
    Ok(format!("ws{}{index:02}", &hash[..HASH_DIGITS]))
}

/// AKS's rule for Linux pool names: `^[a-z][a-z0-9]{0,11}$`.
pub fn is_valid_pool_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 12
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The PUT body for one of the workspace's pools.
pub fn pool_body(req: &NodeRequirements, now: OffsetDateTime) -> Result<AgentPool, Error> {
    let ws = &req.workspace;
    let what = |field: &str| format!("workspace {}/{} {field}", ws.namespace, ws.name);
    let vm_size = req
        .instance_type
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            Error::invalid(
                what("resource.instanceType"),
                "the aks provisioner needs a VM size",
            )
        })?;
    let os_disk = i32::try_from(req.os_disk_gib)
        .ok()
        .filter(|gib| *gib > 0)
        .ok_or_else(|| {
            Error::invalid(
                what("OS disk size"),
                format!("{} GiB is not a usable disk size", req.os_disk_gib),
            )
        })?;
    let os_sku = match req
        .node_image_family
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ubuntu") => "Ubuntu",
        Some("azurelinux") => "AzureLinux",
        Some(other) => {
            return Err(Error::invalid(
                what("node image family"),
                format!("{other:?} is not supported; use ubuntu or azurelinux"),
            ));
        }
    };
    for value in [&ws.name, &ws.namespace] {
        if value.len() > MAX_LABEL_VALUE {
            return Err(Error::invalid(
                what("name"),
                "longer than 63 characters, so it cannot be a node label value",
            ));
        }
    }

    let mut labels: BTreeMap<String, String> = req.labels.clone();
    labels.insert(LABEL_WORKSPACE.into(), ws.name.clone());
    labels.insert(LABEL_WORKSPACE_NAMESPACE.into(), ws.namespace.clone());
    let gpu = vm_size.to_ascii_lowercase().contains("standard_n");
    labels.insert(
        LABEL_MACHINE_TYPE.into(),
        if gpu { "gpu" } else { "cpu" }.into(),
    );
    labels.insert(LABEL_CREATION_TIMESTAMP.into(), format_timestamp(now));
    labels.insert(LABEL_NODE_PROVISIONER.into(), PROVISIONER_NAME.into());

    let mut taints = Vec::with_capacity(req.taints.len());
    for t in &req.taints {
        if !matches!(
            t.effect.as_str(),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute"
        ) {
            return Err(Error::invalid(
                what("taint"),
                format!("{}: unknown effect {:?}", t.key, t.effect),
            ));
        }
        taints.push(if t.value.is_empty() {
            format!("{}:{}", t.key, t.effect)
        } else {
            format!("{}={}:{}", t.key, t.value, t.effect)
        });
    }

    Ok(AgentPool {
        properties: AgentPoolProperties {
            count: Some(1),
            vm_size: Some(vm_size),
            os_disk_size_gb: Some(os_disk),
            os_type: Some("Linux".into()),
            os_sku: Some(os_sku.into()),
            mode: Some("User".into()),
            pool_type: Some("VirtualMachineScaleSets".into()),
            node_labels: Some(labels),
            node_taints: Some(taints),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// The workspace a pool belongs to, if this provisioner created it.
pub fn owner_of(pool: &AgentPool) -> Option<WorkspaceRef> {
    if pool.label(LABEL_NODE_PROVISIONER) != Some(PROVISIONER_NAME) {
        return None;
    }
    Some(WorkspaceRef {
        namespace: pool.label(LABEL_WORKSPACE_NAMESPACE)?.to_owned(),
        name: pool.label(LABEL_WORKSPACE)?.to_owned(),
    })
}

/// `2006-01-02T15-04-05Z`.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(azure_core::time::OffsetDateTime::UNIX_EPOCH.offset());
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The inverse of [`format_timestamp`]; `None` for anything else.
pub fn parse_timestamp(label: &str) -> Option<OffsetDateTime> {
    let (date, time) = label.split_once('T')?;
    azure_core::time::parse_rfc3339(&format!("{date}T{}", time.replace('-', ":"))).ok()
}

#[cfg(test)]
mod tests {
    use kaito_core::traits::NodeTaint;

    use super::*;

    fn req() -> NodeRequirements {
        NodeRequirements {
            workspace: WorkspaceRef {
                namespace: "default".into(),
                name: "tune-phi".into(),
            },
            instance_type: Some("Standard_NC24ads_A100_v4".into()),
            count: 1,
            labels: BTreeMap::from([("apps".to_owned(), "phi".to_owned())]),
            taints: vec![NodeTaint {
                key: "sku".into(),
                value: "gpu".into(),
                effect: "NoSchedule".into(),
            }],
            os_disk_gib: 1024,
            gpu_memory_bytes: None,
            node_image_family: Some("AzureLinux".into()),
        }
    }

    #[test]
    fn names_are_valid_deterministic_and_distinct() {
        let ws = req().workspace;
        let a = pool_name(&ws, 0).unwrap_or_default();
        assert!(is_valid_pool_name(&a), "{a}");
        assert_eq!(a.len(), 12);
        assert_eq!(Some(a.clone()), pool_name(&ws, 0).ok());
        assert_ne!(Some(a.clone()), pool_name(&ws, 1).ok());
        let other = WorkspaceRef {
            namespace: "other".into(),
            name: "tune-phi".into(),
        };
        assert_ne!(Some(a), pool_name(&other, 0).ok());
        assert!(pool_name(&ws, MAX_NODES).is_err());
        for bad in ["", "1abc", "Abc", "abc-def", "abcdefghijklm"] {
            assert!(!is_valid_pool_name(bad), "{bad}");
        }
    }

    #[test]
    fn body_maps_like_gpu_provisioner() {
        let now = OffsetDateTime::from_unix_timestamp(1_764_360_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let body = pool_body(&req(), now)
            .map(|b| serde_json::to_value(b).unwrap_or_default())
            .unwrap_or_default();
        let p = &body["properties"];
        assert_eq!(p["count"], 1);
        assert_eq!(p["vmSize"], "Standard_NC24ads_A100_v4");
        assert_eq!(p["osDiskSizeGB"], 1024);
        assert_eq!(p["osSKU"], "AzureLinux");
        assert_eq!(p["mode"], "User");
        assert_eq!(p["type"], "VirtualMachineScaleSets");
        assert_eq!(p["nodeTaints"], serde_json::json!(["sku=gpu:NoSchedule"]));
        let labels = &p["nodeLabels"];
        assert_eq!(labels["apps"], "phi");
        assert_eq!(labels["kaito.sh/workspace"], "tune-phi");
        assert_eq!(labels["kaito.sh/workspacenamespace"], "default");
        assert_eq!(labels["kaito.sh/machine-type"], "gpu");
        assert_eq!(labels["kaito.sh/node-provisioner"], "aks");
        assert_eq!(
            labels["kaito.sh/creation-timestamp"],
            "2025-11-28T20-00-00Z"
        );
    }

    #[test]
    fn bad_requirements_name_the_field() {
        let mut r = req();
        r.instance_type = None;
        assert!(
            pool_body(&r, OffsetDateTime::UNIX_EPOCH)
                .is_err_and(|e| e.to_string().contains("instanceType"))
        );
        let mut r = req();
        r.node_image_family = Some("windows".into());
        assert!(
            pool_body(&r, OffsetDateTime::UNIX_EPOCH)
                .is_err_and(|e| e.to_string().contains("node image family"))
        );
        let mut r = req();
        r.os_disk_gib = 0;
        assert!(pool_body(&r, OffsetDateTime::UNIX_EPOCH).is_err());
        let mut r = req();
        r.taints[0].effect = "Sometimes".into();
        assert!(
            pool_body(&r, OffsetDateTime::UNIX_EPOCH)
                .is_err_and(|e| e.to_string().contains("taint"))
        );
    }

    #[test]
    fn timestamps_round_trip_and_ownership() {
        let now = OffsetDateTime::from_unix_timestamp(1_764_360_123)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(parse_timestamp(&format_timestamp(now)), Some(now));
        assert_eq!(parse_timestamp("yesterday"), None);
        let pool = pool_body(&req(), now).unwrap_or_default();
        assert_eq!(owner_of(&pool), Some(req().workspace));
        let mut foreign = pool;
        foreign
            .properties
            .node_labels
            .as_mut()
            .map(|l| l.remove(LABEL_NODE_PROVISIONER));
        assert_eq!(owner_of(&foreign), None);
    }
}
