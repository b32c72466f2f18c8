//! Operator settings (flags and environment, parsed in `cmd/operator.rs`).

use kaito_core::catalog::CloudProvider;

/// Which [`kaito_core::traits::NodeProvisioner`] gives workspaces their nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProvisionerKind {
    /// Karpenter / Azure gpu-provisioner NodeClaims (`karpenter.sh/v1`).
    #[default]
    Karpenter,
    /// Bring-your-own nodes selected by the workspace's labels.
    Byo,
    /// AKS agent pools through Azure Resource Manager (not in this build yet).
    Aks,
}

/// Settings of one operator process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorConfig {
    /// Node provisioner.
    pub provisioner: ProvisionerKind,
    /// Cloud (SKU table, NodeClaim node class, tolerations).
    pub cloud: CloudProvider,
    /// The kaito-rs image the tuning Job and inference pods run.
    pub image: String,
    /// Namespace of the operator's release (default tuning ConfigMaps, leader Lease).
    pub release_namespace: String,
    /// `nodeClassRef.name` of NodeClaims.
    pub node_class_name: String,
    /// Node image family when a workspace sets none.
    pub node_image_family: String,
    /// The tuning Job's `backoffLimit`.
    pub backoff_limit: i32,
    /// Node directory where GPU pods keep compiled kernels between runs (None: no cache).
    pub kernel_cache_host_path: Option<String>,
    /// This process's identity (pod name) for events and the Lease.
    pub instance: String,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            provisioner: ProvisionerKind::Karpenter,
            cloud: CloudProvider::Azure,
            image: "ghcr.io/kaito-rs/kaito:latest".into(),
            release_namespace: "kaito-system".into(),
            node_class_name: "default".into(),
            node_image_family: "ubuntu".into(),
            backoff_limit: 6,
            kernel_cache_host_path: Some(
                kaito_core::workload::DEFAULT_KERNEL_CACHE_HOST_PATH.into(),
            ),
            instance: "kaito-operator".into(),
        }
    }
}
