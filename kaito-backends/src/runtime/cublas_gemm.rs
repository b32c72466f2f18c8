//! The frozen base's matmuls on cuBLAS instead of CubeCL's own matmul kernels.
//!
//! On the H200 Burn 0.21's matmul reached 219 bf16 TFLOP/s where cuBLAS reached 779 (deps.md),
//! and the base's projections are nearly all of a LoRA step's FLOPs. [`gemm`] runs one
//! row-major product `a · b` or `a · bᵀ` through `cublasGemmEx` on the device memory of CubeCL
//! tensors, reading transposed views in place (cuBLAS's transpose flags, planned and CPU-tested
//! in [`super::gemm_plan`]) instead of copying them.
//!
//! Ordering: CubeCL does not expose the CUDA stream it launches on, so a product waits for the
//! calling thread's CubeCL stream (`client.sync()`), runs on a stream of its own and waits for
//! that before returning. That costs a host round trip per product (~10⁻⁵ s against the
//! ~10⁻⁴–10⁻³ s products of a phi-3-sized step) and makes ordering independent of CubeCL's
//! stream internals.
//!
//! Safety net: the first product per device and dtype is checked against Burn's matmul on
//! small odd-shaped operands (so a transposition mistake cannot pass); if cuBLAS cannot be
//! loaded, fails, or disagrees, the process logs it once and keeps Burn's matmul. `KAITO_CUBLAS=0`
//! turns the path off (the benchmark's A/B switch).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::{Mutex, OnceLock};

use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{result as driver, sys as driver_sys};

use super::gemm_plan::{Layout, Read, layout, plan};

/// A CubeCL tensor on a CUDA device.
pub type CudaTensor = CubeTensor<CudaRuntime>;

/// Whether `KAITO_CUBLAS` allows the cuBLAS path (anything but `0`/`false`/`off`).
pub fn enabled_by_env() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("KAITO_CUBLAS").as_deref(),
            Ok("0") | Ok("false") | Ok("off")
        )
    })
}

/// A 2-D operand ready for cuBLAS: dense in one of the two layouts (a transposed view is read in
/// place), else copied contiguous.
fn operand(t: &CudaTensor) -> (CudaTensor, Layout) {
    let (shape, strides) = (t.meta.shape(), t.meta.strides());
    match layout([shape[0], shape[1]], [strides[0], strides[1]]) {
        Some(l) => (t.clone(), l),
        None => (into_contiguous(t.clone()), Layout::RowMajor),
    }
}

fn op(read: Read) -> blas_sys::cublasOperation_t {
    if read.transpose {
        blas_sys::cublasOperation_t::CUBLAS_OP_T
    } else {
        blas_sys::cublasOperation_t::CUBLAS_OP_N
    }
}

fn data_type(dtype: DType) -> Option<blas_sys::cudaDataType> {
    match dtype {
        DType::BF16 => Some(blas_sys::cudaDataType::CUDA_R_16BF),
        DType::F16 => Some(blas_sys::cudaDataType::CUDA_R_16F),
        DType::F32 => Some(blas_sys::cudaDataType::CUDA_R_32F),
        _ => None,
    }
}

/// One cuBLAS handle and stream per thread and device, in the device's primary context (the
/// one CubeCL uses). Kept for the thread's life: a handle costs a few MiB and milliseconds to
/// make, and the threads that run a model live as long as it.
struct ThreadBlas {
    ctx: driver_sys::CUcontext,
    stream: driver_sys::CUstream,
    handle: blas_sys::cublasHandle_t,
}

thread_local! {
    static BLAS: RefCell<HashMap<usize, ThreadBlas>> = RefCell::new(HashMap::new());
}

fn thread_blas<T>(
    device: usize,
    f: impl FnOnce(&ThreadBlas) -> Result<T, String>,
) -> Result<T, String> {
    BLAS.with(|cell| {
        let mut map = cell.borrow_mut();
        let blas = match map.entry(device) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(ThreadBlas::new(device)?),
        };
        // SAFETY: `ctx` is the primary context retained in `ThreadBlas::new` and never released.
        unsafe { driver::ctx::set_current(blas.ctx) }
            .map_err(|e| format!("cuCtxSetCurrent: {e:?}"))?;
        f(blas)
    })
}

impl ThreadBlas {
    fn new(device: usize) -> Result<Self, String> {
        // SAFETY: probing the loader only; no cuBLAS function is called if the library is absent
        // (cudarc would panic on the first call instead).
        if !unsafe { blas_sys::is_culib_present() } {
            return Err("libcublas could not be loaded (is it on LD_LIBRARY_PATH?)".into());
        }
        driver::init().map_err(|e| format!("cuInit: {e:?}"))?;
        let dev =
            driver::device::get(device as c_int).map_err(|e| format!("cuDeviceGet: {e:?}"))?;
        // SAFETY: `dev` is a valid device ordinal; retaining the primary context is what CubeCL
        // itself does, so both share one context (and one address space for the pointers).
        let ctx = unsafe { driver::primary_ctx::retain(dev) }
            .map_err(|e| format!("cuDevicePrimaryCtxRetain: {e:?}"))?;
        // SAFETY: `ctx` was just retained.
        unsafe { driver::ctx::set_current(ctx) }.map_err(|e| format!("cuCtxSetCurrent: {e:?}"))?;
        let stream = driver::stream::create(driver::stream::StreamKind::NonBlocking)
            .map_err(|e| format!("cuStreamCreate: {e:?}"))?;
        let handle = blas::create_handle().map_err(|e| format!("cublasCreate: {e:?}"))?;
        // SAFETY: both were just created; the driver's and cuBLAS's stream types are the same
        // `CUstream_st*` declared twice by the bindings.
        unsafe { blas::set_stream(handle, stream as blas_sys::cudaStream_t) }
            .map_err(|e| format!("cublasSetStream: {e:?}"))?;
        Ok(Self {
            ctx,
            stream,
            handle,
        })
    }
}

/// `a [n, k] · b [k, m]` (or `a · bᵀ` for `b [m, k]` when `b_transposed`) on cuBLAS, or `Err`
/// with why not (the caller falls back to Burn's matmul).
pub fn gemm_unchecked(
    a: &CudaTensor,
    b: &CudaTensor,
    b_transposed: bool,
) -> Result<CudaTensor, String> {
    let (dtype, ty) = match data_type(a.dtype) {
        Some(ty) if a.dtype == b.dtype => (a.dtype, ty),
        _ => return Err(format!("dtypes {:?} × {:?}", a.dtype, b.dtype)),
    };
    if a.meta.shape().num_dims() != 2 || b.meta.shape().num_dims() != 2 {
        return Err("only 2-D operands".into());
    }
    let (n, k) = (a.meta.shape()[0], a.meta.shape()[1]);
    let (kb, m) = if b_transposed {
        (b.meta.shape()[1], b.meta.shape()[0])
    } else {
        (b.meta.shape()[0], b.meta.shape()[1])
    };
    if k != kb {
        return Err(format!("inner dimensions {k} and {kb}"));
    }
    let dims_ok = |d: usize| d > 0 && d <= c_int::MAX as usize;
    if !(dims_ok(n) && dims_ok(k) && dims_ok(m)) {
        return Err(format!("shape {n}×{k}×{m}"));
    }
    let (a, a_layout) = operand(a);
    let (b, b_layout) = operand(b);
    let g = plan((n, k, m), a_layout, b_layout, b_transposed);

    let client = a.client.clone();
    let out_handle = client.empty(n * m * dtype.size());
    let out = CudaTensor::new_contiguous(
        client.clone(),
        a.device.clone(),
        [n, m].into(),
        out_handle,
        dtype,
    );
    let resource = |t: &CudaTensor| {
        client
            .get_resource(t.handle.clone())
            .map_err(|e| format!("device memory of an operand: {e:?}"))
    };
    let (ra, rb, rc) = (resource(&a)?, resource(&b)?, resource(&out)?);
    // Everything that produced `a` and `b` (and last used `out`'s memory) is queued on this
    // thread's CubeCL stream; wait for it before cuBLAS reads them on its own stream.
    cubecl::future::block_on(client.sync()).map_err(|e| format!("waiting for CubeCL: {e:?}"))?;

    let (alpha, beta) = (1.0f32, 0.0f32);
    thread_blas(a.device.index, |blas| {
        // SAFETY: the three pointers are live CubeCL allocations (the `ManagedResource`s keep
        // them from being reused until this returns) of exactly the sizes the dimensions and
        // leading dimensions describe; alpha/beta are host f32s as CUBLAS_COMPUTE_32F requires.
        unsafe {
            blas::gemm_ex(
                blas.handle,
                op(g.first),
                op(g.second),
                g.m as c_int,
                g.n as c_int,
                g.k as c_int,
                (&alpha as *const f32).cast::<c_void>(),
                rb.resource().ptr as *const c_void,
                ty,
                g.first.ld as c_int,
                ra.resource().ptr as *const c_void,
                ty,
                g.second.ld as c_int,
                (&beta as *const f32).cast::<c_void>(),
                rc.resource().ptr as *mut c_void,
                ty,
                g.ldc as c_int,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| format!("cublasGemmEx: {e:?}"))?;
        // SAFETY: the stream belongs to this thread's `ThreadBlas`.
        unsafe { driver::stream::synchronize(blas.stream) }
            .map_err(|e| format!("cuStreamSynchronize: {e:?}"))
    })?;
    drop((ra, rb, rc));
    Ok(out)
}

/// Products with fewer rows (decoding: one row per sequence) stay on Burn's kernels: they are
/// memory-bound, where cuBLAS gains little, and the two host round trips per product would stall
/// the launch queue that keeps small kernels back to back.
pub const MIN_ROWS: usize = 64;

/// Per (device, dtype): whether cuBLAS passed its first-use check.
fn verdicts() -> &'static Mutex<HashMap<(usize, DType), bool>> {
    static V: OnceLock<Mutex<HashMap<(usize, DType), bool>>> = OnceLock::new();
    V.get_or_init(Default::default)
}

/// Whether cuBLAS passed (`Some(true)`), failed (`Some(false)`) or has not yet run
/// (`None`) its first-use check for `dtype` on CUDA device `device`.
pub fn verdict(device: usize, dtype: DType) -> Option<bool> {
    verdicts().lock().ok()?.get(&(device, dtype)).copied()
}

fn record(key: (usize, DType), ok: bool) {
    if let Ok(mut v) = verdicts().lock() {
        v.insert(key, ok);
    }
}

/// [`gemm_unchecked`] behind the env switch and the first-use check; `None` means "use Burn's
/// matmul". `check` runs the first-use comparison (it needs the backend's own matmul, which this
/// module cannot name generically) and returns the largest absolute difference or why it failed.
pub fn gemm(
    a: &CudaTensor,
    b: &CudaTensor,
    b_transposed: bool,
    check: impl FnOnce() -> Result<f32, String>,
) -> Option<CudaTensor> {
    let rows = a.meta.shape().iter().next().copied().unwrap_or(0);
    if !enabled_by_env() || data_type(a.dtype).is_none() || rows < MIN_ROWS {
        return None;
    }
    let key = (a.device.index, a.dtype);
    let ok = match verdict(key.0, key.1) {
        Some(ok) => ok,
        None => {
            let ok = match check() {
                Ok(diff) if diff <= CHECK_TOLERANCE => {
                    tracing::info!(dtype = ?a.dtype, max_abs_diff = diff, "frozen matmuls on cuBLAS");
                    true
                }
                Ok(diff) => {
                    tracing::warn!(dtype = ?a.dtype, max_abs_diff = diff, "cuBLAS disagrees with Burn's matmul; keeping Burn's");
                    false
                }
                Err(why) => {
                    tracing::warn!(dtype = ?a.dtype, %why, "cuBLAS unavailable; keeping Burn's matmul");
                    false
                }
            };
            record(key, ok);
            ok
        }
    };
    if !ok {
        return None;
    }
    match gemm_unchecked(a, b, b_transposed) {
        Ok(out) => Some(out),
        Err(why) => {
            tracing::warn!(%why, "cuBLAS product failed; Burn's matmul for the rest of the run");
            record(key, false);
            None
        }
    }
}

/// The check's operands hold small multiples of 1/4 with short sums, exact in bf16, so any
/// difference beyond rounding means a wrong layout.
pub const CHECK_TOLERANCE: f32 = 1e-2;

/// Operand values for the first-use check: `[rows, cols]`, multiples of 1/4 in [-1, 1].
pub fn check_values(rows: usize, cols: usize, salt: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| (((i * 7 + salt * 3) % 9) as f32 - 4.0) / 4.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_are_exact_in_bf16() {
        for v in check_values(5, 7, 1) {
            assert_eq!(half::bf16::from_f32(v).to_f32(), v);
            assert!((-1.0..=1.0).contains(&v));
        }
    }
}
