//! `kaito serve`: a base model plus adapters over HTTP (KAITO's `/chat`, OpenAI-compatible).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use kaito_backends::artifacts::cli::{ArtifactCliOptions, pull_data};
use kaito_backends::runtime::BurnRuntime;
use kaito_backends::serve::{ServeLimits, serve};
use kaito_core::traits::{AdapterRef, BaseModel, ModelRuntime, ServingSpec};

/// Arguments of `kaito serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base model: a Hugging Face layout directory or a `.gguf` file.
    #[arg(long, env = "KAITO_MODEL")]
    model: PathBuf,
    /// The name clients use for the base model (default: the file or directory name).
    #[arg(long)]
    served_model_name: Option<String>,
    /// An adapter: `NAME=SOURCE[@STRENGTH]`, SOURCE a directory or an image reference
    /// (`registry/repo:tag`, `oci:<dir>:<tag>`); repeatable.
    #[arg(long = "adapter")]
    adapters: Vec<String>,
    /// Listen address.
    #[arg(long, default_value = "0.0.0.0:5000")]
    listen: SocketAddr,
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
}

/// `NAME=SOURCE[@STRENGTH]`.
fn parse_adapter(spec: &str) -> anyhow::Result<(String, String, f32)> {
    let (name, rest) = spec.split_once('=').with_context(|| format!("--adapter {spec:?}: expected NAME=SOURCE[@STRENGTH]"))?;
    let (source, strength) = match rest.rsplit_once('@') {
        // `repo@sha256:…` is a digest, not a strength.
        Some((s, w)) if !w.starts_with("sha256:") => {
            let w: f32 = w.parse().with_context(|| format!("--adapter {spec:?}: strength {w:?} is not a number"))?;
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

/// Runs the server until Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let options = ArtifactCliOptions {
            docker_config: args.docker_config.clone(),
            plain_http: args.plain_http,
            plain_http_registries: Vec::new(),
        };
        let mut adapters = Vec::new();
        for spec in &args.adapters {
            let (name, source, strength) = parse_adapter(spec)?;
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
            adapters.push(AdapterRef { name, dir, strength });
        }
        let name = args.served_model_name.clone().unwrap_or_else(|| {
            args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
        });
        let spec = ServingSpec { base_model: BaseModel { name, path: args.model.clone() }, adapters };
        let model = BurnRuntime.load(spec).await?;
        let limits = ServeLimits {
            max_new_tokens: args.max_new_tokens,
            max_concurrent_generations: args.max_concurrent.max(1),
            ..ServeLimits::default()
        };
        eprintln!("serving {} on http://{}", model.model_name(), args.listen);
        serve(args.listen, Arc::clone(&model), limits, async {
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
        assert_eq!(parse_adapter("a=/x").expect("ok"), ("a".into(), "/x".into(), 1.0));
        assert_eq!(parse_adapter("a=r/x:1@0.5").expect("ok"), ("a".into(), "r/x:1".into(), 0.5));
        assert_eq!(parse_adapter("a=r/x@sha256:ab").expect("ok").1, "r/x@sha256:ab");
        assert!(parse_adapter("a=r/x@2").is_err());
        assert!(parse_adapter("nope").is_err());
    }
}
