//! The tuning Job (kaito.md §2 step 8), running `kaito tune --in-cluster` in this project's image.
//!
//! Paths are KAITO's: the training config ConfigMap at [`CONFIG_DIR`], the data at [`DATA_DIR`]
//! (an emptyDir filled by `kaito tune` from `urls`/`image`, or the user's `volumeSource`), the
//! adapter written to [`RESULTS_DIR`] (an emptyDir, or the output `volumeSource`) and pushed by
//! `kaito tune` itself when the output is an image. The workspace (resource + tuning) travels as
//! JSON in [`WORKSPACE_ENV`]. Progress: `kaito tune` writes its summary (or its error) to the
//! container's termination message, which the operator shows in status.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, LocalObjectReference, PodSpec,
    PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    REGISTRY_AUTH_DIR, REGISTRY_AUTH_ENV, WorkloadSettings, dshm, empty_dir, gpu_resources,
    hf_token_env, invalid, kernel_cache, mount, node_affinity, owner_reference, registry_auth,
    tuning_tolerations, volume_from_source, workload_labels,
};
use crate::api::WorkspaceV1Beta1;
use crate::api::names::ANNOTATION_REVISION;
use crate::error::Result;

/// The training config ConfigMap's mount point.
pub const CONFIG_DIR: &str = "/mnt/config";
/// The training data's mount point.
pub const DATA_DIR: &str = "/mnt/data";
/// Where the adapter is written (KAITO's default `output_dir`).
pub const RESULTS_DIR: &str = "/mnt/results";
/// Scratch space for the base model's weights.
pub const WEIGHTS_DIR: &str = "/workspace/weights";
/// Where `kaito tune` leaves its outcome (the container's termination message).
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// The environment variable holding the workspace JSON for `kaito tune --in-cluster`.
pub const WORKSPACE_ENV: &str = "KAITO_WORKSPACE";

/// The workspace as `kaito tune` needs it: identity, `resource` and `tuning`, nothing else.
fn workspace_json(ws: &WorkspaceV1Beta1) -> String {
    let mut slim = WorkspaceV1Beta1::new(ws.namespace(), ws.name());
    slim.resource = ws.resource.clone();
    slim.tuning = ws.tuning.clone();
    serde_json::to_string(&slim).unwrap_or_default()
}

/// The tuning Job of `ws` at `revision`.
pub fn tuning_job(
    ws: &WorkspaceV1Beta1,
    revision: i64,
    settings: &WorkloadSettings,
) -> Result<Job> {
    let tuning = ws
        .tuning
        .as_ref()
        .ok_or_else(|| invalid(ws, "tuning is not set"))?;
    let method = tuning
        .tuning_method()
        .ok_or_else(|| invalid(ws, "tuning.method must be lora or qlora"))?;
    let input = tuning
        .input
        .as_ref()
        .ok_or_else(|| invalid(ws, "tuning.input is required"))?;
    let output = tuning
        .output
        .as_ref()
        .ok_or_else(|| invalid(ws, "tuning.output is required"))?;
    let config = tuning
        .config
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| crate::tuning::template_name(method).to_owned());

    let (shm, shm_mount) = dshm();
    let mut volumes = vec![shm, empty_dir("model-weights-volume")];
    let mut mounts = vec![shm_mount, mount("model-weights-volume", WEIGHTS_DIR)];
    volumes.push(Volume {
        name: "config-volume".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config,
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    });
    mounts.push(mount("config-volume", CONFIG_DIR));
    volumes.push(match &output.volume_source {
        Some(source) => {
            volume_from_source(ws, "results-volume", source, "tuning.output.volumeSource")?
        }
        None => empty_dir("results-volume"),
    });
    mounts.push(mount("results-volume", RESULTS_DIR));
    volumes.push(match &input.volume_source {
        Some(source) => volume_from_source(ws, "data-volume", source, "tuning.input.volumeSource")?,
        None => empty_dir("data-volume"),
    });
    mounts.push(mount("data-volume", DATA_DIR));

    let mut secrets: Vec<String> = input.image_pull_secrets.clone().unwrap_or_default();
    secrets.extend(output.image_push_secret.clone().filter(|s| !s.is_empty()));
    let mut env = vec![
        EnvVar {
            name: WORKSPACE_ENV.into(),
            value: Some(workspace_json(ws)),
            value_from: None,
        },
        EnvVar {
            name: "KAITO_REVISION".into(),
            value: Some(revision.to_string()),
            value_from: None,
        },
    ];
    if let Some(secret) = tuning
        .preset
        .as_ref()
        .and_then(|p| p.preset_options.as_ref())
        .and_then(|o| o.model_access_secret.clone())
        .filter(|s| !s.is_empty())
    {
        env.push(hf_token_env(secret));
    }
    if let Some((volume, auth_mount)) = registry_auth(&secrets) {
        volumes.push(volume);
        mounts.push(auth_mount);
        env.push(EnvVar {
            name: REGISTRY_AUTH_ENV.into(),
            value: Some(REGISTRY_AUTH_DIR.into()),
            value_from: None,
        });
    }

    let mut args: Vec<String> = ["tune", "--in-cluster", "--workspace-env", WORKSPACE_ENV]
        .map(String::from)
        .into();
    args.extend([
        "--config".into(),
        format!("{CONFIG_DIR}/training_config.yaml"),
    ]);
    args.extend([
        "--data-dir".into(),
        DATA_DIR.into(),
        "--output-dir".into(),
        RESULTS_DIR.into(),
    ]);
    // An empty weights volume: `kaito tune` fills it from the preset's hub repository.
    args.extend(["--weights-dir".into(), WEIGHTS_DIR.into()]);
    args.extend(["--termination-log".into(), TERMINATION_LOG.into()]);
    if let Some(image) = output.image.as_ref().filter(|i| !i.is_empty()) {
        args.extend(["--output-image".into(), image.clone()]);
    }
    if let Some((volume, cache_mount, cache_env)) = kernel_cache(settings) {
        volumes.push(volume);
        mounts.push(cache_mount);
        env.extend(cache_env);
    }
    if settings.gpu_count > 0 {
        args.extend([
            "--device".into(),
            "cuda".into(),
            "--num-gpus".into(),
            settings.gpu_count.to_string(),
        ]);
    }

    let container = Container {
        name: ws.name().into(),
        image: Some(settings.image.clone()),
        command: Some(vec!["kaito".into()]),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            container_port: 5000,
            name: Some("metrics".into()),
            ..ContainerPort::default()
        }]),
        resources: gpu_resources(settings),
        volume_mounts: Some(mounts),
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    let labels = workload_labels(ws);
    let annotations = BTreeMap::from([(ANNOTATION_REVISION.to_owned(), revision.to_string())]);
    // KAITO adds the push secret to the pod's pull secrets; harmless, and keeps private
    // registries that host both the kaito image and the adapter working.
    let image_pull_secrets = output
        .image_push_secret
        .clone()
        .filter(|s| !s.is_empty() && output.image.is_some())
        .map(|s| vec![LocalObjectReference { name: s }]);
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(ws.name().into()),
            namespace: Some(ws.namespace().into()),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(ws)?]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(settings.backoff_limit),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".into()),
                    tolerations: Some(tuning_tolerations(settings)),
                    affinity: node_affinity(ws),
                    volumes: Some(volumes),
                    image_pull_secrets,
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}
