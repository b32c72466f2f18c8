//! The two served API versions, `kaito.sh/v1alpha1` and `kaito.sh/v1beta1` (storage), their
//! `kube::Resource` implementations and the conversion between them.
//!
//! KAITO runs no conversion webhook: both schemas are field-compatible and the apiserver only
//! rewrites `apiVersion`, pruning what the target schema lacks. [`Workspace::into_v1alpha1`]
//! does the same and says which v1beta1-only fields it dropped.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::workspace::Workspace;

/// API group of every KAITO kind.
pub const GROUP: &str = "kaito.sh";
/// The kind served by this module.
pub const KIND: &str = "Workspace";
/// Plural resource name.
pub const PLURAL: &str = "workspaces";

/// A served version of the Workspace API.
pub trait ApiVersion:
    Clone + Default + std::fmt::Debug + PartialEq + Send + Sync + 'static
{
    /// `v1alpha1` or `v1beta1`.
    const VERSION: &'static str;
    /// `kaito.sh/<VERSION>`.
    const API_VERSION: &'static str;
}

/// Marker for `kaito.sh/v1alpha1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V1Alpha1;
/// Marker for `kaito.sh/v1beta1`, the storage version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V1Beta1;

impl ApiVersion for V1Alpha1 {
    const VERSION: &'static str = "v1alpha1";
    const API_VERSION: &'static str = "kaito.sh/v1alpha1";
}
impl ApiVersion for V1Beta1 {
    const VERSION: &'static str = "v1beta1";
    const API_VERSION: &'static str = "kaito.sh/v1beta1";
}

/// A `kaito.sh/v1alpha1` Workspace.
pub type WorkspaceV1Alpha1 = Workspace<V1Alpha1>;
/// A `kaito.sh/v1beta1` Workspace (storage version).
pub type WorkspaceV1Beta1 = Workspace<V1Beta1>;

impl<V: ApiVersion> kube::Resource for Workspace<V> {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(V::VERSION)
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(V::API_VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(PLURAL)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl kube::core::object::HasStatus for Workspace<V1Beta1> {
    type Status = super::WorkspaceStatus;
    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn status_mut(&mut self) -> &mut Option<Self::Status> {
        &mut self.status
    }
}

impl From<WorkspaceV1Alpha1> for WorkspaceV1Beta1 {
    /// Every v1alpha1 field exists in v1beta1: nothing is lost.
    fn from(ws: WorkspaceV1Alpha1) -> Self {
        ws.retag()
    }
}

impl WorkspaceV1Beta1 {
    /// Converts to v1alpha1 as the apiserver would serve it, returning the field paths of the
    /// v1beta1-only fields that were set and therefore dropped (empty = lossless).
    pub fn into_v1alpha1(mut self) -> (WorkspaceV1Alpha1, Vec<String>) {
        let mut dropped = Vec::new();
        if let Some(resource) = self.resource.as_mut()
            && resource.partition.take().is_some()
        {
            dropped.push("resource.partition".to_owned());
        }
        let presets = [
            (
                "inference.preset",
                self.inference.as_mut().and_then(|i| i.preset.as_mut()),
            ),
            (
                "tuning.preset",
                self.tuning.as_mut().and_then(|t| t.preset.as_mut()),
            ),
        ];
        for (path, preset) in presets {
            if let Some(options) = preset.and_then(|p| p.preset_options.as_mut())
                && options.model_access_secret.take().is_some()
            {
                dropped.push(format!("{path}.presetOptions.modelAccessSecret"));
            }
        }
        if let Some(status) = self.status.as_mut() {
            if status.target_node_count.take().is_some() {
                dropped.push("status.targetNodeCount".to_owned());
            }
            if status.state.take().is_some() {
                dropped.push("status.state".to_owned());
            }
            if status.performance.take().is_some() {
                dropped.push("status.performance".to_owned());
            }
        }
        (self.retag(), dropped)
    }
}

/// A Workspace of either served version, as read from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyWorkspace {
    /// `kaito.sh/v1alpha1`.
    V1Alpha1(WorkspaceV1Alpha1),
    /// `kaito.sh/v1beta1`.
    V1Beta1(WorkspaceV1Beta1),
}

impl AnyWorkspace {
    /// The object in the storage version, which the rest of kaito-core works on.
    pub fn into_storage(self) -> WorkspaceV1Beta1 {
        match self {
            Self::V1Alpha1(ws) => ws.into(),
            Self::V1Beta1(ws) => ws,
        }
    }

    /// The `apiVersion` the object was written in.
    pub fn api_version(&self) -> &'static str {
        match self {
            Self::V1Alpha1(_) => V1Alpha1::API_VERSION,
            Self::V1Beta1(_) => V1Beta1::API_VERSION,
        }
    }
}
