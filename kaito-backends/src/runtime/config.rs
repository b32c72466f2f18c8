//! Architecture configuration read from a Hugging Face `config.json`.
//!
//! One struct covers the decoder-only families KAITO tunes (Llama, Mistral, Qwen2, Phi-3/3.5/4-mini);
//! the family only changes a few switches (fused projections, qkv bias, RoPE scaling).

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// The model families the runtime implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM` (also SmolLM2).
    Llama,
    /// `MistralForCausalLM`.
    Mistral,
    /// `Qwen2ForCausalLM` (bias on q/k/v).
    Qwen2,
    /// `Phi3ForCausalLM` (fused `qkv_proj` and `gate_up_proj`).
    Phi3,
}

impl Family {
    /// The `architectures` value HF writes for this family.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Llama => "LlamaForCausalLM",
            Family::Mistral => "MistralForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Phi3 => "Phi3ForCausalLM",
        }
    }

    /// Whether q/k/v (and gate/up) are stored fused, as Phi-3 does.
    pub fn fused(self) -> bool {
        self == Family::Phi3
    }
}

/// RoPE scaling variants (HF `rope_scaling`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// No scaling.
    None,
    /// `linear`: positions divided by `factor`.
    Linear { factor: f64 },
    /// `llama3`: frequency-dependent scaling of the inverse frequencies.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max: usize,
    },
    /// Phi-3 `longrope` (alias `su`): per-dimension short/long factors and an attention factor.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max: usize,
        attention_factor: f64,
    },
}

/// The architecture of a decoder-only model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Which family (decides fused projections and biases).
    pub family: Family,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size (d_model).
    pub hidden_size: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_kv_heads: usize,
    /// Per-head dimension.
    pub head_dim: usize,
    /// Number of leading head dimensions that RoPE rotates (Phi-4-mini rotates 3/4).
    pub rotary_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Maximum positions the model was configured for.
    pub max_position_embeddings: usize,
    /// Whether `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (Qwen2, or Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on o_proj (Llama `attention_bias`).
    pub o_bias: bool,
    /// Bias on the MLP projections (Llama `mlp_bias`).
    pub mlp_bias: bool,
    /// End-of-sequence token ids.
    pub eos_token_ids: Vec<u32>,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default)]
    partial_rotary_factor: Option<f64>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers >= 5 writes `rope_theta`, the scaling and `partial_rotary_factor` here.
    rope_parameters: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    original_max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    eos_token_id: Option<serde_json::Value>,
    bos_token_id: Option<u32>,
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses `config.json` text; `what` names the source in errors.
    pub fn from_json(text: &str, what: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text)
            .map_err(|e| Error::invalid(what, format!("config.json: {e}")))?;
        let arch = raw
            .architectures
            .first()
            .ok_or_else(|| Error::invalid(what, "config.json has no `architectures`"))?;
        let family = match arch.as_str() {
            "LlamaForCausalLM" => Family::Llama,
            "MistralForCausalLM" => Family::Mistral,
            "Qwen2ForCausalLM" => Family::Qwen2,
            "Phi3ForCausalLM" => Family::Phi3,
            other => {
                return Err(Error::invalid(
                    what,
                    format!(
                        "unsupported architecture `{other}` (supported: LlamaForCausalLM, \
                         MistralForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM)"
                    ),
                ));
            }
        };
        if raw.num_attention_heads == 0
            || !raw.hidden_size.is_multiple_of(raw.num_attention_heads) && raw.head_dim.is_none()
        {
            return Err(Error::invalid(
                what,
                "hidden_size must be divisible by num_attention_heads",
            ));
        }
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if num_kv_heads == 0 || !raw.num_attention_heads.is_multiple_of(num_kv_heads) {
            return Err(Error::invalid(
                what,
                "num_attention_heads must be a multiple of num_key_value_heads",
            ));
        }
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads);
        let rope_params = raw.rope_parameters.as_ref().filter(|v| v.is_object());
        let param_f64 = |k: &str| rope_params.and_then(|p| p.get(k)).and_then(|v| v.as_f64());
        let partial = raw
            .partial_rotary_factor
            .or_else(|| param_f64("partial_rotary_factor"));
        let rope_theta = raw
            .rope_theta
            .or_else(|| param_f64("rope_theta"))
            .unwrap_or(10_000.0);
        let rotary_dim = match partial {
            Some(f) if f > 0.0 && f <= 1.0 => ((head_dim as f64 * f) as usize) & !1,
            Some(f) => {
                return Err(Error::invalid(
                    what,
                    format!("partial_rotary_factor {f} is not in (0, 1]"),
                ));
            }
            None => head_dim,
        };
        let max_pos = raw.max_position_embeddings.unwrap_or(2048);
        let rope_scaling = parse_rope_scaling(
            raw.rope_scaling
                .as_ref()
                .filter(|v| v.is_object())
                .or(rope_params),
            raw.original_max_position_embeddings,
            max_pos,
            rotary_dim,
            what,
        )?;
        let eos_token_ids = match raw.eos_token_id {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|v| vec![v as u32]).unwrap_or_default()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect(),
            Some(other) => {
                return Err(Error::invalid(
                    what,
                    format!("eos_token_id has an unexpected value {other}"),
                ));
            }
        };
        Ok(Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim,
            rotary_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: max_pos,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            qkv_bias: family == Family::Qwen2 || raw.attention_bias,
            o_bias: raw.attention_bias,
            mlp_bias: raw.mlp_bias,
            eos_token_ids,
            bos_token_id: raw.bos_token_id,
        })
    }

    /// Output features of the q, k and v projections.
    pub fn qkv_out(&self) -> (usize, usize, usize) {
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        (q, kv, kv)
    }
}

fn parse_rope_scaling(
    value: Option<&serde_json::Value>,
    top_level_original_max: Option<usize>,
    max_pos: usize,
    rotary_dim: usize,
    what: &str,
) -> Result<RopeScaling> {
    let Some(obj) = value.and_then(|v| v.as_object()) else {
        return Ok(RopeScaling::None);
    };
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let num = |k: &str| obj.get(k).and_then(|v| v.as_f64());
    let factors = |k: &str| -> Result<Vec<f64>> {
        let list = obj
            .get(k)
            .and_then(|v| v.as_array())
            .ok_or_else(|| Error::invalid(what, format!("rope_scaling.{k} is missing")))?;
        let out: Vec<f64> = list.iter().filter_map(|v| v.as_f64()).collect();
        if out.len() != rotary_dim / 2 {
            return Err(Error::invalid(
                what,
                format!(
                    "rope_scaling.{k} has {} values, expected {}",
                    out.len(),
                    rotary_dim / 2
                ),
            ));
        }
        Ok(out)
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: num("factor").unwrap_or(1.0),
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: num("factor").unwrap_or(8.0),
            low_freq_factor: num("low_freq_factor").unwrap_or(1.0),
            high_freq_factor: num("high_freq_factor").unwrap_or(4.0),
            original_max: num("original_max_position_embeddings")
                .map(|v| v as usize)
                .unwrap_or(8192),
        }),
        "longrope" | "su" => {
            let original_max = top_level_original_max
                .or_else(|| num("original_max_position_embeddings").map(|v| v as usize))
                .ok_or_else(|| {
                    Error::invalid(what, "longrope needs original_max_position_embeddings")
                })?;
            // HF: factor = max/original; attention factor sqrt(1 + ln(factor)/ln(original)).
            let factor = num("factor").unwrap_or(max_pos as f64 / original_max as f64);
            let attention_factor = num("attention_factor").unwrap_or(if factor <= 1.0 {
                1.0
            } else {
                (1.0 + factor.ln() / (original_max as f64).ln()).sqrt()
            });
            Ok(RopeScaling::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                original_max,
                attention_factor,
            })
        }
        other => Err(Error::invalid(
            what,
            format!("unsupported rope_scaling type `{other}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_architecture_is_a_clear_error() {
        let json = r#"{"architectures":["GPT2LMHeadModel"],"vocab_size":10,"hidden_size":8,
            "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}"#;
        let err = ModelConfig::from_json(json, "x/config.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsupported architecture `GPT2LMHeadModel`"),
            "{err}"
        );
    }

    #[test]
    fn phi3_longrope_is_parsed() {
        let json = r#"{"architectures":["Phi3ForCausalLM"],"vocab_size":10,"hidden_size":8,
            "intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,
            "max_position_embeddings":131072,"original_max_position_embeddings":4096,
            "rope_scaling":{"type":"longrope","short_factor":[1.0,1.0],"long_factor":[2.0,3.0]}}"#;
        let c = ModelConfig::from_json(json, "c").unwrap();
        assert_eq!(c.family, Family::Phi3);
        match c.rope_scaling {
            RopeScaling::LongRope {
                attention_factor,
                original_max,
                ..
            } => {
                assert_eq!(original_max, 4096);
                let expect = (1.0 + (32.0f64).ln() / (4096f64).ln()).sqrt();
                assert!((attention_factor - expect).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
    }
}
