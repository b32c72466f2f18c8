//! The `NodeProvisioner` contract for [`AksProvisioner`], and waiting for deletions.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::time::OffsetDateTime;
use kaito_core::ErrorKind;
use kaito_core::traits::{
    NodeProvisioner, NodeReadiness, NodeRequirements, ProvisionedNode, WorkspaceRef,
};

use super::nodes::{PoolNodes, pool_nodes};
use super::operation::OperationStatus;
use super::provisioner::{AksProvisioner, Tracked, combine};
use super::spec::{LABEL_MACHINE_TYPE, pool_body};
use crate::Error;

#[async_trait]
impl NodeProvisioner for AksProvisioner {
    fn name(&self) -> &'static str {
        "aks"
    }

    /// Creates each missing pool (one per node) and returns once ARM accepted the creates.
    /// Existing pools, and creates this process already started, are left alone.
    async fn ensure_nodes(&self, req: &NodeRequirements) -> kaito_core::Result<()> {
        let names = Self::pool_names(req)?;
        if names.is_empty() {
            return Ok(());
        }
        // Validated before any call, so a bad workspace never half-creates its pools.
        let body = pool_body(req, OffsetDateTime::now_utc())?;
        for name in &names {
            self.ensure_pool(name, &body).await?;
        }
        Ok(())
    }

    async fn readiness(&self, req: &NodeRequirements) -> kaito_core::Result<NodeReadiness> {
        let mut states = Vec::new();
        for name in Self::pool_names(req)? {
            states.push(self.pool_readiness(&name).await?);
        }
        Ok(combine(states))
    }

    /// Starts deleting every pool of the workspace and returns once ARM accepted; pools
    /// already `Deleting` or gone count as done. [`AksProvisioner::wait_deleted`] waits.
    async fn delete_nodes(&self, workspace: &WorkspaceRef) -> kaito_core::Result<()> {
        for pool in self.pools_of(workspace).await? {
            let Some(name) = pool.name.clone() else {
                continue;
            };
            if pool.provisioning_state() == "Deleting" {
                continue;
            }
            match self.client.begin_delete(&name).await? {
                Some(op) => self.track(&name, Tracked::Deleting(op)),
                None => {
                    self.untrack(&name);
                }
            }
            tracing::info!(pool = %name, "started deleting agent pool");
        }
        Ok(())
    }

    async fn list_nodes(
        &self,
        workspace: &WorkspaceRef,
    ) -> kaito_core::Result<Vec<ProvisionedNode>> {
        let mut out = Vec::new();
        for pool in self.pools_of(workspace).await? {
            let Some(name) = pool.name.clone() else {
                continue;
            };
            let needs_gpu = pool.label(LABEL_MACHINE_TYPE) != Some("cpu");
            let nodes = pool_nodes(self.nodes.as_ref(), &name, needs_gpu).await?;
            let settled = matches!(pool.provisioning_state(), "Succeeded" | "");
            out.push(ProvisionedNode {
                node_name: nodes.node_name().map(str::to_owned),
                instance_type: pool.properties.vm_size.clone(),
                ready: settled && matches!(nodes, PoolNodes::Ready(_)),
                name,
            });
        }
        Ok(out)
    }
}

impl AksProvisioner {
    /// Waits until every pool of the workspace is gone, polling the delete operations this
    /// process started (`Location` / `Azure-AsyncOperation`) or, for pools found `Deleting`,
    /// the pools themselves. A pool that is neither gone nor deleting is an error.
    pub async fn wait_deleted(
        &self,
        workspace: &WorkspaceRef,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        for pool in self.pools_of(workspace).await? {
            let Some(name) = pool.name.clone() else {
                continue;
            };
            let mut op = match self.untrack(&name) {
                Some(Tracked::Deleting(op)) => op,
                _ => self
                    .client
                    .deletion_watch(&name, &format!("deleting agent pool {name}")),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match self.client.wait(&mut op, left).await {
                Ok(OperationStatus::Succeeded) => {}
                Ok(OperationStatus::InProgress) => self.track(&name, Tracked::Deleting(op)),
                Ok(OperationStatus::Failed(f)) => {
                    return Err(Error::Arm {
                        kind: ErrorKind::Terminal,
                        what: op.what,
                        code: Some(f.code),
                        message: f.message,
                        source: None,
                    });
                }
                Err(e) => {
                    self.track(&name, Tracked::Deleting(op));
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
