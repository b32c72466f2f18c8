//! Condition types, reasons and states of a workspace (kaito.md §1.5), and the condition setter.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::WorkspaceStatus;

/// A workspace condition type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The NodeClaims the workspace needs are ready.
    NodeClaimReady,
    /// The nodes are ready with their GPU plugins (v1beta1).
    NodesReady,
    /// Nodes and everything else the workload needs are ready.
    ResourceReady,
    /// The tuning Job has started.
    JobStarted,
    /// The inference service is ready.
    InferenceReady,
    /// The workspace reached its goal (tuning finished, inference ready).
    WorkspaceSucceeded,
    /// The workspace is being deleted.
    WorkspaceDeleting,
}

impl ConditionType {
    /// The condition's `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeClaimReady => "NodeClaimReady",
            Self::NodesReady => "NodesReady",
            Self::ResourceReady => "ResourceReady",
            Self::JobStarted => "JobStarted",
            Self::InferenceReady => "InferenceReady",
            Self::WorkspaceSucceeded => "WorkspaceSucceeded",
            Self::WorkspaceDeleting => "WorkspaceDeleting",
        }
    }
}

/// Condition reasons KAITO writes.
pub mod reason {
    /// NodeClaimReady True.
    pub const NODECLAIMS_READY: &str = "NodeClaimsReady";
    /// NodeClaimReady False.
    pub const NODECLAIM_NOT_READY: &str = "NodeClaimNotReady";
    /// NodesReady True.
    pub const NODES_READY: &str = "NodesReady";
    /// NodesReady False.
    pub const NODE_NOT_READY: &str = "NodeNotReady";
    /// NodesReady False: the GPU device plugin has not registered capacity yet.
    pub const NODE_PLUGINS_NOT_READY: &str = "NodePluginsNotReady";
    /// ResourceReady True.
    pub const RESOURCE_SUCCESS: &str = "workspaceResourceStatusSuccess";
    /// ResourceReady False.
    pub const RESOURCE_NOT_READY: &str = "workspaceResourceStatusNotReady";
    /// JobStarted True.
    pub const TUNING_JOB_STARTED: &str = "WorkspaceTuningJobStatusStarted";
    /// JobStarted False: not started yet.
    pub const TUNING_JOB_PENDING: &str = "WorkspaceTuningJobStatusPending";
    /// JobStarted False: the Job failed.
    pub const TUNING_JOB_FAILED: &str = "WorkspaceTuningJobStatusFailed";
    /// InferenceReady True.
    pub const INFERENCE_SUCCESS: &str = "WorkspaceInferenceStatusSuccess";
    /// InferenceReady False.
    pub const INFERENCE_PENDING: &str = "WorkspaceInferenceStatusPending";
    /// WorkspaceSucceeded True.
    pub const WORKSPACE_SUCCEEDED: &str = "workspaceSucceeded";
    /// WorkspaceSucceeded False: not there yet.
    pub const WORKSPACE_PENDING: &str = "workspacePending";
    /// WorkspaceSucceeded False: failed.
    pub const WORKSPACE_FAILED: &str = "workspaceFailed";
    /// WorkspaceDeleting True.
    pub const WORKSPACE_DELETED: &str = "workspaceDeleted";
}

/// `status.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkspaceState {
    /// Nothing running yet.
    Pending,
    /// Inference is serving.
    Ready,
    /// Inference is not serving.
    NotReady,
    /// The tuning Job runs.
    Running,
    /// The tuning Job finished and the adapter is stored.
    Succeeded,
    /// The tuning Job failed.
    Failed,
}

impl WorkspaceState {
    /// The state's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::NotReady => "NotReady",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// A condition to write: type, status, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// The condition type.
    pub type_: ConditionType,
    /// True or False.
    pub status: bool,
    /// A CamelCase reason from [`reason`] (or a backend's).
    pub reason: String,
    /// A human-readable message.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition update.
    pub fn new(
        type_: ConditionType,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

impl WorkspaceStatus {
    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == type_.as_str())
    }

    /// Whether condition `type_` is present and True.
    pub fn is_true(&self, type_: ConditionType) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }

    /// Sets a condition as `meta.SetStatusCondition` does: `lastTransitionTime` changes only when
    /// the status flips; reason, message and `observedGeneration` are always refreshed.
    /// Returns whether anything changed.
    pub fn set_condition(
        &mut self,
        update: &ConditionUpdate,
        observed_generation: Option<i64>,
        now: Time,
    ) -> bool {
        let status = if update.status { "True" } else { "False" };
        let conditions = self.conditions.get_or_insert_with(Vec::new);
        match conditions
            .iter_mut()
            .find(|c| c.type_ == update.type_.as_str())
        {
            Some(existing) => {
                let before = existing.clone();
                if existing.status != status {
                    existing.status = status.to_owned();
                    existing.last_transition_time = now;
                }
                existing.reason = update.reason.clone();
                existing.message = update.message.clone();
                existing.observed_generation = observed_generation;
                *existing != before
            }
            None => {
                conditions.push(Condition {
                    type_: update.type_.as_str().to_owned(),
                    status: status.to_owned(),
                    reason: update.reason.clone(),
                    message: update.message.clone(),
                    observed_generation,
                    last_transition_time: now,
                });
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let mut status = WorkspaceStatus::default();
        let pending = ConditionUpdate::new(
            ConditionType::JobStarted,
            false,
            reason::TUNING_JOB_PENDING,
            "waiting",
        );
        assert!(status.set_condition(&pending, Some(1), at(100)));
        let again = ConditionUpdate {
            message: "still waiting".into(),
            ..pending.clone()
        };
        assert!(status.set_condition(&again, Some(2), at(200)));
        let c = status.condition(ConditionType::JobStarted).expect("set");
        assert_eq!(c.last_transition_time, at(100));
        assert_eq!(c.observed_generation, Some(2));
        assert_eq!(c.message, "still waiting");

        let started = ConditionUpdate::new(
            ConditionType::JobStarted,
            true,
            reason::TUNING_JOB_STARTED,
            "",
        );
        assert!(status.set_condition(&started, Some(2), at(300)));
        let c = status.condition(ConditionType::JobStarted).expect("set");
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.clone()),
            ("True", at(300))
        );
        assert!(
            !status.set_condition(&started, Some(2), at(400)),
            "no change reports false"
        );
        assert!(status.is_true(ConditionType::JobStarted));
    }
}
