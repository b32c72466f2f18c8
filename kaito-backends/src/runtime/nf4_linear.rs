//! QLoRA's frozen weight as the backend holds it: NF4 codes in host memory (CPU backends) or on
//! the device (GPU backends), dequantized to the compute dtype on each use. The matmul that uses
//! it, and its memory-saving backward, are in [`super::frozen_linear`].
//!
//! On the device the codes are packed into the backend's int element (8 codes per i32, 16 per
//! i64), so it holds 4 bits per weight on every backend; the double-quantized absmax scales are
//! packed 8-bit codes dequantized on the device as well.

use std::sync::Arc;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::prelude::*;
use burn::tensor::{DType, ElementConversion};

use super::frozen_linear::FrozenLinearBackend;
use super::nf4::{BLOCK, NF4_CODE, Nf4Tensor, SCALE_BLOCK, Scales, dynamic_map};

/// Codes packed `per` to an int element of the backend.
#[derive(Debug, Clone)]
struct PackedCodes<B: Backend> {
    packed: Tensor<B, 1, Int>,
    bits: u32,
    per: usize,
    len: usize,
}

/// Bits in the device's int element. The device settings, not `B::IntElem`, decide the dtype
/// `from_data` produces, so ask a real tensor. Anything but 64 is treated as 32: every backend this
/// runtime builds for uses i64 (ndarray) or i32 (flex, burn-cuda).
fn int_word_bits<B: Backend>(device: &B::Device) -> u32 {
    match Tensor::<B, 1, Int>::zeros([1], device).dtype() {
        DType::I64 | DType::U64 => 64,
        _ => 32,
    }
}

impl<B: Backend> PackedCodes<B> {
    fn pack(codes: impl ExactSizeIterator<Item = u8>, bits: u32, device: &B::Device) -> Self {
        Self::pack_words(codes, bits, int_word_bits::<B>(device), device)
    }

    fn pack_words(
        codes: impl ExactSizeIterator<Item = u8>,
        bits: u32,
        word: u32,
        device: &B::Device,
    ) -> Self {
        let len = codes.len();
        let per = (word / bits) as usize;
        let mut words = vec![0u64; len.div_ceil(per)];
        for (i, c) in codes.enumerate() {
            words[i / per] |= (c as u64) << (bits as usize * (i % per));
        }
        // The bit pattern is what matters: reinterpret as the signed element. (Widening an i32
        // pattern to i64 sign-extends, which leaves the low 32 bits, all that is unpacked.)
        let data = if word == 64 {
            TensorData::new(
                words.iter().map(|w| *w as i64).collect::<Vec<_>>(),
                [words.len()],
            )
        } else {
            TensorData::new(
                words.iter().map(|w| *w as u32 as i32).collect::<Vec<_>>(),
                [words.len()],
            )
        };
        Self {
            packed: Tensor::from_data(data, device),
            bits,
            per,
            len,
        }
    }

    /// The codes as ints [len] (padded codes beyond `len` dropped).
    fn unpack(&self) -> Tensor<B, 1, Int> {
        let [words] = self.packed.dims();
        let device = self.packed.device();
        let shifts: Vec<i64> = (0..self.per as i64).map(|k| k * self.bits as i64).collect();
        let shifts = Tensor::<B, 1, Int>::from_data(TensorData::new(shifts, [self.per]), &device)
            .unsqueeze_dim::<2>(0)
            .expand([words, self.per]);
        let mask = ((1i64 << self.bits) - 1).elem::<B::IntElem>();
        // An arithmetic shift of a negative word still leaves the right low bits for the mask.
        self.packed
            .clone()
            .unsqueeze_dim::<2>(1)
            .expand([words, self.per])
            .bitwise_right_shift(shifts)
            .bitwise_and_scalar(mask)
            .reshape([words * self.per])
            .slice(0..self.len)
    }

    fn bytes(&self) -> usize {
        self.packed.dims()[0] * self.packed.dtype().size()
    }
}

/// The block absmax scales on the device.
#[derive(Debug, Clone)]
enum DeviceScales<B: Backend> {
    Plain(Tensor<B, 1>),
    Double {
        codes: PackedCodes<B>,
        map: Tensor<B, 1>,
        scales: Tensor<B, 1>,
        offset: f32,
    },
}

/// The NF4 codes on the device, with their scales.
#[derive(Debug, Clone)]
struct DeviceCodes<B: Backend> {
    codes: PackedCodes<B>,
    table: Tensor<B, 1>,
    scales: DeviceScales<B>,
}

/// Where the codes of an [`Nf4Weight`] live.
#[derive(Debug, Clone)]
enum Storage<B: Backend> {
    /// In host memory, dequantized by a CPU loop: on CPU backends a loop over bytes is ~25x
    /// faster than the same unpack/gather done with tensor ops (measured on ndarray).
    Host(Arc<Nf4Tensor>),
    /// In device memory as packed ints, dequantized by tensor ops (GPU backends).
    Device(DeviceCodes<B>),
}

/// An NF4 weight [out, in], stored where its backend dequantizes it best.
#[derive(Debug, Clone)]
pub struct Nf4Weight<B: Backend> {
    storage: Storage<B>,
    out: usize,
    inp: usize,
    device: B::Device,
}

fn floats<B: Backend>(v: &[f32], device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

impl<B: Backend> DeviceCodes<B> {
    fn new(q: &Nf4Tensor, n: usize, device: &B::Device) -> Self {
        let nibbles: Vec<u8> = q
            .packed
            .iter()
            .flat_map(|b| [b >> 4, b & 0x0F])
            .take(n)
            .collect();
        let scales = match &q.scales {
            Scales::Plain(v) => DeviceScales::Plain(floats(v, device)),
            Scales::Double {
                codes,
                scales,
                offset,
            } => DeviceScales::Double {
                codes: PackedCodes::pack(codes.iter().copied(), 8, device),
                map: floats(&dynamic_map(), device),
                scales: floats(scales, device),
                offset: *offset,
            },
        };
        Self {
            codes: PackedCodes::pack(nibbles.into_iter(), 4, device),
            table: floats(&NF4_CODE, device),
            scales,
        }
    }

    fn absmax(&self) -> Tensor<B, 1> {
        match &self.scales {
            DeviceScales::Plain(v) => v.clone(),
            DeviceScales::Double {
                codes,
                map,
                scales,
                offset,
            } => {
                let n = codes.len;
                let groups = n.div_ceil(SCALE_BLOCK);
                let values = pad_to(map.clone().select(0, codes.unpack()), groups * SCALE_BLOCK);
                let scaled =
                    values.reshape([groups, SCALE_BLOCK]) * scales.clone().unsqueeze_dim(1);
                scaled.reshape([groups * SCALE_BLOCK]).slice(0..n) + *offset
            }
        }
    }

    fn dequantize(&self, out: usize, inp: usize) -> Tensor<B, 2> {
        let n = out * inp;
        let blocks = n.div_ceil(BLOCK);
        let values = pad_to(
            self.table.clone().select(0, self.codes.unpack()),
            blocks * BLOCK,
        );
        let scaled = values.reshape([blocks, BLOCK]) * self.absmax().unsqueeze_dim(1);
        scaled
            .reshape([blocks * BLOCK])
            .slice(0..n)
            .reshape([out, inp])
    }

    fn bytes(&self) -> usize {
        let f = std::mem::size_of::<f32>();
        self.codes.bytes()
            + match &self.scales {
                DeviceScales::Plain(v) => v.dims()[0] * f,
                DeviceScales::Double { codes, scales, .. } => {
                    codes.bytes() + scales.dims()[0] * f + f
                }
            }
    }
}

/// Zero-pads a vector to `len` so it reshapes into whole blocks.
fn pad_to<B: Backend>(values: Tensor<B, 1>, len: usize) -> Tensor<B, 1> {
    let [n] = values.dims();
    if n == len {
        return values;
    }
    let device = values.device();
    Tensor::cat(vec![values, Tensor::zeros([len - n], &device)], 0)
}

impl<B: Backend> Nf4Weight<B> {
    /// A host-quantized 2-D weight [out, in], stored as the backend prefers.
    pub fn new(q: &Nf4Tensor, device: &B::Device) -> Self
    where
        B: FrozenLinearBackend,
    {
        if B::HOST_DEQUANT {
            Self::on_host(q, device)
        } else {
            Self::on_device(q, device)
        }
    }

    /// Keeps the codes in host memory.
    pub fn on_host(q: &Nf4Tensor, device: &B::Device) -> Self {
        Self {
            storage: Storage::Host(Arc::new(q.clone())),
            out: q.shape[0],
            inp: q.shape[1],
            device: device.clone(),
        }
    }

    /// Moves the codes to the device.
    pub fn on_device(q: &Nf4Tensor, device: &B::Device) -> Self {
        let (out, inp) = (q.shape[0], q.shape[1]);
        Self {
            storage: Storage::Device(DeviceCodes::new(q, out * inp, device)),
            out,
            inp,
            device: device.clone(),
        }
    }

    /// The dense weight transposed, [in, out], laid out contiguously (for `x · Wᵀ` without a
    /// strided copy on CPU backends).
    pub fn dequantize_t(&self) -> Tensor<B, 2> {
        match &self.storage {
            Storage::Host(q) => Tensor::from_data(
                TensorData::new(q.dequantize_t(), [self.inp, self.out]),
                &self.device,
            ),
            Storage::Device(d) => d.dequantize(self.out, self.inp).transpose(),
        }
    }

    /// The dense weight [out, in] in the compute dtype.
    pub fn dequantize(&self) -> Tensor<B, 2> {
        match &self.storage {
            Storage::Host(q) => Tensor::from_data(
                TensorData::new(q.dequantize(), [self.out, self.inp]),
                &self.device,
            ),
            Storage::Device(d) => d.dequantize(self.out, self.inp),
        }
    }

    /// Bytes the codes and scales occupy.
    pub fn bytes(&self) -> usize {
        match &self.storage {
            Storage::Host(q) => q.bytes(),
            Storage::Device(d) => d.bytes(),
        }
    }
}

impl<B: Backend> Nf4Weight<B> {
    /// The inner backend's view of a weight held by an autodiff backend (the same tensors).
    pub(crate) fn inner<C: CheckpointStrategy>(w: &Nf4Weight<Autodiff<B, C>>) -> Self {
        let codes = |c: &PackedCodes<Autodiff<B, C>>| PackedCodes {
            packed: c.packed.clone().inner(),
            bits: c.bits,
            per: c.per,
            len: c.len,
        };
        let storage = match &w.storage {
            Storage::Host(q) => Storage::Host(q.clone()),
            Storage::Device(d) => Storage::Device(DeviceCodes {
                codes: codes(&d.codes),
                table: d.table.clone().inner(),
                scales: match &d.scales {
                    DeviceScales::Plain(v) => DeviceScales::Plain(v.clone().inner()),
                    DeviceScales::Double {
                        codes: c,
                        map,
                        scales,
                        offset,
                    } => DeviceScales::Double {
                        codes: codes(c),
                        map: map.clone().inner(),
                        scales: scales.clone().inner(),
                        offset: *offset,
                    },
                },
            }),
        };
        Self {
            storage,
            out: w.out,
            inp: w.inp,
            device: w.device.clone(),
        }
    }
}

#[cfg(all(test, feature = "cpu"))]
pub(crate) mod tests {
    use super::*;
    use crate::runtime::Cpu;

    /// A deterministic weight-like matrix in [-1, 1).
    pub(crate) fn weight(out: usize, inp: usize, seed: u32) -> Vec<f32> {
        (0..out * inp)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn device_dequantization_matches_the_host_one_bit_for_bit() {
        let dev = Default::default();
        // 7 x 37: not a multiple of the block, so padding and the tail are exercised.
        for (out, inp) in [(7, 37), (64, 96), (300, 260)] {
            for double in [false, true] {
                let q = Nf4Tensor::quantize(&weight(out, inp, 3), vec![out, inp], double);
                let host = q.dequantize();
                for w in [
                    Nf4Weight::<Cpu>::on_device(&q, &dev),
                    Nf4Weight::<Cpu>::on_host(&q, &dev),
                ] {
                    let dq_t = w.dequantize_t();
                    assert_eq!(dq_t.dims(), [inp, out]);
                    let dq = w.dequantize();
                    dq.clone()
                        .transpose()
                        .into_data()
                        .assert_eq(&dq_t.into_data(), true);
                    assert_eq!(dq.dims(), [out, inp]);
                    let got = dq.into_data().to_vec::<f32>().unwrap();
                    for (i, (a, b)) in host.iter().zip(&got).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-6 * a.abs().max(1.0),
                            "{out}x{inp} double={double} {:?} [{i}]: {a} vs {b}",
                            w.storage
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn codes_round_trip_through_32_and_64_bit_words() {
        let dev = Default::default();
        for bits in [4u32, 8] {
            let codes: Vec<u8> = (0..203u32)
                .map(|i| ((i * 37 + 11) % (1 << bits)) as u8)
                .collect();
            for word in [32, 64] {
                let p = PackedCodes::<Cpu>::pack_words(codes.iter().copied(), bits, word, &dev);
                assert_eq!(p.per, (word / bits) as usize);
                let back: Vec<u8> = p
                    .unpack()
                    .into_data()
                    .iter::<i64>()
                    .map(|v| u8::try_from(v).unwrap())
                    .collect();
                assert_eq!(back, codes, "bits {bits}, word {word}");
            }
        }
    }

    #[test]
    fn device_form_holds_about_four_bits_per_weight() {
        let dev = Default::default();
        let (out, inp) = (256, 512);
        let q = Nf4Tensor::quantize(&weight(out, inp, 2), vec![out, inp], true);
        let w = Nf4Weight::<Cpu>::on_device(&q, &dev);
        let bits = w.bytes() as f64 * 8.0 / (out * inp) as f64;
        assert!((4.0..4.3).contains(&bits), "{bits} bits per weight");
    }
}
