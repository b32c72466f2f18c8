//! Burn runtime tests on tiny models in exact HF layout (made by scripts/make_reference_logits.py)
//! and on SmolLM2-135M-Instruct (scripts/fetch-smollm2.sh).
#![cfg(feature = "cpu")]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::prelude::*;
use kaito_backends::data::TokenizedExample;
use kaito_backends::runtime::lora::{ActiveLora, LoraLayout, LoraSettings, LoraWeights};
use kaito_backends::runtime::model::KvCache;
use kaito_backends::runtime::train::{self, SaveStrategy, Schedule, TrainOptions};
use kaito_backends::runtime::{self, BaseQuant, Cpu, CpuTrain, adapter, generate};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn logits<B: runtime::FrozenLinearBackend>(
    m: &runtime::Transformer<B>,
    ids: &[Vec<i64>],
    loras: &[ActiveLora<'_, B>],
) -> Vec<f32> {
    let (b, t) = (ids.len(), ids[0].len());
    let flat: Vec<i64> = ids.concat();
    let x = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [b, t]), m.device());
    m.forward(x, None, loras, false)
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tiny_models_match_transformers_logits() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-phi3"] {
        let dir = fixture(name);
        let base = runtime::load_base::<Cpu>(&dir, BaseQuant::None, &Default::default()).unwrap();
        let refs: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("reference_logits.json")).unwrap(),
        )
        .unwrap();
        for case in ["short", "long"] {
            let ids: Vec<Vec<i64>> =
                serde_json::from_value(refs[case]["input_ids"].clone()).unwrap();
            let want: Vec<Vec<Vec<f32>>> =
                serde_json::from_value(refs[case]["logits"].clone()).unwrap();
            let want: Vec<f32> = want.into_iter().flatten().flatten().collect();
            let got = logits(&base.model, &ids, &[]);
            let d = max_diff(&got, &want);
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            assert!(
                d < 2e-5 * scale.max(10.0),
                "{name}/{case}: max |logit diff| {d} (max |logit| {scale})"
            );
        }
    }
}

#[test]
fn kv_cache_decoding_matches_full_forward() {
    let base =
        runtime::load_base::<Cpu>(&fixture("tiny-phi3"), BaseQuant::None, &Default::default())
            .unwrap();
    let m = &base.model;
    let ids: Vec<i64> = (3..23).collect();
    let full = logits(m, std::slice::from_ref(&ids), &[]);
    let v = m.config.vocab_size;
    let mut cache = KvCache::new(m.config.num_layers);
    let dev = m.device();
    let prefix =
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids[..12].to_vec(), [1, 12]), dev);
    m.forward(prefix, Some(&mut cache), &[], true);
    for (i, t) in ids.iter().enumerate().skip(12) {
        let x = Tensor::<Cpu, 2, Int>::from_data(TensorData::new(vec![*t], [1, 1]), dev);
        let row = m
            .forward(x, Some(&mut cache), &[], true)
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        let d = max_diff(&row, &full[i * v..(i + 1) * v]);
        assert!(d < 1e-4, "position {i}: {d}");
    }
}

#[test]
fn tokenizer_and_chat_template_match_transformers() {
    let dir = fixture("tiny-llama");
    let tok = runtime::TokenizerBundle::from_dir(&dir).unwrap();
    let refs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference_tokens.json")).unwrap())
            .unwrap();
    let text = tok
        .apply_chat_template(
            &serde_json::json!([{"role": "user", "content": "Hello 2024"}]),
            true,
        )
        .unwrap();
    assert_eq!(text, refs["text"].as_str().unwrap());
    let ids: Vec<u32> = serde_json::from_value(refs["chat"].clone()).unwrap();
    assert_eq!(tok.encode(&text).unwrap(), ids);
}

fn all_modules() -> Vec<String> {
    [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "qkv_proj",
        "gate_up_proj",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
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
    let with = logits(
        m,
        &ids,
        &[ActiveLora {
            layout: &layout,
            weights: &w,
            strength: 1.0,
            train: false,
        }],
    );
    assert_eq!(max_diff(&plain, &with), 0.0);
    let mut w2 = w.clone();
    w2.b[0] = burn::module::Param::from_tensor(Tensor::ones(w2.b[0].val().dims(), m.device()));
    let changed = logits(
        m,
        &ids,
        &[ActiveLora {
            layout: &layout,
            weights: &w2,
            strength: 1.0,
            train: false,
        }],
    );
    assert!(max_diff(&plain, &changed) > 1e-3);
}

/// Four short sequences over the tiny vocabulary.
fn tiny_dataset() -> Vec<TokenizedExample> {
    (0..4)
        .map(|k| {
            let ids: Vec<u32> = (0..16)
                .map(|i| 3 + ((i * (k + 3) + 7 * k) % 300) as u32)
                .collect();
            let mut labels: Vec<i64> = ids.iter().map(|v| *v as i64).collect();
            labels[..4].iter_mut().for_each(|l| *l = -100); // a "prompt" that is not trained on
            TokenizedExample {
                input_ids: ids,
                labels,
            }
        })
        .collect()
}

fn train_opts() -> TrainOptions {
    TrainOptions {
        lora: LoraSettings {
            r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: all_modules(),
        },
        learning_rate: 2e-2,
        schedule: Schedule::Cosine,
        warmup_steps: 2,
        batch_size: 2,
        gradient_accumulation_steps: 1,
        max_steps: Some(60),
        max_seq_len: 64,
        seed: 7,
        ..TrainOptions::default()
    }
}

#[test]
fn training_memorises_a_tiny_dataset() {
    for quant in [BaseQuant::None, BaseQuant::Nf4 { double_quant: true }] {
        memorise(quant);
    }
}

fn memorise(quant: BaseQuant) {
    let base =
        runtime::load_base::<CpuTrain>(&fixture("tiny-llama"), quant, &Default::default()).unwrap();
    let data = tiny_dataset();
    let mut reports = Vec::new();
    let out = train::train(
        &base.model,
        &data,
        &data[..1],
        &train_opts(),
        &AtomicBool::new(false),
        &mut |p| reports.push(p.clone()),
    )
    .unwrap();
    let first = out.losses[0];
    let last = *out.losses.last().unwrap();
    assert!(
        first > 3.0,
        "a random model starts far from the data, got {first}"
    );
    assert!(
        last < 0.5,
        "loss should fall below 0.5 after 60 steps, got {last} (first {first})"
    );
    assert!(out.eval_loss.unwrap() < 0.5);
    assert_eq!(reports.len(), 60);
    assert!(
        reports
            .iter()
            .all(|p| p.tokens_per_second > 0.0 && p.learning_rate >= 0.0)
    );
    assert_eq!(
        reports[0].learning_rate, 0.0,
        "transformers' warmup starts at lr 0"
    );
}

#[test]
fn resumed_run_reproduces_the_uninterrupted_loss() {
    let base = runtime::load_base::<CpuTrain>(
        &fixture("tiny-qwen2"),
        BaseQuant::None,
        &Default::default(),
    )
    .unwrap();
    let data = tiny_dataset();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = train_opts();
    opts.max_steps = Some(6);
    opts.gradient_accumulation_steps = 2;
    opts.batch_size = 1;
    opts.save_strategy = SaveStrategy::Steps(3);
    opts.checkpoint_dir = Some(dir.path().to_path_buf());
    let never = AtomicBool::new(false);
    let full = train::train(&base.model, &data, &[], &opts, &never, &mut |_| {}).unwrap();
    assert!(dir.path().join("checkpoint-3/trainer_state.json").exists());
    let mut resume = opts.clone();
    resume.checkpoint_dir = Some(dir.path().join("again"));
    resume.resume_from = Some(dir.path().join("checkpoint-3"));
    let rest = train::train(&base.model, &data, &[], &resume, &never, &mut |_| {}).unwrap();
    assert_eq!(rest.losses.len(), 3);
    for (a, b) in full.losses[3..].iter().zip(&rest.losses) {
        assert!(
            (a - b).abs() < 1e-5,
            "uninterrupted {:?} vs resumed {:?}",
            &full.losses[3..],
            rest.losses
        );
    }
}

#[test]
fn cancellation_stops_training() {
    let base = runtime::load_base::<CpuTrain>(
        &fixture("tiny-llama"),
        BaseQuant::None,
        &Default::default(),
    )
    .unwrap();
    let err = train::train(
        &base.model,
        &tiny_dataset(),
        &[],
        &train_opts(),
        &AtomicBool::new(true),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, kaito_backends::Error::Cancelled));
}

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
    let a = logits(
        m,
        &ids,
        &[ActiveLora {
            layout: &layout,
            weights: &w,
            strength: 1.0,
            train: false,
        }],
    );
    let b = logits(
        m,
        &ids,
        &[ActiveLora {
            layout: &loaded.layout,
            weights: &w2,
            strength: 1.0,
            train: false,
        }],
    );
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

fn smollm2_path() -> Option<PathBuf> {
    let p = runtime::smollm2_gguf(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: run scripts/fetch-smollm2.sh", p.display());
    }
    eprintln!(
        "SKIPPED: {} is missing (run scripts/fetch-smollm2.sh)",
        p.display()
    );
    None
}

#[test]
fn smollm2_gguf_answers_the_capital_of_france() {
    let Some(path) = smollm2_path() else { return };
    let base = runtime::load_base::<Cpu>(&path, BaseQuant::None, &Default::default()).unwrap();
    assert_eq!(base.model.config.num_layers, 30);
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("smollm2/reference_generation.json")).unwrap(),
    )
    .unwrap();
    let msgs = serde_json::json!([{"role": "user", "content": "What is the capital of France?"}]);
    let prompt = base.tokenizer.apply_chat_template(&msgs, true).unwrap();
    assert_eq!(prompt, refs["prompt"].as_str().unwrap());
    let ids = base.tokenizer.encode(&prompt).unwrap();
    let want_prompt: Vec<u32> = serde_json::from_value(refs["prompt_ids"].clone()).unwrap();
    assert_eq!(
        ids, want_prompt,
        "tokenizer rebuilt from GGUF metadata must match transformers"
    );
    let want: Vec<u32> = serde_json::from_value(refs["generated_ids"].clone()).unwrap();
    let opts = generate::GenerationOptions {
        max_new_tokens: 12,
        ..Default::default()
    };
    let mut streamed = String::new();
    let g = generate::generate(&base.model, &base.tokenizer, &ids, &[], &opts, &mut |t| {
        streamed.push_str(t);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(streamed, g.text);
    println!(
        "SmolLM2: {:?} ({:.1} tokens/s)",
        g.text, g.tokens_per_second
    );
    assert!(g.text.contains("Paris"), "{}", g.text);
    assert_eq!(g.tokens[..], want[..g.tokens.len()]);
}
