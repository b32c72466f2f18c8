//! Compares Burn CPU backends on a LoRA training step of a small random Llama-shaped model
//! (matmul-heavy forward + backward) and on KV-cached decoding.
//!
//! `cargo run --release -p kaito-backends --example cpu_backends --features flex`
//! (ndarray is measured always, flex with `--features flex`).

#[path = "../../benches/shapes.rs"]
mod shapes;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use kaito_backends::data::TokenizedExample;
use kaito_backends::runtime::FrozenLinearBackend;
use kaito_backends::runtime::config::ModelConfig;
use kaito_backends::runtime::lora::LoraSettings;
use kaito_backends::runtime::model::{BaseQuant, KvCache, Transformer};
use kaito_backends::runtime::train::{TrainOptions, train};
use kaito_backends::runtime::weights::WeightMap;

// The same small Llama as benches/runtime_cpu.rs.
fn config() -> ModelConfig {
    shapes::config(shapes::SMALL_LLAMA)
}

fn random_weights(cfg: &ModelConfig) -> WeightMap {
    shapes::random_weights(cfg)
}

fn bench_train<B: AutodiffBackend + FrozenLinearBackend>(name: &str) {
    let cfg = config();
    let device = Default::default();
    let model = Transformer::<B>::from_weights(
        cfg.clone(),
        &random_weights(&cfg),
        BaseQuant::None,
        &device,
    )
    .unwrap();
    let (batch, seq) = (4, 128);
    let data: Vec<TokenizedExample> = (0..batch * 3)
        .map(|k| {
            let ids: Vec<u32> = (0..seq).map(|i| ((i * 7 + k * 13) % 2000) as u32).collect();
            TokenizedExample {
                labels: ids.iter().map(|v| *v as i64).collect(),
                input_ids: ids,
            }
        })
        .collect();
    let targets = shapes::llama_all();
    let opts = TrainOptions {
        lora: LoraSettings {
            r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.0,
            target_modules: targets.iter().map(|s| s.to_string()).collect(),
        },
        batch_size: batch,
        max_steps: Some(3),
        max_seq_len: seq,
        shuffle: false,
        ..TrainOptions::default()
    };
    let mut times = Vec::new();
    let mut last = Instant::now();
    train(
        &model,
        &data,
        &[],
        &opts,
        &AtomicBool::new(false),
        &mut |_| {
            times.push(last.elapsed().as_secs_f64());
            last = Instant::now();
        },
    )
    .unwrap();
    // The first step includes warm-up; report the later ones.
    let steady = times[1..].iter().sum::<f64>() / (times.len() - 1) as f64;
    println!(
        "{name}: train step (batch {batch} x {seq}, 4 layers d=256, LoRA r=8 on 7 projections): {:.0} ms/step, {:.0} tokens/s",
        steady * 1e3,
        (batch * seq) as f64 / steady
    );

    // Decoding: 32 tokens one at a time with the KV cache.
    let inner = model.clone();
    let mut cache = KvCache::new(cfg.num_layers);
    let t0 = Instant::now();
    let prompt = Tensor::<B, 2, Int>::from_data(
        TensorData::new((0..16i64).collect::<Vec<_>>(), [1, 16]),
        &device,
    );
    let _ = inner
        .forward(prompt, Some(&mut cache), &[], true)
        .into_data();
    let t1 = Instant::now();
    for i in 0..32 {
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![i as i64], [1, 1]), &device);
        let _ = inner.forward(x, Some(&mut cache), &[], true).into_data();
    }
    let dec = t1.elapsed().as_secs_f64();
    println!(
        "{name}: prefill 16 tokens {:.1} ms, decode {:.1} tokens/s",
        (t1 - t0).as_secs_f64() * 1e3,
        32.0 / dec
    );
}

fn main() {
    bench_train::<Autodiff<burn::backend::NdArray<f32>>>("ndarray");
    #[cfg(feature = "flex")]
    bench_train::<Autodiff<burn::backend::Flex<f32>>>("flex");
}
