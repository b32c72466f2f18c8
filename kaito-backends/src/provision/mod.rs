//! Node provisioning backends: [`KarpenterProvisioner`] (Karpenter / gpu-provisioner
//! NodeClaims), [`ByoProvisioner`] (bring-your-own nodes) and [`aks`] (AKS agent pools).

pub mod aks;
mod byo;
mod karpenter;
pub mod nodeclaim;

#[cfg(test)]
mod tests;

pub use byo::{
    ByoProvisioner, GpuFacts, LABEL_GPU_COUNT, LABEL_GPU_MEMORY, LABEL_GPU_PRODUCT,
    REASON_INSUFFICIENT_GPU_MEMORY, REASON_NO_MATCHING_NODES,
};
pub use karpenter::{KarpenterProvisioner, LABEL_ACCELERATOR};
pub use nodeclaim::{ClaimSettings, CloudProvider, NodeClaim};

use k8s_openapi::api::core::v1::Node;

/// The extended resource the NVIDIA device plugin registers.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// A kube error as the trait's error, naming the call.
pub(crate) fn kube_error(what: &str, source: kube::Error) -> kaito_core::Error {
    crate::Error::Kube {
        what: what.to_owned(),
        source,
    }
    .into()
}

/// Whether the node's `Ready` condition is True.
pub fn is_node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node's `nvidia.com/gpu` capacity (0 when absent or unparsable).
pub fn gpu_capacity(node: &Node) -> u64 {
    node.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(GPU_RESOURCE))
        .and_then(|q| q.0.parse().ok())
        .unwrap_or(0)
}
