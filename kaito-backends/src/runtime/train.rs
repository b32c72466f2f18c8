//! LoRA/QLoRA training: AdamW (burn-optim), warmup + constant/linear/cosine schedules as
//! transformers computes them, gradient accumulation, global grad-norm clipping, eval loss,
//! resumable checkpoints, cancellation and progress reports.
//!
//! Determinism: the adapter init comes from a host RNG seeded with `seed`, the order of each epoch
//! is a permutation seeded with (`seed`, epoch), and dropout reseeds the backend RNG per
//! micro-batch, so a run resumed from a checkpoint replays exactly the batches and masks that the
//! uninterrupted run would have seen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::frozen_linear::FrozenLinearBackend;
use super::lora::{ActiveLora, LoraLayout, LoraWeights};
use super::loss::{causal_lm_loss, count_label_tokens};
use super::model::Transformer;
use crate::data::TokenizedExample;
use crate::{Error, Result};

pub use super::train_options::{Progress, SaveStrategy, Schedule, TrainOptions, learning_rate};

/// What training produced.
#[derive(Debug)]
pub struct TrainOutcome<B: AutodiffBackend> {
    /// The trained adapter.
    pub weights: LoraWeights<B>,
    /// Its layout.
    pub layout: LoraLayout,
    /// Optimizer steps done in total.
    pub steps: usize,
    /// Loss of every step done in this run.
    pub losses: Vec<f64>,
    /// Final eval loss (None without an eval split).
    pub eval_loss: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    total_steps: usize,
    seed: u64,
    losses: Vec<f64>,
}

fn batch_tensors<B: Backend>(
    items: &[&TokenizedExample],
    max_len: usize,
    pad: u32,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Vec<Vec<i64>>, usize) {
    let t = items
        .iter()
        .map(|e| e.input_ids.len().min(max_len))
        .max()
        .unwrap_or(1)
        .max(2);
    let mut ids = Vec::with_capacity(items.len() * t);
    let mut labels = Vec::with_capacity(items.len());
    let mut tokens = 0;
    for e in items {
        let n = e.input_ids.len().min(max_len);
        tokens += n;
        ids.extend(e.input_ids[..n].iter().map(|v| *v as i64));
        ids.extend(std::iter::repeat_n(pad as i64, t - n));
        let mut l: Vec<i64> = e.labels.iter().take(n).copied().collect();
        l.resize(t, -100);
        labels.push(l);
    }
    (
        Tensor::from_data(TensorData::new(ids, [items.len(), t]), device),
        labels,
        tokens,
    )
}

/// Mean next-token loss over the label tokens of `data` (no gradients).
pub fn evaluate<B: FrozenLinearBackend>(
    model: &Transformer<B>,
    layout: &LoraLayout,
    weights: &LoraWeights<B>,
    data: &[TokenizedExample],
    opts: &TrainOptions,
) -> f64 {
    let device = model.device().clone();
    let mut nll = 0.0;
    let mut count = 0usize;
    for chunk in data.chunks(opts.batch_size.max(1)) {
        let refs: Vec<&TokenizedExample> = chunk.iter().collect();
        let (ids, labels, _) =
            batch_tensors::<B>(&refs, opts.max_seq_len, opts.pad_token_id, &device);
        let n = count_label_tokens(&labels);
        if n == 0 {
            continue;
        }
        let lora = ActiveLora {
            layout,
            weights,
            strength: 1.0,
            train: false,
        };
        let logits = model.forward(ids, None, &[lora], false);
        let loss: f64 = causal_lm_loss(logits, &labels, 1.0).into_scalar().elem();
        nll += loss;
        count += n;
    }
    if count == 0 {
        f64::NAN
    } else {
        nll / count as f64
    }
}

fn checkpoint_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("adapter"),
        dir.join("optimizer"),
        dir.join("trainer_state.json"),
    )
}

/// Trains a LoRA adapter on `model` (whose base is frozen).
pub fn train<B: AutodiffBackend + FrozenLinearBackend>(
    model: &Transformer<B>,
    train_set: &[TokenizedExample],
    eval_set: &[TokenizedExample],
    opts: &TrainOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainOutcome<B>> {
    if train_set.is_empty() {
        return Err(Error::invalid(
            "training data",
            "the training split is empty",
        ));
    }
    if opts.batch_size == 0 || opts.gradient_accumulation_steps == 0 || opts.max_seq_len < 2 {
        return Err(Error::invalid(
            "TrainingArguments",
            "per_device_train_batch_size and gradient_accumulation_steps must be >= 1, max_seq_length >= 2",
        ));
    }
    if opts.save_strategy != SaveStrategy::No && opts.checkpoint_dir.is_none() {
        return Err(Error::invalid(
            "TrainingArguments.save_strategy",
            "checkpoints need an output directory",
        ));
    }
    let device = model.device().clone();
    let layout = LoraLayout::new(&model.config, opts.lora.clone())?;
    let micro_per_epoch = train_set.len().div_ceil(opts.batch_size);
    let steps_per_epoch = micro_per_epoch.div_ceil(opts.gradient_accumulation_steps);
    let total_steps = match opts.max_steps {
        Some(s) if s > 0 => s,
        _ => ((opts.num_train_epochs * steps_per_epoch as f64).ceil() as usize).max(1),
    };

    let mut weights = LoraWeights::<B>::init(&model.config, &layout, opts.seed, &device);
    let adamw = AdamWConfig::new()
        .with_beta_1(opts.adam_beta1 as f32)
        .with_beta_2(opts.adam_beta2 as f32)
        .with_epsilon(opts.adam_epsilon as f32)
        .with_weight_decay(opts.weight_decay as f32);
    let mut optim = adamw.init::<B, LoraWeights<B>>();
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let mut step = 0usize;
    let mut losses = Vec::new();
    if let Some(dir) = &opts.resume_from {
        let (a, o, s) = checkpoint_paths(dir);
        let text = std::fs::read_to_string(&s).map_err(|e| Error::io(&s, e))?;
        let state: TrainerState = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(s.display().to_string(), e.to_string()))?;
        let rec = recorder
            .load(a.clone(), &device)
            .map_err(|e| Error::invalid(a.display().to_string(), e.to_string()))?;
        weights = weights.load_record(rec);
        let orec = recorder
            .load(o.clone(), &device)
            .map_err(|e| Error::invalid(o.display().to_string(), e.to_string()))?;
        optim = optim.load_record(orec);
        step = state.step;
    }

    let started = Instant::now();
    let mut tokens_seen = 0usize;
    let start_step = step;
    let mut eval_loss = None;
    while step < total_steps {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let epoch = step / steps_per_epoch;
        let in_epoch = step % steps_per_epoch;
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        if opts.shuffle {
            let mut rng = rand::rngs::StdRng::seed_from_u64(
                opts.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            order.shuffle(&mut rng);
        }
        let micro_lo = in_epoch * opts.gradient_accumulation_steps;
        let micro_hi = (micro_lo + opts.gradient_accumulation_steps).min(micro_per_epoch);
        let micro: Vec<Vec<&TokenizedExample>> = (micro_lo..micro_hi)
            .map(|m| {
                let lo = m * opts.batch_size;
                let hi = (lo + opts.batch_size).min(order.len());
                order[lo..hi].iter().map(|i| &train_set[*i]).collect()
            })
            .collect();
        // Normalise by the label tokens of the whole step (transformers' num_items_in_batch).
        let batches: Vec<_> = micro
            .iter()
            .map(|m| batch_tensors::<B>(m, opts.max_seq_len, opts.pad_token_id, &device))
            .collect();
        let denom: usize = batches.iter().map(|(_, l, _)| count_label_tokens(l)).sum();
        let mut accum = GradientsAccumulator::<LoraWeights<B>>::new();
        let mut step_loss = 0.0;
        for (mi, (ids, labels, tokens)) in batches.into_iter().enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            B::seed(
                &device,
                opts.seed
                    .wrapping_add((step as u64) << 16)
                    .wrapping_add(mi as u64),
            );
            let lora = ActiveLora {
                layout: &layout,
                weights: &weights,
                strength: 1.0,
                train: true,
            };
            let logits = model.forward(ids, None, &[lora], false);
            let loss = causal_lm_loss(logits, &labels, denom as f64);
            step_loss += loss.clone().into_scalar().elem::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &weights);
            accum.accumulate(&weights, grads);
            tokens_seen += tokens;
        }
        let mut grads = accum.grads();
        if let Some(max_norm) = opts.max_grad_norm {
            clip_global_norm(&weights, &mut grads, max_norm);
        }
        let lr = learning_rate(opts, step, total_steps);
        weights = optim.step(lr, weights, grads);
        step += 1;
        losses.push(step_loss);

        let end_of_epoch = step.is_multiple_of(steps_per_epoch) || step == total_steps;
        if end_of_epoch && !eval_set.is_empty() {
            eval_loss = Some(evaluate(
                model,
                &layout,
                &weights.clone().no_grad(),
                eval_set,
                opts,
            ));
        }
        let save = match opts.save_strategy {
            SaveStrategy::No => false,
            SaveStrategy::Steps(n) => n > 0 && step.is_multiple_of(n),
            SaveStrategy::Epoch => step.is_multiple_of(steps_per_epoch),
        };
        if let (true, Some(dir)) = (save, &opts.checkpoint_dir) {
            let ck = dir.join(format!("checkpoint-{step}"));
            std::fs::create_dir_all(&ck).map_err(|e| Error::io(&ck, e))?;
            let (a, o, s) = checkpoint_paths(&ck);
            recorder
                .record(weights.clone().into_record(), a.clone())
                .map_err(|e| Error::invalid(a.display().to_string(), e.to_string()))?;
            recorder
                .record(optim.to_record(), o.clone())
                .map_err(|e| Error::invalid(o.display().to_string(), e.to_string()))?;
            let st = TrainerState {
                step,
                total_steps,
                seed: opts.seed,
                losses: losses.clone(),
            };
            let json = serde_json::to_vec_pretty(&st)
                .map_err(|e| Error::invalid("trainer_state", e.to_string()))?;
            super::weights::write_atomic(&s, &json)?;
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let done = (step - start_step) as f64;
        on_progress(&Progress {
            step,
            total_steps,
            epoch: step as f64 / steps_per_epoch as f64,
            loss: step_loss,
            eval_loss,
            learning_rate: lr,
            tokens_per_second: tokens_seen as f64 / elapsed,
            eta_seconds: elapsed / done * (total_steps - step) as f64,
        });
    }
    Ok(TrainOutcome {
        weights,
        layout,
        steps: step,
        losses,
        eval_loss,
    })
}

/// Scales all gradients so that their global L2 norm is at most `max_norm` (torch's
/// `clip_grad_norm_`, which transformers applies across all parameters at once).
fn clip_global_norm<B: AutodiffBackend>(
    weights: &LoraWeights<B>,
    grads: &mut GradientsParams,
    max_norm: f64,
) {
    let ids: Vec<_> = weights
        .a
        .iter()
        .chain(weights.b.iter())
        .map(|p| p.id)
        .collect();
    let mut sq = 0.0f64;
    for id in &ids {
        if let Some(g) = grads.get::<B::InnerBackend, 2>(*id) {
            sq += g.powi_scalar(2).sum().into_scalar().elem::<f64>();
        }
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for id in ids {
            if let Some(g) = grads.remove::<B::InnerBackend, 2>(id) {
                grads.register::<B::InnerBackend, 2>(id, g.mul_scalar(coef));
            }
        }
    }
}

/// The inner-backend (no autodiff) copy of trained weights, for generation.
pub fn inference_weights<B: AutodiffBackend>(w: &LoraWeights<B>) -> LoraWeights<B::InnerBackend> {
    w.valid()
}
