//! Text generation with a KV cache (greedy or sampled, transformers' processor order:
//! repetition penalty, temperature, top-k, top-p), and export of a merged model.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use rand::{RngExt, SeedableRng};

use super::frozen_linear::FrozenLinearBackend;
use super::lora::{ActiveLora, LoraLayout, parent};
use super::model::{KvCache, Transformer};
use super::tokenizer::TokenizerBundle;
use super::weights::{HostTensor, SaveDtype, WeightMap, save_safetensors};
use crate::{Error, Result};

/// Generation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOptions {
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    /// Keep the k most likely tokens (0: off).
    pub top_k: usize,
    /// Nucleus mass (1.0: off).
    pub top_p: f64,
    /// transformers' repetition penalty (1.0: off).
    pub repetition_penalty: f64,
    /// Sampling seed.
    pub seed: u64,
    /// Stop when the text contains any of these (the stop string is cut off).
    pub stop: Vec<String>,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
            stop: vec![],
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An EOS token.
    Eos,
    /// A stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

/// Generated text.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// New token ids (EOS excluded).
    pub tokens: Vec<u32>,
    /// Their text (stop string removed).
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Decode speed (new tokens per second, after the prompt).
    pub tokens_per_second: f64,
}

/// Picks the next token from `logits` (one row) given the tokens so far.
pub fn next_token(
    logits: &mut [f32],
    history: &[u32],
    opts: &GenerationOptions,
    rng: &mut rand::rngs::StdRng,
) -> u32 {
    if opts.repetition_penalty != 1.0 {
        let p = opts.repetition_penalty as f32;
        let mut seen = history.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l < 0.0 { *l * p } else { *l / p };
            }
        }
    }
    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, v)| if *v > b.1 { (i, *v) } else { b },
            )
            .0
    };
    if opts.temperature <= 0.0 {
        return argmax(logits) as u32;
    }
    let t = opts.temperature as f32;
    let mut cand: Vec<(usize, f32)> = logits.iter().map(|v| v / t).enumerate().collect();
    cand.sort_by(|a, b| b.1.total_cmp(&a.1));
    if opts.top_k > 0 {
        cand.truncate(opts.top_k);
    }
    let max = cand[0].1;
    let mut probs: Vec<f64> = cand.iter().map(|(_, v)| ((v - max) as f64).exp()).collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    if opts.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= opts.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        let s: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= s);
    }
    let mut u: f64 = rng.random();
    for (i, p) in probs.iter().enumerate() {
        if u < *p {
            return cand[i].0 as u32;
        }
        u -= p;
    }
    cand[probs.len() - 1].0 as u32
}

/// Generates a continuation of `prompt` token ids with the base model plus any adapters.
pub fn generate<B: FrozenLinearBackend>(
    model: &Transformer<B>,
    tokenizer: &TokenizerBundle,
    prompt: &[u32],
    adapters: &[ActiveLora<'_, B>],
    opts: &GenerationOptions,
    on_text: &mut dyn FnMut(&str) -> std::ops::ControlFlow<()>,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::invalid("prompt", "is empty"));
    }
    let device = model.device().clone();
    let mut eos: Vec<u32> = model.config.eos_token_ids.clone();
    eos.extend(tokenizer.eos_token_id);
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut cache = KvCache::new(model.config.num_layers);
    let mut history = prompt.to_vec();
    let mut out = Vec::new();
    let mut input: Vec<i64> = prompt.iter().map(|t| *t as i64).collect();
    let mut started = None;
    let mut finish = FinishReason::Length;
    let mut text = String::new();
    let mut emitted = 0usize;
    while out.len() < opts.max_new_tokens {
        let n = input.len();
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(std::mem::take(&mut input), [1, n]),
            &device,
        );
        let logits = model.forward(ids, Some(&mut cache), adapters, true);
        let mut row = logits
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::invalid("logits", format!("{e:?}")))?;
        started.get_or_insert_with(Instant::now);
        let tok = next_token(&mut row, &history, opts, &mut rng);
        if eos.contains(&tok) {
            finish = FinishReason::Eos;
            break;
        }
        out.push(tok);
        history.push(tok);
        input.push(tok as i64);
        text = tokenizer.decode(&out)?;
        if let Some(pos) = opts.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(pos);
            finish = FinishReason::Stop;
            break;
        }
        // Hold back a partial UTF-8 sequence and anything that may be the start of a stop string.
        let hold = opts
            .stop
            .iter()
            .map(|s| s.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let mut upto = text.len().saturating_sub(hold);
        while !text.is_char_boundary(upto) {
            upto -= 1;
        }
        let stable = text[..upto].trim_end_matches('\u{FFFD}');
        if stable.len() > emitted {
            let flow = on_text(&stable[emitted..]);
            emitted = stable.len();
            if flow.is_break() {
                finish = FinishReason::Stop;
                break;
            }
        }
    }
    if text.len() > emitted {
        let _ = on_text(&text[emitted..]);
    }
    let secs = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    let tokens_per_second = if secs > 0.0 {
        out.len().saturating_sub(1) as f64 / secs
    } else {
        0.0
    };
    Ok(Generation {
        tokens: out,
        text,
        finish_reason: finish,
        tokens_per_second,
    })
}

/// Adds `strength * lora_alpha / r * B·A` of an adapter (PEFT-named host tensors) into HF-named
/// base weights.
pub fn merge_adapter(
    base: &mut WeightMap,
    layout: &LoraLayout,
    tensors: &BTreeMap<String, HostTensor>,
    strength: f64,
) -> Result<()> {
    let scale = (layout.scaling() * strength) as f32;
    for (layer, module) in layout.slots.keys() {
        let prefix = LoraLayout::peft_prefix(*layer, module);
        let get = |s: &str| {
            tensors
                .get(&format!("{prefix}.{s}"))
                .ok_or_else(|| Error::invalid("adapter", format!("`{prefix}.{s}` is missing")))
        };
        let (a, b) = (get("lora_A.weight")?, get("lora_B.weight")?);
        let name = format!("model.layers.{layer}.{}.{module}.weight", parent(module));
        let w = base
            .get_mut(&name)
            .ok_or_else(|| Error::invalid("base weights", format!("`{name}` is missing")))?;
        let (out, inp, r) = (w.shape[0], w.shape[1], a.shape[0]);
        for o in 0..out {
            for k in 0..r {
                let bv = b.data[o * r + k] * scale;
                if bv == 0.0 {
                    continue;
                }
                let arow = &a.data[k * inp..(k + 1) * inp];
                let wrow = &mut w.data[o * inp..(o + 1) * inp];
                wrow.iter_mut()
                    .zip(arow)
                    .for_each(|(wv, av)| *wv += bv * av);
            }
        }
    }
    Ok(())
}

/// Writes merged weights as `model.safetensors` (bf16, as HF checkpoints usually are) in `dir`.
pub fn save_merged(dir: &Path, weights: &WeightMap) -> Result<()> {
    let sorted: BTreeMap<String, HostTensor> = weights
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    save_safetensors(
        &dir.join("model.safetensors"),
        &sorted,
        SaveDtype::Bf16,
        Some(meta),
    )
}
