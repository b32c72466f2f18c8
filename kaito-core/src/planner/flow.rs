//! [`plan`]: KAITO's tuning and inference flows as one pure function.

use std::time::Duration;

use super::{
    Action, Observed, ObservedInference, ObservedJob, Plan, PlanContext, node_requirements,
    plan_revision,
};
use crate::api::names::{ANNOTATION_HASH, ANNOTATION_REVISION, FINALIZER};
use crate::api::{ConditionType as C, ConditionUpdate, WorkspaceState, WorkspaceV1Beta1, reason};
use crate::traits::NodeReadiness;

/// Requeue while nodes come up (KAITO: 2 s for node checks; NodeClaim events also wake us).
const NODE_POLL: Duration = Duration::from_secs(5);
/// Requeue after a terminal provisioning failure: the user may fix quota meanwhile.
const FAILED_NODE_POLL: Duration = Duration::from_secs(60);

/// Plans the next step for `ws` given what was observed.
pub fn plan(ws: &WorkspaceV1Beta1, observed: &Observed, ctx: &PlanContext) -> Plan {
    let mut builder = Builder::new(ws, observed);
    if ws.metadata.deletion_timestamp.is_some() {
        builder.deletion();
    } else {
        builder.workload(ctx);
    }
    builder.finish()
}

struct Builder<'a> {
    ws: &'a WorkspaceV1Beta1,
    observed: &'a Observed,
    actions: Vec<Action>,
    status: crate::api::WorkspaceStatus,
    requeue_after: Option<Duration>,
}

impl<'a> Builder<'a> {
    fn new(ws: &'a WorkspaceV1Beta1, observed: &'a Observed) -> Self {
        Self {
            ws,
            observed,
            actions: Vec::new(),
            status: ws.status.clone().unwrap_or_default(),
            requeue_after: None,
        }
    }

    fn set(&mut self, type_: C, status: bool, reason: &str, message: impl Into<String>) {
        let update = ConditionUpdate::new(type_, status, reason, message);
        self.status.set_condition(
            &update,
            self.ws.metadata.generation,
            self.observed.now.clone(),
        );
    }

    fn state(&mut self, state: WorkspaceState) {
        self.status.state = Some(state.as_str().to_owned());
    }

    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }

    fn has_finalizer(&self) -> bool {
        self.ws
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == FINALIZER)
    }

    fn deletion(&mut self) {
        self.set(
            C::WorkspaceDeleting,
            true,
            reason::WORKSPACE_DELETED,
            "workspace is being deleted",
        );
        if !self.has_finalizer() {
            return;
        }
        if self.observed.provisioned_nodes > 0 {
            self.actions.push(Action::DeleteNodes);
            self.requeue(NODE_POLL);
        } else {
            self.actions.push(Action::RemoveFinalizer);
        }
    }

    fn workload(&mut self, ctx: &PlanContext) {
        if !self.has_finalizer() {
            self.actions.push(Action::AddFinalizer);
        }
        let revision = plan_revision(self.ws, &self.observed.revisions);
        if let Some(name) = &revision.create {
            self.actions.push(Action::CreateRevision {
                name: name.clone(),
                revision: revision.revision,
                hash: revision.hash.clone(),
            });
        }
        self.actions.extend(
            revision
                .delete
                .iter()
                .map(|name| Action::DeleteRevision { name: name.clone() }),
        );
        let annotations = self.ws.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(ANNOTATION_HASH) != Some(&revision.hash)
            || annotations.get(ANNOTATION_REVISION) != Some(&revision.revision.to_string())
        {
            self.actions.push(Action::AnnotateWorkspace {
                hash: revision.hash.clone(),
                revision: revision.revision,
            });
        }
        let requirements = node_requirements(self.ws, ctx.disk_gib, ctx.gpu_memory_bytes);
        if self.status.target_node_count.unwrap_or(0) == 0 {
            self.status.target_node_count = Some(requirements.count as i32);
        }
        if !self.nodes(requirements) {
            return;
        }
        if self.ws.tuning.is_some() {
            self.tuning(revision.revision);
        } else if self.ws.inference.is_some() {
            self.inference(revision.revision);
        }
    }

    /// Returns whether the nodes are ready.
    fn nodes(&mut self, requirements: crate::traits::NodeRequirements) -> bool {
        match self.observed.nodes.clone() {
            Some(NodeReadiness::Ready { nodes }) => {
                self.set(C::NodeClaimReady, true, reason::NODECLAIMS_READY, "");
                self.set(C::NodesReady, true, reason::NODES_READY, "");
                self.set(
                    C::ResourceReady,
                    true,
                    reason::RESOURCE_SUCCESS,
                    "workspace resource is ready",
                );
                self.status.worker_nodes = Some(nodes);
                true
            }
            Some(NodeReadiness::Failed { reason, message }) => {
                self.set(C::NodeClaimReady, false, &reason, message.clone());
                self.set(C::ResourceReady, false, &reason, message);
                self.not_started();
                self.requeue(FAILED_NODE_POLL);
                false
            }
            pending => {
                let (reason, message) = match pending {
                    Some(NodeReadiness::Pending { reason, message }) => (reason, message),
                    _ => (
                        reason::NODECLAIM_NOT_READY.to_owned(),
                        "waiting for nodes".to_owned(),
                    ),
                };
                self.actions.push(Action::EnsureNodes(requirements));
                self.set(C::ResourceReady, false, &reason, message);
                self.not_started();
                self.requeue(NODE_POLL);
                false
            }
        }
    }

    fn not_started(&mut self) {
        if self.ws.tuning.is_some() {
            self.set(
                C::JobStarted,
                false,
                reason::TUNING_JOB_PENDING,
                "waiting for resources",
            );
        } else {
            self.set(
                C::InferenceReady,
                false,
                reason::INFERENCE_PENDING,
                "waiting for resources",
            );
        }
        self.set(
            C::WorkspaceSucceeded,
            false,
            reason::WORKSPACE_PENDING,
            "waiting for resources",
        );
        self.state(WorkspaceState::Pending);
    }

    fn tuning(&mut self, revision: i64) {
        let current = revision.to_string();
        let Some(job) = self.observed.job.clone() else {
            self.actions.push(Action::CreateJob { revision });
            self.set(
                C::JobStarted,
                false,
                reason::TUNING_JOB_PENDING,
                "tuning job created",
            );
            self.set(
                C::WorkspaceSucceeded,
                false,
                reason::WORKSPACE_PENDING,
                "tuning job created",
            );
            self.state(WorkspaceState::Pending);
            return;
        };
        if job.revision.as_deref() != Some(current.as_str()) {
            // Input, output or config changed: re-run. The new Job is created once the old one
            // is gone (a later reconcile, triggered by the Job's deletion event).
            if !job.deleting {
                self.actions.push(Action::DeleteJob);
            }
            self.set(
                C::JobStarted,
                false,
                reason::TUNING_JOB_PENDING,
                format!("replacing the job of an older revision with revision {current}"),
            );
            self.set(
                C::WorkspaceSucceeded,
                false,
                reason::WORKSPACE_PENDING,
                "tuning job is being replaced",
            );
            self.state(WorkspaceState::Pending);
            return;
        }
        self.job_status(&job);
    }

    fn job_status(&mut self, job: &ObservedJob) {
        let progress = job.progress.clone().unwrap_or_default();
        if job.complete || job.succeeded > 0 {
            self.set(C::JobStarted, true, reason::TUNING_JOB_STARTED, "");
            self.set(
                C::WorkspaceSucceeded,
                true,
                reason::WORKSPACE_SUCCEEDED,
                format!("tuning job succeeded {progress}")
                    .trim_end()
                    .to_owned(),
            );
            self.state(WorkspaceState::Succeeded);
        } else if let Some(message) = &job.failed_condition {
            self.set(
                C::JobStarted,
                false,
                reason::TUNING_JOB_FAILED,
                message.clone(),
            );
            self.set(
                C::WorkspaceSucceeded,
                false,
                reason::WORKSPACE_FAILED,
                format!("tuning job failed: {message}"),
            );
            self.state(WorkspaceState::Failed);
        } else if job.active > 0 || job.ready > 0 {
            let retries = if job.failed > 0 {
                format!(" ({} failed attempt(s), retrying)", job.failed)
            } else {
                String::new()
            };
            self.set(
                C::JobStarted,
                true,
                reason::TUNING_JOB_STARTED,
                format!("{progress}{retries}").trim().to_owned(),
            );
            self.set(
                C::WorkspaceSucceeded,
                false,
                reason::WORKSPACE_PENDING,
                "tuning job is running",
            );
            self.state(WorkspaceState::Running);
        } else {
            let message = if job.failed > 0 {
                "a pod failed; waiting for the retry"
            } else {
                "waiting for the tuning pod"
            };
            self.set(C::JobStarted, false, reason::TUNING_JOB_PENDING, message);
            self.set(
                C::WorkspaceSucceeded,
                false,
                reason::WORKSPACE_PENDING,
                message,
            );
            self.state(WorkspaceState::Pending);
        }
    }

    fn inference(&mut self, revision: i64) {
        let current = revision.to_string();
        let observed = self.observed.inference.clone();
        if observed.as_ref().and_then(|s| s.revision.as_deref()) != Some(current.as_str()) {
            self.actions.push(Action::ApplyInference { revision });
        }
        match observed {
            Some(ObservedInference {
                ready_replicas,
                replicas,
                ..
            }) if ready_replicas >= replicas.max(1) => {
                self.set(
                    C::InferenceReady,
                    true,
                    reason::INFERENCE_SUCCESS,
                    "inference is ready",
                );
                self.set(C::WorkspaceSucceeded, true, reason::WORKSPACE_SUCCEEDED, "");
                self.state(WorkspaceState::Ready);
            }
            _ => {
                self.set(
                    C::InferenceReady,
                    false,
                    reason::INFERENCE_PENDING,
                    "waiting for the inference pods",
                );
                self.set(
                    C::WorkspaceSucceeded,
                    false,
                    reason::WORKSPACE_PENDING,
                    "waiting for the inference pods",
                );
                self.state(WorkspaceState::NotReady);
            }
        }
    }

    fn finish(self) -> Plan {
        let status_changed = self.ws.status.as_ref() != Some(&self.status);
        Plan {
            actions: self.actions,
            status: self.status,
            status_changed,
            requeue_after: self.requeue_after,
        }
    }
}
