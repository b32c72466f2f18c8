//! Model shapes and random weights shared by the runtime benchmarks (`benches/runtime_cpu.rs`,
//! `kaito-backends/examples/gpu_bench.rs`, `kaito-backends/examples/lora_memory.rs`), so that the
//! Burn side and `benches/pytorch_cpu.py` build exactly the same architectures.
//! Included with `#[path]`; not a bench target of its own.

#![allow(dead_code)] // each includer uses a different subset

use kaito_backends::runtime::config::{Family, ModelConfig};
use kaito_backends::runtime::lora::{layer_modules, module_shape, parent};
use kaito_backends::runtime::weights::{HostTensor, WeightMap};

/// The small Llama-family model of the CPU bench: 4 layers, d=256, GQA 8/4 heads, SwiGLU 768,
/// vocab 2048, tied embeddings (3.67 M parameters). `benches/pytorch_cpu.py` mirrors it.
pub const SMALL_LLAMA: &str = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":2048,
    "hidden_size":256,"intermediate_size":768,"num_hidden_layers":4,"num_attention_heads":8,
    "num_key_value_heads":4,"rms_norm_eps":1e-5,"rope_theta":10000.0,
    "max_position_embeddings":2048,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}"#;

/// microsoft/Phi-3-mini-4k-instruct's architecture (3.82 B parameters, untied head).
pub const PHI3_MINI: &str = r#"{"architectures":["Phi3ForCausalLM"],"vocab_size":32064,
    "hidden_size":3072,"intermediate_size":8192,"num_hidden_layers":32,"num_attention_heads":32,
    "num_key_value_heads":32,"rms_norm_eps":1e-5,"rope_theta":10000.0,
    "max_position_embeddings":4096,"tie_word_embeddings":false,"bos_token_id":1,
    "eos_token_id":32000}"#;

/// LoRA targets on every projection of a separate-q/k/v family (the runtime's own list).
pub fn llama_all() -> &'static [&'static str] {
    layer_modules(Family::Llama)
}

/// LoRA targets on every projection of Phi-3 (the deps.md PEFT reference's list).
pub fn phi3_all() -> &'static [&'static str] {
    layer_modules(Family::Phi3)
}

/// Parses one of the shapes above.
pub fn config(json: &str) -> ModelConfig {
    ModelConfig::from_json(json, "bench shape").expect("bench shapes are valid configs")
}

/// Number of parameters of the base model (embeddings, norms, projections, head).
pub fn param_count(cfg: &ModelConfig) -> usize {
    let (h, v) = (cfg.hidden_size, cfg.vocab_size);
    let per_layer: usize = layer_modules(cfg.family)
        .iter()
        .map(|m| {
            let (i, o) = module_shape(cfg, m);
            i * o
        })
        .sum::<usize>()
        + 2 * h;
    let head = if cfg.tie_word_embeddings { 0 } else { v * h };
    v * h + cfg.num_layers * per_layer + h + head
}

/// Number of LoRA parameters for rank `r` on `targets`.
pub fn lora_param_count(cfg: &ModelConfig, targets: &[&str], r: usize) -> usize {
    let per_layer: usize = layer_modules(cfg.family)
        .iter()
        .filter(|m| targets.contains(m))
        .map(|m| {
            let (i, o) = module_shape(cfg, m);
            r * (i + o)
        })
        .sum();
    cfg.num_layers * per_layer
}

/// HF-named random weights for `cfg` (uniform in ±0.05, norms at 1): the values do not matter
/// for speed, only the shapes do. A xorshift stream keeps this fast for billions of values.
pub fn random_weights(cfg: &ModelConfig) -> WeightMap {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
            })
            .collect()
    };
    let (h, v) = (cfg.hidden_size, cfg.vocab_size);
    let ones = |n: usize| HostTensor::new(vec![n], vec![1.0; n]);
    let mut w = WeightMap::new();
    w.insert(
        "model.embed_tokens.weight".into(),
        HostTensor::new(vec![v, h], rnd(v * h)),
    );
    w.insert("model.norm.weight".into(), ones(h));
    if !cfg.tie_word_embeddings {
        w.insert(
            "lm_head.weight".into(),
            HostTensor::new(vec![v, h], rnd(v * h)),
        );
    }
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        for m in layer_modules(cfg.family) {
            let (inp, out) = module_shape(cfg, m);
            let base = format!("{p}.{}.{m}", parent(m));
            w.insert(
                format!("{base}.weight"),
                HostTensor::new(vec![out, inp], rnd(out * inp)),
            );
            let bias = match *m {
                "q_proj" | "k_proj" | "v_proj" | "qkv_proj" => cfg.qkv_bias,
                "o_proj" => cfg.o_bias,
                _ => cfg.mlp_bias,
            };
            if bias {
                w.insert(format!("{base}.bias"), HostTensor::new(vec![out], rnd(out)));
            }
        }
        w.insert(format!("{p}.input_layernorm.weight"), ones(h));
        w.insert(format!("{p}.post_attention_layernorm.weight"), ones(h));
    }
    w
}

/// Deterministic token ids in `[3, vocab)` for a batch (the same formula as the PyTorch side).
pub fn token_ids(batch: usize, seq: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| {
            (0..seq)
                .map(|i| (3 + (i * 7919 + b * 104_729) % (vocab - 3)) as u32)
                .collect()
        })
        .collect()
}
