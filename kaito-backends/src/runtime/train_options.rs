//! What a training run is told ([`TrainOptions`]: the typed form of KAITO's tuning sections),
//! what it reports while it runs ([`Progress`]), and its learning-rate schedule as transformers'
//! schedulers compute it ([`learning_rate`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::lora::LoraSettings;

/// Learning-rate schedule after warmup (transformers' `lr_scheduler_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Schedule {
    /// Constant (after warmup).
    Constant,
    /// Linear decay to 0.
    Linear,
    /// Cosine decay to 0.
    Cosine,
}

/// When checkpoints are written (`save_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStrategy {
    /// Never.
    No,
    /// Every n optimizer steps.
    Steps(usize),
    /// At the end of every epoch.
    Epoch,
}

/// Training options (KAITO's `TrainingArguments` subset that is implemented).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// LoRA settings.
    pub lora: LoraSettings,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW beta1.
    pub adam_beta1: f64,
    /// AdamW beta2.
    pub adam_beta2: f64,
    /// AdamW epsilon.
    pub adam_epsilon: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Schedule after warmup.
    pub schedule: Schedule,
    /// Warmup optimizer steps.
    pub warmup_steps: usize,
    /// Warmup as a fraction of the total steps (used when `warmup_steps` is 0).
    pub warmup_ratio: f64,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Global grad-norm clip (None: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Epochs (used when `max_steps` is None).
    pub num_train_epochs: f64,
    /// Total optimizer steps (overrides epochs).
    pub max_steps: Option<usize>,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Sequences are truncated to this many tokens.
    pub max_seq_len: usize,
    /// Seed for init, shuffling and dropout.
    pub seed: u64,
    /// Shuffle the training set each epoch.
    pub shuffle: bool,
    /// Checkpointing.
    pub save_strategy: SaveStrategy,
    /// Where `checkpoint-<step>` directories go (required unless `save_strategy` is `No`).
    pub checkpoint_dir: Option<PathBuf>,
    /// Resume from this checkpoint directory.
    pub resume_from: Option<PathBuf>,
    /// Padding token id.
    pub pad_token_id: u32,
    /// Store the frozen base as NF4 (QLoRA); read by callers that load the base.
    pub quantize_base: bool,
    /// Double-quantize the NF4 scales.
    pub double_quant: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            lora: LoraSettings::default(),
            learning_rate: 5e-5,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            weight_decay: 0.0,
            schedule: Schedule::Linear,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            gradient_accumulation_steps: 1,
            max_grad_norm: Some(1.0),
            num_train_epochs: 3.0,
            max_steps: None,
            batch_size: 1,
            max_seq_len: 1024,
            seed: 42,
            shuffle: true,
            save_strategy: SaveStrategy::No,
            checkpoint_dir: None,
            resume_from: None,
            pad_token_id: 0,
            quantize_base: false,
            double_quant: true,
        }
    }
}

/// One progress report (after every optimizer step, and after each evaluation).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Optimizer steps done.
    pub step: usize,
    /// Total optimizer steps.
    pub total_steps: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Mean training loss of the step.
    pub loss: f64,
    /// Latest eval loss, if evaluated.
    pub eval_loss: Option<f64>,
    /// Learning rate used for the step.
    pub learning_rate: f64,
    /// Training tokens per second over the run so far.
    pub tokens_per_second: f64,
    /// Estimated seconds to completion.
    pub eta_seconds: f64,
}

/// The learning rate for the step that follows `step` completed steps (transformers' schedulers).
pub fn learning_rate(opts: &TrainOptions, step: usize, total: usize) -> f64 {
    let lr = opts.learning_rate;
    let w = if opts.warmup_steps > 0 {
        opts.warmup_steps
    } else {
        (opts.warmup_ratio * total as f64).ceil() as usize
    };
    if step < w {
        return lr * step as f64 / w.max(1) as f64;
    }
    let progress = (step - w) as f64 / (total.saturating_sub(w)).max(1) as f64;
    match opts.schedule {
        Schedule::Constant => lr,
        Schedule::Linear => lr * (1.0 - progress).max(0.0),
        Schedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()).max(0.0),
    }
}
