//! The reconcile planner: a pure function from a Workspace and what the operator observed to the
//! next actions and the status to write. No I/O: the operator observes, calls [`plan`], then
//! executes the actions in order.
//!
//! One reconcile is one step of KAITO's flow (kaito.md §2): finalizer, revision, target node
//! count, nodes, then the tuning Job or the inference StatefulSet, then status. Deviations from
//! KAITO, on purpose:
//! - a failed pod followed by a successful retry ends `Succeeded` (KAITO marks it `Failed`);
//!   only a Job that Kubernetes itself marks failed (backoff exhausted) fails the workspace;
//! - a provisioner's terminal reason (quota, SKU unavailable) is shown on `ResourceReady`.

mod flow;
mod nodes;
mod revision;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use flow::plan;
pub use nodes::{
    KAITO_TUNING_DISK_GIB, node_requirements, sanitized_selector_labels, workspace_ref,
};
pub use revision::{
    ObservedRevision, REVISION_HISTORY_LIMIT, RevisionPlan, plan_revision, revision_name, spec_hash,
};

use crate::api::WorkspaceStatus;
use crate::traits::{NodeReadiness, NodeRequirements};

/// The tuning Job as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedJob {
    /// Its `workspace.kaito.io/revision` annotation.
    pub revision: Option<String>,
    /// Pods running.
    pub active: i32,
    /// Pods ready.
    pub ready: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// Kubernetes marked the Job `Complete`.
    pub complete: bool,
    /// Kubernetes marked the Job `Failed` (backoff limit exceeded, deadline); with its message.
    pub failed_condition: Option<String>,
    /// The Job has a deletionTimestamp.
    pub deleting: bool,
    /// The last progress line the tuning pod reported (step, loss, ETA), if any.
    pub progress: Option<String>,
}

/// The inference StatefulSet as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedInference {
    /// Its `workspace.kaito.io/revision` annotation.
    pub revision: Option<String>,
    /// Desired replicas.
    pub replicas: i32,
    /// Ready replicas.
    pub ready_replicas: i32,
}

/// Everything the operator observed before planning.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The provisioner's answer for the workspace's requirements (`None`: not asked yet).
    pub nodes: Option<NodeReadiness>,
    /// How many provisioned nodes still exist (drives deletion).
    pub provisioned_nodes: usize,
    /// The tuning Job named like the workspace.
    pub job: Option<ObservedJob>,
    /// The inference StatefulSet named like the workspace.
    pub inference: Option<ObservedInference>,
    /// The workspace's ControllerRevisions.
    pub revisions: Vec<ObservedRevision>,
    /// The time to stamp on changed conditions.
    pub now: Time,
}

/// Settings of the planner that are not in the Workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanContext {
    /// OS disk for the workspace's nodes, in GiB.
    pub disk_gib: u32,
    /// GPU memory the workload needs per node, in bytes, when known.
    pub gpu_memory_bytes: Option<u64>,
}

impl Default for PlanContext {
    fn default() -> Self {
        Self {
            disk_gib: KAITO_TUNING_DISK_GIB,
            gpu_memory_bytes: None,
        }
    }
}

/// One thing the operator must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Add the workspace finalizer.
    AddFinalizer,
    /// Create a ControllerRevision.
    CreateRevision {
        /// Its name.
        name: String,
        /// Its revision number.
        revision: i64,
        /// The spec hash it records.
        hash: String,
    },
    /// Delete an old ControllerRevision.
    DeleteRevision {
        /// Its name.
        name: String,
    },
    /// Set the workspace's hash and revision annotations.
    AnnotateWorkspace {
        /// `workspace.kaito.io/hash`.
        hash: String,
        /// `workspace.kaito.io/revision`.
        revision: i64,
    },
    /// Create or keep creating the nodes (idempotent).
    EnsureNodes(NodeRequirements),
    /// Create the tuning Job for this revision.
    CreateJob {
        /// The revision it runs.
        revision: i64,
    },
    /// Delete the Job of an older revision (foreground); it is re-created once gone.
    DeleteJob,
    /// Create or update the inference StatefulSet and Services for this revision.
    ApplyInference {
        /// The revision it serves.
        revision: i64,
    },
    /// Delete every node of the workspace.
    DeleteNodes,
    /// Remove the finalizer: deletion is complete.
    RemoveFinalizer,
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Actions to execute in order.
    pub actions: Vec<Action>,
    /// The status to write (written only when `status_changed`).
    pub status: WorkspaceStatus,
    /// Whether `status` differs from the observed one.
    pub status_changed: bool,
    /// Reconcile again after this long, when nothing else will trigger it.
    pub requeue_after: Option<Duration>,
}

#[cfg(test)]
mod tests;
