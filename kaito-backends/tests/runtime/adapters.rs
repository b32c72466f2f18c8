//! LoRA adapters on the tiny models: B = 0 is a no-op, PEFT's file layout, merging, QLoRA's base.

use super::*;

/// An adapter applied at full strength for inference.
fn applied<'a, B: Backend>(
    layout: &'a LoraLayout,
    weights: &'a LoraWeights<B>,
) -> ActiveLora<'a, B> {
    ActiveLora {
        layout,
        weights,
        strength: 1.0,
        train: false,
    }
}

#[test]
fn lora_with_zero_b_leaves_logits_unchanged_and_nonzero_b_changes_them() {
    let base =
        runtime::load_base::<Cpu>(&fixture("tiny-phi3"), BaseQuant::None, &Default::default())
            .unwrap();
    let m = &base.model;
    let settings = LoraSettings {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: all_modules(),
    };
    let layout = LoraLayout::new(&m.config, settings).unwrap();
    let w = LoraWeights::<Cpu>::init(&m.config, &layout, 1, m.device());
    let ids = vec![(3..15).collect::<Vec<i64>>()];
    let plain = logits(m, &ids, &[]);
    let with = logits(m, &ids, &[applied(&layout, &w)]);
    assert_eq!(max_diff(&plain, &with), 0.0);
    let mut w2 = w.clone();
    w2.b[0] = burn::module::Param::from_tensor(Tensor::ones(w2.b[0].val().dims(), m.device()));
    let changed = logits(m, &ids, &[applied(&layout, &w2)]);
    assert!(max_diff(&plain, &changed) > 1e-3);
}

/// Four short sequences over the tiny vocabulary.

#[test]
fn adapter_files_carry_peft_names_and_round_trip() {
    let dir = fixture("tiny-llama");
    let base = runtime::load_base::<Cpu>(&dir, BaseQuant::None, &Default::default()).unwrap();
    let m = &base.model;
    let layout = LoraLayout::new(
        &m.config,
        LoraSettings {
            r: 4,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: vec!["q_proj".into(), "down_proj".into()],
        },
    )
    .unwrap();
    let mut w = LoraWeights::<Cpu>::init(&m.config, &layout, 3, m.device());
    for b in w.b.iter_mut() {
        *b = burn::module::Param::from_tensor(Tensor::random(
            b.val().dims(),
            burn::tensor::Distribution::Normal(0.0, 0.1),
            m.device(),
        ));
    }
    let out = tempfile::tempdir().unwrap();
    adapter::save_adapter(out.path(), &layout, &w, "tiny-llama").unwrap();
    assert!(out.path().join("fine_tuning_completed.txt").exists());
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["bias"], "none");
    let tensors =
        runtime::weights::load_safetensors_file(&out.path().join("adapter_model.safetensors"))
            .unwrap();
    assert_eq!(tensors.len(), 2 * 2 * 2);
    assert_eq!(
        tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"].shape,
        vec![4, 32]
    );
    assert_eq!(
        tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].shape,
        vec![32, 4]
    );
    assert_eq!(
        tensors["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"].shape,
        vec![4, 64]
    );
    let loaded = adapter::load_adapter(out.path(), &m.config).unwrap();
    let w2 = loaded.weights::<Cpu>(&m.config, m.device()).unwrap();
    let ids = vec![(3..13).collect::<Vec<i64>>()];
    let a = logits(m, &ids, &[applied(&layout, &w)]);
    let b = logits(m, &ids, &[applied(&loaded.layout, &w2)]);
    assert_eq!(max_diff(&a, &b), 0.0);

    // Merging the adapter into the weights gives the same logits as applying it unmerged.
    let (cfg2, mut wm, _) = runtime::read_checkpoint(&dir).unwrap();
    let host = adapter::peft_tensors(&layout, &w);
    generate::merge_adapter(&mut wm, &layout, &host, 1.0).unwrap();
    let merged =
        runtime::Transformer::<Cpu>::from_weights(cfg2, &wm, BaseQuant::None, m.device()).unwrap();
    assert!(max_diff(&a, &logits(&merged, &ids, &[])) < 1e-4);
}

#[test]
fn qlora_base_is_smaller_and_close_to_the_dense_model() {
    let dir = fixture("tiny-llama");
    let dense = runtime::load_base::<Cpu>(&dir, BaseQuant::None, &Default::default()).unwrap();
    let q = runtime::load_base::<Cpu>(
        &dir,
        BaseQuant::Nf4 { double_quant: true },
        &Default::default(),
    )
    .unwrap();
    let ids = vec![(3..15).collect::<Vec<i64>>()];
    let a = logits(&dense.model, &ids, &[]);
    let b = logits(&q.model, &ids, &[]);
    // 4-bit projections (about 10% error per weight, see nf4.rs) in a random, chaotic model: the
    // logits move by well under half their spread; QLoRA training itself is tested above.
    let mean_abs = |v: &[f32]| v.iter().map(|x| x.abs()).sum::<f32>() / v.len() as f32;
    let diff: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let rel = mean_abs(&diff) / mean_abs(&a);
    println!("NF4 base: mean |logit change| / mean |logit| = {rel:.4}");
    assert!(rel < 0.4, "{rel}");
    let proj = |m: &runtime::Transformer<Cpu>| -> usize {
        m.layers
            .iter()
            .flat_map(|l| l.projs.values())
            .map(|p| p.bytes())
            .sum()
    };
    let (pd, pq) = (proj(&dense.model), proj(&q.model));
    println!(
        "projection weights: dense f32 {pd} B, nf4+double-quant {pq} B; whole model {} vs {} B",
        dense.model.weight_bytes(),
        q.model.weight_bytes()
    );
    assert!(pq * 7 < pd, "NF4 should be ~1/7.8 of f32: {pq} vs {pd}");
}
