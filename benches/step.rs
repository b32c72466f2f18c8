//! One LoRA optimizer step (forward, loss, backward, AdamW update) and one greedy KV-cached
//! decode, as the benchmarks time them. Included with `#[path]` next to `shapes.rs`.
//!
//! The step is the body of `runtime::train::train` without its bookkeeping (no gradient
//! accumulation, no grad-norm clipping, no progress report), so that a timing covers the
//! arithmetic only; `benches/pytorch_cpu.py` times the same three phases.

#![allow(dead_code)] // each includer uses a different subset

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use kaito_backends::runtime::FrozenLinearBackend;
use kaito_backends::runtime::lora::{ActiveLora, LoraLayout, LoraSettings, LoraWeights};
use kaito_backends::runtime::loss::{causal_lm_loss, count_label_tokens};
use kaito_backends::runtime::model::{KvCache, Transformer};

/// The state one training step needs, built once.
pub struct LoraStep<B: AutodiffBackend> {
    layout: LoraLayout,
    weights: Option<LoraWeights<B>>,
    optim: OptimizerAdaptor<AdamW, LoraWeights<B>, B>,
    ids: Tensor<B, 2, Int>,
    labels: Vec<Vec<i64>>,
    denom: f64,
}

impl<B: AutodiffBackend + FrozenLinearBackend> LoraStep<B> {
    /// LoRA rank `r` (alpha = 2r, no dropout) on `targets`, training on `batch` (all tokens
    /// are labels, as for a plain text column).
    pub fn new(model: &Transformer<B>, targets: &[&str], r: usize, batch: &[Vec<u32>]) -> Self {
        let device = model.device().clone();
        let layout = LoraLayout::new(
            &model.config,
            LoraSettings {
                r,
                lora_alpha: 2.0 * r as f64,
                lora_dropout: 0.0,
                target_modules: targets.iter().map(|s| s.to_string()).collect(),
            },
        )
        .expect("bench targets exist in the model");
        let weights = LoraWeights::init(&model.config, &layout, 42, &device);
        let (b, t) = (batch.len(), batch[0].len());
        let flat: Vec<i64> = batch.iter().flatten().map(|v| *v as i64).collect();
        let labels: Vec<Vec<i64>> = batch
            .iter()
            .map(|r| r.iter().map(|v| *v as i64).collect())
            .collect();
        let denom = count_label_tokens(&labels) as f64;
        Self {
            layout,
            weights: Some(weights),
            optim: AdamWConfig::new().init(),
            ids: Tensor::from_data(TensorData::new(flat, [b, t]), &device),
            labels,
            denom,
        }
    }

    /// Runs one step and returns its loss (reading the loss synchronises the device).
    pub fn step(&mut self, model: &Transformer<B>) -> f64 {
        let weights = self
            .weights
            .take()
            .expect("weights are put back after each step");
        let lora = ActiveLora {
            layout: &self.layout,
            weights: &weights,
            strength: 1.0,
            train: true,
        };
        let logits = model.forward(self.ids.clone(), None, &[lora], false);
        let loss = causal_lm_loss(logits, &self.labels, self.denom);
        let value = loss.clone().into_scalar().elem::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &weights);
        let updated = self.optim.step(1e-4, weights, grads);
        // Reading one value of the update waits for the optimizer's kernels on async devices.
        let _ = updated.b[0]
            .val()
            .slice([0..1, 0..1])
            .into_scalar()
            .elem::<f64>();
        self.weights = Some(updated);
        value
    }
}

/// Greedy decoding without adapters: prefill `prompt`, then `new_tokens` single-token forwards
/// with the KV cache, the argmax taken on the host as `runtime::generate` does. Returns the
/// generated ids.
pub fn greedy<B: FrozenLinearBackend>(
    model: &Transformer<B>,
    prompt: &[u32],
    new_tokens: usize,
) -> Vec<u32> {
    let device = model.device().clone();
    let mut cache = KvCache::new(model.config.num_layers);
    let mut input: Vec<i64> = prompt.iter().map(|v| *v as i64).collect();
    let mut out = Vec::with_capacity(new_tokens);
    for _ in 0..new_tokens {
        let n = input.len();
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(std::mem::take(&mut input), [1, n]),
            &device,
        );
        let row = model
            .forward(ids, Some(&mut cache), &[], true)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("logits are f32");
        let next = row
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, v)| {
                    if *v > b.1 { (i, *v) } else { b }
                },
            )
            .0 as u32;
        out.push(next);
        input.push(next as i64);
    }
    out
}
