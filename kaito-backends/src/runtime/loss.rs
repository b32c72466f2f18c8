//! The causal-LM loss: next-token cross-entropy as one autodiff op.
//!
//! Written as `log_softmax` then `gather`, the loss records five passes over the `[tokens,
//! vocab]` logits (max, shift, exp, sum, shift again) and keeps the `exp` output alive for
//! backward, whose gradient then takes another five (the gather's scatter into zeros, the
//! broadcast of the sum's gradient, the product with `exp`, two sums of gradients). The vocabulary
//! is the widest dimension of a small model (SmolLM2: 49152 against a hidden size of 576), so
//! these passes are not negligible. As one op the forward keeps the logits and one log-sum-exp per
//! row, and the backward writes `w · g · (softmax − onehot)` in one pass (the fused cross-entropy
//! of Liger/Unsloth, minus the chunking).
//!
//! The loss is summed over all `batch × len` positions with a weight per position, the last
//! position of each sequence (nothing to predict) and labels of -100 weighing 0, so the logits
//! go in as the head wrote them, without slicing off the last position first (a copy).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::{IndexingUpdateOp, TensorPrimitive};

/// What the forward returns: the weighted sum and the row log-sum-exps its backward reuses.
pub struct CrossEntropy<B: Backend> {
    /// `Σᵢ wᵢ · (logsumexp(logitsᵢ) − logitsᵢ[targetᵢ])`, shape `[1]`.
    pub loss: Tensor<B, 1>,
    /// `logsumexp(logitsᵢ)`, shape `[rows]`.
    pub lse: Tensor<B, 1>,
}

/// Token cross-entropy on a backend; the default bodies are Burn tensor ops, right for every
/// plain backend, and `Autodiff` gives the forward its own backward.
///
/// Shapes: `logits [rows, vocab]`, `targets [rows]` (each in `0..vocab`), `weights [rows]`.
pub trait CrossEntropyBackend: Backend {
    /// The weighted sum of the rows' negative log-likelihoods, and each row's log-sum-exp.
    fn token_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        weights: Tensor<Self, 1>,
    ) -> CrossEntropy<Self> {
        tensor_ops_forward(logits, targets, weights)
    }

    /// The logits' gradient for the loss's gradient `grad` (shape `[1]`):
    /// `wᵢ · grad · (softmax(logitsᵢ) − onehot(targetᵢ))`.
    fn token_cross_entropy_backward(
        logits: Tensor<Self, 2>,
        lse: Tensor<Self, 1>,
        targets: Tensor<Self, 1, Int>,
        weights: Tensor<Self, 1>,
        grad: Tensor<Self, 1>,
    ) -> Tensor<Self, 2> {
        tensor_ops_backward(logits, lse, targets, weights, grad)
    }
}

/// The forward in Burn tensor ops.
pub fn tensor_ops_forward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    weights: Tensor<B, 1>,
) -> CrossEntropy<B> {
    let [rows, _] = logits.dims();
    let max = logits.clone().detach().max_dim(1);
    let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let picked = logits.gather(1, targets.reshape([rows, 1]));
    let loss = ((lse.clone() - picked) * weights.reshape([rows, 1])).sum();
    CrossEntropy {
        loss,
        lse: lse.reshape([rows]),
    }
}

/// The backward in Burn tensor ops.
pub fn tensor_ops_backward<B: Backend>(
    logits: Tensor<B, 2>,
    lse: Tensor<B, 1>,
    targets: Tensor<B, 1, Int>,
    weights: Tensor<B, 1>,
    grad: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let [rows, _] = logits.dims();
    let wg = weights.reshape([rows, 1]) * grad.reshape([1, 1]);
    let p = (logits - lse.reshape([rows, 1])).exp();
    (p * wg.clone()).scatter(
        1,
        targets.reshape([rows, 1]),
        wg.neg(),
        IndexingUpdateOp::Add,
    )
}

/// Mean cross-entropy of next-token predictions over labels != -100, divided by `denominator`
/// tokens (so that accumulated micro-batches average over the whole optimizer step, as
/// transformers' `num_items_in_batch` does). `labels` are aligned with the inputs (HF convention);
/// the shift happens here.
pub fn causal_lm_loss<B: CrossEntropyBackend>(
    logits: Tensor<B, 3>,
    labels: &[Vec<i64>],
    denominator: f64,
) -> Tensor<B, 1> {
    let [b, t, v] = logits.dims();
    let device = logits.device();
    let (targets, weights) = shifted_targets(labels, b, t, v);
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [b * t]), &device);
    let weights = Tensor::<B, 1>::from_data(TensorData::new(weights, [b * t]), &device);
    B::token_cross_entropy(logits.reshape([b * t, v]), targets, weights)
        .loss
        .div_scalar(denominator.max(1.0))
}

/// Per position `(row, j)` of the `[b, t]` inputs: the target is the label of `j + 1`, weighing 1
/// when it is a token id in `0..vocab`, else 0 (a -100 label, a row's last position).
fn shifted_targets(labels: &[Vec<i64>], b: usize, t: usize, vocab: usize) -> (Vec<i64>, Vec<f32>) {
    let mut targets = Vec::with_capacity(b * t);
    let mut weights = Vec::with_capacity(b * t);
    for i in 0..b {
        let row = labels.get(i).map(Vec::as_slice).unwrap_or(&[]);
        for j in 0..t {
            let l = if j + 1 < t {
                row.get(j + 1).copied().unwrap_or(-100)
            } else {
                -100
            };
            let ok = l >= 0 && (l as usize) < vocab;
            targets.push(if ok { l } else { 0 });
            weights.push(if ok { 1.0 } else { 0.0 });
        }
    }
    (targets, weights)
}

/// Number of positions that contribute to the loss (labels != -100 after the shift).
pub fn count_label_tokens(labels: &[Vec<i64>]) -> usize {
    labels
        .iter()
        .map(|r| r.iter().skip(1).filter(|l| **l >= 0).count())
        .sum()
}

/// Backward of [`CrossEntropyBackend::token_cross_entropy`] under autodiff.
#[derive(Debug)]
struct TokenCrossEntropyBackward;

/// What the backward keeps: the logits, the row log-sum-exps, the targets and the weights.
type Kept<B> = (Tensor<B, 2>, Tensor<B, 1>, Tensor<B, 1, Int>, Tensor<B, 1>);

impl<B: CrossEntropyBackend> Backward<B, 1> for TokenCrossEntropyBackward {
    type State = Kept<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [logits_node] = ops.parents;
        let grad =
            Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(grads.consume::<B>(&ops.node)));
        if let Some(node) = logits_node {
            let (logits, lse, targets, weights) = ops.state;
            let d = B::token_cross_entropy_backward(logits, lse, targets, weights, grad);
            grads.register::<B>(node.id, d.into_primitive().tensor());
        }
    }
}

impl<B: CrossEntropyBackend, C: CheckpointStrategy> CrossEntropyBackend for Autodiff<B, C> {
    fn token_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        weights: Tensor<Self, 1>,
    ) -> CrossEntropy<Self> {
        let logits = logits.into_primitive().tensor();
        let inner =
            Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(logits.primitive.clone()));
        // Targets and weights are data, never trained: their inner tensors are all the op needs.
        let (targets, weights) = (targets.inner(), weights.inner());
        let CrossEntropy { loss, lse } =
            B::token_cross_entropy(inner.clone(), targets.clone(), weights.clone());
        let loss = match TokenCrossEntropyBackward
            .prepare::<C>([logits.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                (inner, lse.clone(), targets, weights),
                loss.into_primitive().tensor(),
            ),
            OpsKind::UnTracked(prep) => prep.finish(loss.into_primitive().tensor()),
        };
        CrossEntropy {
            loss: Tensor::from_primitive(TensorPrimitive::Float(loss)),
            lse: Tensor::from_inner(lse),
        }
    }
}

#[cfg(feature = "cpu")]
impl CrossEntropyBackend for burn::backend::NdArray<f32> {
    fn token_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        weights: Tensor<Self, 1>,
    ) -> CrossEntropy<Self> {
        super::host_loss::forward(&logits, &targets, &weights)
            .unwrap_or_else(|| tensor_ops_forward(logits, targets, weights))
    }

    fn token_cross_entropy_backward(
        logits: Tensor<Self, 2>,
        lse: Tensor<Self, 1>,
        targets: Tensor<Self, 1, Int>,
        weights: Tensor<Self, 1>,
        grad: Tensor<Self, 1>,
    ) -> Tensor<Self, 2> {
        super::host_loss::backward(&logits, &lse, &targets, &weights, &grad)
            .unwrap_or_else(|| tensor_ops_backward(logits, lse, targets, weights, grad))
    }
}

#[cfg(feature = "flex")]
impl CrossEntropyBackend for burn::backend::Flex<f32> {}
// CUDA: the impls are in `cuda_linear.rs`, beside the frozen products'.

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use burn::backend::NdArray;

    use super::super::host_loss::tests::{close, logits};
    use super::*;

    /// `causal_lm_loss` and its gradient under autodiff against Burn's autodiff of `log_softmax`
    /// + `gather` (the formulation the op replaced), with a -100 label and a denominator.
    fn matches_log_softmax<B: CrossEntropyBackend>() {
        type Train<B> = Autodiff<B>;
        let (b, t, v) = (2, 4, 50);
        let labels = vec![vec![5i64, 7, -100, 49], vec![1, 2, 3, 4]];
        let raw = logits(b * t, v).reshape([b, t, v]).into_data();
        let dev = Default::default();

        let x = Tensor::<Train<B>, 3>::from_data(raw.clone(), &dev).require_grad();
        let loss = causal_lm_loss(x.clone(), &labels, 5.0);
        let ours_loss: f32 = loss.clone().into_scalar().elem();
        let ours_grad = x.grad(&loss.backward()).unwrap();

        let x = Tensor::<Train<B>, 3>::from_data(raw, &dev).require_grad();
        let logp = burn::tensor::activation::log_softmax(
            x.clone().narrow(1, 0, t - 1).reshape([b * (t - 1), v]),
            1,
        );
        let (idx, w): (Vec<i64>, Vec<f32>) = labels
            .iter()
            .flat_map(|r| r[1..].iter())
            .map(|&l| if l >= 0 { (l, 1.0) } else { (0, 0.0) })
            .unzip();
        let n = idx.len();
        let idx = Tensor::<Train<B>, 2, Int>::from_data(TensorData::new(idx, [n, 1]), &dev);
        let w = Tensor::<Train<B>, 2>::from_data(TensorData::new(w, [n, 1]), &dev);
        let reference = (logp.gather(1, idx) * w).sum().neg().div_scalar(5.0);
        let ref_loss: f32 = reference.clone().into_scalar().elem();
        let ref_grad = x.grad(&reference.backward()).unwrap();

        close(&[ours_loss], &[ref_loss], "loss");
        close(
            &ours_grad.into_data().to_vec::<f32>().unwrap(),
            &ref_grad.into_data().to_vec::<f32>().unwrap(),
            "grad",
        );
    }

    #[test]
    fn the_host_op_matches_log_softmax_under_autodiff() {
        matches_log_softmax::<NdArray<f32>>();
    }

    /// The trait's default bodies (what CUDA runs), on ndarray.
    #[test]
    fn the_tensor_ops_match_log_softmax_under_autodiff() {
        matches_log_softmax::<NdArray<f32, i32, i8>>();
    }

    #[test]
    fn the_shift_drops_each_rows_last_position_and_ignored_labels() {
        let (t, w) = shifted_targets(&[vec![9, 1, -100, 2], vec![3]], 2, 4, 3);
        assert_eq!(t, [1, 0, 2, 0, 0, 0, 0, 0]);
        assert_eq!(w, [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(count_label_tokens(&[vec![9, 1, -100, 2], vec![3]]), 2);
    }
}
