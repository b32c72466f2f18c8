//! The token cross-entropy ([`super::loss`]) on the CPU backend: one rayon task per row of
//! logits, each reading its row twice in the forward (max, then the sum of exponentials) and once
//! in the backward, where burn-ndarray's tensor ops would make five passes each way on one core.
//! Rows that weigh 0 (prompt tokens under completion-only loss, each sequence's last position)
//! are skipped: their gradient is 0 and their log-sum-exp is never read.

use burn::backend::NdArray;
use burn::prelude::*;
use burn_ndarray::NdArrayTensor;
use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView1, Axis};

use super::frozen_linear::float;
use super::host_gemm::view;
use super::loss::CrossEntropy;

type Host = NdArray<f32>;

/// Targets and weights on the host, or `None` if they do not fit `rows × vocab`.
fn rows_data(
    targets: &Tensor<Host, 1, Int>,
    weights: &Tensor<Host, 1>,
    rows: usize,
    vocab: usize,
) -> Option<(Vec<usize>, Vec<f32>)> {
    let t: Vec<i64> = targets.to_data().iter::<i64>().collect();
    let w: Vec<f32> = weights.to_data().iter::<f32>().collect();
    if t.len() != rows || w.len() != rows {
        return None;
    }
    let t = t
        .into_iter()
        .map(|i| usize::try_from(i).ok().filter(|&i| i < vocab))
        .collect::<Option<Vec<usize>>>()?;
    Some((t, w))
}

/// `log Σⱼ exp(xⱼ)`, shifted by the row's maximum.
fn log_sum_exp(row: ArrayView1<'_, f32>) -> f32 {
    let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + row.fold(0.0f32, |s, &v| s + (v - max).exp()).ln()
}

/// The forward; `None` when an operand is not what the host loops read (the caller falls back
/// to tensor ops, which report the mismatch).
pub fn forward(
    logits: &Tensor<Host, 2>,
    targets: &Tensor<Host, 1, Int>,
    weights: &Tensor<Host, 1>,
) -> Option<CrossEntropy<Host>> {
    let primitive = logits.clone().into_primitive().tensor();
    let x = view(&primitive)?;
    let (rows, vocab) = x.dim();
    let (t, w) = rows_data(targets, weights, rows, vocab)?;
    let per_row: Vec<(f32, f64)> = (0..rows)
        .into_par_iter()
        .map(|i| {
            if w[i] == 0.0 {
                return (0.0, 0.0);
            }
            let row = x.row(i);
            let lse = log_sum_exp(row);
            (lse, f64::from(w[i]) * f64::from(lse - row[t[i]]))
        })
        .collect();
    // Summed in row order, so the loss does not depend on how rayon split the rows.
    let loss = per_row.iter().map(|r| r.1).sum::<f64>() as f32;
    let lse: Vec<f32> = per_row.into_iter().map(|r| r.0).collect();
    let device = logits.device();
    Some(CrossEntropy {
        loss: Tensor::from_data(TensorData::new(vec![loss], [1]), &device),
        lse: Tensor::from_data(TensorData::new(lse, [rows]), &device),
    })
}

/// The backward: `wᵢ · grad · (softmax(xᵢ) − onehot(tᵢ))` per row; `None` as for [`forward`].
pub fn backward(
    logits: &Tensor<Host, 2>,
    lse: &Tensor<Host, 1>,
    targets: &Tensor<Host, 1, Int>,
    weights: &Tensor<Host, 1>,
    grad: &Tensor<Host, 1>,
) -> Option<Tensor<Host, 2>> {
    let primitive = logits.clone().into_primitive().tensor();
    let x = view(&primitive)?;
    let (rows, vocab) = x.dim();
    let (t, w) = rows_data(targets, weights, rows, vocab)?;
    let lse: Vec<f32> = lse.to_data().iter::<f32>().collect();
    let g = grad.to_data().iter::<f32>().next()?;
    if lse.len() != rows {
        return None;
    }
    let mut out = Array2::<f32>::zeros((rows, vocab));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut d)| {
            let coef = w[i] * g;
            if coef == 0.0 {
                return;
            }
            let l = lse[i];
            d.zip_mut_with(&x.row(i), |d, &v| *d = coef * (v - l).exp());
            d[t[i]] -= coef;
        });
    Some(float(NdArrayTensor::from(out.into_dyn().into_shared())))
}

#[cfg(test)]
pub(super) mod tests {
    use burn::backend::Autodiff;

    use super::super::loss::{CrossEntropyBackend, tensor_ops_backward, tensor_ops_forward};
    use super::*;

    /// Logits with a spread that makes the softmax far from uniform.
    pub(in crate::runtime) fn logits(rows: usize, vocab: usize) -> Tensor<Host, 2> {
        let v: Vec<f32> = (0..rows * vocab)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        Tensor::from_data(TensorData::new(v, [rows, vocab]), &Default::default())
    }

    pub(in crate::runtime) fn close(a: &[f32], b: &[f32], what: &str) {
        super::super::host_gemm::tests::close_slices(a, b, 1e-5, what);
    }

    fn data(t: Tensor<Host, 1>) -> Vec<f32> {
        t.into_data().to_vec().unwrap()
    }

    #[test]
    fn host_loops_match_the_tensor_ops() {
        let (rows, vocab) = (5, 300);
        let x = logits(rows, vocab);
        let dev = Default::default();
        let t = Tensor::<Host, 1, Int>::from_data(TensorData::from([3i64, 0, 299, 17, 150]), &dev);
        let w = Tensor::<Host, 1>::from_data(TensorData::from([1.0f32, 0.0, 2.0, 1.0, 0.5]), &dev);
        let ours = forward(&x, &t, &w).expect("host shapes");
        let ops = tensor_ops_forward(x.clone(), t.clone(), w.clone());
        close(&data(ours.loss), &data(ops.loss), "loss");
        let (lse_ours, lse_ops) = (data(ours.lse), data(ops.lse.clone()));
        for i in [0, 2, 3, 4] {
            close(&lse_ours[i..=i], &lse_ops[i..=i], "lse of a weighted row");
        }
        let g = Tensor::<Host, 1>::from_data(TensorData::from([0.25f32]), &dev);
        let d = backward(&x, &ops.lse, &t, &w, &g).expect("host shapes");
        let reference = tensor_ops_backward(x, ops.lse, t, w, g);
        let d: Vec<f32> = d.into_data().to_vec().unwrap();
        close(&d, &reference.into_data().to_vec::<f32>().unwrap(), "grad");
        assert!(d[vocab..2 * vocab].iter().all(|v| *v == 0.0), "weight 0");
    }

    #[test]
    fn declines_targets_outside_the_vocabulary() {
        let x = logits(2, 10);
        let dev = Default::default();
        let t = Tensor::<Host, 1, Int>::from_data(TensorData::from([1i64, 10]), &dev);
        let w = Tensor::<Host, 1>::ones([2], &dev);
        assert!(forward(&x, &t, &w).is_none());
    }

    #[test]
    fn an_untracked_input_records_nothing() {
        type Train = Autodiff<Host>;
        let dev = Default::default();
        let x = Tensor::<Train, 2>::zeros([2, 3], &dev);
        let t = Tensor::<Train, 1, Int>::zeros([2], &dev);
        let w = Tensor::<Train, 1>::ones([2], &dev);
        let out = Train::token_cross_entropy(x, t, w);
        assert!(!out.loss.is_require_grad());
        // Uniform logits: each row's loss is ln 3.
        let loss: f32 = out.loss.into_scalar();
        assert!((loss - 2.0 * 3f32.ln()).abs() < 1e-6, "{loss}");
    }
}
