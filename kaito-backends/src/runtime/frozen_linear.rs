//! The frozen base's linear layers as their own autodiff ops, so their backward passes keep and
//! compute only what LoRA training needs.
//!
//! The base is frozen: only the input gradient `dx = dy · Wᵀ` is ever needed. Burn's generic
//! matmul backward gets this right but at two costs that these ops remove:
//! - QLoRA: with `x.matmul(dequantize(w))`, autodiff keeps every layer's dequantized f32 weight
//!   alive until backward, so a QLoRA step peaked above a LoRA step. [`nf4_linear`] saves the
//!   packed weight and dequantizes again in backward, as bitsandbytes' `MatMul4Bit` does.
//! - CPU: burn-ndarray copies a transposed operand into standard layout, element by element, before
//!   multiplying; `dy · Wᵀ` copied the whole weight in every backward (20 % of a SmolLM2 training
//!   step, measured with perf), and the tied LM head copied the whole embedding.
//!   [`FrozenLinearBackend::matmul_t`] lets a backend multiply by a transposed weight its own way;
//!   ndarray's (`host_gemm`) reads it through its strides and uses both cores.
//!
//! [`nf4_linear`]: FrozenLinearBackend::nf4_linear

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use super::attention::AttentionBackend;
use super::loss::CrossEntropyBackend;
use super::nf4_linear::Nf4Weight;

/// A Burn backend this runtime runs on: Burn's `Backend` plus the frozen linear ops (Burn's
/// backend-extension point), causal attention ([`AttentionBackend`]) and the loss
/// ([`CrossEntropyBackend`]). The default bodies are right for every plain backend; `Autodiff`
/// overrides the ops to give them their own backward.
pub trait FrozenLinearBackend: AttentionBackend + CrossEntropyBackend {
    /// Keep NF4 codes in host memory and dequantize with a CPU loop (CPU backends).
    const HOST_DEQUANT: bool = false;

    /// `a [n, k] · wᵀ -> [n, m]` for a weight stored `[m, k]`: the forward of the tied head
    /// (`k` = hidden) and the backward of a projection stored `[in, out]` (`k` = out).
    fn matmul_t(a: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        a.matmul(w.transpose())
    }

    /// `a [n, k] · b [k, m] -> [n, m]`: the forward of a projection stored `[in, out]` and the
    /// backward of one stored `[out, in]`.
    fn matmul(a: Tensor<Self, 2>, b: Tensor<Self, 2>) -> Tensor<Self, 2> {
        a.matmul(b)
    }

    /// `x [n, in] · w_io [in, out] -> [n, out]`, the weight a constant.
    fn dense_linear(x: Tensor<Self, 2>, w_io: &Tensor<Self, 2>) -> Tensor<Self, 2> {
        Self::matmul(x, w_io.clone())
    }

    /// `x [n, in] · w_oiᵀ -> [n, out]`, the weight a constant stored `[out, in]` (a tied
    /// embedding used as the LM head).
    fn dense_linear_t(x: Tensor<Self, 2>, w_oi: &Tensor<Self, 2>) -> Tensor<Self, 2> {
        Self::matmul_t(x, w_oi.clone())
    }

    /// `x [n, in] · dequantize(w)ᵀ -> [n, out]`.
    fn nf4_linear(x: Tensor<Self, 2>, w: &Nf4Weight<Self>) -> Tensor<Self, 2> {
        Self::matmul_t(x, w.dequantize())
    }
}

#[cfg(feature = "cpu")]
impl FrozenLinearBackend for burn::backend::NdArray<f32> {
    const HOST_DEQUANT: bool = true;

    fn matmul_t(a: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        super::host_gemm::product(&a, &w, true).unwrap_or_else(|| a.matmul(w.transpose()))
    }

    fn matmul(a: Tensor<Self, 2>, b: Tensor<Self, 2>) -> Tensor<Self, 2> {
        super::host_gemm::product(&a, &b, false).unwrap_or_else(|| a.matmul(b))
    }

    fn nf4_linear(x: Tensor<Self, 2>, w: &Nf4Weight<Self>) -> Tensor<Self, 2> {
        // The tiled host dequantization writes the transposed weight directly (measured faster
        // than dequantizing and multiplying by the transposed view here).
        Self::matmul(x, w.dequantize_t())
    }
}

#[cfg(feature = "flex")]
impl FrozenLinearBackend for burn::backend::Flex<f32> {
    const HOST_DEQUANT: bool = true;
}
// CUDA (`burn::backend::Cuda<F>` = `Fusion<CubeBackend<CudaRuntime, F, ..>>`): the impls that
// put these products on cuBLAS are in `cuda_linear.rs`.

/// A float primitive as a 2-D tensor.
pub(super) fn float<B: Backend>(t: B::FloatTensorPrimitive) -> Tensor<B, 2> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// The constant weight a frozen op keeps for its backward, in the layout its forward used.
#[derive(Debug, Clone)]
enum FrozenWeightState<B: Backend> {
    /// Dense `[in, out]` (projections).
    Io(Tensor<B, 2>),
    /// Dense `[out, in]` (the tied embedding as LM head).
    Oi(Tensor<B, 2>),
    /// NF4 `[out, in]`, dequantized again here.
    Nf4(Nf4Weight<B>),
}

impl<B: FrozenLinearBackend> FrozenWeightState<B> {
    /// `dx [n, in]` from `dy [n, out]`.
    fn input_grad(self, dy: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Self::Io(w_io) => B::matmul_t(dy, w_io),
            Self::Oi(w_oi) => B::matmul(dy, w_oi),
            Self::Nf4(w) => B::matmul(dy, w.dequantize()),
        }
    }
}

/// Backward of a frozen linear layer: only the input gradient, from the kept weight.
#[derive(Debug)]
struct FrozenLinearBackward;

impl<B: FrozenLinearBackend> Backward<B, 1> for FrozenLinearBackward {
    type State = FrozenWeightState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let w = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            w.input_grad(float(grad)).into_primitive().tensor()
        });
    }
}

/// Runs `forward` on the inner backend and records the backward with `state` (the constant
/// weight) when `x` is tracked. Compute bound: never recomputed.
fn frozen_op<B: FrozenLinearBackend, C: CheckpointStrategy>(
    x: Tensor<Autodiff<B, C>, 2>,
    state: FrozenWeightState<B>,
    forward: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<Autodiff<B, C>, 2> {
    let x = x.into_primitive().tensor();
    let y = forward(float(x.primitive.clone()))
        .into_primitive()
        .tensor();
    let out = match FrozenLinearBackward
        .prepare::<C>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

impl<B: FrozenLinearBackend, C: CheckpointStrategy> FrozenLinearBackend for Autodiff<B, C> {
    const HOST_DEQUANT: bool = B::HOST_DEQUANT;

    fn dense_linear(x: Tensor<Self, 2>, w_io: &Tensor<Self, 2>) -> Tensor<Self, 2> {
        let w = w_io.clone().inner();
        frozen_op(x, FrozenWeightState::Io(w.clone()), |x| {
            B::dense_linear(x, &w)
        })
    }

    fn dense_linear_t(x: Tensor<Self, 2>, w_oi: &Tensor<Self, 2>) -> Tensor<Self, 2> {
        let w = w_oi.clone().inner();
        frozen_op(x, FrozenWeightState::Oi(w.clone()), |x| {
            B::dense_linear_t(x, &w)
        })
    }

    fn nf4_linear(x: Tensor<Self, 2>, w: &Nf4Weight<Self>) -> Tensor<Self, 2> {
        let w = Nf4Weight::<B>::inner(w);
        frozen_op(x, FrozenWeightState::Nf4(w.clone()), |x| {
            B::nf4_linear(x, &w)
        })
    }
}

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use super::*;
    use crate::runtime::nf4::Nf4Tensor;
    use crate::runtime::nf4_linear::tests::weight;
    use crate::runtime::{Cpu, CpuTrain};

    fn tensor<B: Backend>(v: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    /// `op(x)` and `x.grad` against a plain matmul with `reference [in, out]` through Burn's own
    /// autodiff.
    fn check_gradient(
        op: impl Fn(Tensor<CpuTrain, 2>) -> Tensor<CpuTrain, 2>,
        reference: Tensor<CpuTrain, 2>,
        n: usize,
    ) {
        let [inp, out] = reference.dims();
        let x0 = tensor::<CpuTrain>(weight(n, inp, 1), [n, inp]);
        let upstream = tensor::<CpuTrain>(weight(n, out, 5), [n, out]);

        let x = x0.clone().require_grad();
        let y = op(x.clone());
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let gx = x.grad(&grads).expect("x is tracked");

        let xr = x0.require_grad();
        let yr = xr.clone().matmul(reference);
        let grads_r = (yr.clone() * upstream).sum().backward();
        let gr = xr.grad(&grads_r).expect("x is tracked");

        let tol = Default::default();
        y.inner()
            .into_data()
            .assert_approx_eq::<f32>(&yr.inner().into_data(), tol);
        gx.into_data().assert_approx_eq::<f32>(&gr.into_data(), tol);
    }

    #[test]
    fn nf4_backward_gives_the_gradient_of_a_dense_matmul() {
        let dev = Default::default();
        let (n, inp, out) = (5, 70, 33);
        let q = Nf4Tensor::quantize(&weight(out, inp, 9), vec![out, inp], true);
        let dense = tensor::<CpuTrain>(q.dequantize(), [out, inp]).transpose();
        for w in [
            Nf4Weight::<CpuTrain>::on_device(&q, &dev),
            Nf4Weight::<CpuTrain>::on_host(&q, &dev),
        ] {
            check_gradient(|x| CpuTrain::nf4_linear(x, &w), dense.clone(), n);
        }
    }

    #[test]
    fn dense_backward_gives_the_gradient_of_burns_matmul() {
        for (n, inp, out) in [(5, 70, 33), (64, 16, 48)] {
            let w = tensor::<CpuTrain>(weight(inp, out, 4), [inp, out]);
            check_gradient(|x| CpuTrain::dense_linear(x, &w), w.clone(), n);
        }
    }

    #[test]
    fn tied_head_backward_gives_the_gradient_of_burns_matmul() {
        let (n, inp, out) = (6, 24, 101);
        let w_oi = tensor::<CpuTrain>(weight(out, inp, 8), [out, inp]);
        check_gradient(
            |x| CpuTrain::dense_linear_t(x, &w_oi),
            w_oi.clone().transpose(),
            n,
        );
    }

    #[test]
    fn ndarray_products_match_burns_matmul() {
        let tol = Default::default();
        // Decoding's few rows, and a product big enough to be split over threads.
        for (n, k, m) in [(1, 19, 23), (7, 19, 23), (130, 64, 200)] {
            let a = tensor::<Cpu>(weight(n, k, 2), [n, k]);
            let w_oi = tensor::<Cpu>(weight(m, k, 3), [m, k]);
            let w_io = tensor::<Cpu>(weight(k, m, 4), [k, m]);
            Cpu::matmul_t(a.clone(), w_oi.clone())
                .into_data()
                .assert_approx_eq::<f32>(&a.clone().matmul(w_oi.transpose()).into_data(), tol);
            Cpu::matmul(a.clone(), w_io.clone())
                .into_data()
                .assert_approx_eq::<f32>(&a.matmul(w_io).into_data(), tol);
        }
    }

    #[test]
    fn an_untracked_input_records_nothing() {
        let w = tensor::<CpuTrain>(weight(8, 4, 1), [8, 4]);
        let x = tensor::<CpuTrain>(weight(3, 8, 2), [3, 8]);
        let y = CpuTrain::dense_linear(x.clone(), &w);
        assert!(!y.is_require_grad());
        y.into_data()
            .assert_approx_eq::<f32>(&x.matmul(w).into_data(), Default::default());
    }
}
