//! Execute: carry out one planner [`Action`] against the apiserver and the provisioner.
//!
//! Every action is idempotent, so a restart between any two actions converges: creates treat
//! AlreadyExists as done, deletes treat NotFound as done, finalizer patches carry the
//! resourceVersion they were computed from (a stale one gets a 409 and a quick retry).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kaito_core::api::WorkspaceV1Beta1;
use kaito_core::api::names::{
    ANNOTATION_HASH, ANNOTATION_REVISION, FINALIZER, LABEL_REVISION_WORKSPACE,
};
use kaito_core::catalog::find_sku;
use kaito_core::planner::{Action, workspace_ref};
use kaito_core::workload::{self, WorkloadSettings};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::events::{Event, EventType};
use serde_json::json;

use super::Context;
use super::error::{Error, Result, exists_ok, not_found_ok};

/// The field manager of server-side applies.
pub const FIELD_MANAGER: &str = "kaito-operator";

/// Publishes a Normal (or Warning) event on the workspace; failures are logged, not fatal.
pub async fn event(
    ctx: &Context,
    ws: &WorkspaceV1Beta1,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &ws.object_ref(&())).await {
        tracing::warn!(
            workspace = ws.name(),
            reason,
            "publishing event failed: {e}"
        );
    }
}

fn ws_api(ctx: &Context, ws: &WorkspaceV1Beta1) -> Api<WorkspaceV1Beta1> {
    Api::namespaced(ctx.client.clone(), ws.namespace())
}

/// Sets the finalizer list, guarded by the resourceVersion the decision was made on.
async fn patch_finalizers(
    ctx: &Context,
    ws: &WorkspaceV1Beta1,
    finalizers: Vec<String>,
) -> Result<()> {
    let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": ws.metadata.resource_version } });
    ws_api(ctx, ws)
        .patch(ws.name(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            Error::kube(
                format!("patching finalizers of {}/{}", ws.namespace(), ws.name()),
                e,
            )
        })?;
    Ok(())
}

/// Carries out `action` for `ws`.
pub async fn execute(ctx: &Context, ws: &WorkspaceV1Beta1, action: &Action) -> Result<()> {
    let (ns, name) = (ws.namespace(), ws.name());
    match action {
        Action::AddFinalizer => {
            let mut finalizers = ws.metadata.finalizers.clone().unwrap_or_default();
            finalizers.push(FINALIZER.into());
            patch_finalizers(ctx, ws, finalizers).await
        }
        Action::RemoveFinalizer => {
            let finalizers = ws
                .metadata
                .finalizers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect();
            match patch_finalizers(ctx, ws, finalizers).await {
                Err(Error::Kube {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 404 => Ok(()),
                other => other,
            }
        }
        Action::CreateRevision {
            name: rev_name,
            revision,
            hash,
        } => {
            let data =
                json!({ "resource": ws.resource, "inference": ws.inference, "tuning": ws.tuning });
            let cr = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(rev_name.clone()),
                    namespace: Some(ns.into()),
                    labels: Some(BTreeMap::from([(
                        LABEL_REVISION_WORKSPACE.to_owned(),
                        name.to_owned(),
                    )])),
                    annotations: Some(BTreeMap::from([(ANNOTATION_HASH.to_owned(), hash.clone())])),
                    owner_references: Some(vec![workload::owner_reference(ws)?]),
                    ..ObjectMeta::default()
                },
                data: RawExtension(data),
                revision: Some(*revision),
            };
            exists_ok(
                Api::<ControllerRevision>::namespaced(ctx.client.clone(), ns)
                    .create(&PostParams::default(), &cr)
                    .await,
            )
            .map_err(|e| Error::kube(format!("creating ControllerRevision {ns}/{rev_name}"), e))?;
            Ok(())
        }
        Action::DeleteRevision { name: rev_name } => {
            not_found_ok(
                Api::<ControllerRevision>::namespaced(ctx.client.clone(), ns)
                    .delete(rev_name, &DeleteParams::default())
                    .await,
            )
            .map_err(|e| Error::kube(format!("deleting ControllerRevision {ns}/{rev_name}"), e))?;
            Ok(())
        }
        Action::AnnotateWorkspace { hash, revision } => {
            // A merge patch of two keys cannot conflict: no resourceVersion, no retry needed.
            let patch = json!({ "metadata": { "annotations": { ANNOTATION_HASH: hash, ANNOTATION_REVISION: revision.to_string() } } });
            ws_api(ctx, ws)
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| Error::kube(format!("annotating workspace {ns}/{name}"), e))?;
            Ok(())
        }
        Action::EnsureNodes(req) => {
            let before = ctx.provisioner.list_nodes(&req.workspace).await?.len();
            // A failure is reported (condition message and Warning Event) by the controller.
            ctx.provisioner.ensure_nodes(req).await?;
            let after = ctx.provisioner.list_nodes(&req.workspace).await?.len();
            if after > before {
                let note = format!(
                    "{} created {} node(s) for {}",
                    ctx.provisioner.name(),
                    after - before,
                    req.instance_type.as_deref().unwrap_or("BYO")
                );
                event(ctx, ws, false, "NodeClaimCreated", note).await;
            }
            Ok(())
        }
        Action::CreateJob { revision } => create_job(ctx, ws, *revision).await,
        Action::DeleteJob => {
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                ..DeleteParams::default()
            };
            not_found_ok(
                Api::<Job>::namespaced(ctx.client.clone(), ns)
                    .delete(name, &dp)
                    .await,
            )
            .map_err(|e| Error::kube(format!("deleting Job {ns}/{name}"), e))?;
            event(
                ctx,
                ws,
                false,
                "JobDeleted",
                "deleting the tuning Job of an older revision".into(),
            )
            .await;
            Ok(())
        }
        Action::ApplyInference { revision } => apply_inference(ctx, ws, *revision).await,
        Action::DeleteNodes => {
            ctx.provisioner.delete_nodes(&workspace_ref(ws)).await?;
            event(
                ctx,
                ws,
                false,
                "NodesDeleted",
                format!(
                    "deleting the workspace's nodes ({})",
                    ctx.provisioner.name()
                ),
            )
            .await;
            Ok(())
        }
    }
}

/// GPUs per node: the SKU's count from the catalog, else (BYO, unknown SKU) the first worker
/// node's `nvidia.com/gpu` capacity.
async fn gpu_count(ctx: &Context, ws: &WorkspaceV1Beta1) -> Result<u32> {
    if let Some(sku) = ws
        .resource
        .as_ref()
        .and_then(|r| r.instance_type.as_deref())
        .and_then(|t| find_sku(ctx.config.cloud, t))
    {
        return Ok(sku.gpu_count);
    }
    let Some(node) = ws
        .status
        .as_ref()
        .and_then(|s| s.worker_nodes.as_ref())
        .and_then(|n| n.first())
    else {
        return Ok(0);
    };
    let node = not_found_ok(Api::<Node>::all(ctx.client.clone()).get(node).await)
        .map_err(|e| Error::kube(format!("reading node {node}"), e))?;
    Ok(node
        .map(|n| kaito_backends::provision::gpu_capacity(&n) as u32)
        .unwrap_or(0))
}

fn settings(ctx: &Context, gpu_count: u32) -> WorkloadSettings {
    WorkloadSettings {
        image: ctx.config.image.clone(),
        gpu_count,
        azure: !matches!(ctx.config.cloud, kaito_core::catalog::CloudProvider::Aws),
        backoff_limit: ctx.config.backoff_limit,
        kernel_cache_host_path: ctx.config.kernel_cache_host_path.clone(),
    }
}

/// KAITO copies the method's default ConfigMap from the release namespace into the workspace's
/// namespace when the workspace names none (same name, never refreshed).
async fn ensure_default_config(ctx: &Context, ws: &WorkspaceV1Beta1) -> Result<()> {
    let Some(tuning) = &ws.tuning else {
        return Ok(());
    };
    if tuning.config.as_deref().is_some_and(|c| !c.is_empty()) {
        return Ok(());
    }
    let Some(method) = tuning.tuning_method() else {
        return Ok(());
    };
    let cm_name = kaito_core::tuning::template_name(method).to_owned();
    let here = Api::<ConfigMap>::namespaced(ctx.client.clone(), ws.namespace());
    if not_found_ok(here.get(&cm_name).await)
        .map_err(|e| Error::kube(format!("reading ConfigMap {cm_name}"), e))?
        .is_some()
    {
        return Ok(());
    }
    let release = &ctx.config.release_namespace;
    let source = not_found_ok(
        Api::<ConfigMap>::namespaced(ctx.client.clone(), release)
            .get(&cm_name)
            .await,
    )
    .map_err(|e| Error::kube(format!("reading ConfigMap {release}/{cm_name}"), e))?
    .ok_or_else(|| {
        Error::Config(format!(
            "default tuning ConfigMap {release}/{cm_name} is missing (is the chart installed?)"
        ))
    })?;
    let copy = ConfigMap {
        metadata: ObjectMeta {
            name: Some(cm_name.clone()),
            namespace: Some(ws.namespace().into()),
            ..ObjectMeta::default()
        },
        data: source.data,
        ..ConfigMap::default()
    };
    exists_ok(here.create(&PostParams::default(), &copy).await)
        .map_err(|e| Error::kube(format!("copying ConfigMap {cm_name}"), e))?;
    Ok(())
}

async fn create_job(ctx: &Context, ws: &WorkspaceV1Beta1, revision: i64) -> Result<()> {
    ensure_default_config(ctx, ws).await?;
    let job = workload::tuning_job(ws, revision, &settings(ctx, gpu_count(ctx, ws).await?))?;
    let (ns, name) = (ws.namespace(), ws.name());
    let created = exists_ok(
        Api::<Job>::namespaced(ctx.client.clone(), ns)
            .create(&PostParams::default(), &job)
            .await,
    )
    .map_err(|e| Error::kube(format!("creating Job {ns}/{name}"), e))?;
    if created {
        event(
            ctx,
            ws,
            false,
            "JobCreated",
            format!("created tuning Job {name} for revision {revision}"),
        )
        .await;
    }
    Ok(())
}

async fn apply_inference(ctx: &Context, ws: &WorkspaceV1Beta1, revision: i64) -> Result<()> {
    let (ns, name) = (ws.namespace(), ws.name());
    let settings = settings(ctx, gpu_count(ctx, ws).await?);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let services = [
        workload::headless_service(ws)?,
        workload::inference_service(ws)?,
    ];
    let svc_api = Api::<Service>::namespaced(ctx.client.clone(), ns);
    for svc in &services {
        let svc_name = svc.metadata.name.clone().unwrap_or_default();
        svc_api
            .patch(&svc_name, &pp, &Patch::Apply(svc))
            .await
            .map_err(|e| Error::kube(format!("applying Service {ns}/{svc_name}"), e))?;
    }
    let sts = workload::inference_statefulset(ws, revision, &settings)?;
    Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
        .patch(name, &pp, &Patch::Apply(&sts))
        .await
        .map_err(|e| Error::kube(format!("applying StatefulSet {ns}/{name}"), e))?;
    event(
        ctx,
        ws,
        false,
        "InferenceApplied",
        format!("applied StatefulSet and Services {name} for revision {revision}"),
    )
    .await;
    Ok(())
}
