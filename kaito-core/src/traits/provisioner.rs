//! `NodeProvisioner`: gives a workspace its GPU nodes.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;

/// Identifies a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceRef {
    /// The workspace's namespace.
    pub namespace: String,
    /// The workspace's name.
    pub name: String,
}

/// A node taint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTaint {
    /// Taint key, e.g. `sku`.
    pub key: String,
    /// Taint value, e.g. `gpu`.
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// What a workspace needs from its nodes; computed by the planner from the Workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRequirements {
    /// The owning workspace.
    pub workspace: WorkspaceRef,
    /// The VM SKU; `None` for bring-your-own nodes.
    pub instance_type: Option<String>,
    /// How many nodes.
    pub count: u32,
    /// Labels the nodes must carry (the sanitized user selector); provisioners add the
    /// `kaito.sh/workspace*` labels themselves.
    pub labels: BTreeMap<String, String>,
    /// Taints to put on created nodes (KAITO: `sku=gpu:NoSchedule`).
    pub taints: Vec<NodeTaint>,
    /// OS disk size in GiB.
    pub os_disk_gib: u32,
    /// GPU memory the workload needs per node, in bytes, when known (checked by BYO).
    pub gpu_memory_bytes: Option<u64>,
    /// Node OS image family (`ubuntu`, `azurelinux`), when the workspace asks for one.
    pub node_image_family: Option<String>,
}

/// Whether a workspace's nodes are usable, with a reason a person can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeReadiness {
    /// All nodes are ready with GPU capacity.
    Ready {
        /// The ready nodes' names, sorted.
        nodes: Vec<String>,
    },
    /// Still coming up; check again later.
    Pending {
        /// A CamelCase reason (e.g. `NodeClaimNotReady`, `NodePluginsNotReady`).
        reason: String,
        /// What is being waited on.
        message: String,
    },
    /// Cannot become ready without a change (quota exceeded, SKU unavailable in the region).
    Failed {
        /// A CamelCase reason (e.g. `QuotaExceeded`, `SkuNotAvailable`).
        reason: String,
        /// The provider's explanation.
        message: String,
    },
}

/// One node (or node claim / agent pool) a provisioner manages for a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionedNode {
    /// The provider object's name (NodeClaim, agent pool, node).
    pub name: String,
    /// The Kubernetes node's name once registered.
    pub node_name: Option<String>,
    /// The node's instance type, when known.
    pub instance_type: Option<String>,
    /// Whether the node is Ready with GPU capacity.
    pub ready: bool,
}

/// Provisions, watches and deletes the nodes of workspaces.
///
/// Contract for every implementation:
/// - `ensure_nodes` is idempotent: calling it again with the same requirements creates nothing
///   new, and an in-progress creation found after a restart is reused, not duplicated.
/// - "Not found" is not an error for `delete_nodes` (deleting twice succeeds) nor for
///   `list_nodes` (an empty list).
/// - Errors are [`crate::Error::Backend`]; `Retryable` ones (API timeouts, 429, conflicts) are
///   retried by the caller with backoff, the others are shown to the user as they are.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait NodeProvisioner: Send + Sync {
    /// A short name for logs and status (`karpenter`, `aks`, `byo`, `local`).
    fn name(&self) -> &'static str;

    /// Makes sure the nodes `req` describes exist or are being created.
    async fn ensure_nodes(&self, req: &NodeRequirements) -> Result<()>;

    /// Reports whether the nodes are ready; never creates anything.
    async fn readiness(&self, req: &NodeRequirements) -> Result<NodeReadiness>;

    /// Deletes every node this provisioner created for the workspace.
    async fn delete_nodes(&self, workspace: &WorkspaceRef) -> Result<()>;

    /// Lists the nodes this provisioner manages for the workspace.
    async fn list_nodes(&self, workspace: &WorkspaceRef) -> Result<Vec<ProvisionedNode>>;
}
