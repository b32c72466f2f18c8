//! `resource`, annotations, and GPU facts of the SKU or of bring-your-own nodes.

use std::collections::BTreeMap;

use super::Checker;
use super::names::{label_key, label_value, selector_as_map, selector_matches};
use crate::api::WorkspaceV1Beta1;
use crate::api::names::{
    ANNOTATION_BYPASS_RESOURCE_CHECKS, ANNOTATION_NODE_CLASS_NAME, ANNOTATION_NODE_IMAGE_FAMILY,
    ANNOTATION_PERFORMANCE_MODE, ANNOTATION_RUNTIME, ANNOTATION_USE_LOCAL_WEIGHTS,
    RESERVED_SELECTOR_KEYS,
};
use crate::catalog::{GpuModel, GpuSku, find_sku, gpu_model_from_product, skus};

/// GPU facts of the nodes a workspace will run on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GpuFacts {
    /// Where the facts come from, for messages (e.g. "one V100 of Standard_NC6s_v3").
    pub device: String,
    /// The GPU model, when known (for bf16/fp16 support).
    pub gpu: Option<GpuModel>,
    /// GPUs per node.
    pub gpus_per_node: u64,
    /// Memory of one GPU, bytes.
    pub memory_per_gpu: u64,
    /// Nodes available (BYO) or requested (`resource.count`).
    pub nodes: u64,
}

impl GpuFacts {
    pub fn from_sku(sku: &GpuSku, nodes: u64) -> Self {
        Self {
            device: format!("one {} of {}", sku.gpu.name, sku.name),
            gpu: Some(sku.gpu),
            gpus_per_node: u64::from(sku.gpu_count),
            memory_per_gpu: sku.memory_per_gpu_bytes(),
            nodes,
        }
    }
}

/// Whether the workspace opts out of GPU-memory errors.
pub(crate) fn bypass_resource_checks(ws: &WorkspaceV1Beta1) -> bool {
    ws.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_BYPASS_RESOURCE_CHECKS))
}

/// Annotation values KAITO constrains.
pub(crate) fn check_annotations(c: &mut Checker<'_>, ws: &WorkspaceV1Beta1) {
    let Some(annotations) = &ws.metadata.annotations else {
        return;
    };
    let enums: [(&str, &[&str]); 4] = [
        (
            ANNOTATION_PERFORMANCE_MODE,
            &["balanced", "interactivity", "throughput"],
        ),
        (ANNOTATION_USE_LOCAL_WEIGHTS, &["true", "false"]),
        (ANNOTATION_NODE_IMAGE_FAMILY, &["ubuntu", "azurelinux"]),
        (ANNOTATION_RUNTIME, &["vllm", "transformers"]),
    ];
    for (key, allowed) in enums {
        if let Some(value) = annotations.get(key)
            && !allowed.contains(&value.as_str())
        {
            c.error(
                format!("metadata.annotations[{key}]"),
                format!("{value:?} is not one of {}", allowed.join(", ")),
            );
        }
    }
    if let (Some(value), Some(allowed)) = (
        annotations.get(ANNOTATION_NODE_CLASS_NAME),
        &c.ctx.node_classes,
    ) && !allowed.contains(value)
    {
        let message = format!(
            "node class {value:?} is not one of the operator's: {}",
            allowed.join(", ")
        );
        c.error(
            format!("metadata.annotations[{ANNOTATION_NODE_CLASS_NAME}]"),
            message,
        );
    }
    if annotations.contains_key(ANNOTATION_BYPASS_RESOURCE_CHECKS) {
        c.warn(
            format!("metadata.annotations[{ANNOTATION_BYPASS_RESOURCE_CHECKS}]"),
            "GPU memory checks are bypassed: their errors are reported as warnings",
        );
    }
}

/// `resource`: count, instance type against node auto-provisioning, the label selector.
pub(crate) fn check_resource(c: &mut Checker<'_>, ws: &WorkspaceV1Beta1) {
    let Some(r) = &ws.resource else {
        c.error("resource", "required (at least resource.labelSelector)");
        return;
    };
    if let Some(count) = r.count
        && count < 1
    {
        c.error("resource.count", format!("must be at least 1 (is {count})"));
    }
    let instance_type = r.instance_type.as_deref().unwrap_or_default();
    if c.ctx.node_auto_provisioning {
        if instance_type.is_empty() {
            c.error(
                "resource.instanceType",
                "required when node auto-provisioning is enabled",
            );
        } else if ws.inference.is_some() && find_sku(c.ctx.cloud_provider, instance_type).is_none()
        {
            // Tuning needs the SKU's GPU facts; its own check says so (see tuning.rs).
            let azure_pattern = c.ctx.cloud_provider == crate::catalog::CloudProvider::Azure
                && (instance_type.starts_with("Standard_N")
                    || instance_type.starts_with("Standard_D"));
            if !azure_pattern {
                let message = unknown_sku_message(c, instance_type);
                c.error("resource.instanceType", message);
            }
        }
        if r.partition.is_some() {
            c.error(
                "resource.partition",
                "GPU partitioning needs bring-your-own nodes (node auto-provisioning off)",
            );
        }
    } else if !instance_type.is_empty() {
        c.error(
            "resource.instanceType",
            "must be empty when node auto-provisioning is disabled; select your GPU nodes with labelSelector",
        );
    }
    if let Some(p) = &r.partition {
        if ws.tuning.is_some() {
            c.error("resource.partition", "tuning cannot run on GPU partitions");
        }
        if !matches!(p.mode.as_str(), "mig" | "accelerator") {
            c.error(
                "resource.partition.mode",
                format!("{:?} is not one of mig, accelerator", p.mode),
            );
        }
        if p.count.is_some_and(|n| n < 1) {
            c.error("resource.partition.count", "must be at least 1");
        }
    }
    check_label_selector(c, ws);
}

pub(crate) fn unknown_sku_message(c: &Checker<'_>, instance_type: &str) -> String {
    let names: Vec<&str> = skus(c.ctx.cloud_provider)
        .iter()
        .filter(|s| !s.retired)
        .map(|s| s.name)
        .collect();
    format!(
        "instance type {instance_type:?} is not a known GPU SKU for {}; use one of {}, or disable node auto-provisioning",
        c.ctx.cloud_provider,
        names.join(", ")
    )
}

fn check_label_selector(c: &mut Checker<'_>, ws: &WorkspaceV1Beta1) {
    let Some(sel) = ws.resource.as_ref().map(|r| &r.label_selector) else {
        return;
    };
    for (key, value) in sel.match_labels.iter().flatten() {
        if let Err(e) = label_key(key) {
            c.error(format!("resource.labelSelector.matchLabels[{key}]"), e);
        }
        if let Err(e) = label_value(value) {
            c.error(format!("resource.labelSelector.matchLabels[{key}]"), e);
        }
    }
    match selector_as_map(sel) {
        Err(e) => c.error("resource.labelSelector", e),
        Ok(map) => {
            let has_labels = sel.match_labels.as_ref().is_some_and(|m| !m.is_empty());
            let kept = map
                .keys()
                .filter(|k| !RESERVED_SELECTOR_KEYS.contains(&k.as_str()))
                .count();
            if has_labels && kept == 0 {
                c.error(
                    "resource.labelSelector.matchLabels",
                    format!(
                        "needs at least one label that is not reserved by KAITO ({})",
                        RESERVED_SELECTOR_KEYS.join(", ")
                    ),
                );
            } else if map.is_empty() {
                c.warn(
                    "resource.labelSelector",
                    "selects every node: give the workspace's nodes a label",
                );
            }
        }
    }
}

/// GPU facts of the BYO nodes matching the selector: `Ok(None)` when nodes are unknown,
/// `Err` (already reported) when none qualifies. Buckets of identical nodes are formed as KAITO
/// does; the one with the most GPU memory in total wins.
pub(crate) fn byo_gpu_facts(
    c: &mut Checker<'_>,
    ws: &WorkspaceV1Beta1,
) -> Result<Option<GpuFacts>, ()> {
    let ctx = c.ctx;
    let (Some(nodes), Some(r)) = (&ctx.nodes, &ws.resource) else {
        return Ok(None);
    };
    let matching: Vec<_> = nodes
        .iter()
        .filter(|n| {
            selector_matches(
                &r.label_selector,
                n.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
            )
        })
        .collect();
    if matching.is_empty() {
        c.error(
            "resource.labelSelector",
            "no node matches the label selector (node auto-provisioning is disabled)",
        );
        return Err(());
    }
    let mut buckets: BTreeMap<(String, u64, u64), u64> = BTreeMap::new();
    for node in &matching {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let num = |k: &str| labels.get(k).and_then(|v| v.parse::<u64>().ok());
        if let (Some(count), Some(mib)) =
            (num("nvidia.com/gpu.count"), num("nvidia.com/gpu.memory"))
        {
            let product = labels
                .get("nvidia.com/gpu.product")
                .cloned()
                .unwrap_or_default();
            *buckets.entry((product, count, mib)).or_default() += 1;
        }
    }
    let best = buckets
        .into_iter()
        .max_by_key(|((_, count, mib), nodes)| count * mib * nodes);
    let Some(((product, count, mib), nodes)) = best else {
        c.error(
            "resource.labelSelector",
            "none of the matching nodes has the nvidia.com/gpu.count and nvidia.com/gpu.memory labels (is GPU feature discovery installed?)",
        );
        return Err(());
    };
    Ok(Some(GpuFacts {
        device: format!(
            "one {} GPU of the selected nodes",
            if product.is_empty() {
                "unnamed"
            } else {
                &product
            }
        ),
        gpu: gpu_model_from_product(&product),
        gpus_per_node: count,
        memory_per_gpu: mib << 20,
        nodes,
    }))
}
