//! Finding the Kubernetes Node behind an agent pool, and judging whether it is usable.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::spec::{LABEL_AGENTPOOL, LABEL_AKS_AGENTPOOL};
use crate::Error;
use crate::provision::{gpu_capacity, is_node_ready};

/// Lists nodes by one label; `kube::Client` implements it, tests use an in-memory list.
#[async_trait]
pub trait NodeLister: Send + Sync {
    /// Nodes carrying the label `key=value`.
    async fn nodes_labelled(&self, key: &str, value: &str) -> Result<Vec<Node>, Error>;
}

#[async_trait]
impl NodeLister for kube::Client {
    async fn nodes_labelled(&self, key: &str, value: &str) -> Result<Vec<Node>, Error> {
        Api::<Node>::all(self.clone())
            .list(&ListParams::default().labels(&format!("{key}={value}")))
            .await
            .map(|list| list.items)
            .map_err(|source| Error::Kube {
                what: format!("listing nodes labelled {key}={value}"),
                source,
            })
    }
}

/// What the nodes of one pool look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolNodes {
    /// No node has registered yet.
    None,
    /// A node exists but is not Ready.
    NotReady(String),
    /// Ready, but the device plugin has not reported GPUs yet.
    NoGpu(String),
    /// Ready (with GPUs when the pool is a GPU pool).
    Ready(String),
}

impl PoolNodes {
    /// The node's name, if one registered.
    pub fn node_name(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::NotReady(n) | Self::NoGpu(n) | Self::Ready(n) => Some(n),
        }
    }
}

/// The state of `pool`'s node, found by `kubernetes.azure.com/agentpool`, else `agentpool`.
pub async fn pool_nodes(
    lister: &dyn NodeLister,
    pool: &str,
    needs_gpu: bool,
) -> Result<PoolNodes, Error> {
    let mut nodes = lister.nodes_labelled(LABEL_AKS_AGENTPOOL, pool).await?;
    if nodes.is_empty() {
        nodes = lister.nodes_labelled(LABEL_AGENTPOOL, pool).await?;
    }
    nodes.retain(|n| n.metadata.deletion_timestamp.is_none());
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let judged = nodes.iter().map(|n| {
        let name = n.metadata.name.clone().unwrap_or_default();
        if !is_node_ready(n) {
            PoolNodes::NotReady(name)
        } else if needs_gpu && gpu_capacity(n) == 0 {
            PoolNodes::NoGpu(name)
        } else {
            PoolNodes::Ready(name)
        }
    });
    // The best node wins: one pool has one node, but a replaced VM may briefly show two.
    Ok(judged
        .max_by_key(|s| match s {
            PoolNodes::None => 0,
            PoolNodes::NotReady(_) => 1,
            PoolNodes::NoGpu(_) => 2,
            PoolNodes::Ready(_) => 3,
        })
        .unwrap_or(PoolNodes::None))
}
