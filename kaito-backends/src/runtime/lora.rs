//! LoRA adapters in PEFT's layout: for each targeted projection `A` [r, in] (Kaiming-uniform with
//! a = sqrt(5), as PEFT initialises it) and `B` [out, r] (zeros), added as
//! `x·Aᵀ·Bᵀ · (lora_alpha / r) · strength` to the frozen base projection.
//!
//! Only [`LoraWeights`] is a Burn module, so only adapter tensors reach the optimizer; the frozen
//! base lives outside any module.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, Param};
use burn::prelude::*;
use rand::{RngExt, SeedableRng};

use super::config::{Family, ModelConfig};
use crate::{Error, Result};

/// The projections of one decoder layer, by HF module name.
pub fn layer_modules(family: Family) -> &'static [&'static str] {
    if family.fused() {
        &["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    } else {
        &[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    }
}

/// `self_attn` or `mlp`: the parent of a projection in HF's module tree.
pub fn parent(module: &str) -> &'static str {
    match module {
        "gate_proj" | "up_proj" | "down_proj" | "gate_up_proj" => "mlp",
        _ => "self_attn",
    }
}

/// (in_features, out_features) of a projection.
pub fn module_shape(cfg: &ModelConfig, module: &str) -> (usize, usize) {
    let (q, k, v) = cfg.qkv_out();
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    match module {
        "q_proj" => (h, q),
        "k_proj" => (h, k),
        "v_proj" => (h, v),
        "qkv_proj" => (h, q + k + v),
        "o_proj" => (q, h),
        "gate_proj" | "up_proj" => (h, i),
        "gate_up_proj" => (h, 2 * i),
        _ => (i, h), // down_proj
    }
}

/// PEFT's default targets for a family (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`).
pub fn peft_default_targets(family: Family) -> Vec<String> {
    let t: &[&str] = if family.fused() {
        &["qkv_proj"]
    } else {
        &["q_proj", "v_proj"]
    };
    t.iter().map(|s| s.to_string()).collect()
}

/// LoRA hyper-parameters (PEFT `LoraConfig` subset).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSettings {
    /// Rank.
    pub r: usize,
    /// Scaling numerator: scaling = lora_alpha / r.
    pub lora_alpha: f64,
    /// Dropout on the adapter input during training.
    pub lora_dropout: f64,
    /// Targeted module names (HF names, matched against each layer's projections).
    pub target_modules: Vec<String>,
}

impl Default for LoraSettings {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: Vec::new(),
        }
    }
}

/// Where each adapted projection's tensors sit in [`LoraWeights`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoraLayout {
    /// (layer, module name) -> index into `a`/`b`, in a fixed (layer, module) order.
    pub slots: BTreeMap<(usize, String), usize>,
    /// The settings.
    pub settings: LoraSettings,
}

impl LoraLayout {
    /// Resolves `settings.target_modules` against the model (PEFT semantics: names that match
    /// nothing are ignored, but at least one must match).
    pub fn new(cfg: &ModelConfig, settings: LoraSettings) -> Result<Self> {
        if settings.r == 0 {
            return Err(Error::invalid("LoraConfig.r", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&settings.lora_dropout) {
            return Err(Error::invalid(
                "LoraConfig.lora_dropout",
                "must be in [0, 1)",
            ));
        }
        let mods = layer_modules(cfg.family);
        let wanted: Vec<&str> = settings
            .target_modules
            .iter()
            .map(|s| s.rsplit('.').next().unwrap_or(s))
            .collect();
        // Indices follow the map's (layer, name) order, which is how weights are built and saved.
        let mut slots: BTreeMap<(usize, String), usize> = (0..cfg.num_layers)
            .flat_map(|layer| {
                mods.iter()
                    .filter(|m| wanted.contains(*m))
                    .map(move |m| ((layer, m.to_string()), 0))
            })
            .collect();
        for (i, v) in slots.values_mut().enumerate() {
            *v = i;
        }
        if slots.is_empty() {
            return Err(Error::invalid(
                "LoraConfig.target_modules",
                format!(
                    "none of {:?} is a module of this {} model (its projections: {})",
                    settings.target_modules,
                    cfg.family.architecture(),
                    mods.join(", ")
                ),
            ));
        }
        Ok(Self { slots, settings })
    }

    /// lora_alpha / r.
    pub fn scaling(&self) -> f64 {
        self.settings.lora_alpha / self.settings.r as f64
    }

    /// The PEFT tensor name prefix of a slot.
    pub fn peft_prefix(layer: usize, module: &str) -> String {
        format!(
            "base_model.model.model.layers.{layer}.{}.{module}",
            parent(module)
        )
    }
}

/// The trainable adapter tensors.
#[derive(Module, Debug)]
pub struct LoraWeights<B: Backend> {
    /// `lora_A.weight` tensors, [r, in].
    pub a: Vec<Param<Tensor<B, 2>>>,
    /// `lora_B.weight` tensors, [out, r].
    pub b: Vec<Param<Tensor<B, 2>>>,
}

impl<B: Backend> LoraWeights<B> {
    /// PEFT initialisation: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform, a = sqrt(5)), B = 0,
    /// drawn from a host RNG seeded with `seed` so that runs are reproducible on any backend.
    pub fn init(cfg: &ModelConfig, layout: &LoraLayout, seed: u64, device: &B::Device) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let r = layout.settings.r;
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (_, module) in layout.slots.keys() {
            let (fan_in, out) = module_shape(cfg, module);
            let bound = 1.0 / (fan_in as f32).sqrt();
            let vals: Vec<f32> = (0..r * fan_in)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            a.push(Param::from_tensor(Tensor::from_data(
                TensorData::new(vals, [r, fan_in]),
                device,
            )));
            b.push(Param::from_tensor(Tensor::zeros([out, r], device)));
        }
        Self { a, b }
    }

    /// Builds weights from host tensors (a PEFT adapter file), checking shapes.
    pub fn from_host(
        cfg: &ModelConfig,
        layout: &LoraLayout,
        tensors: &HashMap<String, super::weights::HostTensor>,
        what: &str,
        device: &B::Device,
    ) -> Result<Self> {
        let r = layout.settings.r;
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (layer, module) in layout.slots.keys() {
            let (fan_in, out) = module_shape(cfg, module);
            let prefix = LoraLayout::peft_prefix(*layer, module);
            for (suffix, shape, list) in [
                ("lora_A.weight", [r, fan_in], &mut a),
                ("lora_B.weight", [out, r], &mut b),
            ] {
                let name = format!("{prefix}.{suffix}");
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| Error::invalid(what, format!("tensor `{name}` is missing")))?;
                if t.shape != shape {
                    return Err(Error::invalid(
                        what,
                        format!(
                            "tensor `{name}` has shape {:?}, expected {:?}",
                            t.shape, shape
                        ),
                    ));
                }
                list.push(Param::from_tensor(Tensor::from_data(
                    TensorData::new(t.data.clone(), shape),
                    device,
                )));
            }
        }
        Ok(Self { a, b })
    }
}

/// An adapter applied during a forward pass.
pub struct ActiveLora<'a, B: Backend> {
    /// Where each projection's tensors are.
    pub layout: &'a LoraLayout,
    /// The tensors.
    pub weights: &'a LoraWeights<B>,
    /// Multiplier on top of lora_alpha / r (1.0 for training).
    pub strength: f64,
    /// Apply `lora_dropout` (training only).
    pub train: bool,
}

impl<B: Backend> ActiveLora<'_, B> {
    /// The LoRA delta for `x` [n, in] at (layer, module), or None if not adapted here.
    pub fn delta(&self, layer: usize, module: &str, x: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        let idx = *self.layout.slots.get(&(layer, module.to_string()))?;
        let mut input = x.clone();
        let p = self.layout.settings.lora_dropout;
        if self.train && p > 0.0 {
            let keep = input.random_like(burn::tensor::Distribution::Bernoulli(1.0 - p));
            input = input * keep / (1.0 - p);
        }
        let a = self.weights.a[idx].val();
        let b = self.weights.b[idx].val();
        let scale = self.layout.scaling() * self.strength;
        // Scaled at rank r, where the product is `[n, r]`, not `[n, out]`: one pass over a
        // 16-column matrix instead of a projection-wide one, forward and backward.
        Some(
            input
                .matmul(a.transpose())
                .mul_scalar(scale)
                .matmul(b.transpose()),
        )
    }
}
