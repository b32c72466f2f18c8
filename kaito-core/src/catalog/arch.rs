//! Architecture hyper-parameters of a decoder-only model, as a runtime needs them, read either
//! from the preset table or from a Hugging Face `config.json`.

use std::borrow::Cow;

use serde_json::Value;

use crate::error::{Error, Result};

/// How RoPE positions are rescaled beyond the trained context.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Phi-3 "longrope" (formerly "su"): per-dimension short/long factors from `config.json`.
    LongRope {
        /// `original_max_position_embeddings`.
        original_context: u32,
    },
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        /// `rope_scaling.factor`.
        factor: f32,
    },
    /// YaRN.
    Yarn {
        /// `rope_scaling.factor`.
        factor: f32,
    },
    /// Linear position interpolation.
    Linear {
        /// `rope_scaling.factor`.
        factor: f32,
    },
}

/// Mixture-of-experts shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Experts {
    /// Routed experts per layer.
    pub total: u32,
    /// Experts active per token.
    pub active: u32,
}

/// What a runtime needs to build the model graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// `architectures[0]` of `config.json`, e.g. `Phi3ForCausalLM`.
    pub name: Cow<'static, str>,
    /// Decoder layers.
    pub layers: u32,
    /// Model width.
    pub hidden_size: u32,
    /// Attention (query) heads.
    pub heads: u32,
    /// Key/value heads (GQA/MQA); equal to `heads` for plain MHA.
    pub kv_heads: u32,
    /// Width of one head (usually `hidden_size / heads`).
    pub head_dim: u32,
    /// MLP width (per expert for MoE models).
    pub intermediate_size: u32,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: u32,
    /// `max_position_embeddings`.
    pub context_length: u32,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Whether `lm_head` shares the embedding matrix.
    pub tied_embeddings: bool,
    /// MoE shape, `None` for dense models.
    pub experts: Option<Experts>,
}

/// Architectures whose decoder layer the LoRA memory model and the runtime know: RMSNorm,
/// RoPE, GQA attention and a gated (SwiGLU) MLP.
pub const TUNABLE_ARCHITECTURES: &[&str] = &[
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Phi3ForCausalLM",
];

impl Architecture {
    /// Whether kaito-rs can fine-tune this architecture.
    pub fn is_tunable(&self) -> bool {
        TUNABLE_ARCHITECTURES.contains(&self.name.as_ref()) && self.experts.is_none()
    }

    /// Parameter count of a dense gated-MLP decoder (Llama/Mistral/Qwen2/Phi-3 shape), or
    /// `None` for other shapes. Norm weights included; Qwen2's q/k/v biases included.
    pub fn dense_param_count(&self) -> Option<u64> {
        if !self.is_tunable() {
            return None;
        }
        let (h, f, v) = (
            u64::from(self.hidden_size),
            u64::from(self.intermediate_size),
            u64::from(self.vocab_size),
        );
        let q = u64::from(self.heads) * u64::from(self.head_dim);
        let kv = u64::from(self.kv_heads) * u64::from(self.head_dim);
        let bias = if self.name == "Qwen2ForCausalLM" {
            q + 2 * kv
        } else {
            0
        };
        let per_layer = h * q + 2 * h * kv + q * h + 3 * h * f + 2 * h + bias;
        let embeddings = if self.tied_embeddings {
            v * h
        } else {
            2 * v * h
        };
        Some(u64::from(self.layers) * per_layer + embeddings + h)
    }

    /// Reads a Hugging Face `config.json` (text). Multimodal configs with a `text_config` are
    /// read from that section. Missing required fields are an error naming the field.
    pub fn from_hf_config_json(text: &str) -> Result<Self> {
        let err = |message: String| Error::TuningConfig {
            path: "config.json".to_owned(),
            message,
        };
        let root: Value =
            serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let name = root
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .ok_or_else(|| err("missing `architectures[0]`".to_owned()))?
            .to_owned();
        let cfg = root.get("text_config").unwrap_or(&root);
        let num = |key: &str| -> Result<u32> {
            cfg.get(key)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| err(format!("missing or invalid `{key}`")))
        };
        let hidden_size = num("hidden_size")?;
        let heads = num("num_attention_heads")?;
        let kv_heads = num("num_key_value_heads").unwrap_or(heads);
        if heads == 0 {
            return Err(err("`num_attention_heads` must be positive".to_owned()));
        }
        let head_dim = num("head_dim").unwrap_or(hidden_size / heads);
        let factor = |s: &Value| s.get("factor").and_then(Value::as_f64).unwrap_or(1.0) as f32;
        let rope_scaling = match cfg.get("rope_scaling").filter(|s| !s.is_null()) {
            None => RopeScaling::None,
            Some(s) => match s
                .get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(Value::as_str)
            {
                Some("longrope" | "su") => RopeScaling::LongRope {
                    original_context: num("original_max_position_embeddings").unwrap_or(4096),
                },
                Some("llama3") => RopeScaling::Llama3 { factor: factor(s) },
                Some("yarn") => RopeScaling::Yarn { factor: factor(s) },
                Some("linear") => RopeScaling::Linear { factor: factor(s) },
                Some("default") | None => RopeScaling::None,
                Some(other) => return Err(err(format!("unsupported rope_scaling type {other:?}"))),
            },
        };
        let experts = match (
            num("num_local_experts").or_else(|_| num("n_routed_experts")),
            num("num_experts_per_tok"),
        ) {
            (Ok(total), Ok(active)) => Some(Experts { total, active }),
            _ => None,
        };
        Ok(Self {
            name: Cow::Owned(name),
            layers: num("num_hidden_layers")?,
            hidden_size,
            heads,
            kv_heads,
            head_dim,
            intermediate_size: num("intermediate_size")?,
            vocab_size: num("vocab_size")?,
            context_length: num("max_position_embeddings")?,
            rope_theta: cfg
                .get("rope_theta")
                .and_then(Value::as_f64)
                .unwrap_or(10_000.0),
            rope_scaling,
            tied_embeddings: root
                .get("tie_word_embeddings")
                .or_else(|| cfg.get("tie_word_embeddings"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            experts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHI3_MINI_128K: &str = r#"{
      "architectures": ["Phi3ForCausalLM"], "hidden_size": 3072, "intermediate_size": 8192,
      "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
      "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
      "rope_scaling": {"long_factor": [1.0], "short_factor": [1.0], "type": "longrope"},
      "rope_theta": 10000.0, "tie_word_embeddings": false, "vocab_size": 32064}"#;

    #[test]
    fn reads_a_hf_config_json() {
        let arch = Architecture::from_hf_config_json(PHI3_MINI_128K).expect("parses");
        assert_eq!(arch.name, "Phi3ForCausalLM");
        assert_eq!(arch.head_dim, 96);
        assert_eq!(
            arch.rope_scaling,
            RopeScaling::LongRope {
                original_context: 4096
            }
        );
        assert!(arch.is_tunable());
        assert_eq!(arch.dense_param_count(), Some(3_821_079_552));
    }

    #[test]
    fn a_config_without_required_fields_names_the_field() {
        let err = Architecture::from_hf_config_json(
            r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 8}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("num_attention_heads"), "{err}");
        assert!(Architecture::from_hf_config_json("not json").is_err());
    }
}
