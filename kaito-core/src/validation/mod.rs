//! Admission rules for Workspaces (kaito.md §5), returning every violation at once.
//!
//! [`check_create`] / [`check_update`] return a [`Report`] of errors and warnings, each with a
//! field path such as `tuning.input.urls[0]`; [`validate_create`] / [`validate_update`] turn the
//! errors into [`crate::Error::Invalid`]. Everything the webhook would look up in the cluster
//! (node auto-provisioning, cloud, ConfigMaps, BYO nodes) comes in a [`ValidationContext`].
//!
//! Beyond KAITO, tuning also checks that the instance type is known, the preset can be tuned, the
//! GPU memory fits the method's estimate ([`crate::catalog::memory`]), the training config has
//! no unknown or unsupported key, secret names are valid object names, and every URL is safe.

mod field;
mod image;
mod inference;
mod names;
mod resource;
mod tuning;
mod update;
mod url;

use k8s_openapi::api::core::v1::{ConfigMap, Node};

pub use field::{FieldError, FieldErrors};
pub use image::{ImageReference, has_placeholder, parse_image_reference};
pub use names::{
    dns1123_label, dns1123_subdomain, label_key, label_value, selector_as_map, selector_matches,
};
pub use url::check_download_url;

use crate::api::WorkspaceV1Beta1;
use crate::catalog::CloudProvider;
use crate::catalog::memory::AttentionImpl;
use crate::error::Result;

/// The inference runtime (`kaito.sh/runtime`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InferenceRuntime {
    /// vLLM.
    Vllm,
    /// Hugging Face transformers (kaito-rs's own runtime plays this role).
    #[default]
    Transformers,
}

/// What the webhook knows about the cluster.
#[derive(Clone, Debug)]
pub struct ValidationContext {
    /// Node auto-provisioning (KAITO's default): `resource.instanceType` is required; when off
    /// (bring your own nodes) it must be empty.
    pub node_auto_provisioning: bool,
    /// Whose SKU table applies.
    pub cloud_provider: CloudProvider,
    /// The ConfigMaps that can be referred to (tuning and inference configs); a ConfigMap without
    /// a namespace matches any namespace (as in a manifest file).
    pub config_maps: Vec<ConfigMap>,
    /// Whether `config_maps` holds every ConfigMap there is. When false (e.g. `kaito validate -f`
    /// on a file that refers to ConfigMaps already in a cluster), a missing one is a warning.
    pub config_maps_complete: bool,
    /// The cluster's nodes, for bring-your-own checks; `None` when unknown (checks are skipped).
    pub nodes: Option<Vec<Node>>,
    /// Namespace of the operator and of the default config templates.
    pub release_namespace: String,
    /// Allowed `kaito.sh/node-class-name` values; `None` accepts any.
    pub node_classes: Option<Vec<String>>,
    /// Runtime used when `kaito.sh/runtime` is absent.
    pub default_runtime: InferenceRuntime,
    /// How the tuning runtime computes attention (for the memory estimate).
    pub attention: AttentionImpl,
    /// Report template placeholders such as `ACR_REPO_HERE` in image references and secret names
    /// as warnings instead of errors (for linting example files; never in the webhook).
    pub placeholders_as_warnings: bool,
}

impl Default for ValidationContext {
    fn default() -> Self {
        Self {
            node_auto_provisioning: true,
            cloud_provider: CloudProvider::Azure,
            config_maps: Vec::new(),
            config_maps_complete: true,
            nodes: None,
            release_namespace: "kaito-workspace".to_owned(),
            node_classes: None,
            default_runtime: InferenceRuntime::Transformers,
            attention: AttentionImpl::Fused,
            placeholders_as_warnings: false,
        }
    }
}

impl ValidationContext {
    /// The ConfigMap `name` in `namespace`, if known.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.iter().find(|cm| {
            cm.metadata.name.as_deref() == Some(name)
                && cm
                    .metadata
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| ns == namespace)
        })
    }
}

/// Everything found in one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Violations: the object must be rejected.
    pub errors: FieldErrors,
    /// Things the user should know that do not block admission (e.g. bypassed resource checks).
    pub warnings: FieldErrors,
}

impl Report {
    /// `Ok(warnings)` when there is no error.
    pub fn into_result(self) -> Result<FieldErrors> {
        self.errors.into_result().map(|()| self.warnings)
    }
}

/// Collects errors and warnings while the rules run.
pub(crate) struct Checker<'a> {
    pub ctx: &'a ValidationContext,
    pub report: Report,
}

impl<'a> Checker<'a> {
    fn new(ctx: &'a ValidationContext) -> Self {
        Self {
            ctx,
            report: Report::default(),
        }
    }
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.report.errors.push(path, message);
    }
    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.report.warnings.push(path, message);
    }
    /// An error, or a warning when `value` is an unfilled template placeholder and the context
    /// lints examples.
    pub fn error_unless_placeholder(
        &mut self,
        path: impl Into<String>,
        value: &str,
        message: impl Into<String>,
    ) {
        if self.ctx.placeholders_as_warnings && has_placeholder(value) {
            let message = format!(
                "{} (looks like an unfilled placeholder: replace it before applying)",
                message.into()
            );
            self.warn(path, message);
        } else {
            self.error(path, message);
        }
    }
    /// Checks an image reference at `path`.
    pub fn image(&mut self, path: &str, image: &str) {
        if let Err(e) = parse_image_reference(image) {
            self.error_unless_placeholder(
                path,
                image,
                format!("invalid image reference {image:?}: {e}"),
            );
        }
    }
    /// Checks a Secret name at `path`.
    pub fn secret_name(&mut self, path: &str, name: &str) {
        if let Err(e) = dns1123_subdomain(name) {
            self.error_unless_placeholder(path, name, format!("invalid Secret name: {e}"));
        }
    }
}

/// Every rule for a new workspace.
pub fn check_create(ws: &WorkspaceV1Beta1, ctx: &ValidationContext) -> Report {
    let mut c = Checker::new(ctx);
    if let Err(e) = dns1123_label(ws.name()) {
        c.error(
            "metadata.name",
            format!("{e} (it names the Job, Service and pods)"),
        );
    }
    match (&ws.inference, &ws.tuning) {
        (None, None) => c.error(
            "spec",
            "either inference or tuning must be specified, not neither",
        ),
        (Some(_), Some(_)) => c.error(
            "spec",
            "either inference or tuning must be specified, but not both",
        ),
        _ => {}
    }
    resource::check_annotations(&mut c, ws);
    resource::check_resource(&mut c, ws);
    if let Some(tuning) = &ws.tuning {
        tuning::check_create(&mut c, ws, tuning);
    }
    if let Some(inference) = &ws.inference {
        inference::check_create(&mut c, ws, inference);
    }
    c.report
}

/// Every rule for an update from `old` to `new`.
pub fn check_update(
    old: &WorkspaceV1Beta1,
    new: &WorkspaceV1Beta1,
    ctx: &ValidationContext,
) -> Report {
    let mut c = Checker::new(ctx);
    update::check_update(&mut c, old, new);
    c.report
}

/// [`check_create`], as a `Result` holding the warnings.
pub fn validate_create(ws: &WorkspaceV1Beta1, ctx: &ValidationContext) -> Result<FieldErrors> {
    check_create(ws, ctx).into_result()
}

/// [`check_update`], as a `Result` holding the warnings.
pub fn validate_update(
    old: &WorkspaceV1Beta1,
    new: &WorkspaceV1Beta1,
    ctx: &ValidationContext,
) -> Result<FieldErrors> {
    check_update(old, new, ctx).into_result()
}

#[cfg(test)]
mod tests;
