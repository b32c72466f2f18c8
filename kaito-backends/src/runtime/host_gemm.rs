//! The frozen base's products on the CPU backend: ndarray's GEMM on the operands as they lie,
//! split over rayon.
//!
//! burn-ndarray parallelises a matmul only over its batch dimensions, and the frozen linear ops
//! multiply 2-D `[tokens, features]` matrices: every projection, its backward and the LM head ran
//! on one core while the other waited (perf: 1.2 of 2 CPUs busy in a SmolLM2 training step, with
//! matrixmultiply's kernel and packing the top two entries). Here the output is cut into one block
//! per rayon thread, along the longer of its two sides, and each block is one
//! `ndarray::linalg::general_mat_mul` on views of the operands. Cutting the columns repeats the
//! packing of `a`, cutting the rows repeats the packing of `b`; the cut is chosen so the repeated
//! operand is the smaller one. Transposed operands are read through their strides (matrixmultiply
//! packs any layout), so no weight is ever copied into standard layout first.
//!
//! With the `blas` feature ndarray hands each product to OpenBLAS, which has threads of its own:
//! the product is then one call, not split.
//!
//! matrixmultiply would also start threads of its own inside each block (`MATMUL_NUM_THREADS`,
//! by default the core count), more busy threads than cores: a process that trains on the CPU
//! should set `MATMUL_NUM_THREADS=1` before its first product, as the `kaito` binary does
//! (measured 6–11 % faster per SmolLM2 step, docs/benchmarks.md).
//!
//! Few-row products (decoding) go to [`super::few_rows`] first.

use burn::backend::NdArray;
use burn::prelude::*;
use burn_ndarray::NdArrayTensor;
use ndarray::linalg::general_mat_mul;
use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView2, Axis, Ix2, s};

use super::few_rows;
use super::frozen_linear::float;

type Host2 = Tensor<NdArray<f32>, 2>;

/// Below this many multiply-adds a product stays on one thread (a rayon task costs a few µs; a
/// product this size takes tens).
pub const MIN_PARALLEL_MACS: usize = 1 << 20;

/// Fewest rows or columns a block gets.
const MIN_BLOCK: usize = 32;

/// An f32 tensor's 2-D view, in whatever layout it has.
pub(super) fn view(t: &NdArrayTensor) -> Option<ArrayView2<'_, f32>> {
    match t {
        NdArrayTensor::F32(storage) => storage.view().into_dimensionality::<Ix2>().ok(),
        _ => None,
    }
}

/// How many blocks a product `[n, k] · [k, m]` is cut into, given the threads available.
fn blocks(n: usize, k: usize, m: usize, threads: usize) -> usize {
    if cfg!(feature = "blas") || n.saturating_mul(k).saturating_mul(m) < MIN_PARALLEL_MACS {
        return 1;
    }
    threads.min(n.max(m) / MIN_BLOCK).max(1)
}

/// `a [n, k] · b [k, m]`, or `a · bᵀ` for `b [m, k]` when `b_transposed`. `None` when an operand
/// is not an f32 matrix or the inner dimensions differ (the caller multiplies with Burn, which
/// reports the mismatch).
pub fn product(a: &Host2, b: &Host2, b_transposed: bool) -> Option<Host2> {
    let (pa, pb) = (
        a.clone().into_primitive().tensor(),
        b.clone().into_primitive().tensor(),
    );
    let (x, w) = (view(&pa)?, view(&pb)?);
    let y = match few_rows::multiply(x, w, b_transposed) {
        Some(y) => y,
        None => multiply(x, if b_transposed { w.reversed_axes() } else { w })?,
    };
    Some(float(NdArrayTensor::from(y.into_dyn().into_shared())))
}

/// `x [n, k] · w [k, m]` in blocks over rayon's threads; `None` when the inner dimensions differ.
fn multiply(x: ArrayView2<'_, f32>, w: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
    let ((n, k), (wk, m)) = (x.dim(), w.dim());
    if k != wk {
        return None;
    }
    let mut y = Array2::<f32>::zeros((n, m));
    let parts = blocks(n, k, m, rayon::current_num_threads());
    if parts == 1 {
        general_mat_mul(1.0, &x, &w, 0.0, &mut y);
    } else {
        // Cut the side whose cut repeats the smaller operand's packing: columns repeat `a`
        // (n × k), rows repeat `b` (k × m).
        let (axis, len) = if n <= m { (Axis(1), m) } else { (Axis(0), n) };
        let block = len.div_ceil(parts);
        y.axis_chunks_iter_mut(axis, block)
            .into_par_iter()
            .enumerate()
            .for_each(|(i, mut out)| {
                let range = i * block..i * block + out.len_of(axis);
                if axis == Axis(1) {
                    general_mat_mul(1.0, &x, &w.slice(s![.., range]), 0.0, &mut out);
                } else {
                    general_mat_mul(1.0, &x.slice(s![range, ..]), &w, 0.0, &mut out);
                }
            });
    }
    Some(y)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A deterministic `[rows, cols]` matrix with values in [-1, 1).
    pub(in crate::runtime) fn tensor(rows: usize, cols: usize, salt: usize) -> Host2 {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 13 + salt) % 17) as f32 / 8.0 - 1.0)
            .collect();
        Tensor::from_data(TensorData::new(v, [rows, cols]), &Default::default())
    }

    /// `a[i]` within `rel · (1 + |b[i]|)` of `b[i]` everywhere: the runtime's tests' tolerance
    /// check, each test choosing `rel` for the rounding its computation allows.
    pub(in crate::runtime) fn close_slices(a: &[f32], b: &[f32], rel: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= rel * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Element-wise equal within f32 rounding of a sum.
    pub(in crate::runtime) fn close(a: Host2, b: Host2) {
        assert_eq!(a.dims(), b.dims());
        close_slices(
            &a.into_data().to_vec::<f32>().unwrap(),
            &b.into_data().to_vec::<f32>().unwrap(),
            1e-4,
            "",
        );
    }

    #[test]
    fn cuts_the_longer_side_into_one_block_per_thread() {
        assert_eq!(
            blocks(128, 576, 49152, 2),
            if cfg!(feature = "blas") { 1 } else { 2 }
        );
        assert_eq!(blocks(4, 8, 8, 2), 1, "too small to split");
        if !cfg!(feature = "blas") {
            assert_eq!(blocks(128, 576, 1536, 16), 16);
            // Never blocks under MIN_BLOCK wide.
            assert_eq!(blocks(40, 100_000, 40, 8), 1);
            assert_eq!(blocks(64, 100_000, 40, 8), 2);
        }
    }

    #[test]
    fn matches_burns_matmul_in_every_layout_and_cut() {
        // Enough work to be split (where threads allow), odd sizes so the last block is short;
        // rows > columns cuts rows, the reverse cuts columns; few rows go to few_rows.
        for (n, k, m) in [(129, 70, 301), (301, 70, 129), (3, 40, 50), (40, 3, 7)] {
            let a = tensor(n, k, 1);
            let b_io = tensor(k, m, 2);
            let b_oi = tensor(m, k, 3);
            close(
                product(&a, &b_io, false).unwrap(),
                a.clone().matmul(b_io.clone()),
            );
            close(
                product(&a, &b_oi, true).unwrap(),
                a.clone().matmul(b_oi.clone().transpose()),
            );
            // Operands that are themselves transposed views (autodiff hands these over).
            let a_t = tensor(k, n, 4).transpose();
            close(
                product(&a_t, &b_io, false).unwrap(),
                a_t.clone().matmul(b_io.clone()),
            );
            close(
                product(&a, &b_io.clone().transpose(), true).unwrap(),
                a.clone().matmul(b_io.clone()),
            );
        }
    }

    #[test]
    fn splits_on_a_pool_of_several_threads() {
        // The test harness's global pool may have one thread; a local pool of three makes the
        // blocks (and their uneven last one) happen on any machine.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let (a, b) = (tensor(200, 90, 5), tensor(90, 190, 6));
        pool.install(|| {
            assert_eq!(
                blocks(200, 90, 190, rayon::current_num_threads()),
                if cfg!(feature = "blas") { 1 } else { 3 }
            );
            close(product(&a, &b, false).unwrap(), a.clone().matmul(b.clone()));
            close(
                product(&b.clone().transpose(), &a.clone(), true).unwrap(),
                b.clone().transpose().matmul(a.clone().transpose()),
            );
        });
    }

    #[test]
    fn declines_a_shape_mismatch() {
        assert!(product(&tensor(64, 36, 1), &tensor(37, 64, 2), false).is_none());
        assert!(product(&tensor(64, 36, 1), &tensor(64, 37, 2), true).is_none());
    }
}
