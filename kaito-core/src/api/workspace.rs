//! The `Workspace` object of `kaito.sh`, field for field as KAITO defines it (kaito.md §1).
//!
//! KAITO puts `resource`, `inference`, `tuning` and `status` at the top level of the object,
//! with no `spec:` wrapper, so the type is written by hand rather than with `kube::CustomResource`.
//! One Rust type serves both API versions: [`Workspace<V>`] is generic over a version marker
//! ([`V1Alpha1`], [`V1Beta1`]); the v1alpha1 schema simply lacks the v1beta1-only fields (see
//! [`super::version`]).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::version::{ApiVersion, V1Beta1};

/// A KAITO Workspace: GPU nodes plus either an inference service or a tuning job.
///
/// `V` selects the API version the object is (de)serialized as; [`super::WorkspaceV1Beta1`] is the
/// storage version.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(bound = "")]
pub struct Workspace<V = V1Beta1> {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The nodes the workspace runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceSpec>,
    /// An inference service (exclusive with `tuning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceSpec>,
    /// A fine-tuning job (exclusive with `inference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningSpec>,
    /// Observed state, written by the operator through the status subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkspaceStatus>,
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) version: PhantomData<V>,
}

impl<V: ApiVersion> Serialize for Workspace<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // apiVersion and kind are constants of the type, so they are written, never stored.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Repr<'a> {
            api_version: &'a str,
            kind: &'a str,
            metadata: &'a ObjectMeta,
            #[serde(skip_serializing_if = "Option::is_none")]
            resource: &'a Option<ResourceSpec>,
            #[serde(skip_serializing_if = "Option::is_none")]
            inference: &'a Option<InferenceSpec>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tuning: &'a Option<TuningSpec>,
            #[serde(skip_serializing_if = "Option::is_none")]
            status: &'a Option<WorkspaceStatus>,
        }
        Repr {
            api_version: V::API_VERSION,
            kind: super::KIND,
            metadata: &self.metadata,
            resource: &self.resource,
            inference: &self.inference,
            tuning: &self.tuning,
            status: &self.status,
        }
        .serialize(serializer)
    }
}

impl<V> Workspace<V> {
    /// A workspace with only its name and namespace set.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            resource: None,
            inference: None,
            tuning: None,
            status: None,
            version: PhantomData,
        }
    }

    /// The object's name ("" when unset, which validation reports).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The object's namespace, `default` when unset (as kubectl does).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// Re-labels the object as another API version without touching any field; see
    /// [`super::version`] for the conversions that also check version-only fields.
    pub(crate) fn retag<W>(self) -> Workspace<W> {
        Workspace {
            metadata: self.metadata,
            resource: self.resource,
            inference: self.inference,
            tuning: self.tuning,
            status: self.status,
            version: PhantomData,
        }
    }
}

/// `resource`: which GPU nodes the workspace needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// Number of GPU nodes (default 1; tuning supports 1). Deprecated in v1beta1, kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// The VM SKU to provision (e.g. `Standard_NC24ads_A100_v4`); empty for bring-your-own nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Selects the workspace's nodes; its labels are put on nodes the operator creates.
    #[serde(default)]
    pub label_selector: LabelSelector,
    /// Deprecated: existing nodes to prefer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_nodes: Option<Vec<String>>,
    /// GPU partitioning (v1beta1 only; inference on BYO nodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionSpec>,
}

/// `resource.partition`: MIG or accelerator partitions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionSpec {
    /// `mig` or `accelerator`.
    #[serde(default)]
    pub mode: String,
    /// The partition profile, e.g. `1g.10gb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// How many partitions (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
}

/// A model preset by name, with options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresetSpec {
    /// A KAITO preset name (e.g. `phi-3-mini-128k-instruct`) or a Hugging Face id `org/model`.
    #[serde(default)]
    pub name: String,
    /// `public` or `private` (deprecated in v1beta1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<String>,
    /// Image and secrets for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_options: Option<PresetOptions>,
}

/// `presetOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresetOptions {
    /// A private model image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pull secrets for that image (deprecated in v1beta1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<String>>,
    /// Secret holding `HF_TOKEN` for gated models (v1beta1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_access_secret: Option<String>,
}

/// `inference`: serve a model over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceSpec {
    /// The model preset (exclusive with `template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetSpec>,
    /// A full pod template for custom workloads (schemaless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::crd::preserve_unknown_object")]
    pub template: Option<serde_json::Value>,
    /// ConfigMap holding `inference_config.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// LoRA adapters served on top of the base model (at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapters: Option<Vec<AdapterSpec>>,
}

/// One adapter of an inference workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdapterSpec {
    /// Where the adapter comes from (`name` plus `image` or `volumeSource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DataSource>,
    /// A float in [0, 1] written as a string; default `"1.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<String>,
}

/// A data source: exactly one of `urls`, `image`, `volumeSource`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// Name of the source (immutable for tuning input; the adapter name for adapters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HTTP(S) URLs of files to download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Any Kubernetes volume source (schemaless), mounted at the data path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::crd::preserve_unknown_object")]
    pub volume_source: Option<serde_json::Value>,
    /// An OCI image whose `/data` holds the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Secrets to pull `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<String>>,
}

/// Where a tuning job's adapter goes: exactly one of `image` (with `imagePushSecret`) or
/// `volumeSource`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataDestination {
    /// Any Kubernetes volume source (schemaless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::crd::preserve_unknown_object")]
    pub volume_source: Option<serde_json::Value>,
    /// The OCI image reference to push the adapter to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret used to push `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_push_secret: Option<String>,
}

/// `tuning`: fine-tune a preset with LoRA or QLoRA.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TuningSpec {
    /// The base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetSpec>,
    /// `lora` or `qlora` (compared case-insensitively, as KAITO does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// ConfigMap holding `training_config.yaml`; empty means the method's default template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<DataSource>,
    /// Where the adapter goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<DataDestination>,
}

/// Observed state of a workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Sorted names of the nodes the workspace owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_nodes: Option<Vec<String>>,
    /// KAITO's conditions (see [`super::ConditionType`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Nodes the workspace targets (set once; 1 for tuning). v1beta1 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node_count: Option<i32>,
    /// Summary state (see [`super::WorkspaceState`]). v1beta1 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Benchmark metrics (inference only). v1beta1 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<BTreeMap<String, String>>,
}
