//! [`AksProvisioner`]: one AKS agent pool per workspace node, through ARM.
//!
//! `ensure_nodes` and `delete_nodes` only start operations; `readiness` advances them one poll
//! at a time (never sooner than ARM's `Retry-After`), so a reconcile never blocks for the
//! minutes a VM takes. Operations live in memory; after a restart the pools' own
//! `provisioningState` carries on, and pool names are deterministic so nothing is created twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;
use azure_core::time::OffsetDateTime;
use kaito_core::ErrorKind;
use kaito_core::api::reason;
use kaito_core::traits::{NodeReadiness, NodeRequirements, WorkspaceRef};

use super::client::AgentPoolsClient;
use super::config::{AksConfig, credential_from_env};
use super::errors::{ArmFailure, is_create_in_progress};
use super::models::AgentPool;
use super::nodes::{NodeLister, PoolNodes, pool_nodes};
use super::operation::{Operation, OperationStatus};
use super::spec::{LABEL_MACHINE_TYPE, owner_of, pool_name};
use crate::Error;

/// Reason when a pool ended `Failed` and the operation's own error is no longer known.
pub const REASON_AGENT_POOL_FAILED: &str = "AgentPoolFailed";

/// What this process knows about a pool beyond what ARM's GET says.
#[derive(Clone, Debug)]
pub(super) enum Tracked {
    /// A create this process started (or found running).
    Creating(Operation),
    /// A delete this process started.
    Deleting(Operation),
    /// A create that failed for good, with ARM's code and message.
    Failed(ArmFailure),
}

/// One pool's contribution to a workspace's readiness.
pub(super) enum PoolReadiness {
    Ready(String),
    Pending(&'static str, String),
    Failed(ArmFailure),
}

/// Gives workspaces GPU nodes as AKS agent pools (one single-node pool per node).
pub struct AksProvisioner {
    pub(super) client: AgentPoolsClient,
    pub(super) nodes: Arc<dyn NodeLister>,
    pub(super) tracked: Mutex<HashMap<String, Tracked>>,
}

impl AksProvisioner {
    /// A provisioner for the cluster `config` names.
    pub fn new(
        config: AksConfig,
        credential: Arc<dyn TokenCredential>,
        nodes: Arc<dyn NodeLister>,
    ) -> Result<Self, Error> {
        Ok(Self {
            client: AgentPoolsClient::new(config, credential)?,
            nodes,
            tracked: Mutex::new(HashMap::new()),
        })
    }

    /// Configuration and credential from the environment (see [`AksConfig::from_lookup`] and
    /// [`credential_from_env`]); nodes are read through `kube`.
    pub fn from_env(kube: kube::Client) -> Result<Self, Error> {
        Self::new(
            AksConfig::from_env()?,
            credential_from_env()?,
            Arc::new(kube),
        )
    }

    /// The ARM client, for callers that need a raw call.
    pub fn client(&self) -> &AgentPoolsClient {
        &self.client
    }

    /// The pool names `req` asks for, in node order.
    pub fn pool_names(req: &NodeRequirements) -> Result<Vec<String>, Error> {
        (0..req.count)
            .map(|i| pool_name(&req.workspace, i))
            .collect()
    }

    pub(super) fn track(&self, pool: &str, state: Tracked) {
        if let Ok(mut t) = self.tracked.lock() {
            t.insert(pool.to_owned(), state);
        }
    }

    pub(super) fn untrack(&self, pool: &str) -> Option<Tracked> {
        self.tracked.lock().ok()?.remove(pool)
    }

    pub(super) fn tracked(&self, pool: &str) -> Option<Tracked> {
        self.tracked.lock().ok()?.get(pool).cloned()
    }

    /// The pools this provisioner created for `ws`.
    pub async fn pools_of(&self, ws: &WorkspaceRef) -> Result<Vec<AgentPool>, Error> {
        let mut pools: Vec<AgentPool> = self
            .client
            .list()
            .await?
            .into_iter()
            .filter(|p| owner_of(p).as_ref() == Some(ws))
            .collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pools)
    }

    /// Creates the pool unless it exists or is known; see `ensure_nodes`.
    pub(super) async fn ensure_pool(&self, name: &str, body: &AgentPool) -> Result<(), Error> {
        if matches!(
            self.tracked(name),
            Some(Tracked::Creating(_) | Tracked::Failed(_))
        ) {
            return Ok(());
        }
        if self.client.get(name).await?.is_some() {
            return Ok(());
        }
        match self.client.begin_create(name, body).await {
            Ok(started) => {
                tracing::info!(pool = name, "started creating agent pool");
                if let Some(op) = started.operation {
                    self.track(name, Tracked::Creating(op));
                }
                Ok(())
            }
            // A create of this pool is already running (seen after restarts): wait on it.
            Err(Error::Arm { ref message, .. }) if is_create_in_progress(message) => {
                let watch = Operation::new(
                    super::operation::OperationKind::ProvisioningState,
                    self.client.url(Some(name)),
                    &format!("creating agent pool {name}"),
                    None,
                );
                self.track(name, Tracked::Creating(watch));
                Ok(())
            }
            Err(Error::Arm {
                kind: kind @ (ErrorKind::Terminal | ErrorKind::InvalidInput),
                what,
                code,
                message,
                source,
            }) => {
                let failure = ArmFailure {
                    code: code
                        .clone()
                        .unwrap_or_else(|| REASON_AGENT_POOL_FAILED.into()),
                    message: message.clone(),
                };
                self.track(name, Tracked::Failed(failure));
                Err(Error::Arm {
                    kind,
                    what,
                    code,
                    message,
                    source,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Advances this process's create operation for the pool, then judges the pool and its node.
    pub(super) async fn pool_readiness(&self, name: &str) -> Result<PoolReadiness, Error> {
        match self.untrack(name) {
            Some(Tracked::Failed(f)) => {
                self.track(name, Tracked::Failed(f.clone()));
                return Ok(PoolReadiness::Failed(f));
            }
            Some(Tracked::Creating(mut op)) if op.due() => match self.client.poll(&mut op).await {
                Ok(OperationStatus::Failed(f)) => {
                    self.track(name, Tracked::Failed(f.clone()));
                    return Ok(PoolReadiness::Failed(f));
                }
                Ok(OperationStatus::Succeeded) => {}
                Ok(OperationStatus::InProgress) => self.track(name, Tracked::Creating(op)),
                Err(e) if e.kind() == ErrorKind::Retryable => {
                    tracing::debug!(pool = name, error = %e, "polling the create operation failed; will retry");
                    self.track(name, Tracked::Creating(op));
                }
                Err(e) => return Err(e),
            },
            Some(other) => self.track(name, other),
            None => {}
        }
        let creating = matches!(self.tracked(name), Some(Tracked::Creating(_)));
        let Some(pool) = self.client.get(name).await? else {
            let msg = if creating {
                "is being created"
            } else {
                "does not exist yet"
            };
            return Ok(PoolReadiness::Pending(
                reason::NODECLAIM_NOT_READY,
                format!("agent pool {name} {msg}"),
            ));
        };
        match pool.provisioning_state() {
            "Succeeded" | "" => {}
            state @ ("Failed" | "Canceled") => {
                return Ok(PoolReadiness::Failed(ArmFailure {
                    code: REASON_AGENT_POOL_FAILED.into(),
                    message: format!(
                        "agent pool {name} ended {state}; the operation's error was not observed by this operator (see the cluster's activity log); delete the workspace to retry"
                    ),
                }));
            }
            state => {
                return Ok(PoolReadiness::Pending(
                    reason::NODECLAIM_NOT_READY,
                    format!("agent pool {name} is {state}"),
                ));
            }
        }
        if let Some(power) = pool.power_state().filter(|p| *p != "Running") {
            return Ok(PoolReadiness::Pending(
                reason::NODECLAIM_NOT_READY,
                format!("agent pool {name} is {power}"),
            ));
        }
        let needs_gpu = pool.label(LABEL_MACHINE_TYPE) != Some("cpu");
        Ok(
            match pool_nodes(self.nodes.as_ref(), name, needs_gpu).await? {
                PoolNodes::None => PoolReadiness::Pending(
                    reason::NODE_NOT_READY,
                    format!("no node of agent pool {name} has registered yet"),
                ),
                PoolNodes::NotReady(n) => PoolReadiness::Pending(
                    reason::NODE_NOT_READY,
                    format!("node {n} of agent pool {name} is not Ready"),
                ),
                PoolNodes::NoGpu(n) => PoolReadiness::Pending(
                    reason::NODE_PLUGINS_NOT_READY,
                    format!("node {n} reports no nvidia.com/gpu capacity yet"),
                ),
                PoolNodes::Ready(n) => PoolReadiness::Ready(n),
            },
        )
    }

    /// Starts deleting pools of kaito workspaces that no longer exist, except pools younger
    /// than `gc_grace` (their workspace may be newer than the caller's list). Returns the pools
    /// whose deletion was started; tries every orphan before reporting the first error.
    pub async fn gc(&self, existing: &[WorkspaceRef]) -> Result<Vec<String>, Error> {
        let now = OffsetDateTime::now_utc();
        let grace = azure_core::time::Duration::try_from(self.client.config.gc_grace)
            .unwrap_or(azure_core::time::Duration::ZERO);
        let mut deleted = Vec::new();
        let mut first_error = None;
        for pool in self.client.list().await? {
            let (Some(owner), Some(name)) = (owner_of(&pool), pool.name.clone()) else {
                continue;
            };
            if existing.contains(&owner) || pool.provisioning_state() == "Deleting" {
                continue;
            }
            let created = pool
                .label(super::spec::LABEL_CREATION_TIMESTAMP)
                .and_then(super::spec::parse_timestamp);
            if created.is_some_and(|t| now - t < grace) {
                continue;
            }
            match self.client.begin_delete(&name).await {
                Ok(op) => {
                    tracing::info!(pool = %name, workspace = %format!("{}/{}", owner.namespace, owner.name), "deleting orphaned agent pool");
                    match op {
                        Some(op) => self.track(&name, Tracked::Deleting(op)),
                        None => {
                            self.untrack(&name);
                        }
                    }
                    deleted.push(name);
                }
                Err(e) => {
                    tracing::warn!(pool = %name, error = %e, "deleting orphaned agent pool failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }
}

/// Combines per-pool states: any failure wins, then the first pending pool, else ready.
pub(super) fn combine(states: Vec<PoolReadiness>) -> NodeReadiness {
    let mut nodes = Vec::new();
    let mut pending = None;
    for state in states {
        match state {
            PoolReadiness::Failed(f) => {
                return NodeReadiness::Failed {
                    reason: f.code,
                    message: f.message,
                };
            }
            PoolReadiness::Pending(reason, message) => {
                pending.get_or_insert((reason, message));
            }
            PoolReadiness::Ready(n) => nodes.push(n),
        }
    }
    match pending {
        Some((reason, message)) => NodeReadiness::Pending {
            reason: reason.into(),
            message,
        },
        None => {
            nodes.sort();
            NodeReadiness::Ready { nodes }
        }
    }
}
