//! `inference`: preset or template, secrets, runtime, adapters, config, GPU memory.

use std::collections::BTreeSet;

use serde_json::Value;

use super::resource::{GpuFacts, byo_gpu_facts, bypass_resource_checks};
use super::{Checker, InferenceRuntime, dns1123_subdomain};
use crate::api::names::ANNOTATION_RUNTIME;
use crate::api::{AdapterSpec, InferenceSpec, WorkspaceV1Beta1};
use crate::catalog::{ModelSource, Preset, find_sku};

/// Most adapters one inference workspace may load.
pub const MAX_ADAPTERS: usize = 10;
/// The ConfigMap key of the inference config.
pub const INFERENCE_CONFIG_KEY: &str = "inference_config.yaml";
/// The default inference ConfigMap, in the release namespace.
pub const INFERENCE_TEMPLATE_NAME: &str = "inference-params-template";

fn runtime(c: &Checker<'_>, ws: &WorkspaceV1Beta1) -> InferenceRuntime {
    match ws
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_RUNTIME))
        .map(String::as_str)
    {
        Some("vllm") => InferenceRuntime::Vllm,
        Some("transformers") => InferenceRuntime::Transformers,
        _ => c.ctx.default_runtime,
    }
}

pub(crate) fn check_create(c: &mut Checker<'_>, ws: &WorkspaceV1Beta1, inf: &InferenceSpec) {
    match (&inf.preset, &inf.template) {
        (None, None) => c.error("inference", "preset or template must be specified"),
        (Some(_), Some(_)) => c.error(
            "inference",
            "preset and template cannot be set at the same time",
        ),
        _ => {}
    }
    let runtime = runtime(c, ws);
    if let Some(preset) = &inf.preset {
        let options = preset.preset_options.clone().unwrap_or_default();
        if let Some(mode) = &preset.access_mode {
            if !matches!(mode.as_str(), "public" | "private") {
                c.error(
                    "inference.preset.accessMode",
                    format!("{mode:?} is not one of public, private"),
                );
            } else if mode == "private" && options.image.as_deref().unwrap_or_default().is_empty() {
                c.error(
                    "inference.preset.presetOptions.image",
                    "required when accessMode is private",
                );
            }
        }
        if let Some(image) = &options.image {
            c.image("inference.preset.presetOptions.image", image);
        }
        if let Some(secret) = &options.model_access_secret {
            c.secret_name("inference.preset.presetOptions.modelAccessSecret", secret);
        }
        match ModelSource::parse(&preset.name) {
            None => c.error(
                "inference.preset.name",
                format!("unsupported inference preset name {:?}", preset.name),
            ),
            Some(ModelSource::LocalPath(_)) => c.error(
                "inference.preset.name",
                "local model directories are supported for tuning only",
            ),
            Some(ModelSource::HuggingFace(_)) => {}
            Some(ModelSource::Preset(p)) if p.deprecated => c.error(
                "inference.preset.name",
                format!("preset {} is deprecated", p.name),
            ),
            Some(ModelSource::Preset(p)) => {
                let has_secret = options
                    .model_access_secret
                    .as_deref()
                    .is_some_and(|s| !s.is_empty());
                if p.download_at_runtime && p.auth_required && !has_secret {
                    c.error(
                        "inference.preset.presetOptions.modelAccessSecret",
                        format!("{} is gated: name a Secret with an HF_TOKEN key", p.hf_id),
                    );
                } else if !p.download_at_runtime && has_secret {
                    c.error(
                        "inference.preset.presetOptions.modelAccessSecret",
                        format!(
                            "{} does not download weights at run time: remove it",
                            p.name
                        ),
                    );
                }
                check_config(c, ws, inf, Some(p));
                check_memory(c, ws, p, runtime);
            }
        }
    }
    check_adapters(c, inf.adapters.as_deref().unwrap_or_default(), runtime);
}

/// Adapters: at most ten, unique valid names, one image or volume each, strength in [0, 1].
pub(crate) fn check_adapters(
    c: &mut Checker<'_>,
    adapters: &[AdapterSpec],
    runtime: InferenceRuntime,
) {
    if adapters.len() > MAX_ADAPTERS {
        c.error(
            "inference.adapters",
            format!(
                "at most {MAX_ADAPTERS} adapters are allowed (found {})",
                adapters.len()
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, adapter) in adapters.iter().enumerate() {
        let at = format!("inference.adapters[{i}]");
        let Some(source) = &adapter.source else {
            c.error(format!("{at}.source"), "required");
            continue;
        };
        match source.name.as_deref() {
            None | Some("") => c.error(format!("{at}.source.name"), "required"),
            Some(name) => {
                if let Err(e) = dns1123_subdomain(name) {
                    c.error(format!("{at}.source.name"), e);
                }
                if !seen.insert(name.to_owned()) {
                    c.error(
                        format!("{at}.source.name"),
                        format!("duplicate adapter name {name:?}"),
                    );
                }
            }
        }
        if source.urls.as_ref().is_some_and(|u| !u.is_empty()) {
            c.error(
                format!("{at}.source.urls"),
                "adapters come from an image or a volume, not URLs",
            );
        }
        match (&source.image, &source.volume_source) {
            (None, None) => c.error(
                format!("{at}.source"),
                "image or volumeSource must be specified",
            ),
            (Some(_), Some(_)) => c.error(
                format!("{at}.source"),
                "only one of image or volumeSource may be specified",
            ),
            (Some(image), None) => c.image(&format!("{at}.source.image"), image),
            (None, Some(v)) if !v.is_object() => c.error(
                format!("{at}.source.volumeSource"),
                "must be a Kubernetes VolumeSource object",
            ),
            _ => {}
        }
        for (j, secret) in source.image_pull_secrets.iter().flatten().enumerate() {
            c.secret_name(&format!("{at}.source.imagePullSecrets[{j}]"), secret);
        }
        if let Some(strength) = &adapter.strength {
            match strength.trim().parse::<f64>() {
                Ok(s) if (0.0..=1.0).contains(&s) => {}
                Ok(_) => c.error(
                    format!("{at}.strength"),
                    format!("{strength:?} must be between 0 and 1"),
                ),
                Err(_) => c.error(
                    format!("{at}.strength"),
                    format!("{strength:?} is not a number"),
                ),
            }
            if runtime == InferenceRuntime::Vllm {
                c.error(
                    format!("{at}.strength"),
                    "the vllm runtime does not support adapter strength",
                );
            }
        }
    }
}

/// The inference ConfigMap must exist, hold `inference_config.yaml`, parse, and keep
/// `vllm.max-model-len` within the model's context.
fn check_config(
    c: &mut Checker<'_>,
    ws: &WorkspaceV1Beta1,
    inf: &InferenceSpec,
    preset: Option<&Preset>,
) {
    let user = inf.config.as_deref().filter(|n| !n.is_empty());
    let (namespace, name) = match user {
        Some(n) => (ws.namespace().to_owned(), n.to_owned()),
        None => (
            c.ctx.release_namespace.clone(),
            INFERENCE_TEMPLATE_NAME.to_owned(),
        ),
    };
    let ctx = c.ctx;
    let Some(cm) = ctx.config_map(&namespace, &name) else {
        if user.is_some() && c.ctx.config_maps_complete {
            c.error(
                "inference.config",
                format!("ConfigMap {namespace}/{name} not found"),
            );
        }
        return;
    };
    let Some(text) = cm
        .data
        .as_ref()
        .and_then(|d| d.get(INFERENCE_CONFIG_KEY))
        .cloned()
    else {
        c.error(
            "inference.config",
            format!("ConfigMap {namespace}/{name} has no `{INFERENCE_CONFIG_KEY}` key"),
        );
        return;
    };
    let doc: Value = match serde_saphyr::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            c.error(
                "inference.config",
                format!("ConfigMap {namespace}/{name}: not valid YAML: {e}"),
            );
            return;
        }
    };
    let max_len = doc
        .get("vllm")
        .and_then(|v| v.get("max-model-len"))
        .and_then(Value::as_u64);
    if let (Some(len), Some(p)) = (max_len, preset)
        && len > u64::from(p.arch.context_length)
    {
        c.error(
            "inference.config",
            format!("ConfigMap {namespace}/{name}: vllm.max-model-len {len} exceeds {}'s context of {} tokens", p.name, p.arch.context_length),
        );
    }
}

fn check_memory(c: &mut Checker<'_>, ws: &WorkspaceV1Beta1, p: &Preset, runtime: InferenceRuntime) {
    let count = ws
        .resource
        .as_ref()
        .and_then(|r| r.count)
        .unwrap_or(1)
        .max(1) as u64;
    let facts = if c.ctx.node_auto_provisioning {
        let instance_type = ws
            .resource
            .as_ref()
            .and_then(|r| r.instance_type.as_deref())
            .unwrap_or_default();
        match find_sku(c.ctx.cloud_provider, instance_type) {
            Some(sku) => GpuFacts::from_sku(sku, count),
            None => return,
        }
    } else {
        match byo_gpu_facts(c, ws) {
            Ok(Some(facts)) => facts,
            _ => return,
        }
    };
    // KAITO checks this only for the transformers runtime or BYO nodes (vLLM sizes itself).
    if runtime != InferenceRuntime::Transformers && c.ctx.node_auto_provisioning {
        return;
    }
    let needed = (p.weights_gib * f64::from(1u32 << 30)) as u64;
    let per_node = facts.gpus_per_node * facts.memory_per_gpu;
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30));
    if per_node * facts.nodes < needed {
        let message = format!(
            "insufficient GPU memory: {} node(s) with {} GPU(s) of {} have {} but {} needs at least {} for its weights",
            facts.nodes,
            facts.gpus_per_node,
            gib(facts.memory_per_gpu),
            gib(per_node * facts.nodes),
            p.name,
            gib(needed)
        );
        if bypass_resource_checks(ws) {
            c.warn("resource.instanceType", message)
        } else {
            c.error("resource.instanceType", message)
        }
    }
    if runtime == InferenceRuntime::Transformers && per_node < needed && facts.nodes > 1 {
        c.error(
            "resource.count",
            "multi-node distributed inference is not supported with the transformers runtime",
        );
    }
}
