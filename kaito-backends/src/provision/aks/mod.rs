//! AKS node provisioning: each workspace node is its own single-node AKS agent pool, managed
//! directly through Azure Resource Manager (no Karpenter or gpu-provisioner in the cluster).
//!
//! - [`AksProvisioner`] implements `NodeProvisioner`; pools are named
//!   `ws` + 8 hex of sha256(namespace/name) + node index, so a restarted operator finds the
//!   pools it was creating.
//! - [`AgentPoolsClient`] is the thin ARM client (PUT/GET/DELETE/LIST, 429 + `Retry-After`,
//!   long-running operations); [`models`] holds the agent pool's serde models.
//! - [`AksConfig`] / [`credential_from_env`] read the environment as gpu-provisioner does.
//!
//! Why not `azure_mgmt_containerservice`: docs/decisions/azure-mgmt-containerservice.md.

mod client;
mod config;
mod errors;
mod lifecycle;
pub mod models;
mod nodes;
mod operation;
mod provisioner;
mod spec;

pub use client::{AgentPoolsClient, Started};
pub use config::{
    AksConfig, DEFAULT_API_VERSION, DEFAULT_ENDPOINT, DEFAULT_SCOPE, StaticTokenCredential,
    credential_from_env, credential_from_lookup,
};
pub use errors::{ArmFailure, CAPACITY_CODES};
pub use nodes::{NodeLister, PoolNodes};
pub use operation::{Operation, OperationKind, OperationStatus};
pub use provisioner::{AksProvisioner, REASON_AGENT_POOL_FAILED};
pub use spec::{
    LABEL_AGENTPOOL, LABEL_AKS_AGENTPOOL, LABEL_CREATION_TIMESTAMP, LABEL_MACHINE_TYPE,
    LABEL_NODE_PROVISIONER, MAX_NODES, PROVISIONER_NAME, format_timestamp, is_valid_pool_name,
    pool_body, pool_name,
};
