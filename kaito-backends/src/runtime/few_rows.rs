//! Products with a few rows (decoding: one row per sequence) on the CPU backend, without
//! matrixmultiply's operand packing.
//!
//! matrixmultiply copies both operands into cache-sized panels before its kernel runs. For a
//! one-row product the packed operand is the whole weight matrix: perf on SmolLM2 decoding showed
//! 34 % of the time in `pack_avx2` against 6 % in the kernel, so every token copied every weight
//! before reading it. Here each weight is read once, in memory order, with ndarray's vector
//! primitives: `x · W` as row axpys (`W` stored `[in, out]`, the projections) and `x · Wᵀ` as row
//! dot products (`W` stored `[out, in]`, the tied LM head), split over rayon by output columns.

use burn::backend::NdArray;
use burn::prelude::*;
use burn_ndarray::NdArrayTensor;
use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView2, Axis, s};

use super::frozen_linear::float;
use super::host_gemm::view;

/// Up to this many rows `x · W` reads the weight directly; above it (prefill, training)
/// matrixmultiply's packing pays for itself (`few-rows` in benches/runtime_cpu.rs).
pub const MAX_ROWS: usize = 4;

/// The same for `x · Wᵀ` (the tied head), where the alternative is worse: ndarray multiplies it
/// as `W · xᵀ` and packs the whole `[vocab, hidden]` matrix.
pub const MAX_ROWS_T: usize = 32;

/// Smallest column chunk a rayon task gets (below it the task costs more than it does).
const MIN_CHUNK: usize = 64;

type Host2 = Tensor<NdArray<f32>, 2>;

/// `a [n, k] · b [k, m]`, or `a · bᵀ` for `b [m, k]` when `b_transposed`, if `a` has at most
/// [`MAX_ROWS`] (transposed: [`MAX_ROWS_T`]) rows and `b` is a standard-layout f32 matrix;
/// `None` otherwise (the caller multiplies as usual).
pub fn product(a: &Host2, b: &Host2, b_transposed: bool) -> Option<Host2> {
    let (pa, pb) = (
        a.clone().into_primitive().tensor(),
        b.clone().into_primitive().tensor(),
    );
    let y = multiply(view(&pa)?, view(&pb)?, b_transposed)?;
    Some(float(NdArrayTensor::from(y.into_dyn().into_shared())))
}

/// [`product`] on ndarray views (`w` as stored), for callers that hold the views already.
pub(super) fn multiply(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    b_transposed: bool,
) -> Option<Array2<f32>> {
    let (n, k) = x.dim();
    let max_rows = if b_transposed { MAX_ROWS_T } else { MAX_ROWS };
    if n == 0 || n > max_rows {
        return None;
    }
    // A transposed view would be read strided, which is what this avoids.
    if !w.is_standard_layout() {
        return None;
    }
    let (wk, m) = if b_transposed {
        (w.ncols(), w.nrows())
    } else {
        (w.nrows(), w.ncols())
    };
    if wk != k || m == 0 {
        return None;
    }
    let chunk = m.div_ceil(rayon::current_num_threads() * 4).max(MIN_CHUNK);
    let mut y = Array2::<f32>::zeros((n, m));
    y.axis_chunks_iter_mut(Axis(1), chunk)
        .into_par_iter()
        .enumerate()
        .for_each(|(ci, mut out)| {
            let cols = ci * chunk..ci * chunk + out.ncols();
            if b_transposed {
                for (j, w_row) in w.slice(s![cols, ..]).outer_iter().enumerate() {
                    for r in 0..n {
                        out[[r, j]] = x.row(r).dot(&w_row);
                    }
                }
            } else {
                // Weight row i is read once for all n rows of x.
                for (i, w_row) in w.slice(s![.., cols]).outer_iter().enumerate() {
                    for r in 0..n {
                        out.row_mut(r).scaled_add(x[[r, i]], &w_row);
                    }
                }
            }
        });
    Some(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::host_gemm::tests::{close, tensor};

    #[test]
    fn matches_burns_matmul_for_few_rows() {
        // m not a multiple of the chunk, so the last chunk is short.
        let (w_io, w_oi) = (tensor(37, 301, 5), tensor(301, 37, 7));
        for n in 1..=MAX_ROWS_T {
            let x = tensor(n, 37, n);
            if n <= MAX_ROWS {
                close(
                    product(&x, &w_io, false).unwrap(),
                    x.clone().matmul(w_io.clone()),
                );
            }
            close(
                product(&x, &w_oi, true).unwrap(),
                x.clone().matmul(w_oi.clone().transpose()),
            );
        }
    }

    #[test]
    fn declines_what_it_does_not_speed_up() {
        let w = tensor(37, 301, 5);
        // Too many rows: matrixmultiply's packing pays off.
        assert!(product(&tensor(MAX_ROWS + 1, 37, 1), &w, false).is_none());
        let w_oi = tensor(301, 37, 7);
        assert!(product(&tensor(MAX_ROWS_T + 1, 37, 1), &w_oi, true).is_none());
        // A transposed view of the weight.
        assert!(product(&tensor(1, 301, 1), &w.clone().transpose(), false).is_none());
        // Mismatched inner dimensions are left to Burn's own error.
        assert!(product(&tensor(1, 36, 1), &w, false).is_none());
    }
}
