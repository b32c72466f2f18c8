//! [`KarpenterProvisioner`]: GPU nodes through `karpenter.sh/v1` NodeClaims, as KAITO's
//! azure-gpu-provisioner mode does (kaito.md §2 step 6; backends.md §2).
//!
//! The claims are listed straight from the apiserver (no informer cache), so a claim created by
//! an earlier reconcile (or an earlier operator process) is always counted: no expectations
//! bookkeeping is needed to avoid duplicates.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kaito_core::Result;
use kaito_core::api::names::LABEL_INSTANCE_TYPE;
use kaito_core::api::reason;
use kaito_core::traits::{
    NodeProvisioner, NodeReadiness, NodeRequirements, ProvisionedNode, WorkspaceRef,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::nodeclaim::{ClaimSettings, NodeClaim, build_claim, claim_name, workspace_selector};
use super::{gpu_capacity, is_node_ready, kube_error};

/// Label KAITO adds to GPU nodes so the NVIDIA device plugin DaemonSet schedules there.
pub const LABEL_ACCELERATOR: &str = "accelerator";
/// Karpenter's wording for an insufficient-capacity launch failure, which KAITO treats as terminal.
const ICE_MESSAGE: &str = "all requested instance types were unavailable during launch";
/// The lifecycle conditions, in the order Karpenter sets them.
const LIFECYCLE: [&str; 3] = ["Launched", "Registered", "Initialized"];

/// Provisions GPU nodes with Karpenter NodeClaims.
#[derive(Clone)]
pub struct KarpenterProvisioner {
    client: kube::Client,
    settings: ClaimSettings,
}

impl KarpenterProvisioner {
    /// A provisioner creating claims with `settings` through `client`.
    pub fn new(client: kube::Client, settings: ClaimSettings) -> Self {
        Self { client, settings }
    }

    fn claims_api(&self) -> Api<NodeClaim> {
        Api::all(self.client.clone())
    }

    /// The workspace's NodeClaims, oldest first.
    pub async fn claims(&self, ws: &WorkspaceRef) -> Result<Vec<NodeClaim>> {
        let lp = ListParams::default().labels(&workspace_selector(ws));
        let mut items = self
            .claims_api()
            .list(&lp)
            .await
            .map_err(|e| kube_error("listing NodeClaims", e))?
            .items;
        items.sort_by(|a, b| {
            (
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &a.metadata.name,
            )
                .cmp(&(
                    b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    &b.metadata.name,
                ))
        });
        Ok(items)
    }

    async fn node(&self, name: &str) -> Result<Option<Node>> {
        Api::<Node>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(|e| kube_error(&format!("reading node {name}"), e))
    }

    /// Adds `accelerator: nvidia` to a node that lacks it (KAITO does this so the chart's device
    /// plugin DaemonSet lands on the node).
    async fn label_accelerator(&self, node: &Node) -> Result<()> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let patch =
            serde_json::json!({ "metadata": { "labels": { LABEL_ACCELERATOR: "nvidia" } } });
        Api::<Node>::all(self.client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| kube_error(&format!("labelling node {name}"), e))?;
        Ok(())
    }
}

/// Why a claim is not ready yet, or why it never will be.
fn claim_problem(claim: &NodeClaim) -> NodeReadiness {
    let name = claim.metadata.name.clone().unwrap_or_default();
    for type_ in LIFECYCLE {
        match claim.condition(type_) {
            Some(c) if c.status == "True" => continue,
            Some(c) => {
                let message = if c.message.is_empty() {
                    format!("NodeClaim {name}: {type_} is {}", c.status)
                } else {
                    format!("NodeClaim {name}: {}", c.message)
                };
                let reason = if c.reason.is_empty() {
                    reason::NODECLAIM_NOT_READY.to_owned()
                } else {
                    c.reason.clone()
                };
                let terminal =
                    type_ == "Launched" && (c.status == "False" || c.message.contains(ICE_MESSAGE));
                return if terminal {
                    NodeReadiness::Failed { reason, message }
                } else {
                    NodeReadiness::Pending { reason, message }
                };
            }
            None => {
                return NodeReadiness::Pending {
                    reason: reason::NODECLAIM_NOT_READY.into(),
                    message: format!("NodeClaim {name}: waiting for {type_}"),
                };
            }
        }
    }
    NodeReadiness::Pending {
        reason: reason::NODECLAIM_NOT_READY.into(),
        message: format!("NodeClaim {name} is not Ready yet"),
    }
}

#[async_trait]
impl NodeProvisioner for KarpenterProvisioner {
    fn name(&self) -> &'static str {
        "karpenter"
    }

    async fn ensure_nodes(&self, req: &NodeRequirements) -> Result<()> {
        if req.instance_type.is_none() {
            return Err(kaito_core::Error::backend(
                kaito_core::ErrorKind::InvalidInput,
                format!(
                    "workspace {}/{}: resource.instanceType is required to create NodeClaims",
                    req.workspace.namespace, req.workspace.name
                ),
            ));
        }
        let existing = self
            .claims(&req.workspace)
            .await?
            .iter()
            .filter(|c| !c.is_deleting())
            .count();
        let api = self.claims_api();
        for i in existing..req.count as usize {
            let nonce = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let name = claim_name(&req.workspace, &format!("{nonce}-{i}"));
            let claim = build_claim(req, &name, &self.settings);
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    tracing::info!(nodeclaim = %name, workspace = %req.workspace.name, "created NodeClaim")
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(kube_error(&format!("creating NodeClaim {name}"), e)),
            }
        }
        Ok(())
    }

    async fn readiness(&self, req: &NodeRequirements) -> Result<NodeReadiness> {
        let claims: Vec<NodeClaim> = self
            .claims(&req.workspace)
            .await?
            .into_iter()
            .filter(|c| !c.is_deleting())
            .collect();
        // A terminal failure on any claim is reported even while others come up fine.
        if let Some(failed) = claims
            .iter()
            .filter(|c| !c.is_ready())
            .map(claim_problem)
            .find(|r| matches!(r, NodeReadiness::Failed { .. }))
        {
            return Ok(failed);
        }
        let ready: Vec<&NodeClaim> = claims.iter().filter(|c| c.is_ready()).collect();
        if ready.len() < req.count as usize {
            let first_problem = claims.iter().find(|c| !c.is_ready()).map(claim_problem);
            return Ok(first_problem.unwrap_or_else(|| NodeReadiness::Pending {
                reason: reason::NODECLAIM_NOT_READY.into(),
                message: format!("{} of {} NodeClaims ready", ready.len(), req.count),
            }));
        }
        let mut nodes = Vec::new();
        for claim in ready.iter().take(req.count as usize) {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            let Some(node_name) = claim.status.as_ref().and_then(|s| s.node_name.clone()) else {
                return Ok(NodeReadiness::Pending {
                    reason: reason::NODE_NOT_READY.into(),
                    message: format!("NodeClaim {claim_name} has no node yet"),
                });
            };
            let Some(node) = self.node(&node_name).await? else {
                return Ok(NodeReadiness::Pending {
                    reason: reason::NODE_NOT_READY.into(),
                    message: format!("node {node_name} not found"),
                });
            };
            let labels = node.metadata.labels.clone().unwrap_or_default();
            let instance_type = labels.get(LABEL_INSTANCE_TYPE);
            if !is_node_ready(&node) || instance_type != req.instance_type.as_ref() {
                return Ok(NodeReadiness::Pending {
                    reason: reason::NODE_NOT_READY.into(),
                    message: format!(
                        "node {node_name} is not Ready with instance type {}",
                        req.instance_type.as_deref().unwrap_or_default()
                    ),
                });
            }
            if !labels.contains_key(LABEL_ACCELERATOR) {
                self.label_accelerator(&node).await?;
            }
            if gpu_capacity(&node) == 0 {
                return Ok(NodeReadiness::Pending {
                    reason: reason::NODE_PLUGINS_NOT_READY.into(),
                    message: format!("node {node_name} has no nvidia.com/gpu capacity yet"),
                });
            }
            nodes.push(node_name);
        }
        nodes.sort();
        Ok(NodeReadiness::Ready { nodes })
    }

    async fn delete_nodes(&self, workspace: &WorkspaceRef) -> Result<()> {
        let api = self.claims_api();
        for claim in self
            .claims(workspace)
            .await?
            .iter()
            .filter(|c| !c.is_deleting())
        {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(nodeclaim = %name, workspace = %workspace.name, "deleted NodeClaim")
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kube_error(&format!("deleting NodeClaim {name}"), e)),
            }
        }
        Ok(())
    }

    async fn list_nodes(&self, workspace: &WorkspaceRef) -> Result<Vec<ProvisionedNode>> {
        let claims = self.claims(workspace).await?;
        Ok(claims
            .into_iter()
            .map(|c| {
                let instance_type = c
                    .spec
                    .requirements
                    .iter()
                    .find(|r| r.key == LABEL_INSTANCE_TYPE)
                    .and_then(|r| r.values.first().cloned());
                ProvisionedNode {
                    ready: c.is_ready(),
                    name: c.metadata.name.clone().unwrap_or_default(),
                    node_name: c.status.and_then(|s| s.node_name),
                    instance_type,
                }
            })
            .collect())
    }
}
