//! The Workspace controller: kube-runtime's `Controller` on `kaito.sh/v1beta1` Workspaces,
//! owning Jobs, StatefulSets, Services and ControllerRevisions and watching the workspaces'
//! NodeClaims; each reconcile is observe -> [`kaito_core::planner::plan`] -> execute -> status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kaito_backends::provision::NodeClaim;
use kaito_core::api::names::{
    LABEL_REVISION_WORKSPACE, LABEL_WORKSPACE, LABEL_WORKSPACE_NAMESPACE,
};
use kaito_core::api::{ConditionType, WorkspaceV1Beta1};
use kaito_core::planner::{Action as Step, plan};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

use super::Context;
use super::config::ProvisionerKind;
use super::error::{Error, Result};
use super::execute::{event, execute};
use super::observe::{observe, plan_context};
use super::surface;

/// Re-check every workspace this often even without events (drift, missed watch events).
const RESYNC: Duration = Duration::from_secs(300);
/// Longest wait between retries of a failing workspace.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One reconcile of `ws`.
pub async fn reconcile(ws: Arc<WorkspaceV1Beta1>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&ws, &ctx).await;
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.is_ok());
    if result.is_ok() {
        ctx.reset_failures(&key(&ws));
    }
    result
}

async fn reconcile_inner(ws: &WorkspaceV1Beta1, ctx: &Context) -> Result<Action> {
    let observed = match observe(ws, ctx).await {
        Ok(observed) => observed,
        Err(e) => {
            let status = ws.status.clone().unwrap_or_default();
            surface_failure(ctx, ws, status, None, &e).await;
            return Err(e);
        }
    };
    let plan = plan(ws, &observed, &plan_context(ws));
    let mut gone = false;
    let mut failure = None;
    for step in &plan.actions {
        tracing::debug!(
            workspace = ws.name(),
            namespace = ws.namespace(),
            ?step,
            "executing"
        );
        if let Err(e) = execute(ctx, ws, step).await {
            failure = Some((step, e));
            break;
        }
        ctx.metrics.count_action(action_name(step));
        gone |= matches!(step, Step::RemoveFinalizer);
    }
    if let Some((step, e)) = failure {
        surface_failure(ctx, ws, plan.status, Some(step), &e).await;
        return Err(e);
    }
    let mut status = plan.status;
    surface::clear_errors(&mut status);
    if !gone && ws.status.as_ref() != Some(&status) {
        write_status(ctx, ws, &status).await?;
        announce(ctx, ws, &status).await;
    }
    Ok(Action::requeue(plan.requeue_after.unwrap_or(RESYNC)))
}

async fn write_status(
    ctx: &Context,
    ws: &WorkspaceV1Beta1,
    status: &kaito_core::api::WorkspaceStatus,
) -> Result<()> {
    let patch = json!({ "status": status });
    Api::<WorkspaceV1Beta1>::namespaced(ctx.client.clone(), ws.namespace())
        .patch_status(ws.name(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            Error::kube(
                format!("updating status of {}/{}", ws.namespace(), ws.name()),
                e,
            )
        })?;
    Ok(())
}

/// KAITO's `(last reconcile error: …)`: the planned status is still written, with the error on
/// the condition of the step that failed, and a Warning Event says the same. Conflicts are
/// routine (a stale cache) and retried at once, so they are not shown. Best effort: failing to
/// report must not hide the original error.
async fn surface_failure(
    ctx: &Context,
    ws: &WorkspaceV1Beta1,
    mut status: kaito_core::api::WorkspaceStatus,
    step: Option<&Step>,
    error: &Error,
) {
    if error.is_conflict() {
        return;
    }
    let condition = match step {
        None if ws.metadata.deletion_timestamp.is_some() => ConditionType::WorkspaceDeleting,
        _ => surface::condition_for(step),
    };
    let message = surface::describe(error);
    surface::clear_errors(&mut status);
    surface::record_error(&mut status, condition, &message);
    if ws.status.as_ref() != Some(&status) {
        if let Err(e) = write_status(ctx, ws, &status).await {
            tracing::warn!(workspace = %key(ws), "could not record the reconcile error: {e}");
        } else {
            announce(ctx, ws, &status).await;
        }
    }
    event(ctx, ws, true, surface::event_reason(step), message).await;
}

/// Events for the milestones users look for in `kubectl describe`.
async fn announce(ctx: &Context, ws: &WorkspaceV1Beta1, new: &kaito_core::api::WorkspaceStatus) {
    let before = ws.status.clone().unwrap_or_default();
    for (type_, reason) in [
        (
            kaito_core::api::ConditionType::ResourceReady,
            "ResourceReady",
        ),
        (
            kaito_core::api::ConditionType::WorkspaceSucceeded,
            "WorkspaceSucceeded",
        ),
        (
            kaito_core::api::ConditionType::InferenceReady,
            "InferenceReady",
        ),
    ] {
        let (old, now) = (before.condition(type_), new.condition(type_));
        if let Some(c) = now
            && old.map(|o| (&o.status, &o.reason)) != Some((&c.status, &c.reason))
            && (c.status == "True" || c.reason.contains("Fail") || c.reason.contains("Quota"))
        {
            let warning = c.status != "True";
            event(
                ctx,
                ws,
                warning,
                if warning { c.reason.as_str() } else { reason },
                c.message.clone(),
            )
            .await;
        }
    }
}

fn action_name(step: &Step) -> &'static str {
    match step {
        Step::AddFinalizer => "add_finalizer",
        Step::CreateRevision { .. } => "create_revision",
        Step::DeleteRevision { .. } => "delete_revision",
        Step::AnnotateWorkspace { .. } => "annotate_workspace",
        Step::EnsureNodes(_) => "ensure_nodes",
        Step::CreateJob { .. } => "create_job",
        Step::DeleteJob => "delete_job",
        Step::ApplyInference { .. } => "apply_inference",
        Step::DeleteNodes => "delete_nodes",
        Step::RemoveFinalizer => "remove_finalizer",
    }
}

fn key(ws: &WorkspaceV1Beta1) -> String {
    format!("{}/{}", ws.namespace(), ws.name())
}

/// Conflicts retry at once; other failures back off exponentially per workspace (1 s .. 5 min).
pub fn error_policy(ws: Arc<WorkspaceV1Beta1>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        return Action::requeue(Duration::from_millis(200));
    }
    let failures = ctx.record_failure(&key(&ws));
    let delay = Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF);
    let error = surface::describe(error);
    tracing::warn!(workspace = %key(&ws), failures, ?delay, "reconcile failed: {error}");
    Action::requeue(delay)
}

/// Maps a NodeClaim to its workspace through the `kaito.sh/workspace*` labels.
fn claim_to_workspace(claim: NodeClaim) -> Option<ObjectRef<WorkspaceV1Beta1>> {
    let labels = claim.metadata.labels.as_ref()?;
    Some(
        ObjectRef::new(labels.get(LABEL_WORKSPACE)?).within(labels.get(LABEL_WORKSPACE_NAMESPACE)?),
    )
}

/// Runs the controller until `shutdown` resolves (then finishes in-flight reconciles).
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(LABEL_WORKSPACE);
    let mut controller = Controller::new(
        Api::<WorkspaceV1Beta1>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client.clone()), owned.clone())
    .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
    .owns(Api::<Service>::all(client.clone()), owned.clone())
    .owns(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default().labels(LABEL_REVISION_WORKSPACE),
    );
    if ctx.config.provisioner == ProvisionerKind::Karpenter {
        controller = controller.watches(Api::<NodeClaim>::all(client), owned, claim_to_workspace);
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(workspace = %obj, "reconciled"),
                Err(e) => tracing::debug!("reconcile error: {}", surface::redact(&e.to_string())),
            }
        })
        .await;
}
