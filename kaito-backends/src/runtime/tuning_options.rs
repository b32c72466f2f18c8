//! KAITO's tuning config (kaito-core's typed six sections) mapped to the runtime's options.
//! Everything set there that the runtime does not implement is an error here, before a job
//! loads a model or reads data, never silently ignored.

use kaito_core::api::TuningMethod;
use kaito_core::traits::TuningJob;

use super::lora::LoraSettings;
use super::train_options::{SaveStrategy, Schedule, TrainOptions};
use crate::{Error, Result};

/// Data-side settings of a tuning job (`DatasetConfig` and sequence length).
#[derive(Debug, Clone, PartialEq)]
pub struct DataOptions {
    /// `dataset_path`, relative to the dataset directory.
    pub dataset_path: Option<std::path::PathBuf>,
    /// Shuffle before splitting.
    pub shuffle: bool,
    /// Shuffle seed.
    pub seed: u64,
    /// Fraction kept for training; the rest is the eval split.
    pub train_test_split: f64,
    /// `ModelConfig.chat_template` (inline Jinja or a file path) overriding the model's.
    pub chat_template: Option<String>,
}

impl Default for DataOptions {
    fn default() -> Self {
        Self {
            dataset_path: None,
            shuffle: true,
            seed: 42,
            train_test_split: 1.0,
            chat_template: None,
        }
    }
}

fn unsupported(field: &str, message: &str) -> Error {
    Error::Unsupported {
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Maps kaito-core's typed tuning config to runtime options. Settings the runtime does not
/// implement are rejected here, before any work starts.
///
/// Accepted but without effect on the CPU backend: `torch_dtype`/`bnb_4bit_compute_dtype` (compute
/// is f32 there), `device_map`, `local_files_only`; `logging_*` (progress is reported every
/// step); `DataCollator` (causal LM collation is the only one; KAITO forces `mlm` off for
/// tokenizers without a mask token); the `*_column` fields (unused by KAITO since PR #460).
pub fn options_from_config(job: &TuningJob) -> Result<(TrainOptions, DataOptions)> {
    use kaito_core::tuning::{IntervalStrategy, LrScheduler, QuantType, TargetModules};
    let c = &job.config;
    let q = &c.quantization;
    if job.method == TuningMethod::Qlora && !q.load_in_4bit {
        return Err(unsupported(
            "QuantizationConfig.load_in_4bit",
            "qlora needs load_in_4bit: true",
        ));
    }
    if q.load_in_4bit && q.bnb_4bit_quant_type != QuantType::Nf4 {
        return Err(unsupported(
            "QuantizationConfig.bnb_4bit_quant_type",
            "only nf4 is implemented",
        ));
    }
    let l = &c.lora;
    if l.use_rslora {
        return Err(unsupported(
            "LoraConfig.use_rslora",
            "rank-stabilised LoRA is not implemented",
        ));
    }
    let t = &c.training;
    if t.save_total_limit.is_some() {
        return Err(unsupported(
            "TrainingArguments.save_total_limit",
            "checkpoint rotation is not implemented",
        ));
    }
    if t.eval_strategy == IntervalStrategy::Steps {
        return Err(unsupported(
            "TrainingArguments.eval_strategy",
            "only no/epoch (eval at each epoch end)",
        ));
    }
    if t.packing {
        return Err(unsupported(
            "TrainingArguments.packing",
            "packing is not implemented by the runtime yet",
        ));
    }
    if t.dataset_text_field != "text" {
        return Err(unsupported(
            "TrainingArguments.dataset_text_field",
            "only `text` is supported",
        ));
    }
    let save_strategy = match t.save_strategy {
        IntervalStrategy::No => SaveStrategy::No,
        IntervalStrategy::Epoch => SaveStrategy::Epoch,
        IntervalStrategy::Steps if t.save_steps >= 1.0 => {
            SaveStrategy::Steps(t.save_steps as usize)
        }
        IntervalStrategy::Steps => {
            return Err(unsupported(
                "TrainingArguments.save_steps",
                "fractional save_steps are not implemented",
            ));
        }
    };
    let (schedule, warmup_allowed) = match t.lr_scheduler_type {
        LrScheduler::Constant => (Schedule::Constant, false),
        LrScheduler::ConstantWithWarmup => (Schedule::Constant, true),
        LrScheduler::Linear => (Schedule::Linear, true),
        LrScheduler::Cosine => (Schedule::Cosine, true),
    };
    let target_modules = match &l.target_modules {
        None => Vec::new(),
        Some(TargetModules::Names(n)) => n.clone(),
        Some(TargetModules::AllLinear) => {
            let family = super::read_checkpoint_config(&job.base_model.path)?.family;
            super::lora::layer_modules(family)
                .iter()
                .map(|s| s.to_string())
                .collect()
        }
    };
    let opts = TrainOptions {
        lora: LoraSettings {
            r: l.r as usize,
            lora_alpha: l.lora_alpha,
            lora_dropout: l.lora_dropout,
            target_modules,
        },
        learning_rate: t.learning_rate,
        adam_beta1: t.adam_beta1,
        adam_beta2: t.adam_beta2,
        adam_epsilon: t.adam_epsilon,
        weight_decay: t.weight_decay,
        schedule,
        warmup_steps: if warmup_allowed {
            t.warmup_steps as usize
        } else {
            0
        },
        warmup_ratio: if warmup_allowed { t.warmup_ratio } else { 0.0 },
        gradient_accumulation_steps: t.gradient_accumulation_steps as usize,
        max_grad_norm: (t.max_grad_norm > 0.0).then_some(t.max_grad_norm),
        num_train_epochs: t.num_train_epochs,
        max_steps: (t.max_steps > 0).then_some(t.max_steps as usize),
        batch_size: t.per_device_train_batch_size as usize,
        max_seq_len: t.max_seq_length as usize,
        seed: t.seed,
        shuffle: true,
        save_strategy,
        checkpoint_dir: Some(job.output_dir.clone()),
        resume_from: None,
        pad_token_id: 0,
        double_quant: q.bnb_4bit_use_double_quant,
        quantize_base: q.load_in_4bit,
    };
    let d = &c.dataset;
    let data = DataOptions {
        dataset_path: d.dataset_path.as_ref().map(std::path::PathBuf::from),
        shuffle: d.shuffle_dataset,
        seed: d.shuffle_seed,
        train_test_split: d.train_test_split,
        chat_template: c.model.chat_template.clone(),
    };
    Ok((opts, data))
}
