//! burn-cuda LoRA / QLoRA training throughput on a phi-3-mini-shaped model (random weights, bf16
//! compute), the Burn half of `scripts/gpu-bench.sh` (whose other half is
//! `benches/pytorch_gpu.py`).
//!
//! `cargo run --release -p kaito-backends --example gpu_bench --features cuda -- \
//!     <lora|qlora> [--batch 4] [--seq 1024] [--steps 4] [--r 8] [--layers 32] [--peak-tflops 790]
//!     [--kernel-cache DIR]`
//! `cargo run --release -p kaito-backends --example gpu_bench --features cuda -- gemm [--tokens 4096] [--iters 20]`
//! `cargo run --release -p kaito-backends --example gpu_bench --features cuda -- attention <ours|ops> [--batch 4] [--seq 1024] [--iters 10]`
//!
//! `gemm` times the base's products alone at phi-3-mini's projection shapes, forward (`x · W`)
//! and backward (`dy · Wᵀ`), on our frozen-linear ops (cuBLAS unless `KAITO_CUBLAS=0`) and on
//! Burn's own matmul, checks that the two agree, and prints TFLOP/s for each.
//!
//! `attention` times causal attention's forward + backward at phi-3-mini's shape (32 heads of
//! 96), with the runtime's op (`ours`: Burn's autotuned flash/fallback forward, recomputing
//! backward) or as Burn's tensor ops under autodiff (`ops`: the model's attention before that op),
//! one process each so that the script's memory sampler sees each one's peak. `ours` first checks
//! its output and query gradient against `ops` at batch 1.
//!
//! With `--kernel-cache`, compiled kernels and autotune results persist in DIR
//! (`runtime::kernel_cache`, what the operator's pods use): run twice to time a cold and a warm
//! first step.
//!
//! Each step is forward + loss + backward + AdamW on the adapters (`benches/step.rs`). The first
//! step is timed on its own (kernel compilation and autotune); the mean of the next `--steps` is
//! the throughput. MFU = 4 · N · tokens/s / peak, N = all base parameters (embeddings and head
//! included): 2N FLOP/token forward plus 2N for the activation gradients, no weight gradients for
//! the frozen base; attention's score/value matmuls and the LoRA matmuls are not counted. The
//! PyTorch side uses the same formula. Peak GPU memory is sampled by the script (nvidia-smi), the
//! same way for both sides.

#[path = "../../benches/shapes.rs"]
mod shapes;
#[path = "../../benches/step.rs"]
mod step;

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{DType, Distribution};
use kaito_backends::runtime::model::{BaseQuant, Transformer};
use kaito_backends::runtime::{AttentionBackend, FrozenLinearBackend, Gpu, GpuTrain, cublas_gemm};

/// Whether the frozen matmuls ran on cuBLAS in this process (bf16, device 0).
fn cublas_state() -> &'static str {
    match cublas_gemm::verdict(0, DType::BF16) {
        Some(true) => "on",
        Some(false) => "failed",
        None if cublas_gemm::enabled_by_env() => "unused",
        None => "off",
    }
}

/// Mean seconds per call of `f` over `iters` calls after two warm-up calls (autotune).
fn time_op(device: &Device<Gpu>, iters: usize, f: impl Fn() -> Tensor<Gpu, 2>) -> f64 {
    for _ in 0..2 {
        drop(f());
    }
    Gpu::sync(device).expect("device sync");
    let t = Instant::now();
    for _ in 0..iters {
        drop(f());
    }
    Gpu::sync(device).expect("device sync");
    t.elapsed().as_secs_f64() / iters as f64
}

/// Reads `--flag N` pairs into the named counts.
fn counts(
    args: &mut impl Iterator<Item = String>,
    slots: &mut [(&str, &mut usize)],
) -> Result<(), Box<dyn std::error::Error>> {
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .ok_or(format!("{flag} needs a value"))?
            .parse()?;
        let (_, slot) = slots
            .iter_mut()
            .find(|(name, _)| *name == flag)
            .ok_or(format!("unknown flag {flag}"))?;
        **slot = value;
    }
    Ok(())
}

fn gemm_bench(mut args: impl Iterator<Item = String>) -> Result<(), Box<dyn std::error::Error>> {
    let (mut tokens, mut iters) = (4096usize, 20usize);
    counts(
        &mut args,
        &mut [("--tokens", &mut tokens), ("--iters", &mut iters)],
    )?;
    let iters = iters.max(1);
    let device = Default::default();
    // phi-3-mini's projections as the model stores them, [in, out].
    let shapes = [
        ("qkv_proj", 3072, 9216),
        ("o_proj", 3072, 3072),
        ("gate_up_proj", 3072, 16384),
        ("down_proj", 8192, 3072),
    ];
    for (name, d_in, d_out) in shapes {
        let x = Tensor::<Gpu, 2>::random([tokens, d_in], Distribution::Normal(0.0, 1.0), &device);
        let dy = Tensor::<Gpu, 2>::random([tokens, d_out], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<Gpu, 2>::random([d_in, d_out], Distribution::Normal(0.0, 0.02), &device);
        let flop = 2.0 * (tokens * d_in * d_out) as f64;
        for pass in ["forward", "backward"] {
            let ours = || match pass {
                "forward" => <Gpu as FrozenLinearBackend>::matmul(x.clone(), w.clone()),
                _ => <Gpu as FrozenLinearBackend>::matmul_t(dy.clone(), w.clone()),
            };
            let burn = || match pass {
                "forward" => x.clone().matmul(w.clone()),
                _ => dy.clone().matmul(w.clone().transpose()),
            };
            let (a, b) = (ours(), burn());
            let scale = b.clone().abs().max().into_scalar().to_f64();
            let diff = (a - b).abs().max().into_scalar().to_f64() / scale.max(f64::MIN_POSITIVE);
            let t_ours = time_op(&device, iters, ours);
            let t_burn = time_op(&device, iters, burn);
            println!(
                "RESULT side=gemm op={name}_{pass} tokens={tokens} in={d_in} out={d_out} ours_ms={:.3} ours_tflops={:.0} burn_ms={:.3} burn_tflops={:.0} max_rel_diff={diff:.2e} cublas={}",
                t_ours * 1e3,
                flop / t_ours / 1e12,
                t_burn * 1e3,
                flop / t_burn / 1e12,
                cublas_state()
            );
        }
    }
    Ok(())
}

/// Causal attention as Burn's tensor ops (autodiff records and keeps every step).
fn attention_ops(
    q: Tensor<GpuTrain, 4>,
    k: Tensor<GpuTrain, 4>,
    v: Tensor<GpuTrain, 4>,
) -> Tensor<GpuTrain, 4> {
    let [b, h, t, d] = q.dims();
    let future = Tensor::<GpuTrain, 2, Bool>::tril_mask([t, t], 0, &q.device())
        .unsqueeze::<4>()
        .expand([b, h, t, t]);
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f64).sqrt());
    burn::tensor::activation::softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3).matmul(v)
}

type Attention =
    fn(Tensor<GpuTrain, 4>, Tensor<GpuTrain, 4>, Tensor<GpuTrain, 4>) -> Tensor<GpuTrain, 4>;

/// Forward + backward of `f` on random `[b, h, t, d]` inputs: the output and `dq`.
fn attention_pass(f: Attention, dims: [usize; 4], seed: u64) -> (Tensor<Gpu, 4>, Tensor<Gpu, 4>) {
    let device = Default::default();
    <Gpu as Backend>::seed(&device, seed);
    let normal = Distribution::Normal(0.0, 1.0);
    let q = Tensor::<GpuTrain, 4>::random(dims, normal, &device).require_grad();
    let k = Tensor::<GpuTrain, 4>::random(dims, normal, &device).require_grad();
    let v = Tensor::<GpuTrain, 4>::random(dims, normal, &device).require_grad();
    let upstream = Tensor::<GpuTrain, 4>::random(dims, normal, &device);
    let y = f(q.clone(), k, v);
    let grads = (y.clone() * upstream).sum().backward();
    (y.inner(), q.grad(&grads).expect("q is tracked"))
}

fn attention_bench(
    mut args: impl Iterator<Item = String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let which = args.next().unwrap_or_default();
    let f: Attention = match which.as_str() {
        "ours" => GpuTrain::causal_attention,
        "ops" => attention_ops,
        other => return Err(format!("attention: ours or ops, got `{other}`").into()),
    };
    let (mut batch, mut seq, mut iters) = (4usize, 1024usize, 10usize);
    let mut flags = [
        ("--batch", &mut batch),
        ("--seq", &mut seq),
        ("--iters", &mut iters),
    ];
    counts(&mut args, &mut flags)?;
    let iters = iters.max(1);
    let (heads, head_dim) = (32, 96);
    let device: Device<Gpu> = Default::default();
    let mut check = String::new();
    if which == "ours" {
        let small = [1, heads, seq, head_dim];
        let (y, dq) = attention_pass(f, small, 7);
        let (yr, dqr) = attention_pass(attention_ops, small, 7);
        let rel = |a: Tensor<Gpu, 4>, b: Tensor<Gpu, 4>| {
            let scale = b.clone().abs().max().into_scalar().to_f64();
            (a - b).abs().max().into_scalar().to_f64() / scale.max(f64::MIN_POSITIVE)
        };
        check = format!(
            " max_rel_diff_out={:.2e} max_rel_diff_dq={:.2e}",
            rel(y, yr),
            rel(dq, dqr)
        );
    }
    let dims = [batch, heads, seq, head_dim];
    let t0 = Instant::now();
    drop(attention_pass(f, dims, 1));
    Gpu::sync(&device).expect("device sync");
    let first_s = t0.elapsed().as_secs_f64();
    drop(attention_pass(f, dims, 2));
    Gpu::sync(&device).expect("device sync");
    let t = Instant::now();
    for i in 0..iters {
        drop(attention_pass(f, dims, 3 + i as u64));
    }
    Gpu::sync(&device).expect("device sync");
    let ms = t.elapsed().as_secs_f64() / iters as f64 * 1e3;
    println!(
        "RESULT side=attention impl={which} batch={batch} seq={seq} heads={heads} head_dim={head_dim} ms_fwd_bwd={ms:.2} first_s={first_s:.1}{check}"
    );
    Ok(())
}

struct Args {
    method: String,
    batch: usize,
    seq: usize,
    steps: usize,
    r: usize,
    layers: Option<usize>,
    peak_tflops: f64,
    kernel_cache: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let method = it
        .next()
        .ok_or("usage: gpu_bench <lora|qlora|gemm|attention> [--batch N] ...")?;
    if method != "lora" && method != "qlora" {
        return Err(format!("method must be lora or qlora, got `{method}`"));
    }
    let mut a = Args {
        method,
        batch: 4,
        seq: 1024,
        steps: 4,
        r: 8,
        layers: None,
        peak_tflops: 790.0,
        kernel_cache: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|e| format!("{flag} `{v}`: {e}"))
                .map(|x| x as usize)
        };
        match flag.as_str() {
            "--batch" => a.batch = num(&value)?,
            "--seq" => a.seq = num(&value)?,
            "--steps" => a.steps = num(&value)?.max(1),
            "--r" => a.r = num(&value)?,
            "--layers" => a.layers = Some(num(&value)?),
            "--kernel-cache" => a.kernel_cache = Some(value.into()),
            "--peak-tflops" => {
                a.peak_tflops = value
                    .parse()
                    .map_err(|e| format!("--peak-tflops `{value}`: {e}"))?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("gemm") => return gemm_bench(std::env::args().skip(2)),
        Some("attention") => return attention_bench(std::env::args().skip(2)),
        _ => {}
    }
    let a = parse_args()?;
    if let Some(dir) = &a.kernel_cache {
        kaito_backends::runtime::kernel_cache::use_kernel_cache(dir)?;
    }
    let mut cfg = shapes::config(shapes::PHI3_MINI);
    if let Some(l) = a.layers {
        cfg.num_layers = l;
    }
    let quant = if a.method == "qlora" {
        BaseQuant::Nf4 { double_quant: true }
    } else {
        BaseQuant::None
    };
    let n_params = shapes::param_count(&cfg);
    let n_lora = shapes::lora_param_count(&cfg, shapes::phi3_all(), a.r);
    eprintln!(
        "burn {}: phi-3-mini shape, {} layers, {:.3} B params, LoRA r={} on {:?} ({:.1} M), batch {} x {}",
        a.method,
        cfg.num_layers,
        n_params as f64 / 1e9,
        a.r,
        shapes::phi3_all(),
        n_lora as f64 / 1e6,
        a.batch,
        a.seq
    );

    let t0 = Instant::now();
    let w = shapes::random_weights(&cfg);
    let gen_s = t0.elapsed().as_secs_f64();
    let device = Default::default();
    let t1 = Instant::now();
    let model = Transformer::<GpuTrain>::from_weights(cfg.clone(), &w, quant, &device)?;
    drop(w);
    let load_s = t1.elapsed().as_secs_f64();
    eprintln!("random weights {gen_s:.1} s, model build + upload {load_s:.1} s");

    let ids = shapes::token_ids(a.batch, a.seq, cfg.vocab_size);
    let mut s = step::LoraStep::new(&model, shapes::phi3_all(), a.r, &ids);
    let t2 = Instant::now();
    let first_loss = s.step(&model);
    let first_s = t2.elapsed().as_secs_f64();
    eprintln!("first step {first_s:.1} s (compilation + autotune), loss {first_loss:.3}");

    let mut times = Vec::with_capacity(a.steps);
    let mut loss = first_loss;
    for i in 0..a.steps {
        let t = Instant::now();
        loss = s.step(&model);
        times.push(t.elapsed().as_secs_f64());
        eprintln!("step {} {:.0} ms, loss {loss:.3}", i + 2, times[i] * 1e3);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let tokens = (a.batch * a.seq) as f64;
    let tps = tokens / mean;
    let mfu = 4.0 * n_params as f64 * tps / (a.peak_tflops * 1e12);
    println!(
        "RESULT side=burn method={}{} batch={} seq={} layers={} ms_per_step={:.1} tokens_per_s={:.0} mfu={:.4} first_step_s={:.1} load_s={:.1} loss={:.4} cublas={}",
        a.method,
        if a.kernel_cache.is_some() {
            "+cache"
        } else {
            ""
        },
        a.batch,
        a.seq,
        cfg.num_layers,
        mean * 1e3,
        tps,
        mfu,
        first_s,
        gen_s + load_s,
        loss,
        cublas_state()
    );
    Ok(())
}
