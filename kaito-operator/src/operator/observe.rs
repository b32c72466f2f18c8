//! Observe: read what exists for a workspace (Job, StatefulSet, ControllerRevisions, the
//! provisioner's answer) into the planner's [`Observed`].

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kaito_core::api::WorkspaceV1Beta1;
use kaito_core::api::names::{ANNOTATION_HASH, ANNOTATION_REVISION, LABEL_REVISION_WORKSPACE};
use kaito_core::planner::{
    Observed, ObservedInference, ObservedJob, ObservedRevision, PlanContext, node_requirements,
    workspace_ref,
};
use kube::api::{Api, ListParams};

use super::Context;
use super::error::{Error, Result, not_found_ok};

/// Longest progress text shown in a condition message (KAITO caps messages at 256).
const MAX_PROGRESS: usize = 200;

/// The planner's settings for `ws`.
pub fn plan_context(_ws: &WorkspaceV1Beta1) -> PlanContext {
    PlanContext::default()
}

/// Reads everything the planner needs about `ws`.
pub async fn observe(ws: &WorkspaceV1Beta1, ctx: &Context) -> Result<Observed> {
    let ns = ws.namespace();
    let name = ws.name();
    let wsref = workspace_ref(ws);
    let deleting = ws.metadata.deletion_timestamp.is_some();
    let nodes = if deleting {
        None
    } else {
        let pc = plan_context(ws);
        let req = node_requirements(ws, pc.disk_gib, pc.gpu_memory_bytes);
        Some(ctx.provisioner.readiness(&req).await?)
    };
    let provisioned_nodes = ctx.provisioner.list_nodes(&wsref).await?.len();
    let job = if ws.tuning.is_some() && !deleting {
        observe_job(ctx, ns, name).await?
    } else {
        None
    };
    let inference = if ws.inference.is_some() && !deleting {
        let sts = not_found_ok(
            Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
                .get(name)
                .await,
        )
        .map_err(|e| Error::kube(format!("reading StatefulSet {ns}/{name}"), e))?;
        sts.map(|s| ObservedInference {
            revision: s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_REVISION).cloned()),
            replicas: s.spec.replicas.unwrap_or(1),
            ready_replicas: s
                .status
                .as_ref()
                .and_then(|st| st.ready_replicas)
                .unwrap_or(0),
        })
    } else {
        None
    };
    let revisions = if deleting {
        Vec::new()
    } else {
        observe_revisions(ctx, ns, name).await?
    };
    Ok(Observed {
        nodes,
        provisioned_nodes,
        job,
        inference,
        revisions,
        now: Time(Timestamp::now()),
    })
}

async fn observe_revisions(ctx: &Context, ns: &str, name: &str) -> Result<Vec<ObservedRevision>> {
    let lp = ListParams::default().labels(&format!("{LABEL_REVISION_WORKSPACE}={name}"));
    let list = Api::<ControllerRevision>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await
        .map_err(|e| Error::kube(format!("listing ControllerRevisions of {ns}/{name}"), e))?;
    Ok(list
        .items
        .into_iter()
        .map(|r| ObservedRevision {
            name: r.metadata.name.clone().unwrap_or_default(),
            revision: r.revision.unwrap_or(0),
            hash: r
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_HASH).cloned())
                .unwrap_or_default(),
        })
        .collect())
}

async fn observe_job(ctx: &Context, ns: &str, name: &str) -> Result<Option<ObservedJob>> {
    let job = not_found_ok(
        Api::<Job>::namespaced(ctx.client.clone(), ns)
            .get(name)
            .await,
    )
    .map_err(|e| Error::kube(format!("reading Job {ns}/{name}"), e))?;
    let Some(job) = job else { return Ok(None) };
    let status = job.status.clone().unwrap_or_default();
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    };
    let failed_condition = condition("Failed").map(|c| {
        let message = c.message.unwrap_or_default();
        let reason = c.reason.unwrap_or_default();
        if message.is_empty() {
            reason
        } else {
            format!("{reason}: {message}")
        }
    });
    let progress = job_progress(ctx, ns, name).await;
    Ok(Some(ObservedJob {
        revision: job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REVISION).cloned()),
        active: status.active.unwrap_or(0),
        ready: status.ready.unwrap_or(0),
        succeeded: status.succeeded.unwrap_or(0),
        failed: status.failed.unwrap_or(0),
        complete: condition("Complete").is_some(),
        failed_condition,
        deleting: job.metadata.deletion_timestamp.is_some(),
        progress,
    }))
}

/// The last termination message of the tuning pods: `kaito tune` writes its summary (or error)
/// there. Best effort: a failure to list pods only hides the progress.
async fn job_progress(ctx: &Context, ns: &str, name: &str) -> Option<String> {
    let lp = ListParams::default().labels(&format!("job-name={name}"));
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await
        .ok()?;
    let message = pods
        .items
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        .rfind(|m| !m.trim().is_empty())?;
    let line = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .to_owned();
    Some(line.chars().take(MAX_PROGRESS).collect())
}
