//! The tuning ConfigMap's `training_config.yaml`, parsed into KAITO's six typed sections.
//!
//! - [`TuningConfig::parse`] reads the YAML over the libraries' defaults and returns every
//!   problem with its path: unknown sections and keys, keys kaito-rs does not implement (with a
//!   non-default value), wrong types and out-of-range values.
//! - [`TuningConfig::kaito_default`] is KAITO's `lora-params-template` / `qlora-params-template`,
//!   whose text is [`LORA_PARAMS_TEMPLATE`] / [`QLORA_PARAMS_TEMPLATE`].
//! - [`TuningConfig::check_method`] applies KAITO's webhook rules linking the config to
//!   `tuning.method` (kaito.md §3.3).
//!
//! `docs/tuning-config.md` documents every key.

mod keys;
mod parse;
mod sections;
mod templates;

use std::path::{Component, Path};

use k8s_openapi::api::core::v1::ConfigMap;

pub use keys::SECTIONS;
pub use parse::ROOT;
pub use sections::{
    DataCollator, DatasetConfig, DatasetFormat, IntervalStrategy, LoraConfig, LrScheduler,
    ModelConfig, QuantType, QuantizationConfig, TargetModules, TorchDtype, TrainingArguments,
};
pub use templates::{
    LORA_PARAMS_TEMPLATE, LORA_TEMPLATE_NAME, QLORA_PARAMS_TEMPLATE, QLORA_TEMPLATE_NAME,
    TRAINING_CONFIG_KEY, default_config_map, template_name,
};

use crate::api::TuningMethod;
use crate::error::{Error, Result};
use crate::validation::FieldErrors;

/// Where KAITO mounts the tuning job's volumes; `output_dir` must lie below it.
pub const MOUNT_ROOT: &str = "/mnt";

/// The typed `training_config` of a tuning workspace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TuningConfig {
    /// `ModelConfig`.
    pub model: ModelConfig,
    /// `QuantizationConfig`.
    pub quantization: QuantizationConfig,
    /// `LoraConfig`.
    pub lora: LoraConfig,
    /// `TrainingArguments`.
    pub training: TrainingArguments,
    /// `DataCollator`.
    pub data_collator: DataCollator,
    /// `DatasetConfig`.
    pub dataset: DatasetConfig,
}

impl TuningConfig {
    /// KAITO's default template for `method` (what a workspace without `tuning.config` gets).
    pub fn kaito_default(method: TuningMethod) -> Self {
        let text = match method {
            TuningMethod::Lora => LORA_PARAMS_TEMPLATE,
            TuningMethod::Qlora => QLORA_PARAMS_TEMPLATE,
        };
        // The templates are constants whose parse is tested; fall back to the typed equivalent
        // rather than panic should that ever break.
        Self::parse(text).unwrap_or_else(|_| Self::default())
    }

    /// Parses `training_config.yaml` text, returning every problem at once.
    pub fn parse(text: &str) -> std::result::Result<Self, FieldErrors> {
        let (cfg, mut errs) = parse::parse(text);
        errs.0.extend(cfg.check().0);
        if errs.is_empty() { Ok(cfg) } else { Err(errs) }
    }

    /// Parses `training_config.yaml` text; the error names the first problem's path and counts
    /// the others.
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::parse(text).map_err(|errs| {
            let mut iter = errs.iter();
            let Some(first) = iter.next() else {
                return Error::TuningConfig {
                    path: ROOT.to_owned(),
                    message: "invalid".to_owned(),
                };
            };
            let rest = iter.count();
            let message = if rest == 0 {
                first.message.clone()
            } else {
                format!("{} (and {rest} more problems)", first.message)
            };
            Error::TuningConfig {
                path: first.path.clone(),
                message,
            }
        })
    }

    /// Reads the `training_config.yaml` key of a ConfigMap.
    pub fn from_config_map(cm: &ConfigMap) -> Result<Self> {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(TRAINING_CONFIG_KEY))
            .ok_or_else(|| Error::TuningConfig {
                path: format!("ConfigMap {name}"),
                message: format!("has no `{TRAINING_CONFIG_KEY}` key"),
            })?;
        Self::from_yaml(text)
    }

    /// The method this config trains with: QLoRA iff the base is loaded in 4 bits.
    pub fn method(&self) -> TuningMethod {
        if self.quantization.load_in_4bit {
            TuningMethod::Qlora
        } else {
            TuningMethod::Lora
        }
    }

    /// KAITO's rules tying the config to `tuning.method`: lora must not quantize, qlora must.
    pub fn check_method(&self, method: TuningMethod) -> FieldErrors {
        let mut errs = FieldErrors::default();
        let path = format!("{ROOT}.QuantizationConfig.load_in_4bit");
        match (method, self.quantization.load_in_4bit) {
            (TuningMethod::Lora, true) => errs.push(
                path,
                "method lora loads the base unquantized: set it to false",
            ),
            (TuningMethod::Qlora, false) => {
                errs.push(path, "method qlora needs a 4-bit base: set it to true")
            }
            _ => {}
        }
        errs
    }

    /// Value and consistency checks after all keys are read.
    fn check(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        let mut need = |ok: bool, section: &str, key: &str, message: &str| {
            if !ok {
                errs.push(format!("{ROOT}.{section}.{key}"), message.to_owned());
            }
        };
        let q = &self.quantization;
        need(
            !(q.load_in_4bit && q.bnb_4bit_quant_type == QuantType::Fp4),
            "QuantizationConfig",
            "bnb_4bit_quant_type",
            "fp4 (the bitsandbytes default) is not supported; set bnb_4bit_quant_type: nf4",
        );
        need(
            q.bnb_4bit_compute_dtype != TorchDtype::Auto,
            "QuantizationConfig",
            "bnb_4bit_compute_dtype",
            "must be bfloat16, float16 or float32",
        );
        let l = &self.lora;
        need(l.r >= 1, "LoraConfig", "r", "must be at least 1");
        need(
            l.lora_alpha > 0.0,
            "LoraConfig",
            "lora_alpha",
            "must be positive",
        );
        need(
            (0.0..1.0).contains(&l.lora_dropout),
            "LoraConfig",
            "lora_dropout",
            "must be in [0, 1)",
        );
        let t = &self.training;
        need(
            output_dir_ok(&t.output_dir),
            "TrainingArguments",
            "output_dir",
            "must be an absolute path under /mnt other than /mnt itself (e.g. /mnt/results)",
        );
        need(
            t.max_steps > 0 || t.num_train_epochs > 0.0,
            "TrainingArguments",
            "num_train_epochs",
            "must be positive unless max_steps is set",
        );
        need(
            t.max_steps == -1 || t.max_steps > 0,
            "TrainingArguments",
            "max_steps",
            "must be -1 (use epochs) or positive",
        );
        need(
            t.learning_rate > 0.0,
            "TrainingArguments",
            "learning_rate",
            "must be positive",
        );
        need(
            t.per_device_train_batch_size >= 1,
            "TrainingArguments",
            "per_device_train_batch_size",
            "must be at least 1",
        );
        need(
            t.per_device_eval_batch_size >= 1,
            "TrainingArguments",
            "per_device_eval_batch_size",
            "must be at least 1",
        );
        need(
            t.gradient_accumulation_steps >= 1,
            "TrainingArguments",
            "gradient_accumulation_steps",
            "must be at least 1",
        );
        need(
            (0.0..=1.0).contains(&t.warmup_ratio),
            "TrainingArguments",
            "warmup_ratio",
            "must be in [0, 1]",
        );
        need(
            t.weight_decay >= 0.0,
            "TrainingArguments",
            "weight_decay",
            "must not be negative",
        );
        need(
            (0.0..1.0).contains(&t.adam_beta1),
            "TrainingArguments",
            "adam_beta1",
            "must be in [0, 1)",
        );
        need(
            (0.0..1.0).contains(&t.adam_beta2),
            "TrainingArguments",
            "adam_beta2",
            "must be in [0, 1)",
        );
        need(
            t.adam_epsilon > 0.0,
            "TrainingArguments",
            "adam_epsilon",
            "must be positive",
        );
        need(
            t.max_grad_norm >= 0.0,
            "TrainingArguments",
            "max_grad_norm",
            "must not be negative (0 disables clipping)",
        );
        need(
            t.save_steps > 0.0,
            "TrainingArguments",
            "save_steps",
            "must be positive",
        );
        need(
            t.logging_steps > 0.0,
            "TrainingArguments",
            "logging_steps",
            "must be positive",
        );
        need(
            t.eval_steps.is_none_or(|s| s > 0.0),
            "TrainingArguments",
            "eval_steps",
            "must be positive",
        );
        need(
            t.max_seq_length >= 2,
            "TrainingArguments",
            "max_seq_length",
            "must be at least 2 tokens",
        );
        need(
            t.save_total_limit.is_none_or(|n| n >= 1),
            "TrainingArguments",
            "save_total_limit",
            "must be at least 1",
        );
        let d = &self.dataset;
        need(
            d.train_test_split > 0.0 && d.train_test_split <= 1.0,
            "DatasetConfig",
            "train_test_split",
            "must be in (0, 1]",
        );
        need(
            t.eval_strategy == IntervalStrategy::No || d.train_test_split < 1.0,
            "TrainingArguments",
            "eval_strategy",
            "evaluation needs an eval split: set DatasetConfig.train_test_split below 1, or eval_strategy: no",
        );
        need(
            d.dataset_path.as_deref().is_none_or(relative_path_ok),
            "DatasetConfig",
            "dataset_path",
            "must be a relative path inside the data directory (no leading `/`, no `..`)",
        );
        need(
            !self.data_collator.mlm_probability.is_nan(),
            "DataCollator",
            "mlm_probability",
            "must be a number",
        );
        errs
    }
}

fn output_dir_ok(dir: &str) -> bool {
    let path = Path::new(dir);
    path.is_absolute()
        && !path.components().any(|c| matches!(c, Component::ParentDir))
        && path.starts_with(MOUNT_ROOT)
        && path != Path::new(MOUNT_ROOT)
}

fn relative_path_ok(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && path.is_relative()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests;
