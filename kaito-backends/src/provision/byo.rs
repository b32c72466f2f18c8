//! [`ByoProvisioner`]: bring-your-own GPU nodes, matched by the workspace's label selector.
//!
//! It never creates or deletes anything. GPU facts come from the labels NVIDIA's GPU feature
//! discovery puts on nodes (`nvidia.com/gpu.product`, `.count`, `.memory` in MiB per GPU) and
//! are checked against what the workload needs, so a too-small node is a readable failure
//! instead of an OOM-killed pod.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kaito_core::Result;
use kaito_core::api::reason;
use kaito_core::traits::{
    NodeProvisioner, NodeReadiness, NodeRequirements, ProvisionedNode, WorkspaceRef,
};
use kube::api::{Api, ListParams};

use super::{gpu_capacity, is_node_ready, kube_error};

/// GPU feature discovery label: the GPU model.
pub const LABEL_GPU_PRODUCT: &str = "nvidia.com/gpu.product";
/// GPU feature discovery label: GPUs per node.
pub const LABEL_GPU_COUNT: &str = "nvidia.com/gpu.count";
/// GPU feature discovery label: memory per GPU in MiB.
pub const LABEL_GPU_MEMORY: &str = "nvidia.com/gpu.memory";

/// Reason when matching nodes have too little GPU memory for the workload.
pub const REASON_INSUFFICIENT_GPU_MEMORY: &str = "InsufficientGPUMemory";
/// Reason when the selector matches no or too few nodes.
pub const REASON_NO_MATCHING_NODES: &str = "NoMatchingNodes";

/// GPU facts of one node, from its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuFacts {
    /// `nvidia.com/gpu.product`.
    pub product: Option<String>,
    /// `nvidia.com/gpu.count`.
    pub count: Option<u64>,
    /// `nvidia.com/gpu.memory` in MiB per GPU.
    pub memory_mib: Option<u64>,
}

impl GpuFacts {
    /// Reads the facts from a node's labels.
    pub fn of(node: &Node) -> Self {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let num = |k: &str| labels.get(k).and_then(|v| v.parse::<u64>().ok());
        Self {
            product: labels.get(LABEL_GPU_PRODUCT).cloned(),
            count: num(LABEL_GPU_COUNT),
            memory_mib: num(LABEL_GPU_MEMORY),
        }
    }

    /// Total GPU memory of the node in bytes, when both count and memory are labelled.
    pub fn total_bytes(&self) -> Option<u64> {
        Some(
            self.count?
                .saturating_mul(self.memory_mib?)
                .saturating_mul(1 << 20),
        )
    }
}

/// Uses existing nodes that carry the workspace's labels.
#[derive(Clone)]
pub struct ByoProvisioner {
    client: kube::Client,
}

impl ByoProvisioner {
    /// A BYO provisioner reading nodes through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    async fn matching_nodes(
        &self,
        req_labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Node>> {
        if req_labels.is_empty() {
            return Ok(Vec::new());
        }
        let selector = req_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_error("listing nodes", e))?
            .items;
        nodes.retain(|n| n.metadata.deletion_timestamp.is_none());
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(nodes)
    }
}

#[async_trait]
impl NodeProvisioner for ByoProvisioner {
    fn name(&self) -> &'static str {
        "byo"
    }

    async fn ensure_nodes(&self, _req: &NodeRequirements) -> Result<()> {
        Ok(())
    }

    async fn readiness(&self, req: &NodeRequirements) -> Result<NodeReadiness> {
        if req.labels.is_empty() {
            return Ok(NodeReadiness::Failed {
                reason: REASON_NO_MATCHING_NODES.into(),
                message:
                    "bring-your-own nodes need resource.labelSelector.matchLabels to select them"
                        .into(),
            });
        }
        let nodes = self.matching_nodes(&req.labels).await?;
        let ready: Vec<&Node> = nodes.iter().filter(|n| is_node_ready(n)).collect();
        if ready.len() < req.count as usize {
            return Ok(NodeReadiness::Pending {
                reason: if nodes.is_empty() {
                    REASON_NO_MATCHING_NODES.into()
                } else {
                    reason::NODE_NOT_READY.into()
                },
                message: format!(
                    "{} of {} nodes matching {:?} are Ready",
                    ready.len(),
                    req.count,
                    req.labels
                ),
            });
        }
        let chosen = &ready[..req.count as usize];
        for node in chosen {
            let name = node.metadata.name.clone().unwrap_or_default();
            let facts = GpuFacts::of(node);
            if gpu_capacity(node) == 0 {
                return Ok(NodeReadiness::Pending {
                    reason: reason::NODE_PLUGINS_NOT_READY.into(),
                    message: format!("node {name} has no nvidia.com/gpu capacity"),
                });
            }
            if let Some(needed) = req.gpu_memory_bytes {
                match facts.total_bytes() {
                    None => {
                        return Ok(NodeReadiness::Pending {
                            reason: reason::NODE_PLUGINS_NOT_READY.into(),
                            message: format!(
                                "node {name} lacks the {LABEL_GPU_COUNT} and {LABEL_GPU_MEMORY} labels (GPU feature discovery)"
                            ),
                        });
                    }
                    Some(total) if total < needed => {
                        return Ok(NodeReadiness::Failed {
                            reason: REASON_INSUFFICIENT_GPU_MEMORY.into(),
                            message: format!(
                                "node {name} ({}) has {} MiB of GPU memory, the workload needs {} MiB",
                                facts.product.as_deref().unwrap_or("unknown GPU"),
                                total >> 20,
                                needed.div_ceil(1 << 20)
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        let mut names: Vec<String> = chosen
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        names.sort();
        Ok(NodeReadiness::Ready { nodes: names })
    }

    async fn delete_nodes(&self, _workspace: &WorkspaceRef) -> Result<()> {
        Ok(())
    }

    async fn list_nodes(&self, _workspace: &WorkspaceRef) -> Result<Vec<ProvisionedNode>> {
        // BYO nodes belong to the user: nothing is "provisioned", so deletion waits on nothing.
        Ok(Vec::new())
    }
}
