//! The decoder-only transformer (Llama / Mistral / Qwen2 / Phi-3), generic over the Burn backend.
//!
//! The base weights are plain tensors (never parameters): they are frozen by construction, and
//! autodiff only tracks the LoRA tensors passed in through [`ActiveLora`].

use std::collections::BTreeMap;

use burn::prelude::*;
use burn::tensor::activation::silu;

use super::config::ModelConfig;
use super::frozen_linear::FrozenLinearBackend;
use super::lora::{ActiveLora, layer_modules, module_shape, parent};
use super::nf4::Nf4Tensor;
use super::nf4_linear::Nf4Weight;
use super::rope;
use super::weights::{HostTensor, WeightMap};
use crate::{Error, Result};

/// How the frozen projection weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseQuant {
    /// Dense in the compute dtype (LoRA).
    None,
    /// NF4 4-bit (QLoRA), optionally with double-quantized scales.
    Nf4 {
        /// Quantize the absmax scales too.
        double_quant: bool,
    },
}

/// A frozen projection weight.
#[derive(Debug, Clone)]
pub enum FrozenWeight<B: Backend> {
    /// Dense, stored transposed: [in, out].
    Dense(Tensor<B, 2>),
    /// NF4 codes on the device, dequantized inside each matmul (forward and backward).
    Nf4(Nf4Weight<B>),
}

/// A frozen linear layer (weight plus optional bias).
#[derive(Debug, Clone)]
pub struct FrozenLinear<B: Backend> {
    /// The weight.
    pub weight: FrozenWeight<B>,
    /// The bias, `[out]`.
    pub bias: Option<Tensor<B, 1>>,
}

fn transpose_host(t: &HostTensor) -> Vec<f32> {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = t.data[r * cols + c];
        }
    }
    out
}

impl<B: FrozenLinearBackend> FrozenLinear<B> {
    fn new(
        w: &HostTensor,
        bias: Option<&HostTensor>,
        quant: BaseQuant,
        device: &B::Device,
    ) -> Self {
        let (out, inp) = (w.shape[0], w.shape[1]);
        let weight = match quant {
            BaseQuant::None => FrozenWeight::Dense(Tensor::from_data(
                TensorData::new(transpose_host(w), [inp, out]),
                device,
            )),
            BaseQuant::Nf4 { double_quant } => {
                let q = Nf4Tensor::quantize(&w.data, w.shape.clone(), double_quant);
                FrozenWeight::Nf4(Nf4Weight::new(&q, device))
            }
        };
        let bias = bias.map(|b| Tensor::from_data(TensorData::new(b.data.clone(), [out]), device));
        Self { weight, bias }
    }
}

impl<B: FrozenLinearBackend> FrozenLinear<B> {
    /// x [n, in] -> [n, out].
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let y = match &self.weight {
            FrozenWeight::Dense(w) => B::dense_linear(x, w),
            FrozenWeight::Nf4(w) => B::nf4_linear(x, w),
        };
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze_dim(0),
            None => y,
        }
    }
}

impl<B: Backend> FrozenLinear<B> {
    /// Bytes the frozen weight occupies (f32 for dense on the CPU backend).
    pub fn bytes(&self) -> usize {
        let bias = self.bias.as_ref().map(|b| b.dims()[0] * 4).unwrap_or(0);
        bias + match &self.weight {
            FrozenWeight::Dense(w) => {
                w.dims().iter().product::<usize>() * std::mem::size_of::<f32>()
            }
            FrozenWeight::Nf4(q) => q.bytes(),
        }
    }
}

/// One decoder layer.
#[derive(Debug, Clone)]
pub struct Layer<B: Backend> {
    input_norm: Tensor<B, 1>,
    post_norm: Tensor<B, 1>,
    /// Projections by HF module name.
    pub projs: BTreeMap<&'static str, FrozenLinear<B>>,
}

/// Per-layer key/value cache for generation.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    /// Positions already cached.
    pub len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
        }
    }
}

/// The model.
#[derive(Debug, Clone)]
pub struct Transformer<B: Backend> {
    /// Architecture.
    pub config: ModelConfig,
    embed: Tensor<B, 2>,
    /// Decoder layers.
    pub layers: Vec<Layer<B>>,
    norm: Tensor<B, 1>,
    lm_head: Option<FrozenLinear<B>>,
    device: B::Device,
}

fn take<'a>(w: &'a WeightMap, name: &str, shape: &[usize]) -> Result<&'a HostTensor> {
    let t = w
        .get(name)
        .ok_or_else(|| Error::invalid("model weights", format!("tensor `{name}` is missing")))?;
    if t.shape != shape {
        return Err(Error::invalid(
            "model weights",
            format!(
                "tensor `{name}` has shape {:?}, expected {:?}",
                t.shape, shape
            ),
        ));
    }
    Ok(t)
}

fn vec1<B: Backend>(t: &HostTensor, device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(t.data.clone(), [t.data.len()]), device)
}

impl<B: FrozenLinearBackend> Transformer<B> {
    /// Builds the model from HF-named weights, quantizing the frozen projections if asked.
    pub fn from_weights(
        config: ModelConfig,
        w: &WeightMap,
        quant: BaseQuant,
        device: &B::Device,
    ) -> Result<Self> {
        let c = &config;
        let embed_t = take(
            w,
            "model.embed_tokens.weight",
            &[c.vocab_size, c.hidden_size],
        )?;
        let embed = Tensor::from_data(
            TensorData::new(embed_t.data.clone(), [c.vocab_size, c.hidden_size]),
            device,
        );
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let mut projs = BTreeMap::new();
            for m in layer_modules(c.family) {
                let (inp, out) = module_shape(c, m);
                let base = format!("{p}.{}.{m}", parent(m));
                let weight = take(w, &format!("{base}.weight"), &[out, inp])?;
                let has_bias = match *m {
                    "q_proj" | "k_proj" | "v_proj" | "qkv_proj" => c.qkv_bias,
                    "o_proj" => c.o_bias,
                    _ => c.mlp_bias,
                };
                let bias = if has_bias {
                    Some(take(w, &format!("{base}.bias"), &[out])?)
                } else {
                    None
                };
                projs.insert(*m, FrozenLinear::new(weight, bias, quant, device));
            }
            layers.push(Layer {
                input_norm: vec1(
                    take(w, &format!("{p}.input_layernorm.weight"), &[c.hidden_size])?,
                    device,
                ),
                post_norm: vec1(
                    take(
                        w,
                        &format!("{p}.post_attention_layernorm.weight"),
                        &[c.hidden_size],
                    )?,
                    device,
                ),
                projs,
            });
        }
        let norm = vec1(take(w, "model.norm.weight", &[c.hidden_size])?, device);
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            let t = take(w, "lm_head.weight", &[c.vocab_size, c.hidden_size])?;
            Some(FrozenLinear::new(t, None, BaseQuant::None, device))
        };
        Ok(Self {
            config,
            embed,
            layers,
            norm,
            lm_head,
            device: device.clone(),
        })
    }

    /// The device the model lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Bytes held by the frozen weights (embeddings, norms, projections, head).
    pub fn weight_bytes(&self) -> usize {
        let f = std::mem::size_of::<f32>();
        let mut n = self.embed.dims().iter().product::<usize>() * f + self.config.hidden_size * f;
        for l in &self.layers {
            n += 2 * self.config.hidden_size * f;
            n += l.projs.values().map(|p| p.bytes()).sum::<usize>();
        }
        n + self.lm_head.as_ref().map(|h| h.bytes()).unwrap_or(0)
    }

    fn rms_norm(&self, x: Tensor<B, 2>, w: &Tensor<B, 1>) -> Tensor<B, 2> {
        let var = x.clone().powi_scalar(2).mean_dim(1);
        let x = x * (var + self.config.rms_norm_eps).sqrt().recip();
        x * w.clone().unsqueeze_dim(0)
    }

    fn proj(
        &self,
        layer: usize,
        name: &str,
        x: &Tensor<B, 2>,
        loras: &[ActiveLora<'_, B>],
    ) -> Tensor<B, 2> {
        let mut y = self.layers[layer].projs[name].forward(x.clone());
        for l in loras {
            if let Some(d) = l.delta(layer, name, x) {
                y = y + d;
            }
        }
        y
    }

    fn rope(&self, x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, _, hd] = x.dims();
        let rot = self.config.rotary_dim;
        let xr = if rot == hd {
            x.clone()
        } else {
            x.clone().narrow(3, 0, rot)
        };
        let x1 = xr.clone().narrow(3, 0, rot / 2);
        let x2 = xr.clone().narrow(3, rot / 2, rot / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        let out = xr * cos.clone() + rotated * sin.clone();
        if rot == hd {
            out
        } else {
            Tensor::cat(vec![out, x.narrow(3, rot, hd - rot)], 3)
        }
    }

    /// Logits [batch, len, vocab] for token ids [batch, len] (only the last position when
    /// `last_only`), continuing from `cache` when given.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        mut cache: Option<&mut KvCache<B>>,
        loras: &[ActiveLora<'_, B>],
        last_only: bool,
    ) -> Tensor<B, 3> {
        let c = &self.config;
        let [b, t] = ids.dims();
        let start = cache.as_ref().map(|k| k.len).unwrap_or(0);
        let total = start + t;
        let (h, kvh, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let dev = &self.device;

        let (cos, sin) = rope::tables(c, start, t, total);
        let cos: Tensor<B, 4> =
            Tensor::from_data(TensorData::new(cos, [1, 1, t, c.rotary_dim]), dev);
        let sin: Tensor<B, 4> =
            Tensor::from_data(TensorData::new(sin, [1, 1, t, c.rotary_dim]), dev);

        let mut x = self.embed.clone().select(0, ids.reshape([b * t]));
        for (li, layer) in self.layers.iter().enumerate() {
            let hnorm = self.rms_norm(x.clone(), &layer.input_norm);
            let (q, k, v) = if c.family.fused() {
                let qkv = self.proj(li, "qkv_proj", &hnorm, loras);
                let (qo, ko, _) = c.qkv_out();
                (
                    qkv.clone().narrow(1, 0, qo),
                    qkv.clone().narrow(1, qo, ko),
                    qkv.narrow(1, qo + ko, ko),
                )
            } else {
                (
                    self.proj(li, "q_proj", &hnorm, loras),
                    self.proj(li, "k_proj", &hnorm, loras),
                    self.proj(li, "v_proj", &hnorm, loras),
                )
            };
            let q = q.reshape([b, t, h, hd]).swap_dims(1, 2);
            let k = k.reshape([b, t, kvh, hd]).swap_dims(1, 2);
            let v = v.reshape([b, t, kvh, hd]).swap_dims(1, 2);
            let q = self.rope(q, &cos, &sin);
            let mut k = self.rope(k, &cos, &sin);
            let mut v = v;
            if let Some(cache) = cache.as_deref_mut() {
                if let Some((pk, pv)) = cache.layers[li].take() {
                    k = Tensor::cat(vec![pk, k], 2);
                    v = Tensor::cat(vec![pv, v], 2);
                }
                cache.layers[li] = Some((k.clone(), v.clone()));
            }
            // Query i (absolute start+i) sees keys 0..=start+i; key heads are shared by
            // `h / kvh` query heads each.
            let attn = B::causal_attention(q, k, v);
            let attn = attn.swap_dims(1, 2).reshape([b * t, h * hd]);
            x = x + self.proj(li, "o_proj", &attn, loras);

            let hnorm = self.rms_norm(x.clone(), &layer.post_norm);
            let act = if c.family.fused() {
                let gu = self.proj(li, "gate_up_proj", &hnorm, loras);
                let i = c.intermediate_size;
                silu(gu.clone().narrow(1, 0, i)) * gu.narrow(1, i, i)
            } else {
                silu(self.proj(li, "gate_proj", &hnorm, loras))
                    * self.proj(li, "up_proj", &hnorm, loras)
            };
            x = x + self.proj(li, "down_proj", &act, loras);
        }
        if let Some(cache) = cache {
            cache.len = total;
        }
        let d = c.hidden_size;
        let (x, rows) = if last_only {
            (x.reshape([b, t, d]).narrow(1, t - 1, 1).reshape([b, d]), 1)
        } else {
            (x, t)
        };
        let x = self.rms_norm(x, &self.norm);
        let logits = match &self.lm_head {
            Some(head) => head.forward(x),
            // The tied embedding [vocab, d] as the head, multiplied transposed without a copy.
            None => B::dense_linear_t(x, &self.embed),
        };
        logits.reshape([b, rows, c.vocab_size])
    }

    /// The embedding matrix [vocab, hidden] (for merged exports).
    pub fn embed(&self) -> &Tensor<B, 2> {
        &self.embed
    }
}
