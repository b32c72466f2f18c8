//! [`FrozenLinearBackend`] for burn-cuda: the frozen base's products on cuBLAS.
//!
//! `burn::backend::Cuda<F>` is `Fusion<CubeBackend<CudaRuntime, F, ..>>`. The products are
//! implemented on the inner `CubeBackend` (where tensors are device buffers, see
//! [`super::cublas_gemm`]) and lifted into `Fusion` as custom operations: Fusion's lazy streams
//! execute the preceding fused kernels first and then hand our op the materialised inputs.
//! Everything else (LoRA's small matmuls, attention) stays on Burn's kernels.

use std::marker::PhantomData;

use burn::prelude::*;
use burn_cubecl::{BoolElement, CubeBackend, FloatElement, IntElement};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionBackend, FusionRuntime};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, OperationOutput, TensorIr};
use cubecl::cuda::CudaRuntime;

use super::attention::AttentionBackend;
use super::cublas_gemm::{self, CudaTensor};
use super::frozen_linear::{FrozenLinearBackend, float};
use super::loss::CrossEntropyBackend;

type Cube<F, I, BT> = CubeBackend<CudaRuntime, F, I, BT>;

/// The first-use check: small odd shapes, both product kinds, both layouts of the right
/// operand, against Burn's own matmul. Returns the largest absolute difference.
fn check_against_burn<F: FloatElement, I: IntElement, BT: BoolElement>(
    device: &Device<Cube<F, I, BT>>,
) -> Result<f32, String> {
    let t = |rows: usize, cols: usize, salt: usize| {
        Tensor::<Cube<F, I, BT>, 2>::from_data(
            TensorData::new(cublas_gemm::check_values(rows, cols, salt), [rows, cols]),
            device,
        )
    };
    let (n, k, m) = (3, 5, 7);
    let cases = [
        (t(n, k, 1), t(k, m, 2), false),
        (t(n, k, 1), t(m, k, 3), true),
        // Transposed views as operands: read in place with cuBLAS's flags.
        (t(n, k, 1), t(m, k, 3).transpose(), false),
        (t(k, n, 4).transpose(), t(k, m, 2), false),
    ];
    let mut worst = 0f32;
    for (x, y, transposed) in cases {
        let want = x.clone().matmul(if transposed {
            y.clone().transpose()
        } else {
            y.clone()
        });
        let got = cublas_gemm::gemm_unchecked(
            &x.into_primitive().tensor(),
            &y.into_primitive().tensor(),
            transposed,
        )?;
        let got = float::<Cube<F, I, BT>>(got).into_data().convert::<f32>();
        let want = want.into_data().convert::<f32>();
        let (got, want) = (
            got.as_slice::<f32>().map_err(|e| format!("{e:?}"))?,
            want.as_slice::<f32>().map_err(|e| format!("{e:?}"))?,
        );
        if got.len() != want.len() {
            return Err(format!("{} values, expected {}", got.len(), want.len()));
        }
        for (g, w) in got.iter().zip(want) {
            worst = worst.max((g - w).abs());
        }
    }
    Ok(worst)
}

fn cube_gemm<F: FloatElement, I: IntElement, BT: BoolElement>(
    a: Tensor<Cube<F, I, BT>, 2>,
    b: Tensor<Cube<F, I, BT>, 2>,
    b_transposed: bool,
) -> Tensor<Cube<F, I, BT>, 2> {
    let device = a.device();
    let (pa, pb): (CudaTensor, CudaTensor) = (
        a.clone().into_primitive().tensor(),
        b.clone().into_primitive().tensor(),
    );
    match cublas_gemm::gemm(&pa, &pb, b_transposed, || {
        check_against_burn::<F, I, BT>(&device)
    }) {
        Some(out) => float(out),
        None if b_transposed => a.matmul(b.transpose()),
        None => a.matmul(b),
    }
}

// Attention's default bodies: Burn's `attention` op (CubeCL's flash kernel or separate kernels,
// autotuned) forward, the recomputing backward in tensor ops that Fusion fuses.
impl<F: FloatElement, I: IntElement, BT: BoolElement> AttentionBackend for Cube<F, I, BT> {}
impl<B: FusionBackend + AttentionBackend> AttentionBackend for Fusion<B> {}

// The loss's default bodies: tensor ops (Fusion fuses the elementwise parts).
impl<F: FloatElement, I: IntElement, BT: BoolElement> CrossEntropyBackend for Cube<F, I, BT> {}
impl<B: FusionBackend + CrossEntropyBackend> CrossEntropyBackend for Fusion<B> {}

impl<F: FloatElement, I: IntElement, BT: BoolElement> FrozenLinearBackend for Cube<F, I, BT> {
    fn matmul_t(a: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        cube_gemm(a, w, true)
    }

    fn matmul(a: Tensor<Self, 2>, b: Tensor<Self, 2>) -> Tensor<Self, 2> {
        cube_gemm(a, b, false)
    }
}

/// A product of the inner backend, queued in Fusion's stream.
#[derive(Debug)]
struct GemmOp<B> {
    desc: CustomOpIr,
    b_transposed: bool,
    _backend: PhantomData<fn() -> B>,
}

impl<B: FusionBackend + FrozenLinearBackend> Operation<B::FusionRuntime> for GemmOp<B> {
    fn execute(
        &self,
        handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>,
    ) {
        let ([a, b], [out]) = self.desc.as_fixed();
        let a = float::<B>(handles.get_float_tensor::<B>(a));
        let b = float::<B>(handles.get_float_tensor::<B>(b));
        let y = if self.b_transposed {
            B::matmul_t(a, b)
        } else {
            B::matmul(a, b)
        };
        handles.register_float_tensor::<B>(&out.id, y.into_primitive().tensor());
    }
}

fn fused_gemm<B: FusionBackend + FrozenLinearBackend>(
    a: Tensor<Fusion<B>, 2>,
    b: Tensor<Fusion<B>, 2>,
    b_transposed: bool,
) -> Tensor<Fusion<B>, 2> {
    let [n, _] = a.dims();
    let m = if b_transposed {
        b.dims()[0]
    } else {
        b.dims()[1]
    };
    let (a, b) = (a.into_primitive().tensor(), b.into_primitive().tensor());
    let client = a.client.clone();
    let streams = OperationStreams::with_inputs([&a, &b]);
    let out = TensorIr::uninit(client.create_empty_handle(), [n, m].into(), a.dtype);
    let name = if b_transposed {
        "kaito_gemm_nt"
    } else {
        "kaito_gemm_nn"
    };
    let desc = CustomOpIr::new(name, &[a.into_ir(), b.into_ir()], &[out]);
    let op = GemmOp::<B> {
        desc: desc.clone(),
        b_transposed,
        _backend: PhantomData,
    };
    float(
        client
            .register(streams, OperationIr::Custom(desc), op)
            .output(),
    )
}

impl<B: FusionBackend + FrozenLinearBackend> FrozenLinearBackend for Fusion<B> {
    const HOST_DEQUANT: bool = B::HOST_DEQUANT;

    fn matmul_t(a: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        fused_gemm(a, w, true)
    }

    fn matmul(a: Tensor<Self, 2>, b: Tensor<Self, 2>) -> Tensor<Self, 2> {
        fused_gemm(a, b, false)
    }
}
