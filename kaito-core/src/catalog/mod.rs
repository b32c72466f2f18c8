//! Model presets and GPU SKUs as data (kaito.md §4), and the tuning memory estimate.
//!
//! - [`find_preset`] looks a model up by KAITO name, alias or Hugging Face id;
//!   [`ModelSource::parse`] also accepts a Hugging Face id outside the catalog and a local model
//!   directory (absolute path) in Hugging Face layout.
//! - [`find_sku`] looks an instance type up in the [`CloudProvider`]'s table.
//! - [`memory::estimate`] derives the GPU memory a LoRA/QLoRA run needs from the architecture.

mod arch;
pub mod memory;
mod presets;
mod sku;

use std::path::PathBuf;

pub use arch::{Architecture, Experts, RopeScaling, TUNABLE_ARCHITECTURES};
pub use presets::{KaitoTuningMemory, PRESETS, Preset, find_preset};
pub use sku::{
    ARC_SKUS, AWS_SKUS, AZURE_SKUS, CloudProvider, GpuModel, GpuSku, find_sku,
    gpu_model_from_product, skus,
};

/// Where a workspace's base model comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// A catalog preset.
    Preset(&'static Preset),
    /// A Hugging Face repository outside the catalog (`org/model`); KAITO serves these with vLLM
    /// (best effort) but cannot tune them.
    HuggingFace(String),
    /// A model directory in Hugging Face layout (`config.json`, `*.safetensors`,
    /// `tokenizer.json`), named by an absolute path.
    LocalPath(PathBuf),
}

impl ModelSource {
    /// Reads `preset.name`: a KAITO name or alias, an `org/model` id, or an absolute path.
    /// `None` when it is none of these.
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.starts_with('/') {
            let path = PathBuf::from(name);
            // `..` would let a name climb out of whatever root the runtime mounts models under.
            let escapes = path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
            return (!escapes && name.len() > 1).then_some(Self::LocalPath(path));
        }
        if let Some(preset) = find_preset(name) {
            return Some(Self::Preset(preset));
        }
        is_hf_repo_id(name).then(|| Self::HuggingFace(name.to_owned()))
    }

    /// The catalog preset, if it is one.
    pub fn preset(&self) -> Option<&'static Preset> {
        match self {
            Self::Preset(p) => Some(p),
            _ => None,
        }
    }
}

/// Whether `s` has the shape of a Hugging Face repository id: `org/model`, each part of
/// letters, digits, `-`, `_`, `.` (not starting or ending with `-`/`.`), at most 96 characters.
pub fn is_hf_repo_id(s: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("..")
    };
    matches!(s.split_once('/'), Some((org, model)) if part_ok(org) && part_ok(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_sources_are_told_apart() {
        assert!(
            matches!(ModelSource::parse("phi-4"), Some(ModelSource::Preset(p)) if p.name == "phi-4")
        );
        assert!(
            matches!(ModelSource::parse("microsoft/phi-4"), Some(ModelSource::Preset(p)) if p.name == "phi-4")
        );
        assert_eq!(
            ModelSource::parse("Qwen/Qwen3-8B"),
            Some(ModelSource::HuggingFace("Qwen/Qwen3-8B".to_owned()))
        );
        assert_eq!(
            ModelSource::parse("/models/smollm2"),
            Some(ModelSource::LocalPath("/models/smollm2".into()))
        );
        assert_eq!(ModelSource::parse("/models/../etc"), None);
        assert_eq!(ModelSource::parse("not a model"), None);
        assert_eq!(ModelSource::parse("a/b/c"), None);
    }
}
