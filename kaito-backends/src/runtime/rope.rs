//! Rotary position embeddings with Hugging Face semantics (rotate-half), including Llama-3 and
//! Phi-3 `longrope` scaling. Tables are computed on the host in f64 for the positions a forward
//! pass needs.

use super::config::{ModelConfig, RopeScaling};

/// Inverse frequencies (rotary_dim / 2 of them) and the factor cos/sin are multiplied by.
pub fn inv_freq(cfg: &ModelConfig, total_len: usize) -> (Vec<f64>, f64) {
    let dim = cfg.rotary_dim;
    let base: Vec<f64> = (0..dim / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / dim as f64))
        .collect();
    match &cfg.rope_scaling {
        RopeScaling::None => (base, 1.0),
        RopeScaling::Linear { factor } => (base.iter().map(|f| f / factor).collect(), 1.0),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max,
        } => {
            let low_wl = *original_max as f64 / low_freq_factor;
            let high_wl = *original_max as f64 / high_freq_factor;
            let out = base
                .iter()
                .map(|f| {
                    let wl = 2.0 * std::f64::consts::PI / f;
                    if wl < high_wl {
                        *f
                    } else if wl > low_wl {
                        f / factor
                    } else {
                        let smooth = (*original_max as f64 / wl - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect();
            (out, 1.0)
        }
        RopeScaling::LongRope {
            short_factor,
            long_factor,
            original_max,
            attention_factor,
        } => {
            // HF picks the long factors once the sequence exceeds the original context.
            let ext = if total_len > *original_max {
                long_factor
            } else {
                short_factor
            };
            (
                base.iter().zip(ext).map(|(f, e)| f / e).collect(),
                *attention_factor,
            )
        }
    }
}

/// cos and sin tables [len, rotary_dim] (each frequency repeated for both halves, as HF's
/// `cat(freqs, freqs)`), for positions `start..start+len`, `total_len` being the full sequence.
pub fn tables(
    cfg: &ModelConfig,
    start: usize,
    len: usize,
    total_len: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (freqs, scale) = inv_freq(cfg, total_len);
    let half = freqs.len();
    let mut cos = Vec::with_capacity(len * half * 2);
    let mut sin = Vec::with_capacity(len * half * 2);
    for p in start..start + len {
        for _ in 0..2 {
            for f in &freqs {
                let a = p as f64 * f;
                cos.push((a.cos() * scale) as f32);
                sin.push((a.sin() * scale) as f32);
            }
        }
    }
    (cos, sin)
}
