//! Memory of LoRA vs QLoRA (NF4 base, double-quantized scales) for the same model: the bytes the
//! frozen base holds, the process's resident memory after loading, and its peak while training.
//!
//! `cargo run --release -p kaito-backends --example lora_memory -- <lora|qlora> [steps] [batch] [seq]`
//!
//! Run once per method: a process's peak RSS (VmHWM) never goes down, so the two methods must not
//! share a process. The model is SmolLM2-135M-Instruct from the offline GGUF
//! (`scripts/fetch-smollm2.sh`), dequantized to f32 on load, then kept dense (lora) or re-quantized
//! to NF4 (qlora); training is LoRA r=16 on all seven projections at `batch` x `seq` tokens (default
//! 1 x 128).
//! Linux only (reads /proc/self/status; resets the peak through /proc/self/clear_refs).

#[path = "../../benches/shapes.rs"]
mod shapes;
#[path = "../../benches/step.rs"]
mod step;

use std::path::Path;
use std::time::Instant;

use kaito_backends::runtime::model::{BaseQuant, Transformer};
use kaito_backends::runtime::{self, CpuTrain};

/// A `/proc/self/status` field in bytes (the kernel reports kB).
fn status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64))
        .unwrap_or_else(|| "n/a".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let method = args.next().unwrap_or_else(|| "lora".into());
    let quant = match method.as_str() {
        "lora" => BaseQuant::None,
        "qlora" => BaseQuant::Nf4 { double_quant: true },
        other => return Err(format!("method must be lora or qlora, got `{other}`").into()),
    };
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let seq: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = runtime::smollm2_gguf(&repo);
    if !path.is_file() {
        return Err(format!(
            "{} is missing (run scripts/fetch-smollm2.sh)",
            path.display()
        )
        .into());
    }
    let rss_start = status_bytes("VmRSS:");
    let t0 = Instant::now();
    let (cfg, w, _) = runtime::read_checkpoint(&path)?;
    let model = Transformer::<CpuTrain>::from_weights(cfg, &w, quant, &Default::default())?;
    drop(w);
    let load_s = t0.elapsed().as_secs_f64();
    let rss_loaded = status_bytes("VmRSS:");
    let peak_load = status_bytes("VmHWM:");

    // Reset the peak so the training figure is not the f32 checkpoint read at load time.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let ids = shapes::token_ids(batch, seq, model.config.vocab_size);
    let mut s = step::LoraStep::new(&model, shapes::llama_all(), 16, &ids);
    let t1 = Instant::now();
    let mut loss = f64::NAN;
    for _ in 0..steps {
        loss = s.step(&model);
    }
    let step_s = t1.elapsed().as_secs_f64() / steps.max(1) as f64;
    let peak_train = status_bytes("VmHWM:");

    println!("method={method} model=SmolLM2-135M-Instruct (f32 compute)");
    println!(
        "  frozen base weights: {:.1} MiB (projections {}, embeddings/norms f32)",
        model.weight_bytes() as f64 / (1u64 << 20) as f64,
        if quant == BaseQuant::None {
            "f32"
        } else {
            "NF4 + double-quantized scales"
        }
    );
    println!(
        "  RSS at start {}, after load {}, peak during load {}",
        mib(rss_start),
        mib(rss_loaded),
        mib(peak_load)
    );
    println!(
        "  peak RSS while training{} ({steps} steps, batch {batch} x {seq}, LoRA r=16 on 7 projections): {}",
        if reset {
            ""
        } else {
            " (includes loading: clear_refs failed)"
        },
        mib(peak_train)
    );
    println!("  load {load_s:.1} s, {step_s:.2} s/step, last loss {loss:.3}");
    println!(
        "RESULT method={method} batch={batch} seq={seq} base_bytes={} rss_loaded={} peak_load={} peak_train={} s_per_step={step_s:.3}",
        model.weight_bytes(),
        rss_loaded.unwrap_or(0),
        peak_load.unwrap_or(0),
        peak_train.unwrap_or(0)
    );
    Ok(())
}
