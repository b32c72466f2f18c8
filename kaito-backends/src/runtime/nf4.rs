//! NF4 4-bit quantization as bitsandbytes does it (QLoRA's frozen base).
//!
//! Values are quantized in storage order in blocks of 64: each block is scaled by its absmax and
//! every value mapped to the nearest of the 16 NF4 code values, two codes per byte (first value in
//! the high nibble). With double quantization the f32 absmax scales are themselves stored as 8-bit
//! codes of bitsandbytes' signed dynamic map, blockwise in blocks of 256, after subtracting their
//! mean (the offset).

use rayon::prelude::*;

/// The 16 NF4 code values (bitsandbytes `NF4` table).
// Copied digit for digit from bitsandbytes so the table can be compared with the source.
#[allow(clippy::excessive_precision)]
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// The two code values of every packed byte (high nibble first).
fn code_pairs() -> [[f32; 2]; 256] {
    std::array::from_fn(|b| [NF4_CODE[b >> 4], NF4_CODE[b & 0x0F]])
}

/// NF4 block size (bitsandbytes' default for 4-bit).
pub const BLOCK: usize = 64;
/// Block size of the double-quantized absmax scales.
pub const SCALE_BLOCK: usize = 256;

/// bitsandbytes `create_dynamic_map(signed=True)`: 256 sorted code values in [-1, 1].
pub fn dynamic_map() -> Vec<f32> {
    let max_exponent_bits = 7;
    let mut data: Vec<f64> = Vec::with_capacity(256);
    for i in 0..max_exponent_bits {
        let items = (1usize << i) + 1;
        let scale = 10f64.powi(-(max_exponent_bits - 1) + i);
        let bounds: Vec<f64> = (0..items)
            .map(|k| 0.1 + 0.9 * k as f64 / (items - 1) as f64)
            .collect();
        for w in bounds.windows(2) {
            let mean = (w[0] + w[1]) / 2.0;
            data.push(scale * mean);
            data.push(-scale * mean);
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(|a, b| a.total_cmp(b));
    data.into_iter().map(|v| v as f32).collect()
}

fn nearest(code: &[f32], x: f32) -> u8 {
    // `code` is sorted: binary search, then pick the closer neighbour.
    let i = code.partition_point(|c| *c < x);
    if i == 0 {
        return 0;
    }
    if i == code.len() {
        return (code.len() - 1) as u8;
    }
    if (x - code[i - 1]).abs() <= (code[i] - x).abs() {
        (i - 1) as u8
    } else {
        i as u8
    }
}

/// The per-block absmax scales, plain or double-quantized.
#[derive(Debug, Clone, PartialEq)]
pub enum Scales {
    /// One f32 absmax per 64-value block.
    Plain(Vec<f32>),
    /// 8-bit codes of (absmax - offset), with one f32 scale per 256 codes.
    Double {
        /// One code per 64-value block.
        codes: Vec<u8>,
        /// absmax of each block of 256 codes.
        scales: Vec<f32>,
        /// The mean that was subtracted.
        offset: f32,
    },
}

/// An NF4-quantized tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Nf4Tensor {
    /// Shape of the original tensor.
    pub shape: Vec<usize>,
    /// Two codes per byte, first in the high nibble.
    pub packed: Vec<u8>,
    /// Block scales.
    pub scales: Scales,
}

impl Nf4Tensor {
    /// Quantizes `data` (row-major, `shape`).
    pub fn quantize(data: &[f32], shape: Vec<usize>, double_quant: bool) -> Self {
        let mut absmax = Vec::with_capacity(data.len().div_ceil(BLOCK));
        let mut codes = Vec::with_capacity(data.len());
        for block in data.chunks(BLOCK) {
            let m = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            absmax.push(m);
            let inv = if m > 0.0 { 1.0 / m } else { 0.0 };
            codes.extend(block.iter().map(|v| nearest(&NF4_CODE, v * inv)));
        }
        let packed = codes
            .chunks(2)
            .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(7))
            .collect();
        let scales = if double_quant {
            let offset = absmax.iter().sum::<f32>() / absmax.len().max(1) as f32;
            let map = dynamic_map();
            let mut q = Vec::with_capacity(absmax.len());
            let mut scales = Vec::new();
            for block in absmax.chunks(SCALE_BLOCK) {
                let m = block.iter().fold(0f32, |a, v| a.max((v - offset).abs()));
                scales.push(m);
                let inv = if m > 0.0 { 1.0 / m } else { 0.0 };
                q.extend(block.iter().map(|v| nearest(&map, (v - offset) * inv)));
            }
            Scales::Double {
                codes: q,
                scales,
                offset,
            }
        } else {
            Scales::Plain(absmax)
        };
        Self {
            shape,
            packed,
            scales,
        }
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The absmax of every 64-value block.
    fn absmax(&self) -> Vec<f32> {
        match &self.scales {
            Scales::Plain(v) => v.clone(),
            Scales::Double {
                codes,
                scales,
                offset,
            } => {
                let map = dynamic_map();
                codes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| map[*c as usize] * scales[i / SCALE_BLOCK] + offset)
                    .collect()
            }
        }
    }

    /// Dequantizes to f32 (row-major, `shape`). Runs on every use of a QLoRA weight (twice per
    /// training step), so it works a byte (two codes) at a time, in parallel over blocks.
    pub fn dequantize(&self) -> Vec<f32> {
        let n = self.numel();
        let absmax = self.absmax();
        let pairs = code_pairs();
        let mut out = vec![0f32; n];
        // Chunks of whole blocks: one block is BLOCK / 2 packed bytes.
        const BLOCKS_PER_TASK: usize = 256;
        out.par_chunks_mut(BLOCK * BLOCKS_PER_TASK)
            .enumerate()
            .for_each(|(task, chunk)| {
                let first_block = task * BLOCKS_PER_TASK;
                for (b, values) in chunk.chunks_mut(BLOCK).enumerate() {
                    let block = first_block + b;
                    let scale = absmax[block];
                    let bytes = &self.packed[block * BLOCK / 2..];
                    for (pair, byte) in values.chunks_mut(2).zip(bytes) {
                        let [hi, lo] = pairs[*byte as usize];
                        pair[0] = hi * scale;
                        if let Some(v) = pair.get_mut(1) {
                            *v = lo * scale;
                        }
                    }
                }
            });
        out
    }

    /// Dequantizes a 2-D `[rows, cols]` tensor straight into its transpose `[cols, rows]`
    /// (row-major), tile by tile so that both the reads and the writes stay in cache.
    pub fn dequantize_t(&self) -> Vec<f32> {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let absmax = self.absmax();
        let value = |i: usize| {
            let byte = self.packed[i / 2];
            let code = if i.is_multiple_of(2) {
                byte >> 4
            } else {
                byte & 0x0F
            };
            NF4_CODE[code as usize] * absmax[i / BLOCK]
        };
        const TILE: usize = 32;
        let mut out = vec![0f32; rows * cols];
        // Each task owns TILE output rows (= TILE source columns).
        out.par_chunks_mut(TILE * rows.max(1))
            .enumerate()
            .for_each(|(task, chunk)| {
                let c0 = task * TILE;
                for r0 in (0..rows).step_by(TILE) {
                    for (dc, out_row) in chunk.chunks_mut(rows).enumerate() {
                        let c = c0 + dc;
                        let r1 = (r0 + TILE).min(rows);
                        for (r, v) in out_row[r0..r1].iter_mut().enumerate() {
                            *v = value((r0 + r) * cols + c);
                        }
                    }
                }
            });
        out
    }

    /// Bytes held by the quantized form.
    pub fn bytes(&self) -> usize {
        self.packed.len()
            + match &self.scales {
                Scales::Plain(v) => v.len() * 4,
                Scales::Double { codes, scales, .. } => codes.len() + scales.len() * 4 + 4,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn randn(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                // Box-Muller.
                let u1: f64 = rng.random::<f64>().max(1e-12);
                let u2: f64 = rng.random();
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
            })
            .collect()
    }

    #[test]
    fn dynamic_map_matches_bitsandbytes_shape() {
        let m = dynamic_map();
        assert_eq!(m.len(), 256);
        assert_eq!(m[255], 1.0);
        assert!(m.contains(&0.0));
        // Largest magnitude: mean of the last two points of linspace(0.1, 1, 65).
        assert!((m[0] + 0.992_968_75).abs() < 1e-6, "{}", m[0]);
    }

    /// bitsandbytes' `test_4bit_quant` bounds for nf4 on randn data: mean abs error < 0.083,
    /// mean relative error < 0.25; every value within half the widest NF4 gap (-1 to -0.696) times its block absmax.
    #[test]
    fn quantize_dequantize_error_within_bitsandbytes_bounds() {
        for double in [false, true] {
            let x = randn(1024 * 64, 7);
            let q = Nf4Tensor::quantize(&x, vec![1024, 64], double);
            let y = q.dequantize();
            let n = x.len() as f32;
            let err: f32 = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f32>() / n;
            let rel: f32 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b).abs() / (a.abs() + 1e-8))
                .sum::<f32>()
                / n;
            assert!(err < 0.083, "double={double} mean abs err {err}");
            assert!(rel < 0.25, "double={double} mean rel err {rel}");
            for (blk, (xs, ys)) in x.chunks(BLOCK).zip(y.chunks(BLOCK)).enumerate() {
                let m = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
                let tol = m * (0.1520 + if double { 0.02 } else { 1e-6 });
                for (a, b) in xs.iter().zip(ys) {
                    assert!((a - b).abs() <= tol, "block {blk}: {a} vs {b} (absmax {m})");
                }
            }
            // 4 bits per value plus the scales.
            let bits = q.bytes() as f32 * 8.0 / n;
            assert!(bits < if double { 4.2 } else { 4.6 }, "{bits} bits/value");
        }
    }

    #[test]
    fn transposed_dequantization_is_the_transpose() {
        for (rows, cols) in [(1, 1), (7, 37), (33, 64), (70, 45)] {
            let q = Nf4Tensor::quantize(&randn(rows * cols, 3), vec![rows, cols], true);
            let (d, t) = (q.dequantize(), q.dequantize_t());
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(d[r * cols + c], t[c * rows + r], "{rows}x{cols} ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn packing_is_high_nibble_first() {
        let q = Nf4Tensor::quantize(&[-1.0, 1.0], vec![2], false);
        assert_eq!(q.packed, vec![0x0F]);
        assert_eq!(q.dequantize(), vec![-1.0, 1.0]);
    }
}
