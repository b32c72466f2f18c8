//! CPU throughput of the Burn runtime (ndarray backend, f32): LoRA training steps (forward,
//! backward, AdamW) and greedy KV-cached generation.
//!
//! `cargo bench -p kaito-backends --bench runtime_cpu` (or `scripts/bench-cpu.sh`, which runs
//! this and `benches/pytorch_cpu.py` with the same shapes and thread count and prints both).
//!
//! - `small-llama`: the 4-layer d=256 Llama of `shapes::SMALL_LLAMA` (random weights), LoRA r=8 on
//!   all seven projections, batch 4 x 128; generation: 16-token prompt, 64 new tokens.
//! - `smollm2-135m`: SmolLM2-135M-Instruct from the offline GGUF (`scripts/fetch-smollm2.sh`;
//!   skipped when absent), LoRA r=16 on all seven projections, batch `KAITO_BENCH_SMOLLM2_BATCH`
//!   (default 1) x 128; generation: 16-token prompt, 32 new tokens.
//!
//! - `few-rows`: one product at SmolLM2's shapes (a 576 → 1536 projection stored `[in, out]`, the
//!   tied 49152 × 576 head used transposed) with 1 to 64 rows, through
//!   `runtime::few_rows::product` (up to its limits) and through Burn's matmul (matrixmultiply):
//!   the evidence for `few_rows::MAX_ROWS` and `MAX_ROWS_T`. No throughput is set, so `scripts/bench-cpu.sh`'s table leaves it out.
//!
//! - `frozen-products`: the frozen base's products of a SmolLM2 training step (128 tokens) through
//!   `runtime::host_gemm` and through Burn's matmul.
//! - `loss`: the causal-LM loss's forward + backward on SmolLM2's logits (128 positions × 49152),
//!   as `runtime::loss`'s op and as the `log_softmax` + `gather` it replaced.
//!
//! Throughput is reported in tokens (criterion's "elem/s"): trained tokens per step, or generated
//! tokens per generation (the prompt's prefill included in the time).

#[path = "shapes.rs"]
mod shapes;
#[path = "step.rs"]
mod step;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaito_backends::runtime::model::{BaseQuant, Transformer};
use kaito_backends::runtime::{self, Cpu, CpuTrain};
use step::LoraStep;

fn bench_model(
    c: &mut Criterion,
    name: &str,
    train: &Transformer<CpuTrain>,
    infer: &Transformer<Cpu>,
    (batch, seq, r): (usize, usize, usize),
    new_tokens: usize,
) {
    let ids = shapes::token_ids(batch, seq, train.config.vocab_size);
    let mut s = LoraStep::new(train, shapes::llama_all(), r, &ids);
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements((batch * seq) as u64));
    g.bench_function(format!("train_lora_r{r}_b{batch}x{seq}"), |b| {
        b.iter(|| black_box(s.step(train)))
    });
    let prompt = &shapes::token_ids(1, 16, infer.config.vocab_size)[0];
    g.throughput(Throughput::Elements(new_tokens as u64));
    g.bench_function(format!("generate_greedy_{new_tokens}"), |b| {
        b.iter(|| black_box(step::greedy(infer, prompt, new_tokens)))
    });
    g.finish();
}

fn small_llama(c: &mut Criterion) {
    let cfg = shapes::config(shapes::SMALL_LLAMA);
    let w = shapes::random_weights(&cfg);
    let dev = Default::default();
    let train = Transformer::<CpuTrain>::from_weights(cfg.clone(), &w, BaseQuant::None, &dev)
        .expect("small llama");
    let infer =
        Transformer::<Cpu>::from_weights(cfg, &w, BaseQuant::None, &dev).expect("small llama");
    bench_model(c, "small-llama", &train, &infer, (4, 128, 8), 64);
}

fn smollm2(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = runtime::smollm2_gguf(&repo);
    if !path.is_file() {
        eprintln!(
            "skipping smollm2-135m: {} is missing (run scripts/fetch-smollm2.sh)",
            path.display()
        );
        return;
    }
    let batch = std::env::var("KAITO_BENCH_SMOLLM2_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let (cfg, w, _) = runtime::read_checkpoint(&path).expect("SmolLM2 GGUF loads");
    let dev = Default::default();
    let train = Transformer::<CpuTrain>::from_weights(cfg.clone(), &w, BaseQuant::None, &dev)
        .expect("smollm2");
    let infer = Transformer::<Cpu>::from_weights(cfg, &w, BaseQuant::None, &dev).expect("smollm2");
    drop(w);
    bench_model(c, "smollm2-135m", &train, &infer, (batch, 128, 16), 32);
}

fn few_rows(c: &mut Criterion) {
    use burn::prelude::*;
    use burn::tensor::Distribution;
    use runtime::few_rows::{MAX_ROWS, MAX_ROWS_T, product};

    let dev = Default::default();
    let rand = |shape: [usize; 2]| Tensor::<Cpu, 2>::random(shape, Distribution::Default, &dev);
    let proj = rand([576, 1536]);
    let head = rand([49152, 576]);
    let mut g = c.benchmark_group("few-rows");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for n in [1, 2, 4, 8, 16, 32, 64] {
        let x = rand([n, 576]);
        if n <= MAX_ROWS {
            g.bench_function(format!("proj_{n}_rows_direct"), |b| {
                b.iter(|| black_box(product(&x, &proj, false)))
            });
        }
        if n <= 2 * MAX_ROWS {
            g.bench_function(format!("proj_{n}_rows_matrixmultiply"), |b| {
                b.iter(|| black_box(x.clone().matmul(proj.clone())))
            });
        }
        if n <= MAX_ROWS_T {
            g.bench_function(format!("head_{n}_rows_direct"), |b| {
                b.iter(|| black_box(product(&x, &head, true)))
            });
        }
        g.bench_function(format!("head_{n}_rows_matrixmultiply"), |b| {
            b.iter(|| black_box(head.clone().matmul(x.clone().transpose())))
        });
    }
    g.finish();
}

/// The frozen base's products in a SmolLM2 training step (128 tokens): `runtime::host_gemm`
/// (blocks over rayon threads, operands read through their strides) against Burn's matmul (one
/// thread for a 2-D product; a transposed operand copied into standard layout first).
fn frozen_products(c: &mut Criterion) {
    use burn::prelude::*;
    use burn::tensor::Distribution;
    use runtime::host_gemm::product;

    let dev = Default::default();
    let rand = |shape: [usize; 2]| Tensor::<Cpu, 2>::random(shape, Distribution::Default, &dev);
    let mut g = c.benchmark_group("frozen-products");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    // (name, a, b, b transposed): MLP up projection forward (stored [in, out]) and backward,
    // and the tied head's forward (x · Eᵀ) and backward (dlogits · E).
    let cases = [
        ("up_forward", rand([128, 576]), rand([576, 1536]), false),
        ("up_backward", rand([128, 1536]), rand([576, 1536]), true),
        ("head_forward", rand([128, 576]), rand([49152, 576]), true),
        (
            "head_backward",
            rand([128, 49152]),
            rand([49152, 576]),
            false,
        ),
    ];
    for (name, a, b, t) in &cases {
        g.bench_function(format!("{name}_host_gemm"), |bch| {
            bch.iter(|| black_box(product(a, b, *t)))
        });
        g.bench_function(format!("{name}_burn"), |bch| {
            bch.iter(|| {
                let b = if *t { b.clone().transpose() } else { b.clone() };
                black_box(a.clone().matmul(b))
            })
        });
    }
    g.finish();
}

/// The loss op against `log_softmax` + `gather` under autodiff, forward and backward, at a
/// SmolLM2 step's logits (1 × 128 positions, vocabulary 49152).
fn loss(c: &mut Criterion) {
    use burn::prelude::*;
    use burn::tensor::Distribution;
    use burn::tensor::activation::log_softmax;
    use runtime::loss::causal_lm_loss;

    let (t, v) = (128, 49152);
    let dev = Default::default();
    let logits = Tensor::<CpuTrain, 3>::random([1, t, v], Distribution::Normal(0.0, 3.0), &dev);
    let labels = vec![
        (0..t as i64)
            .map(|i| i * 383 % v as i64)
            .collect::<Vec<i64>>(),
    ];
    let idx: Vec<i64> = labels[0][1..].to_vec();
    let idx = Tensor::<CpuTrain, 2, Int>::from_data(TensorData::new(idx, [t - 1, 1]), &dev);
    let mut g = c.benchmark_group("loss");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("op", |bch| {
        bch.iter(|| {
            let x = logits.clone().require_grad();
            let loss = causal_lm_loss(x.clone(), &labels, (t - 1) as f64);
            black_box(x.grad(&loss.backward()))
        })
    });
    g.bench_function("log_softmax_gather", |bch| {
        bch.iter(|| {
            let x = logits.clone().require_grad();
            let logp = log_softmax(x.clone().narrow(1, 0, t - 1).reshape([t - 1, v]), 1);
            let loss = logp
                .gather(1, idx.clone())
                .sum()
                .neg()
                .div_scalar((t - 1) as f64);
            black_box(x.grad(&loss.backward()))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    small_llama,
    smollm2,
    few_rows,
    frozen_products,
    loss
);
criterion_main!(benches);
