//! Pure builders of the Kubernetes objects a workspace runs as: the tuning Job
//! ([`tuning_job`]), the inference StatefulSet ([`inference_statefulset`]) and its Services
//! ([`inference_service`], [`headless_service`]).
//!
//! They follow KAITO's pod specs (kaito.md §2 step 8, §6) with one deliberate difference: the
//! containers run this project's image and binary (`kaito tune --in-cluster`, `kaito serve`)
//! instead of KAITO's Python, curl, oras and skopeo containers. The binary downloads inputs,
//! pulls and pushes images itself, using the registry credentials projected at
//! [`REGISTRY_AUTH_DIR`].

mod inference;
mod job;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource, KeyToPath,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ProjectedVolumeSource,
    ResourceRequirements, SecretKeySelector, SecretProjection, Toleration, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

pub use inference::{
    HEADLESS_SUFFIX, INFERENCE_PORT, SERVICE_PORT, headless_service, inference_service,
    inference_statefulset,
};
pub use job::{
    CONFIG_DIR, DATA_DIR, RESULTS_DIR, TERMINATION_LOG, WEIGHTS_DIR, WORKSPACE_ENV, tuning_job,
};

use crate::api::WorkspaceV1Beta1;
use crate::api::names::LABEL_WORKSPACE;
use crate::error::{Error, ErrorKind, Result};
use crate::planner::sanitized_selector_labels;

/// Where registry credentials (`<secret>.json` docker configs) are projected for `kaito`.
pub const REGISTRY_AUTH_DIR: &str = "/root/.docker/config.d";
/// The environment variable naming [`REGISTRY_AUTH_DIR`] for the `kaito` process.
pub const REGISTRY_AUTH_ENV: &str = "KAITO_REGISTRY_AUTH_DIR";
/// Where GPU pods mount the node's kernel cache (and `KAITO_KERNEL_CACHE` points).
pub const KERNEL_CACHE_DIR: &str = "/var/cache/kaito/kernels";
/// The node directory holding the kernel cache unless the operator is told otherwise.
pub const DEFAULT_KERNEL_CACHE_HOST_PATH: &str = "/var/lib/kaito/kernel-cache";
/// The extended resource of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Operator settings the workload objects depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSettings {
    /// This project's image, running the `kaito` binary.
    pub image: String,
    /// GPUs per node of the workspace's SKU (from the catalog); 0 runs on CPU (no GPU request).
    pub gpu_count: u32,
    /// Add Azure's spot toleration (KAITO does on Azure).
    pub azure: bool,
    /// The tuning Job's `backoffLimit` (KAITO leaves Kubernetes' default, 6).
    pub backoff_limit: i32,
    /// A directory on GPU nodes where compiled GPU kernels and autotune results persist between
    /// pods (a `hostPath`), so that only the first job on a node pays for kernel compilation;
    /// `None` keeps every pod cold (for namespaces whose Pod Security forbids `hostPath`).
    pub kernel_cache_host_path: Option<String>,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        Self {
            image: "ghcr.io/kaito-rs/kaito:latest".into(),
            gpu_count: 0,
            azure: true,
            backoff_limit: 6,
            kernel_cache_host_path: Some(DEFAULT_KERNEL_CACHE_HOST_PATH.into()),
        }
    }
}

pub(crate) fn invalid(ws: &WorkspaceV1Beta1, what: &str) -> Error {
    Error::backend(
        ErrorKind::InvalidInput,
        format!("workspace {}/{}: {what}", ws.namespace(), ws.name()),
    )
}

/// The workspace as the controlling owner of what it creates.
pub fn owner_reference(ws: &WorkspaceV1Beta1) -> Result<OwnerReference> {
    let uid = ws
        .metadata
        .uid
        .clone()
        .ok_or_else(|| invalid(ws, "metadata.uid is not set (not read from the apiserver)"))?;
    Ok(OwnerReference {
        api_version: <crate::api::V1Beta1 as crate::api::ApiVersion>::API_VERSION.into(),
        kind: crate::api::KIND.into(),
        name: ws.name().into(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// `kaito.sh/workspace=<name>`: on the Job, StatefulSet and their pods.
pub fn workload_labels(ws: &WorkspaceV1Beta1) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_WORKSPACE.to_owned(), ws.name().to_owned())])
}

fn toleration(key: &str, operator: &str, value: Option<&str>) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some(operator.into()),
        value: value.map(Into::into),
        effect: Some("NoSchedule".into()),
        ..Toleration::default()
    }
}

/// KAITO's tuning tolerations: `gpu`, `sku=gpu`, and on Azure the spot taint.
pub(crate) fn tuning_tolerations(settings: &WorkloadSettings) -> Vec<Toleration> {
    let mut out = vec![
        toleration("gpu", "Equal", None),
        toleration("sku", "Equal", Some("gpu")),
    ];
    if settings.azure {
        out.push(toleration(
            "kubernetes.azure.com/scalesetpriority",
            "Equal",
            Some("spot"),
        ));
    }
    out
}

/// Inference tolerations: `nvidia.com/gpu Exists` and `sku=gpu`.
pub(crate) fn inference_tolerations() -> Vec<Toleration> {
    vec![
        toleration(GPU_RESOURCE, "Exists", None),
        toleration("sku", "Equal", Some("gpu")),
    ]
}

/// Required node affinity to the workspace's nodes (one `In` per sanitized matchLabel), so a
/// workload never lands on another workspace's GPUs (KAITO PR #1429). `None` with no labels.
pub(crate) fn node_affinity(ws: &WorkspaceV1Beta1) -> Option<Affinity> {
    let labels = sanitized_selector_labels(ws);
    if labels.is_empty() {
        return None;
    }
    let match_expressions = labels
        .into_iter()
        .map(|(key, value)| NodeSelectorRequirement {
            key,
            operator: "In".into(),
            values: Some(vec![value]),
        })
        .collect();
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(match_expressions),
                    match_fields: None,
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    })
}

/// `nvidia.com/gpu: <count>` as request and limit; empty on CPU.
pub(crate) fn gpu_resources(settings: &WorkloadSettings) -> Option<ResourceRequirements> {
    if settings.gpu_count == 0 {
        return None;
    }
    let gpus = BTreeMap::from([(
        GPU_RESOURCE.to_owned(),
        Quantity(settings.gpu_count.to_string()),
    )]);
    Some(ResourceRequirements {
        limits: Some(gpus.clone()),
        requests: Some(gpus),
        ..ResourceRequirements::default()
    })
}

/// `/dev/shm` as a memory-backed emptyDir (PyTorch-style data loaders and NCCL need it).
pub(crate) fn dshm() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "dshm".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        mount("dshm", "/dev/shm"),
    )
}

pub(crate) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

/// The GPU kernel cache of a GPU pod: the node's directory, and the environment that points
/// `kaito` (`KAITO_KERNEL_CACHE`: CubeCL's PTX and autotune caches) and the CUDA driver
/// (`CUDA_CACHE_PATH`: its PTX-to-SASS cache, raised to 4 GiB) at it. None on CPU pods.
pub(crate) fn kernel_cache(
    settings: &WorkloadSettings,
) -> Option<(Volume, VolumeMount, Vec<EnvVar>)> {
    let host = settings
        .kernel_cache_host_path
        .as_ref()
        .filter(|p| !p.is_empty());
    let host = host.filter(|_| settings.gpu_count > 0)?;
    let volume = Volume {
        name: "kernel-cache".into(),
        host_path: Some(HostPathVolumeSource {
            path: host.clone(),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Volume::default()
    };
    let env = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let env = vec![
        env("KAITO_KERNEL_CACHE", KERNEL_CACHE_DIR.into()),
        env("CUDA_CACHE_PATH", format!("{KERNEL_CACHE_DIR}/nv")),
        env("CUDA_CACHE_MAXSIZE", (4u64 << 30).to_string()),
    ];
    Some((volume, mount("kernel-cache", KERNEL_CACHE_DIR), env))
}

pub(crate) fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// A user-given `volumeSource` (schemaless JSON) as the named volume.
pub(crate) fn volume_from_source(
    ws: &WorkspaceV1Beta1,
    name: &str,
    source: &serde_json::Value,
    field: &str,
) -> Result<Volume> {
    let mut object = source
        .as_object()
        .cloned()
        .ok_or_else(|| invalid(ws, &format!("{field} must be an object")))?;
    object.insert("name".into(), name.into());
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        invalid(
            ws,
            &format!("{field} is not a valid Kubernetes volume source: {e}"),
        )
    })
}

/// `HF_TOKEN` from the `modelAccessSecret` Secret's `HF_TOKEN` key (as KAITO wires it), for
/// fetching gated weights from the hub.
pub(crate) fn hf_token_env(secret: String) -> EnvVar {
    EnvVar {
        name: "HF_TOKEN".into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret,
                key: "HF_TOKEN".into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// Every docker-config Secret projected as `<secret>.json` into one volume, for the `kaito`
/// process to pull and push with. `None` when there are no secrets.
pub(crate) fn registry_auth(secrets: &[String]) -> Option<(Volume, VolumeMount)> {
    if secrets.is_empty() {
        return None;
    }
    let mut unique: Vec<&String> = secrets.iter().collect();
    unique.sort();
    unique.dedup();
    let sources = unique
        .into_iter()
        .map(|s| VolumeProjection {
            secret: Some(SecretProjection {
                name: s.clone(),
                items: Some(vec![KeyToPath {
                    key: ".dockerconfigjson".into(),
                    path: format!("{s}.json"),
                    ..KeyToPath::default()
                }]),
                optional: None,
            }),
            ..VolumeProjection::default()
        })
        .collect();
    let volume = Volume {
        name: "registry-auth".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    };
    Some((
        volume,
        VolumeMount {
            read_only: Some(true),
            ..mount("registry-auth", REGISTRY_AUTH_DIR)
        },
    ))
}
