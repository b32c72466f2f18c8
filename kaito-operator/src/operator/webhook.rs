//! The validating admission webhook: `POST /validate/workspace.kaito.sh` takes an
//! `admission.k8s.io/v1` AdmissionReview of a Workspace (either version) and answers with
//! kaito-core's verdict ([`kaito_core::validation::check_create`] / `check_update`): every
//! violation as a `StatusCause` carrying its field path, and the warnings as admission warnings.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kaito_core::api::{TuningMethod, WorkspaceV1Beta1};
use kaito_core::tuning::template_name;
use kaito_core::validation::{Report, ValidationContext, check_create, check_update};
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::{StatusCause, StatusDetails};

use super::config::{OperatorConfig, ProvisionerKind};
use super::metrics::Metrics;

/// The webhook's path (KAITO's).
pub const PATH: &str = "/validate/workspace.kaito.sh";

/// Shared state of the webhook handler.
#[derive(Clone)]
pub struct WebhookState {
    /// Reads the ConfigMaps and nodes a workspace refers to; `None` validates without the
    /// cluster (missing ConfigMaps become warnings).
    pub client: Option<kube::Client>,
    /// The operator's settings as validation sees them.
    pub base: ValidationContext,
    /// Counts admissions.
    pub metrics: Arc<Metrics>,
}

impl WebhookState {
    /// The webhook of an operator configured with `config`.
    pub fn new(
        config: &OperatorConfig,
        client: Option<kube::Client>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let base = ValidationContext {
            node_auto_provisioning: config.provisioner != ProvisionerKind::Byo,
            cloud_provider: config.cloud,
            release_namespace: config.release_namespace.clone(),
            config_maps_complete: client.is_some(),
            ..ValidationContext::default()
        };
        Self {
            client,
            base,
            metrics,
        }
    }

    /// The validation context for `ws`: the base plus what the cluster holds.
    async fn context_for(&self, ws: &WorkspaceV1Beta1) -> ValidationContext {
        let mut ctx = self.base.clone();
        let Some(client) = &self.client else {
            return ctx;
        };
        let mut wanted: Vec<(String, String)> = Vec::new();
        let ns = ws.namespace().to_owned();
        if let Some(t) = &ws.tuning {
            match t.config.clone().filter(|c| !c.is_empty()) {
                Some(name) => wanted.push((ns.clone(), name)),
                None => {
                    for m in [TuningMethod::Lora, TuningMethod::Qlora] {
                        wanted.push((ctx.release_namespace.clone(), template_name(m).to_owned()));
                    }
                }
            }
        }
        if let Some(name) = ws
            .inference
            .as_ref()
            .and_then(|i| i.config.clone())
            .filter(|c| !c.is_empty())
        {
            wanted.push((ns, name));
        }
        for (ns, name) in wanted {
            match Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await
            {
                Ok(Some(mut cm)) => {
                    cm.metadata.namespace = Some(ns);
                    ctx.config_maps.push(cm);
                }
                Ok(None) => {}
                // Unknown is not missing: degrade to warnings rather than refusing.
                Err(e) => {
                    tracing::warn!("webhook: reading ConfigMap {ns}/{name}: {e}");
                    ctx.config_maps_complete = false;
                }
            }
        }
        if !ctx.node_auto_provisioning {
            ctx.nodes = Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await
                .ok()
                .map(|l| l.items);
        }
        ctx
    }
}

fn workspace(obj: &DynamicObject) -> Result<WorkspaceV1Beta1, String> {
    // Both versions share one field-compatible schema, so either decodes as v1beta1.
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| format!("object is not a Workspace: {e}"))
}

/// The response for a validation report.
fn respond(
    response: AdmissionResponse,
    name: &str,
    report: Report,
) -> (AdmissionReview<DynamicObject>, bool) {
    let warnings: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
    let mut response = response;
    response.warnings = (!warnings.is_empty()).then_some(warnings);
    if report.errors.is_empty() {
        return (response.into_review(), true);
    }
    response = response.deny(report.errors.to_string());
    response.result.code = 422;
    response.result.reason = "Invalid".into();
    response.result.details = Some(StatusDetails {
        name: name.into(),
        group: kaito_core::api::GROUP.into(),
        kind: kaito_core::api::KIND.into(),
        causes: report
            .errors
            .iter()
            .map(|e| StatusCause {
                reason: "FieldValueInvalid".into(),
                message: e.message.clone(),
                field: e.path.clone(),
            })
            .collect(),
        uid: String::new(),
        retry_after_seconds: 0,
    });
    (response.into_review(), false)
}

/// Answers one AdmissionReview.
pub async fn review(
    state: &WebhookState,
    review: AdmissionReview<DynamicObject>,
) -> (AdmissionReview<DynamicObject>, bool) {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return (
                AdmissionResponse::invalid(format!("malformed AdmissionReview: {e}")).into_review(),
                false,
            );
        }
    };
    let response = AdmissionResponse::from(&request);
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return (response.into_review(), true);
    }
    let Some(obj) = &request.object else {
        return (response.deny("request has no object").into_review(), false);
    };
    let new = match workspace(obj) {
        Ok(ws) => ws,
        Err(e) => return (response.deny(e).into_review(), false),
    };
    let old = match request.old_object.as_ref().map(workspace).transpose() {
        Ok(old) => old,
        Err(e) => return (response.deny(e).into_review(), false),
    };
    let ctx = state.context_for(&new).await;
    let report = match (&request.operation, &old) {
        (Operation::Update, Some(old)) => check_update(old, &new, &ctx),
        _ => check_create(&new, &ctx),
    };
    respond(response, new.name(), report)
}

/// The axum handler.
pub async fn handle(
    State(state): State<WebhookState>,
    Json(body): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let (out, allowed) = review(&state, body).await;
    state.metrics.count_admission(allowed);
    Json(out)
}
