//! Causal self-attention as one autodiff op that keeps no `T × T` tensor for backward.
//!
//! Written with Burn's tensor ops, attention records every step (`q·kᵀ`, scale, mask, the
//! softmax's max/exp/sum/div, `p·v`) in the autodiff graph, and each keeps a `[batch, heads, T,
//! T]` tensor alive until backward: for phi-3-mini at batch 4 × 1024 that is several 256 MiB
//! tensors per layer, 32 layers deep, the bulk of a step's activation memory. Flash attention's
//! answer, used here: the forward keeps only `q`, `k`, `v` and the output, and the backward
//! recomputes the probabilities one layer at a time, with the softmax gradient
//! `ds = p ∘ (dp − rowsum(do ∘ o))` (Dao et al., FlashAttention, §3.1 and appendix B.2).
//!
//! How each backend computes the two halves is its own business ([`AttentionBackend`]):
//! - CUDA: the forward is Burn's `attention` op, which autotunes between CubeCL's flash kernel and
//!   separate kernels (except for a prompt continued from a KV cache, see [`burns_attention`]); the
//!   backward is the generic one below (Fusion fuses its elementwise parts).
//! - ndarray: both halves are `host_attention`'s row-blocked loops over (batch, key head) pairs
//!   on every core, which also skip the masked half of `q·kᵀ`.
//!
//! Keys and values keep their own head count (grouped-query attention): a backend expands them
//! only if its kernel needs equal head counts, and the gradients of a shared key head are summed
//! over the query heads that read it.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::AttentionModuleOptions;

/// Gradients of attention's three inputs.
pub type AttentionGrads<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);

/// The attention ops a runtime backend provides; the default bodies are right for every plain
/// backend, `Autodiff` gives them their own backward.
///
/// Shapes: `q [batch, heads, t, head_dim]`, `k`, `v [batch, kv_heads, s, head_dim]` with
/// `heads` a multiple of `kv_heads` and `s ≥ t`. Query `i` is position `s − t + i` (a KV cache
/// holds the first `s − t` keys) and sees keys `0..=s − t + i`. The scale is `1/√head_dim`.
pub trait AttentionBackend: Backend {
    /// `softmax(q·kᵀ/√d + causal mask)·v -> [batch, heads, t, head_dim]`.
    fn causal_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        burns_attention(q, k, v)
    }

    /// `(dq, dk, dv)` from the forward's inputs, its output `o` and the output's gradient `d_o`.
    fn causal_attention_backward(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
        o: Tensor<Self, 4>,
        d_o: Tensor<Self, 4>,
    ) -> AttentionGrads<Self> {
        recomputed_backward(q, k, v, o, d_o)
    }
}

/// The forward with Burn's `attention` op (on CubeCL: autotuned between the flash kernel and
/// separate kernels), key heads expanded to the query heads.
///
/// Burn's op is only asked what it answers the same way on every backend: CubeCL's flash kernel
/// aligns its causal mask top-left (query `i` sees keys `..=i`, cubek-attention 0.2's
/// `tile/mask.rs`), Burn's separate kernels bottom-right (`..=s − t + i`), and autotune may pick
/// either. They agree when `t = s` (training, a prompt without cache); one query row sees every key
/// (decoding), so it needs no mask. A continued prompt (`1 < t < s`) takes the tensor ops.
pub fn burns_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [_, heads, t, _] = q.dims();
    let s = k.dims()[2];
    let (k, v) = (expand_heads(k, heads), expand_heads(v, heads));
    if t > 1 && t != s {
        return probabilities(&q, &k).matmul(v);
    }
    let options = AttentionModuleOptions {
        is_causal: t > 1,
        ..Default::default()
    };
    burn::tensor::module::attention(q, k, v, None, None, options)
}

/// `x [b, kv_heads, s, d]` with each key head repeated for the query heads that share it.
pub fn expand_heads<B: Backend>(x: Tensor<B, 4>, heads: usize) -> Tensor<B, 4> {
    let [b, kvh, s, d] = x.dims();
    if kvh == heads {
        return x;
    }
    x.unsqueeze_dim::<5>(2)
        .repeat_dim(2, heads / kvh)
        .reshape([b, heads, s, d])
}

/// The gradient of an expanded key tensor folded back onto the key heads it came from.
fn fold_heads<B: Backend>(g: Tensor<B, 4>, kv_heads: usize) -> Tensor<B, 4> {
    let [b, heads, s, d] = g.dims();
    if kv_heads == heads {
        return g;
    }
    g.reshape([b, kv_heads, heads / kv_heads, s, d])
        .sum_dim(2)
        .reshape([b, kv_heads, s, d])
}

/// The causal probabilities `softmax(q·kᵀ/√d + mask)`, `[b, heads, t, s]`, for expanded `k`.
fn probabilities<B: Backend>(q: &Tensor<B, 4>, k: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, t, d] = q.dims();
    let s = k.dims()[2];
    let scores = q
        .clone()
        .matmul(k.clone().swap_dims(2, 3))
        .mul_scalar(1.0 / (d as f64).sqrt());
    let future = Tensor::<B, 2, Bool>::tril_mask([t, s], (s - t) as i64, &q.device())
        .unsqueeze::<4>()
        .expand([b, h, t, s]);
    burn::tensor::activation::softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3)
}

/// The backward with Burn's tensor ops: the probabilities of this one layer are recomputed,
/// used and dropped.
pub fn recomputed_backward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    o: Tensor<B, 4>,
    d_o: Tensor<B, 4>,
) -> AttentionGrads<B> {
    let [_, heads, _, d] = q.dims();
    let kv_heads = k.dims()[1];
    let scale = 1.0 / (d as f64).sqrt();
    let (k, v) = (expand_heads(k, heads), expand_heads(v, heads));
    let p = probabilities(&q, &k);
    let dv = p.clone().swap_dims(2, 3).matmul(d_o.clone());
    let dp = d_o.clone().matmul(v.swap_dims(2, 3));
    let delta = (d_o * o).sum_dim(3);
    let ds = (p * (dp - delta)).mul_scalar(scale);
    let dq = ds.clone().matmul(k);
    let dk = ds.swap_dims(2, 3).matmul(q);
    (dq, fold_heads(dk, kv_heads), fold_heads(dv, kv_heads))
}

pub(super) fn float4<B: Backend>(t: B::FloatTensorPrimitive) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// Backward of [`AttentionBackend::causal_attention`] under autodiff.
#[derive(Debug)]
struct CausalAttentionBackward;

/// What the backward keeps: `q`, `k`, `v` and the output, never the probabilities.
type Kept<B> = [Tensor<B, 4>; 4];

impl<B: AttentionBackend> Backward<B, 3> for CausalAttentionBackward {
    type State = Kept<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [q_node, k_node, v_node] = ops.parents;
        let d_o = float4::<B>(grads.consume::<B>(&ops.node));
        let [q, k, v, o] = ops.state;
        let (dq, dk, dv) = B::causal_attention_backward(q, k, v, o, d_o);
        for (node, grad) in [(q_node, dq), (k_node, dk), (v_node, dv)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad.into_primitive().tensor());
            }
        }
    }
}

impl<B: AttentionBackend, C: CheckpointStrategy> AttentionBackend for Autodiff<B, C> {
    fn causal_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        let (q, k, v) = (
            q.into_primitive().tensor(),
            k.into_primitive().tensor(),
            v.into_primitive().tensor(),
        );
        let (qi, ki, vi) = (
            float4::<B>(q.primitive.clone()),
            float4::<B>(k.primitive.clone()),
            float4::<B>(v.primitive.clone()),
        );
        let o = B::causal_attention(qi.clone(), ki.clone(), vi.clone());
        let out = match CausalAttentionBackward
            .prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish([qi, ki, vi, o.clone()], o.into_primitive().tensor())
            }
            OpsKind::UnTracked(prep) => prep.finish(o.into_primitive().tensor()),
        };
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }
}

#[cfg(feature = "cpu")]
impl AttentionBackend for burn::backend::NdArray<f32> {
    fn causal_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        super::host_attention::forward(&q, &k, &v).unwrap_or_else(|| burns_attention(q, k, v))
    }

    fn causal_attention_backward(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
        o: Tensor<Self, 4>,
        d_o: Tensor<Self, 4>,
    ) -> AttentionGrads<Self> {
        super::host_attention::backward(&q, &k, &v, &o, &d_o)
            .unwrap_or_else(|| recomputed_backward(q, k, v, o, d_o))
    }
}

#[cfg(feature = "flex")]
impl AttentionBackend for burn::backend::Flex<f32> {}
// CUDA: the impls are in `cuda_linear.rs`, beside the frozen products'.

#[cfg(all(test, feature = "cpu"))]
pub(super) mod tests {
    use super::*;
    use crate::runtime::{Cpu, CpuTrain};

    /// A deterministic `[b, h, t, d]` tensor with values in [-1, 1).
    pub(in crate::runtime) fn tensor4<B: Backend>(dims: [usize; 4], salt: usize) -> Tensor<B, 4> {
        let n = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7 + salt * 31) % 23) as f32 / 11.5 - 1.0)
            .collect();
        Tensor::from_data(TensorData::new(v, dims), &Default::default())
    }

    /// Attention as the model wrote it before this op: Burn's ops with an additive mask.
    pub(in crate::runtime) fn reference<B: Backend>(
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [_, h, t, d] = q.dims();
        let s = k.dims()[2];
        let (k, v) = (expand_heads(k, h), expand_heads(v, h));
        let mut m = vec![0f32; t * s];
        for i in 0..t {
            for j in (s - t + i + 1)..s {
                m[i * s + j] = -1e9;
            }
        }
        let mask = Tensor::<B, 4>::from_data(TensorData::new(m, [1, 1, t, s]), &q.device());
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (d as f64).sqrt())
            + mask;
        burn::tensor::activation::softmax(scores, 3).matmul(v)
    }

    /// Shapes: plain, grouped-query, a continued cache (`s > t`), one decoding row.
    pub(in crate::runtime) const SHAPES: [(usize, usize, usize, usize, usize, usize); 4] = [
        (2, 4, 4, 9, 9, 8),
        (2, 6, 2, 70, 70, 16),
        (1, 4, 2, 5, 12, 8),
        (3, 3, 1, 1, 17, 4),
    ];

    pub(in crate::runtime) fn close<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}");
        crate::runtime::host_gemm::tests::close_slices(
            &a.into_data().to_vec::<f32>().unwrap(),
            &b.into_data().to_vec::<f32>().unwrap(),
            2e-5,
            what,
        );
    }

    /// The op's output and input gradients against the reference through Burn's own autodiff.
    fn check_gradients<B: AttentionBackend>(label: &str) {
        for (b, h, kvh, t, s, d) in SHAPES {
            let q0 = tensor4::<Autodiff<B>>([b, h, t, d], 1);
            let k0 = tensor4::<Autodiff<B>>([b, kvh, s, d], 2);
            let v0 = tensor4::<Autodiff<B>>([b, kvh, s, d], 3);
            let upstream = tensor4::<Autodiff<B>>([b, h, t, d], 4);
            let run = |op: &dyn Fn(_, _, _) -> Tensor<Autodiff<B>, 4>| {
                let (q, k, v) = (
                    q0.clone().require_grad(),
                    k0.clone().require_grad(),
                    v0.clone().require_grad(),
                );
                let y = op(q.clone(), k.clone(), v.clone());
                let g = (y.clone() * upstream.clone()).sum().backward();
                let grad = |x: &Tensor<Autodiff<B>, 4>| x.grad(&g).expect("tracked");
                (y.inner(), grad(&q), grad(&k), grad(&v))
            };
            let ours = run(&|q, k, v| Autodiff::<B>::causal_attention(q, k, v));
            let theirs = run(&|q, k, v| reference(q, k, v));
            let at = format!("{label} {:?}", (b, h, kvh, t, s, d));
            close(ours.0, theirs.0, &format!("{at} output"));
            close(ours.1, theirs.1, &format!("{at} dq"));
            close(ours.2, theirs.2, &format!("{at} dk"));
            close(ours.3, theirs.3, &format!("{at} dv"));
        }
    }

    #[test]
    fn the_generic_op_and_its_backward_match_burns_autodiff() {
        check_gradients::<Generic>("generic");
    }

    #[test]
    fn the_ndarray_op_and_its_backward_match_burns_autodiff() {
        check_gradients::<Cpu>("ndarray");
    }

    #[test]
    fn the_generic_forward_matches_the_reference_without_autodiff() {
        for (b, h, kvh, t, s, d) in SHAPES {
            let q = tensor4::<Generic>([b, h, t, d], 5);
            let k = tensor4::<Generic>([b, kvh, s, d], 6);
            let v = tensor4::<Generic>([b, kvh, s, d], 7);
            close(
                Generic::causal_attention(q.clone(), k.clone(), v.clone()),
                reference(q, k, v),
                "forward",
            );
        }
    }

    #[test]
    fn an_untracked_input_records_nothing() {
        let q = tensor4::<CpuTrain>([1, 2, 3, 4], 1);
        let k = tensor4::<CpuTrain>([1, 1, 3, 4], 2);
        let y = CpuTrain::causal_attention(q, k.clone(), k);
        assert!(!y.is_require_grad());
    }

    /// ndarray with the trait's default bodies, to test them on the CPU.
    type Generic = burn::backend::ndarray::NdArray<f32, i32, i8>;
    impl AttentionBackend for Generic {}
    impl crate::runtime::loss::CrossEntropyBackend for Generic {}
}
