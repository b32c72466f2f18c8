//! The inference StatefulSet running `kaito serve`, and its two Services (kaito.md §6).
//!
//! Adapters: an image adapter is pulled by `kaito serve` itself (`--adapter name=oci://ref`),
//! a volume adapter is mounted at `/mnt/adapter/<name>` (`--adapter name=/mnt/adapter/<name>`);
//! strengths are passed as `--adapter-strength name=value` (KAITO's transformers runtime
//! weights the merged adapters the same way).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec,
    PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    REGISTRY_AUTH_DIR, REGISTRY_AUTH_ENV, WEIGHTS_DIR, WorkloadSettings, dshm, empty_dir,
    gpu_resources, hf_token_env, inference_tolerations, invalid, kernel_cache, mount,
    node_affinity, owner_reference, registry_auth, volume_from_source, workload_labels,
};
use crate::api::WorkspaceV1Beta1;
use crate::api::names::{ANNOTATION_ENABLE_LB, ANNOTATION_REVISION};
use crate::error::Result;

/// The port `kaito serve` listens on.
pub const INFERENCE_PORT: i32 = 5000;
/// The Service's port.
pub const SERVICE_PORT: i32 = 80;
/// Suffix of the headless Service's name.
pub const HEADLESS_SUFFIX: &str = "-headless";
/// Where volume adapters are mounted.
const ADAPTER_DIR: &str = "/mnt/adapter";
/// Where adapter images are extracted.
const ADAPTER_IMAGES_DIR: &str = "/mnt/adapter-images";
/// The StatefulSet pod-name label Kubernetes sets.
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

fn meta(ws: &WorkspaceV1Beta1, name: String) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(ws.namespace().into()),
        labels: Some(workload_labels(ws)),
        owner_references: Some(vec![owner_reference(ws)?]),
        ..ObjectMeta::default()
    })
}

fn health_probe(period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".into()),
            port: IntOrString::Int(INFERENCE_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The `kaito serve` container and the volumes it needs.
fn serve_container(
    ws: &WorkspaceV1Beta1,
    settings: &WorkloadSettings,
) -> Result<(Container, Vec<Volume>)> {
    let inference = ws
        .inference
        .as_ref()
        .ok_or_else(|| invalid(ws, "inference is not set"))?;
    let preset = inference.preset.as_ref().ok_or_else(|| {
        invalid(
            ws,
            "inference.preset is required unless a template is given",
        )
    })?;
    let (shm, shm_mount) = dshm();
    // The image is read-only and runs as a non-root user: the base weights (fetched from the
    // preset's hub repository on start) and adapter images go to volumes of their own.
    let mut volumes = vec![
        shm,
        empty_dir("model-weights-volume"),
        empty_dir("adapter-images-volume"),
    ];
    let mut mounts = vec![
        shm_mount,
        mount("model-weights-volume", WEIGHTS_DIR),
        mount("adapter-images-volume", ADAPTER_IMAGES_DIR),
    ];
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--preset".into(),
        preset.name.clone(),
        "--model".into(),
        WEIGHTS_DIR.into(),
        "--adapter-dir".into(),
        ADAPTER_IMAGES_DIR.into(),
        "--port".into(),
        INFERENCE_PORT.to_string(),
    ];
    let mut secrets = Vec::new();
    let mut env = Vec::new();
    for (i, adapter) in inference.adapters.iter().flatten().enumerate() {
        let field = format!("inference.adapters[{i}]");
        let source = adapter
            .source
            .as_ref()
            .ok_or_else(|| invalid(ws, &format!("{field}.source is required")))?;
        let name = source
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(ws, &format!("{field}.source.name is required")))?;
        if let Some(volume_source) = &source.volume_source {
            let volume_name = format!("adapter-{name}");
            volumes.push(volume_from_source(
                ws,
                &volume_name,
                volume_source,
                &format!("{field}.source.volumeSource"),
            )?);
            mounts.push(mount(&volume_name, &format!("{ADAPTER_DIR}/{name}")));
            args.extend(["--adapter".into(), format!("{name}={ADAPTER_DIR}/{name}")]);
        } else if let Some(image) = source.image.as_ref().filter(|i| !i.is_empty()) {
            args.extend(["--adapter".into(), format!("{name}=oci://{image}")]);
            secrets.extend(source.image_pull_secrets.clone().unwrap_or_default());
        } else {
            return Err(invalid(
                ws,
                &format!("{field}.source needs an image or a volumeSource"),
            ));
        }
        let strength = adapter.strength.clone().unwrap_or_else(|| "1.0".into());
        args.extend(["--adapter-strength".into(), format!("{name}={strength}")]);
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
    if let Some(config) = inference.config.as_ref().filter(|c| !c.is_empty()) {
        volumes.push(Volume {
            name: "config-volume".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("config-volume", "/mnt/config"));
        args.extend([
            "--config".into(),
            "/mnt/config/inference_config.yaml".into(),
        ]);
    }
    if let Some(secret) = preset
        .preset_options
        .as_ref()
        .and_then(|o| o.model_access_secret.clone())
    {
        env.push(hf_token_env(secret));
    }
    if let Some((volume, cache_mount, cache_env)) = kernel_cache(settings) {
        volumes.push(volume);
        mounts.push(cache_mount);
        env.extend(cache_env);
    }
    if settings.gpu_count > 0 {
        args.extend(["--device".into(), "cuda".into()]);
    }
    let container = Container {
        name: ws.name().into(),
        image: Some(settings.image.clone()),
        command: Some(vec!["kaito".into()]),
        args: Some(args),
        env: (!env.is_empty()).then_some(env),
        ports: Some(vec![ContainerPort {
            container_port: INFERENCE_PORT,
            name: Some("http".into()),
            ..ContainerPort::default()
        }]),
        resources: gpu_resources(settings),
        volume_mounts: Some(mounts),
        // Loading a model takes minutes: allow up to an hour before liveness starts.
        startup_probe: Some(health_probe(10, 360)),
        liveness_probe: Some(health_probe(10, 3)),
        readiness_probe: Some(health_probe(10, 3)),
        ..Container::default()
    };
    Ok((container, volumes))
}

/// The pod template: `kaito serve`, or the user's own `inference.template`.
fn pod_template(ws: &WorkspaceV1Beta1, settings: &WorkloadSettings) -> Result<PodTemplateSpec> {
    let inference = ws
        .inference
        .as_ref()
        .ok_or_else(|| invalid(ws, "inference is not set"))?;
    let mut template = match &inference.template {
        Some(custom) => serde_json::from_value::<PodTemplateSpec>(custom.clone()).map_err(|e| {
            invalid(
                ws,
                &format!("inference.template is not a valid pod template: {e}"),
            )
        })?,
        None => {
            let (container, volumes) = serve_container(ws, settings)?;
            PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![container],
                    tolerations: Some(inference_tolerations()),
                    affinity: node_affinity(ws),
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            }
        }
    };
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(workload_labels(ws));
    Ok(template)
}

/// The inference StatefulSet of `ws` at `revision`; replicas = the workspace's node count.
pub fn inference_statefulset(
    ws: &WorkspaceV1Beta1,
    revision: i64,
    settings: &WorkloadSettings,
) -> Result<StatefulSet> {
    let replicas = ws
        .resource
        .as_ref()
        .and_then(|r| r.count)
        .unwrap_or(1)
        .max(1);
    let mut metadata = meta(ws, ws.name().into())?;
    metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_REVISION.to_owned(),
        revision.to_string(),
    )]));
    Ok(StatefulSet {
        metadata,
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            pod_management_policy: Some("Parallel".into()),
            service_name: Some(format!("{}{HEADLESS_SUFFIX}", ws.name())),
            selector: LabelSelector {
                match_labels: Some(workload_labels(ws)),
                match_expressions: None,
            },
            template: pod_template(ws, settings)?,
            ..StatefulSetSpec::default()
        },
        status: None,
    })
}

/// Service `<ws>`: port 80 → 5000 on pod `<ws>-0`; a LoadBalancer when `kaito.sh/enablelb=True`.
pub fn inference_service(ws: &WorkspaceV1Beta1) -> Result<Service> {
    let lb = ws
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_ENABLE_LB))
        .is_some_and(|v| v == "True");
    let mut selector = workload_labels(ws);
    selector.insert(POD_NAME_LABEL.into(), format!("{}-0", ws.name()));
    Ok(Service {
        metadata: meta(ws, ws.name().into())?,
        spec: Some(ServiceSpec {
            type_: Some(if lb { "LoadBalancer" } else { "ClusterIP" }.into()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::Int(INFERENCE_PORT)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// Headless Service `<ws>-headless` giving each StatefulSet pod a stable DNS name.
pub fn headless_service(ws: &WorkspaceV1Beta1) -> Result<Service> {
    Ok(Service {
        metadata: meta(ws, format!("{}{HEADLESS_SUFFIX}", ws.name()))?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(workload_labels(ws)),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: INFERENCE_PORT,
                target_port: Some(IntOrString::Int(INFERENCE_PORT)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}
