//! `kaito tune -f WORKSPACE.yaml`: run a tuning Workspace on this machine (README's main job),
//! or inside the operator's tuning pod with the pod's mounted paths.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use kaito_backends::artifacts::{
    DockerCredentials, OciLayoutStore, OciRegistryStore, PlainHttp, RegistryStoreConfig,
};
use kaito_backends::fetch::{UrlDownloader, UrlFetchConfig};
use kaito_backends::pipeline::{
    OutputTarget, TuningPipeline, TuningRun, input_source, output_target,
};
use kaito_backends::runtime::BurnRuntime;
use kaito_core::api::WorkspaceV1Beta1;
use kaito_core::api::manifest::parse_manifests;
use kaito_core::traits::{ArtifactStore, BaseModel, RegistryCredentials, TrainingProgress};
use kaito_core::tuning::TuningConfig;
use kaito_core::validation::{ValidationContext, check_create};
use tokio_util::sync::CancellationToken;

use super::model::{Device, obtain_model, prepare_device};
use super::report::{ProgressView, write_loss_curve, write_summary};

/// Arguments of `kaito tune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tuning Workspace manifest (may also hold its training ConfigMap).
    #[arg(
        short = 'f',
        long = "filename",
        required_unless_present = "workspace_env"
    )]
    file: Option<PathBuf>,
    /// Read the Workspace manifest from this environment variable (the operator's Job sets
    /// `KAITO_WORKSPACE`).
    #[arg(long)]
    workspace_env: Option<String>,
    /// Inside the operator's tuning pod: volumes are mounted at `--data-dir` / `--output-dir`.
    #[arg(long)]
    in_cluster: bool,
    /// Base model: a Hugging Face layout directory or a `.gguf` file. Default: the preset's
    /// local copy (for `smollm2-135m-instruct`, `$KAITO_SMOLLM2_GGUF` or
    /// `.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`).
    #[arg(long, alias = "weights-dir", env = "KAITO_MODEL")]
    model: Option<PathBuf>,
    /// Push the adapter to this image instead of the workspace's output.
    #[arg(long)]
    output_image: Option<String>,
    /// Where a pod mounted the input volume (`--input-mount` alias, set by the operator's Job).
    #[arg(long, alias = "input-mount")]
    data_dir: Option<PathBuf>,
    /// Directory of docker config files (`<secret>.json`) with registry credentials.
    #[arg(long, env = "KAITO_REGISTRY_AUTH_DIR")]
    docker_config_dir: Option<PathBuf>,
    /// Compute device; the binary must be built for it.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// A directory where GPU kernels, once compiled and autotuned, are kept for the next run
    /// (the operator mounts a per-node one). Ignored on the CPU.
    #[arg(long, env = "KAITO_KERNEL_CACHE")]
    kernel_cache: Option<PathBuf>,
    /// GPUs the pod was given (training uses one device; more is reported, not used).
    #[arg(long, default_value_t = 1)]
    num_gpus: u32,
    /// A ConfigMap manifest (or a bare `training_config.yaml`) to use instead of `tuning.config`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Scratch space (downloads, checkpoints, the adapter before it is pushed, reports).
    #[arg(long, default_value = ".kaito/runs")]
    work_dir: PathBuf,
    /// Write the adapter here instead of the workspace's output.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Push image outputs into this local OCI image layout instead of a registry.
    #[arg(long)]
    oci_layout: Option<PathBuf>,
    /// Docker config (`.dockerconfigjson`) with credentials for image input and output.
    #[arg(long, env = "DOCKER_CONFIG_FILE")]
    docker_config: Option<PathBuf>,
    /// Speak plain HTTP to registries (local test registries only).
    #[arg(long)]
    plain_http: bool,
    /// No progress bar (logs one line per step instead).
    #[arg(long)]
    quiet: bool,
    /// Write the outcome (summary or error) here, for Kubernetes' termination message; the
    /// operator shows it in the workspace's status.
    #[arg(long, env = "KAITO_TERMINATION_LOG")]
    termination_log: Option<PathBuf>,
    /// Where the base weights come from when `--model` holds none.
    #[command(flatten)]
    weights: super::model::WeightsArgs,
}

/// Kubernetes keeps at most this many bytes of a termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Runs the command, leaving its outcome in `--termination-log` when asked.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let result = tune(args);
    if let Some(path) = &args.termination_log {
        let message = match &result {
            Ok((_, summary)) => format!("succeeded: {summary}"),
            Err(e) => format!("failed: {e:#}"),
        };
        if let Err(e) = std::fs::write(path, termination_message(&message)) {
            eprintln!("warning: could not write {}: {e}", path.display());
        }
    }
    result.map(|(code, _)| code)
}

/// The last [`TERMINATION_MESSAGE_LIMIT`] bytes of `message` on one line (the operator shows
/// the last line), cut on a character boundary.
fn termination_message(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut start = line.len().saturating_sub(TERMINATION_MESSAGE_LIMIT);
    while !line.is_char_boundary(start) {
        start += 1;
    }
    line[start..].to_owned()
}

fn tune(args: &Args) -> anyhow::Result<(ExitCode, String)> {
    prepare_device(args.device, args.kernel_cache.as_deref())?;
    if args.num_gpus > 1 {
        eprintln!(
            "warning: --num-gpus {}: training runs on one device",
            args.num_gpus
        );
    }
    let (source, text) = match (&args.file, &args.workspace_env) {
        (Some(file), _) => (
            file.display().to_string(),
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
        ),
        (None, Some(var)) => (
            format!("${var}"),
            std::env::var(var).with_context(|| format!("environment variable {var}"))?,
        ),
        (None, None) => bail!("pass -f FILE or --workspace-env VAR"),
    };
    let manifests = parse_manifests(&source, &text)?;
    let mut tuning: Vec<WorkspaceV1Beta1> = manifests
        .workspaces
        .iter()
        .cloned()
        .map(|w| w.into_storage())
        .filter(|w| w.tuning.is_some())
        .collect();
    let ws = match tuning.len() {
        1 => tuning.remove(0),
        0 => bail!("{source}: no Workspace with a `tuning` section"),
        n => bail!("{source}: {n} tuning Workspaces; put one per file"),
    };
    if let Some(path) = manifests.unknown_fields.first() {
        bail!("{source}: unknown field {path}");
    }
    // This machine is the node: instance types are not provisioned, so both forms are accepted.
    let has_sku = ws
        .resource
        .as_ref()
        .and_then(|r| r.instance_type.as_deref())
        .is_some_and(|s| !s.is_empty());
    let ctx = ValidationContext {
        node_auto_provisioning: has_sku,
        config_maps: manifests.config_maps.values().cloned().collect(),
        config_maps_complete: args.config.is_none(),
        ..ValidationContext::default()
    };
    let report = check_create(&ws, &ctx);
    for w in report.warnings.iter() {
        eprintln!("warning: {w}");
    }
    report
        .errors
        .into_result()
        .map_err(|e| anyhow::anyhow!("{source}: workspace {:?} is invalid: {e}", ws.name()))?;

    let spec = ws.tuning.clone().unwrap_or_default();
    let method = spec
        .tuning_method()
        .context("tuning.method must be lora or qlora")?;
    let preset = spec
        .preset
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let config = training_config(args, &manifests.config_maps, spec.config.as_deref(), method)?;
    // Relative hostPaths (not valid in a cluster) are read relative to the current directory,
    // so the examples run from the repository root.
    let manifest_dir = std::env::current_dir()?;
    let docker = load_docker_configs(
        args.docker_config.as_deref(),
        args.docker_config_dir.as_deref(),
    )?;
    let creds_for = |reference: &str| {
        docker
            .iter()
            .map(|d| d.for_reference(reference))
            .find(|c| *c != RegistryCredentials::Anonymous)
            .unwrap_or(RegistryCredentials::Anonymous)
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let weights_credentials = args
        .weights
        .weights_image
        .as_deref()
        .map_or(RegistryCredentials::Anonymous, creds_for);
    let base_model = BaseModel {
        name: preset.clone(),
        path: runtime.block_on(obtain_model(
            args.model.as_deref(),
            &preset,
            &args.weights,
            weights_credentials,
        ))?,
    };
    let output_mount = args.in_cluster.then(|| args.output_dir.clone()).flatten();
    let input = input_source(
        spec.input.as_ref().context("tuning.input is required")?,
        &manifest_dir,
        args.data_dir.as_deref(),
    )?;
    let mut output = output_target(
        spec.output.as_ref().context("tuning.output is required")?,
        &manifest_dir,
        output_mount.as_deref(),
    )?;
    if let Some(reference) = &args.output_image {
        output = OutputTarget::Image {
            reference: reference.clone(),
            push_secret: None,
        };
    } else if let Some(dir) = &args.output_dir {
        output = OutputTarget::Directory(dir.clone());
    }
    let input_credentials = match &input {
        kaito_backends::pipeline::InputSource::Image { reference, .. } => creds_for(reference),
        _ => RegistryCredentials::Anonymous,
    };
    let output_credentials = match &output {
        OutputTarget::Image { reference, .. } => creds_for(reference),
        OutputTarget::Directory(_) => RegistryCredentials::Anonymous,
    };
    let work_dir = args.work_dir.join(ws.name());
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let run = TuningRun {
        preset,
        base_model,
        method,
        config,
        input,
        input_credentials,
        output,
        output_credentials,
        work_dir: work_dir.clone(),
    };
    let store: Arc<dyn ArtifactStore> = match &args.oci_layout {
        Some(dir) => Arc::new(OciLayoutStore::new(dir)),
        None => Arc::new(OciRegistryStore::new(RegistryStoreConfig {
            plain_http: if args.plain_http {
                PlainHttp::Always
            } else {
                PlainHttp::Never
            },
            ..RegistryStoreConfig::default()
        })),
    };
    let pipeline = TuningPipeline::new(
        Arc::new(BurnRuntime),
        store,
        UrlDownloader::new(UrlFetchConfig::default())?,
    );
    let view = Arc::new(ProgressView::new(args.quiet));
    let history: Arc<Mutex<Vec<TrainingProgress>>> = Arc::default();
    let sink = {
        let (view, history) = (view.clone(), history.clone());
        Arc::new(move |p: &TrainingProgress| {
            view.update(p);
            history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(p.clone());
        })
    };
    let cancel = CancellationToken::new();
    let outcome = runtime.block_on(async {
        let ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c.cancel();
            }
        });
        pipeline.run(run, sink, cancel).await
    });
    view.finish();
    let outcome = outcome?;
    let history = history.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let plot = work_dir.join("loss.png");
    if let Err(e) = write_loss_curve(&history, &plot) {
        eprintln!("warning: could not draw {}: {e:#}", plot.display());
    }
    let summary = write_summary(&work_dir.join("summary.json"), ws.name(), &outcome, &plot)?;
    println!("{summary}");
    Ok((ExitCode::SUCCESS, summary))
}

/// Docker configs from `--docker-config` and every `*.json` in `--docker-config-dir`.
fn load_docker_configs(
    file: Option<&Path>,
    dir: Option<&Path>,
) -> anyhow::Result<Vec<DockerCredentials>> {
    let mut out = Vec::new();
    if let Some(file) = file {
        out.push(DockerCredentials::from_file(file)?);
    }
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            out.push(DockerCredentials::from_file(&f)?);
        }
    }
    Ok(out)
}

/// The training config: `--config`, else the ConfigMap `tuning.config` names (from the same
/// file), else KAITO's default template for the method.
fn training_config(
    args: &Args,
    config_maps: &std::collections::BTreeMap<String, k8s_openapi::api::core::v1::ConfigMap>,
    name: Option<&str>,
    method: kaito_core::api::TuningMethod,
) -> anyhow::Result<TuningConfig> {
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifests = parse_manifests(&path.display().to_string(), &text);
        if let Ok(m) = manifests
            && let Some(cm) = m.config_maps.values().next()
        {
            return Ok(TuningConfig::from_config_map(cm)?);
        }
        return TuningConfig::from_yaml(&text).with_context(|| format!("{}", path.display()));
    }
    match name.filter(|n| !n.is_empty()) {
        Some(name) => {
            let cm = config_maps.get(name).with_context(|| {
                format!(
                    "tuning.config: ConfigMap {name:?} is not in the file; pass it with --config"
                )
            })?;
            Ok(TuningConfig::from_config_map(cm)?)
        }
        None => Ok(TuningConfig::kaito_default(method)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_message_is_one_line_within_the_kubelet_limit() {
        let long = format!("{{\n  \"a\": 1\n}} {}é", "x".repeat(5000));
        let m = termination_message(&long);
        assert!(!m.contains('\n'));
        assert!(m.len() <= TERMINATION_MESSAGE_LIMIT);
        assert!(m.ends_with('é'), "keeps the end, where the outcome is");
        assert_eq!(termination_message("{\n  \"a\": 1\n}"), "{ \"a\": 1 }");
    }
}
