//! GGML's tensor encodings, dequantized to f32: the plain float types and the 32-value block
//! quantizations that GGUF checkpoints of small models ship in (Q4_0, Q4_1, Q8_0). The layouts are
//! those of llama.cpp's `ggml-quants.c` (`dequantize_row_q4_0` and siblings).

use half::{bf16, f16};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes `numel` values of GGML type `ty` from the start of `b`.
pub fn dequantize(ty: u32, b: &[u8], numel: usize) -> std::result::Result<Vec<f32>, String> {
    let need = |n: usize| {
        if b.len() < n {
            Err(format!("data truncated ({} < {n} bytes)", b.len()))
        } else {
            Ok(())
        }
    };
    let blocks = |block: usize| {
        if !numel.is_multiple_of(32) {
            Err(format!(
                "{numel} values is not a multiple of the block size 32"
            ))
        } else {
            Ok((numel / 32, block))
        }
    };
    let mut out = Vec::with_capacity(numel);
    match ty {
        0 => {
            need(numel * 4)?;
            out.extend(
                b[..numel * 4]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        1 => {
            need(numel * 2)?;
            out.extend(
                b[..numel * 2]
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
            );
        }
        30 => {
            need(numel * 2)?;
            out.extend(
                b[..numel * 2]
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            );
        }
        2 => {
            // Q4_0: f16 d, 16 bytes; low nibbles are values 0..16, high nibbles 16..32; (q-8)*d.
            let (n, bs) = blocks(18)?;
            need(n * bs)?;
            for blk in b[..n * bs].chunks_exact(bs) {
                let d = f16_at(blk, 0);
                let qs = &blk[2..18];
                out.extend(qs.iter().map(|q| ((q & 0x0F) as f32 - 8.0) * d));
                out.extend(qs.iter().map(|q| ((q >> 4) as f32 - 8.0) * d));
            }
        }
        3 => {
            // Q4_1: f16 d, f16 m, 16 bytes; q*d + m.
            let (n, bs) = blocks(20)?;
            need(n * bs)?;
            for blk in b[..n * bs].chunks_exact(bs) {
                let d = f16_at(blk, 0);
                let m = f16_at(blk, 2);
                let qs = &blk[4..20];
                out.extend(qs.iter().map(|q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + m));
            }
        }
        8 => {
            // Q8_0: f16 d, 32 i8; q*d.
            let (n, bs) = blocks(34)?;
            need(n * bs)?;
            for blk in b[..n * bs].chunks_exact(bs) {
                let d = f16_at(blk, 0);
                out.extend(blk[2..34].iter().map(|q| *q as i8 as f32 * d));
            }
        }
        other => {
            return Err(format!(
                "unsupported GGML type {other} (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_dequantizes_low_then_high_nibbles() {
        let mut blk = Vec::new();
        blk.extend(f16::from_f32(0.5).to_le_bytes());
        blk.extend(f16::from_f32(-1.0).to_le_bytes());
        blk.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        let v = dequantize(3, &blk, 32).unwrap();
        assert_eq!(v[0], -1.0);
        assert_eq!(v[15], 15.0 * 0.5 - 1.0);
        assert_eq!(v[16], 15.0 * 0.5 - 1.0);
        assert_eq!(v[31], -1.0);
    }

    #[test]
    fn q8_0_and_truncation() {
        let mut blk = Vec::new();
        blk.extend(f16::from_f32(0.25).to_le_bytes());
        blk.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = dequantize(8, &blk, 32).unwrap();
        assert_eq!(v[0], -4.0);
        assert_eq!(v[31], 15.0 * 0.25);
        assert!(
            dequantize(8, &blk[..10], 32)
                .unwrap_err()
                .contains("truncated")
        );
    }
}
