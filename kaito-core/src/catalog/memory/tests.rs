use super::*;
use crate::catalog::{CloudProvider, find_preset, find_sku};

fn preset_arch(name: &str) -> &'static Architecture {
    &find_preset(name).expect("preset").arch
}

fn on_sku(
    preset: &str,
    method: TuningMethod,
    config: &TuningConfig,
    sku: &str,
) -> Result<MemoryEstimate, String> {
    let sku = find_sku(CloudProvider::Azure, sku).expect("sku");
    let est = estimate(
        preset_arch(preset),
        method,
        config,
        Some(&sku.gpu),
        AttentionImpl::Fused,
    )?;
    est.check_fits(
        sku.memory_per_gpu_bytes(),
        &format!("one {} of {}", sku.gpu.name, sku.name),
    )?;
    Ok(est)
}

#[test]
fn the_seed_qlora_of_phi3_mini_fits_one_v100() {
    let config = TuningConfig::kaito_default(TuningMethod::Qlora);
    let est = on_sku(
        "phi-3-mini-128k-instruct",
        TuningMethod::Qlora,
        &config,
        "Standard_NC6s_v3",
    )
    .expect("fits");
    // V100 has no bf16: the template's bfloat16 becomes float16.
    assert_eq!(est.compute_dtype, TorchDtype::Float16);
    assert_eq!((est.batch_size, est.seq_len), (1, 1024));
    let gib = est.total() as f64 / GIB;
    assert!((7.0..12.0).contains(&gib), "{gib:.2} GiB");
    // NF4 with double quantization: 3.62B linear params at ~0.516 byte, plus 16-bit embeddings.
    assert!(
        (2.0..2.3).contains(&(est.weights as f64 / GIB)),
        "{}",
        est.weights
    );
}

#[test]
fn lora_of_qwen_coder_32b_does_not_fit_an_a10_and_says_by_how_much() {
    let config = TuningConfig::kaito_default(TuningMethod::Lora);
    let err = on_sku(
        "qwen2.5-coder-32b-instruct",
        TuningMethod::Lora,
        &config,
        "Standard_NV36ads_A10_v5",
    )
    .unwrap_err();
    assert!(
        err.contains("but one A10 of Standard_NV36ads_A10_v5 has 24.0 GiB"),
        "{err}"
    );
    assert!(err.contains("base weights 61.0 GiB"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn estimate_tracks_pefts_measured_peak_on_phi3_mini() {
    // deps.md: PEFT LoRA r=8 (qkv_proj, o_proj, gate_up_proj, down_proj), bf16, sdpa, no
    // checkpointing, on an H200: peak allocated 13.3 / 31.1 / 102.3 GiB; add ~0.5 GiB of context.
    let arch = preset_arch("phi-3-mini-4k-instruct");
    let h200 = find_sku(CloudProvider::Azure, "Standard_ND96isr_H200_v5")
        .expect("h200")
        .gpu;
    for (batch, seq, measured) in [(1, 1024, 13.3), (4, 1024, 31.1), (8, 2048, 102.3)] {
        let mut config = TuningConfig::kaito_default(TuningMethod::Lora);
        config.training.per_device_train_batch_size = batch;
        config.training.max_seq_length = seq;
        config.lora.target_modules = Some(TargetModules::AllLinear);
        let est = estimate(
            arch,
            TuningMethod::Lora,
            &config,
            Some(&h200),
            AttentionImpl::Fused,
        )
        .expect("estimate");
        let ratio = est.total() as f64 / GIB / (measured + 0.5);
        assert!(
            (0.95..1.05).contains(&ratio),
            "{batch}x{seq}: {:.1} GiB vs {measured}",
            est.total() as f64 / GIB
        );
    }
}

#[test]
fn adapter_parameters_follow_r_times_in_plus_out() {
    let arch = preset_arch("phi-3-mini-4k-instruct");
    let config = TuningConfig::kaito_default(TuningMethod::Lora);
    let est = estimate(
        arch,
        TuningMethod::Lora,
        &config,
        None,
        AttentionImpl::Fused,
    )
    .expect("estimate");
    // PEFT's phi3 default is qkv_proj: 8 * (3072 + 9216) per layer, 32 layers.
    assert_eq!(est.adapter_params, 32 * 8 * (3072 + 9216));
    assert_eq!(est.adapter, est.adapter_params * 16);
}

#[test]
fn eager_attention_and_longer_sequences_cost_more() {
    let arch = preset_arch("mistral-7b");
    let mut config = TuningConfig::kaito_default(TuningMethod::Qlora);
    let fused = estimate(
        arch,
        TuningMethod::Qlora,
        &config,
        None,
        AttentionImpl::Fused,
    )
    .expect("fused");
    let eager = estimate(
        arch,
        TuningMethod::Qlora,
        &config,
        None,
        AttentionImpl::Eager,
    )
    .expect("eager");
    assert!(eager.activations > fused.activations);
    config.training.max_seq_length = 2048;
    let longer = estimate(
        arch,
        TuningMethod::Qlora,
        &config,
        None,
        AttentionImpl::Fused,
    )
    .expect("longer");
    assert!(longer.activations > fused.activations * 19 / 10);
}

#[test]
fn qlora_weights_are_about_a_quarter_of_lora_weights() {
    let arch = preset_arch("qwen2.5-coder-7b-instruct");
    let lora = estimate(
        arch,
        TuningMethod::Lora,
        &TuningConfig::kaito_default(TuningMethod::Lora),
        None,
        AttentionImpl::Fused,
    )
    .expect("lora");
    let qlora = estimate(
        arch,
        TuningMethod::Qlora,
        &TuningConfig::kaito_default(TuningMethod::Qlora),
        None,
        AttentionImpl::Fused,
    )
    .expect("qlora");
    let ratio = qlora.weights as f64 / lora.weights as f64;
    // Qwen's large untied vocabulary stays 16-bit, so the ratio is above 0.26.
    assert!((0.26..0.45).contains(&ratio), "{ratio}");
}

#[test]
fn unknown_target_modules_and_untunable_architectures_are_errors() {
    let mut config = TuningConfig::kaito_default(TuningMethod::Lora);
    config.lora.target_modules = Some(TargetModules::Names(vec!["q_proj".into()]));
    let err = estimate(
        preset_arch("phi-4"),
        TuningMethod::Lora,
        &config,
        None,
        AttentionImpl::Fused,
    )
    .unwrap_err();
    assert!(err.contains("q_proj not found in Phi3ForCausalLM"), "{err}");
    let err = estimate(
        preset_arch("falcon-7b"),
        TuningMethod::Lora,
        &TuningConfig::default(),
        None,
        AttentionImpl::Fused,
    )
    .unwrap_err();
    assert!(err.contains("cannot be fine-tuned"), "{err}");
}

#[test]
fn dtype_falls_back_on_old_gpus() {
    let config = TuningConfig::kaito_default(TuningMethod::Lora);
    let gpu = |name| find_sku(CloudProvider::Azure, name).expect("sku").gpu;
    assert_eq!(
        compute_dtype(
            TuningMethod::Lora,
            &config,
            Some(&gpu("Standard_NC24ads_A100_v4"))
        ),
        TorchDtype::Bfloat16
    );
    assert_eq!(
        compute_dtype(
            TuningMethod::Lora,
            &config,
            Some(&gpu("Standard_NC4as_T4_v3"))
        ),
        TorchDtype::Float16
    );
    assert_eq!(
        compute_dtype(TuningMethod::Lora, &config, Some(&gpu("Standard_NV6"))),
        TorchDtype::Float32
    );
}
