//! Burn runtime tests on tiny models in exact HF layout (made by scripts/make_reference_logits.py)
//! and on SmolLM2-135M-Instruct (scripts/fetch-smollm2.sh).
#![cfg(feature = "cpu")]

mod adapters;
mod training;

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

/// Every projection name of both families (each model ignores the other's).
fn all_modules() -> Vec<String> {
    use kaito_backends::runtime::config::Family;
    let mut names: Vec<String> = [Family::Llama, Family::Phi3]
        .into_iter()
        .flat_map(|f| {
            runtime::lora::layer_modules(f)
                .iter()
                .map(|m| m.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
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
