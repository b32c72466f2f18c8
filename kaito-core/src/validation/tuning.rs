//! `tuning`: method, preset, training config, input, output, and whether the run fits the GPU.

use serde_json::Value;

use super::resource::{GpuFacts, byo_gpu_facts, bypass_resource_checks, unknown_sku_message};
use super::url::check_download_url;
use super::{Checker, dns1123_label};
use crate::api::{DataDestination, DataSource, TuningMethod, TuningSpec, WorkspaceV1Beta1};
use crate::catalog::{ModelSource, PRESETS, find_sku, memory};
use crate::tuning::{TRAINING_CONFIG_KEY, TuningConfig, default_config_map, template_name};

pub(crate) fn check_create(c: &mut Checker<'_>, ws: &WorkspaceV1Beta1, t: &TuningSpec) {
    let method = check_method(c, t);
    let source = check_preset(c, t);
    let config = method.and_then(|m| check_config(c, ws, t, m));
    match &t.input {
        None => c.error("tuning.input", "required"),
        Some(input) => check_input(c, input),
    }
    match &t.output {
        None => c.error("tuning.output", "required"),
        Some(output) => check_output(c, output),
    }
    if let Some(count) = ws.resource.as_ref().and_then(|r| r.count)
        && count > 1
    {
        c.error(
            "resource.count",
            "tuning runs on one node: set the count to 1 (multi-node tuning is not supported)",
        );
    }
    if let (Some(m), Some(ModelSource::Preset(p)), Some(cfg)) = (method, &source, &config) {
        check_memory(c, ws, p, m, cfg);
    } else if let (Some(ModelSource::LocalPath(path)), true) = (&source, config.is_some()) {
        c.warn(
            "tuning.preset.name",
            format!(
                "{}: GPU memory is checked when the job reads its config.json",
                path.display()
            ),
        );
    }
}

fn check_method(c: &mut Checker<'_>, t: &TuningSpec) -> Option<TuningMethod> {
    let method = t.tuning_method();
    if method.is_none() {
        let got = t.method.as_deref().unwrap_or_default();
        c.error(
            "tuning.method",
            format!("{got:?} is not supported; expected lora or qlora"),
        );
    }
    method
}

pub(crate) fn check_preset(c: &mut Checker<'_>, t: &TuningSpec) -> Option<ModelSource> {
    let Some(preset) = &t.preset else {
        c.error("tuning.preset", "required");
        return None;
    };
    let tunable = || {
        PRESETS
            .iter()
            .filter(|p| p.tunable)
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ModelSource::parse(&preset.name) {
        None => c.error("tuning.preset.name", format!("unsupported tuning preset name {:?}; use one of {}", preset.name, tunable())),
        Some(ModelSource::HuggingFace(id)) => c.error(
            "tuning.preset.name",
            format!("{id} is not in the catalog; tune one of {} or an absolute path to a model directory", tunable()),
        ),
        Some(ModelSource::Preset(p)) if p.deprecated => c.error("tuning.preset.name", format!("preset {} is deprecated", p.name)),
        Some(ModelSource::Preset(p)) if !p.tunable => {
            c.error("tuning.preset.name", format!("preset {} does not support tuning; use one of {}", p.name, tunable()));
        }
        Some(source) => return Some(source),
    }
    None
}

/// Parses the ConfigMap the job will use, reporting every problem under `tuning.config`.
pub(crate) fn check_config(
    c: &mut Checker<'_>,
    ws: &WorkspaceV1Beta1,
    t: &TuningSpec,
    method: TuningMethod,
) -> Option<TuningConfig> {
    let user = t.config.as_deref().filter(|n| !n.is_empty());
    let (namespace, name) = match user {
        Some(name) => (ws.namespace().to_owned(), name.to_owned()),
        None => (
            c.ctx.release_namespace.clone(),
            template_name(method).to_owned(),
        ),
    };
    let found = c.ctx.config_map(&namespace, &name).cloned();
    let cm = match (found, user) {
        (Some(cm), _) => cm,
        // kaito-rs installs the chart's templates; absent from the context they are those.
        (None, None) => default_config_map(method, &namespace),
        (None, Some(_)) if !c.ctx.config_maps_complete => {
            c.warn("tuning.config", format!("ConfigMap {namespace}/{name} was not provided: its training config is not checked"));
            return None;
        }
        (None, Some(_)) => {
            c.error(
                "tuning.config",
                format!("ConfigMap {namespace}/{name} not found"),
            );
            return None;
        }
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(TRAINING_CONFIG_KEY)) else {
        c.error(
            "tuning.config",
            format!("ConfigMap {namespace}/{name} has no `{TRAINING_CONFIG_KEY}` key"),
        );
        return None;
    };
    let config = match TuningConfig::parse(text) {
        Ok(cfg) => cfg,
        Err(errs) => {
            for e in errs.iter() {
                c.error(
                    "tuning.config",
                    format!("ConfigMap {namespace}/{name}: {}: {}", e.path, e.message),
                );
            }
            return None;
        }
    };
    for e in config.check_method(method).iter() {
        c.error(
            "tuning.config",
            format!("ConfigMap {namespace}/{name}: {}: {}", e.path, e.message),
        );
    }
    Some(config)
}

/// `tuning.input`: exactly one source, each well-formed.
pub(crate) fn check_input(c: &mut Checker<'_>, input: &DataSource) {
    let urls = input.urls.as_deref().unwrap_or_default();
    let sources = usize::from(!urls.is_empty())
        + usize::from(input.image.is_some())
        + usize::from(input.volume_source.is_some());
    if sources != 1 {
        c.error(
            "tuning.input",
            format!(
                "exactly one of urls, image or volumeSource must be specified (found {sources})"
            ),
        );
    }
    if let Some(name) = &input.name
        && let Err(e) = dns1123_label(name)
    {
        c.error(
            "tuning.input.name",
            format!("{e} (it names the job's volumes)"),
        );
    }
    for (i, url) in urls.iter().enumerate() {
        if let Err(e) = check_download_url(url) {
            c.error(format!("tuning.input.urls[{i}]"), e);
        }
    }
    if let Some(image) = &input.image {
        c.image("tuning.input.image", image);
    }
    for (i, secret) in input.image_pull_secrets.iter().flatten().enumerate() {
        c.secret_name(&format!("tuning.input.imagePullSecrets[{i}]"), secret);
    }
    check_volume(c, "tuning.input.volumeSource", input.volume_source.as_ref());
}

/// `tuning.output`: exactly one destination; an image needs a push secret.
pub(crate) fn check_output(c: &mut Checker<'_>, output: &DataDestination) {
    let destinations =
        usize::from(output.image.is_some()) + usize::from(output.volume_source.is_some());
    if destinations != 1 {
        c.error(
            "tuning.output",
            format!(
                "exactly one of image or volumeSource must be specified (found {destinations})"
            ),
        );
    }
    if let Some(image) = &output.image {
        c.image("tuning.output.image", image);
        match output.image_push_secret.as_deref() {
            None | Some("") => c.error(
                "tuning.output.imagePushSecret",
                "required with output.image (a Secret of type kubernetes.io/dockerconfigjson)",
            ),
            Some(secret) => c.secret_name("tuning.output.imagePushSecret", secret),
        }
    }
    check_volume(
        c,
        "tuning.output.volumeSource",
        output.volume_source.as_ref(),
    );
}

fn check_volume(c: &mut Checker<'_>, path: &str, volume: Option<&Value>) {
    match volume {
        Some(Value::Object(m)) if m.len() == 1 => {}
        Some(Value::Object(m)) if m.is_empty() => c.error(
            path,
            "empty: name one volume type (e.g. persistentVolumeClaim)",
        ),
        Some(Value::Object(_)) => c.error(
            path,
            "name exactly one volume type (e.g. persistentVolumeClaim)",
        ),
        Some(_) => c.error(path, "must be a Kubernetes VolumeSource object"),
        None => {}
    }
}

fn check_memory(
    c: &mut Checker<'_>,
    ws: &WorkspaceV1Beta1,
    preset: &crate::catalog::Preset,
    method: TuningMethod,
    cfg: &TuningConfig,
) {
    let facts = if c.ctx.node_auto_provisioning {
        let instance_type = ws
            .resource
            .as_ref()
            .and_then(|r| r.instance_type.as_deref())
            .unwrap_or_default();
        if instance_type.is_empty() {
            return; // reported by the resource rules
        }
        match find_sku(c.ctx.cloud_provider, instance_type) {
            Some(sku) => GpuFacts::from_sku(sku, 1),
            None => {
                let message = format!(
                    "{} (tuning needs the SKU's GPU memory)",
                    unknown_sku_message(c, instance_type)
                );
                c.error("resource.instanceType", message);
                return;
            }
        }
    } else {
        match byo_gpu_facts(c, ws) {
            Ok(Some(facts)) => facts,
            Ok(None) => {
                c.warn(
                    "resource.labelSelector",
                    "bring-your-own nodes are not known here: GPU memory is not checked",
                );
                return;
            }
            Err(()) => return,
        }
    };
    if let Some(gpu) = &facts.gpu
        && !gpu.is_cuda()
    {
        c.error(
            "resource.instanceType",
            format!(
                "{} is not an NVIDIA GPU; the tuning runtime needs CUDA",
                gpu.name
            ),
        );
        return;
    }
    let estimate = match memory::estimate(
        &preset.arch,
        method,
        cfg,
        facts.gpu.as_ref(),
        c.ctx.attention,
    ) {
        Ok(e) => e,
        Err(e) => {
            c.error("tuning.config", e);
            return;
        }
    };
    if let Err(message) = estimate.check_fits(facts.memory_per_gpu, &facts.device) {
        let message = format!("{} of {}: {message}", method.as_str(), preset.name);
        if bypass_resource_checks(ws) {
            c.warn("resource.instanceType", message);
        } else {
            c.error("resource.instanceType", message);
        }
    }
}
