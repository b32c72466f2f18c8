//! `kaito serve`: a base model plus adapters over HTTP (KAITO's `/chat`, OpenAI-compatible).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use kaito_backends::artifacts::DockerCredentials;
use kaito_backends::artifacts::cli::{ArtifactCliOptions, pull_data};
use kaito_backends::runtime::BurnRuntime;
use kaito_backends::serve::{ServeLimits, serve};
use kaito_core::traits::{AdapterRef, BaseModel, ModelRuntime, RegistryCredentials, ServingSpec};

/// Arguments of `kaito serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base model: a Hugging Face layout directory or a `.gguf` file.
    #[arg(
        long,
        alias = "weights-dir",
        env = "KAITO_MODEL",
        required_unless_present = "preset"
    )]
    model: Option<PathBuf>,
    /// The preset to serve (its local weights; the served model name defaults to it).
    #[arg(long)]
    preset: Option<String>,
    /// The name clients use for the base model (default: the file or directory name).
    #[arg(long)]
    served_model_name: Option<String>,
    /// An adapter: `NAME=SOURCE[@STRENGTH]`, SOURCE a directory or an image reference
    /// (`registry/repo:tag`, `oci://registry/repo:tag`, `oci:<dir>:<tag>`); repeatable.
    #[arg(long = "adapter")]
    adapters: Vec<String>,
    /// An adapter's strength, `NAME=S` with S in [0, 1] (as KAITO passes it); repeatable.
    #[arg(long = "adapter-strength")]
    strengths: Vec<String>,
    /// Listen address.
    #[arg(long, default_value = "0.0.0.0:5000")]
    listen: SocketAddr,
    /// Listen on 0.0.0.0:PORT (overrides --listen).
    #[arg(long)]
    port: Option<u16>,
    /// KAITO's `inference_config.yaml` (checked to parse; its vLLM keys do not apply here).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Compute device; the binary must be built for it.
    #[arg(long, value_enum, default_value = "cpu")]
    device: super::model::Device,
    /// A directory where GPU kernels, once compiled and autotuned, are kept for the next run
    /// (the operator mounts a per-node one). Ignored on the CPU.
    #[arg(long, env = "KAITO_KERNEL_CACHE")]
    kernel_cache: Option<PathBuf>,
    /// Where image adapters are extracted.
    #[arg(long, default_value = "/tmp/kaito-adapters")]
    adapter_dir: PathBuf,
    /// Docker config with credentials for adapter images.
    #[arg(long, env = "DOCKER_CONFIG_FILE")]
    docker_config: Option<PathBuf>,
    /// Speak plain HTTP to registries (local registries only).
    #[arg(long)]
    plain_http: bool,
    /// Largest number of tokens one request may generate.
    #[arg(long, default_value_t = 1024)]
    max_new_tokens: usize,
    /// Generations running at once.
    #[arg(long, default_value_t = 2)]
    max_concurrent: usize,
    /// Where the base weights come from when `--model` holds none.
    #[command(flatten)]
    weights: super::model::WeightsArgs,
}

/// `NAME=SOURCE[@STRENGTH]`.
fn parse_adapter(spec: &str) -> anyhow::Result<(String, String, f32)> {
    let (name, rest) = spec
        .split_once('=')
        .with_context(|| format!("--adapter {spec:?}: expected NAME=SOURCE[@STRENGTH]"))?;
    let (source, strength) = match rest.rsplit_once('@') {
        // `repo@sha256:…` is a digest, not a strength.
        Some((s, w)) if !w.starts_with("sha256:") => {
            let w: f32 = w
                .parse()
                .with_context(|| format!("--adapter {spec:?}: strength {w:?} is not a number"))?;
            if !(0.0..=1.0).contains(&w) {
                bail!("--adapter {spec:?}: strength must be in [0, 1]");
            }
            (s, w)
        }
        _ => (rest, 1.0),
    };
    if name.is_empty() || source.is_empty() {
        bail!("--adapter {spec:?}: expected NAME=SOURCE[@STRENGTH]");
    }
    Ok((name.to_owned(), source.to_owned(), strength))
}

/// `NAME=S` strengths, each in [0, 1].
fn parse_strengths(specs: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, f32>> {
    specs
        .iter()
        .map(|spec| {
            let (name, w) = spec
                .split_once('=')
                .with_context(|| format!("--adapter-strength {spec:?}: expected NAME=S"))?;
            let w: f32 = w
                .parse()
                .with_context(|| format!("--adapter-strength {spec:?}: {w:?} is not a number"))?;
            if !(0.0..=1.0).contains(&w) {
                bail!("--adapter-strength {spec:?}: strength must be in [0, 1]");
            }
            Ok((name.to_owned(), w))
        })
        .collect()
}

/// Runs the server until Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    super::model::prepare_device(args.device, args.kernel_cache.as_deref())?;
    let strengths = parse_strengths(&args.strengths)?;
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let _: serde_json::Value = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        eprintln!(
            "note: {}: vLLM settings do not apply to the Burn runtime",
            path.display()
        );
    }
    let listen = args
        .port
        .map_or(args.listen, |p| SocketAddr::from(([0, 0, 0, 0], p)));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let weights_credentials = match (&args.weights.weights_image, &args.docker_config) {
            (Some(reference), Some(file)) => {
                DockerCredentials::from_file(file)?.for_reference(reference)
            }
            _ => RegistryCredentials::Anonymous,
        };
        let model_path = super::model::obtain_model(
            args.model.as_deref(),
            args.preset.as_deref().unwrap_or_default(),
            &args.weights,
            weights_credentials,
        )
        .await?;
        let options = ArtifactCliOptions {
            docker_config: args.docker_config.clone(),
            plain_http: args.plain_http,
            plain_http_registries: Vec::new(),
        };
        let mut adapters = Vec::new();
        for spec in &args.adapters {
            let (name, source, strength) = parse_adapter(spec)?;
            let strength = strengths.get(&name).copied().unwrap_or(strength);
            let source = source.strip_prefix("oci://").unwrap_or(&source).to_owned();
            let local = PathBuf::from(&source);
            let dir = if local.is_dir() {
                local
            } else {
                let dir = args.adapter_dir.join(&name);
                if !dir.join("adapter_config.json").exists() {
                    pull_data(&source, &dir, &options).await?;
                }
                dir
            };
            adapters.push(AdapterRef {
                name,
                dir,
                strength,
            });
        }
        let name = args
            .served_model_name
            .clone()
            .or_else(|| args.preset.clone())
            .unwrap_or_else(|| {
                model_path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into())
            });
        let spec = ServingSpec {
            base_model: BaseModel {
                name,
                path: model_path.clone(),
            },
            adapters,
        };
        let model = BurnRuntime.load(spec).await?;
        let limits = ServeLimits {
            max_new_tokens: args.max_new_tokens,
            max_concurrent_generations: args.max_concurrent.max(1),
            ..ServeLimits::default()
        };
        eprintln!("serving {} on http://{listen}", model.model_name());
        serve(listen, Arc::clone(&model), limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::parse_adapter;

    #[test]
    fn adapter_specs_parse() {
        assert_eq!(
            parse_adapter("a=/x").expect("ok"),
            ("a".into(), "/x".into(), 1.0)
        );
        assert_eq!(
            parse_adapter("a=r/x:1@0.5").expect("ok"),
            ("a".into(), "r/x:1".into(), 0.5)
        );
        assert_eq!(
            parse_adapter("a=r/x@sha256:ab").expect("ok").1,
            "r/x@sha256:ab"
        );
        assert!(parse_adapter("a=r/x@2").is_err());
        assert!(parse_adapter("nope").is_err());
    }
}
