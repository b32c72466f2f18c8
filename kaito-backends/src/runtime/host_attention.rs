//! Causal attention on the CPU backend: row-blocked loops on every core.
//!
//! Built from Burn's ops, attention on ndarray ran the scale, the mask and the softmax's five
//! steps (and their backward) as separate passes over `[batch, heads, T, T]`, each on one core
//! (burn-ndarray parallelises only its matmuls, over batch dimensions), and computed the whole of
//! `q·kᵀ` although the causal mask throws half of it away. Here each (batch, head) pair is a rayon
//! task that walks the queries in blocks of [`ROW_BLOCK`] rows: a block multiplies only the keys
//! it can see (`ndarray`'s GEMM on strided views, no copies), and the scale, mask and softmax are
//! one pass over the block while it is in cache. The backward recomputes the block's
//! probabilities instead of keeping them ([`super::attention`] says why), and runs one task per
//! (batch, key head) so that the query heads sharing a key head add into its gradients in turn.

use burn::backend::NdArray;
use burn::prelude::*;
use burn_ndarray::NdArrayTensor;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array4, ArrayView2, ArrayView4, ArrayViewMut2, Axis, Ix4, Zip, s};

use super::attention::{AttentionGrads, float4};

type Host4 = Tensor<NdArray<f32>, 4>;

/// Query rows per block: a 64 × T block of scores stays in L2 for the T this runtime trains at.
const ROW_BLOCK: usize = 64;

fn view4(t: &NdArrayTensor) -> Option<ArrayView4<'_, f32>> {
    match t {
        NdArrayTensor::F32(storage) => storage.view().into_dimensionality::<Ix4>().ok(),
        _ => None,
    }
}

fn host(a: Array4<f32>) -> Host4 {
    float4(NdArrayTensor::from(a.into_dyn().into_shared()))
}

fn primitive(t: &Host4) -> NdArrayTensor {
    t.clone().into_primitive().tensor()
}

/// The shapes as [`super::attention::AttentionBackend`] states them, or `None`.
fn dims(q: &ArrayView4<f32>, k: &ArrayView4<f32>, v: &ArrayView4<f32>) -> Option<Dims> {
    let (b, h, t, d) = q.dim();
    let (kb, kvh, s, kd) = k.dim();
    let ok = kb == b && kd == d && v.dim() == k.dim() && kvh > 0 && h % kvh == 0 && s >= t;
    ok.then_some(Dims {
        h,
        kvh,
        t,
        s,
        scale: 1.0 / (d as f32).sqrt(),
    })
}

#[derive(Clone, Copy)]
struct Dims {
    h: usize,
    kvh: usize,
    t: usize,
    s: usize,
    scale: f32,
}

impl Dims {
    /// Keys visible to query rows `..end`: all up to the last row's own position.
    fn keys_for(&self, end: usize) -> usize {
        (self.s - self.t + end).min(self.s)
    }
}

/// The probabilities of query rows `i0..` (`q_rows`) over the keys they can see (`keys`):
/// `[rows, keys]`, zero where the mask hides a key.
fn block_probabilities(
    q_rows: ArrayView2<f32>,
    keys: ArrayView2<f32>,
    i0: usize,
    dm: Dims,
) -> Array2<f32> {
    let mut p = Array2::<f32>::zeros((q_rows.nrows(), keys.nrows()));
    general_mat_mul(dm.scale, &q_rows, &keys.t(), 0.0, &mut p);
    for (r, mut row) in p.axis_iter_mut(Axis(0)).enumerate() {
        let visible = dm.s - dm.t + i0 + r + 1;
        let row = row.as_slice_mut().expect("a fresh array is contiguous");
        let (seen, hidden) = row.split_at_mut(visible);
        let max = seen.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for x in seen.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        seen.iter_mut().for_each(|x| *x *= inv);
        hidden.fill(0.0);
    }
    p
}

/// `softmax(q·kᵀ/√d + causal mask)·v`; `None` when the tensors are not f32 or the shapes do
/// not fit (the caller falls back to Burn's ops).
pub fn forward(q: &Host4, k: &Host4, v: &Host4) -> Option<Host4> {
    let (pq, pk, pv) = (primitive(q), primitive(k), primitive(v));
    let (q, k, v) = (view4(&pq)?, view4(&pk)?, view4(&pv)?);
    let dm = dims(&q, &k, &v)?;
    let (b, _, _, d) = q.dim();
    let rep = dm.h / dm.kvh;
    let mut out = Array4::<f32>::zeros((b, dm.h, dm.t, d));
    // One task per (batch, query head): the forward writes nothing shared.
    let mut units = out
        .view_mut()
        .into_shape_with_order((b * dm.h, dm.t, d))
        .ok()?;
    Zip::indexed(units.outer_iter_mut()).par_for_each(|u, mut o| {
        let (bi, hi) = (u / dm.h, u % dm.h);
        let (qh, kh, vh) = (
            q.slice(s![bi, hi, .., ..]),
            k.slice(s![bi, hi / rep, .., ..]),
            v.slice(s![bi, hi / rep, .., ..]),
        );
        for i0 in (0..dm.t).step_by(ROW_BLOCK) {
            let i1 = (i0 + ROW_BLOCK).min(dm.t);
            let seen = dm.keys_for(i1);
            let p = block_probabilities(qh.slice(s![i0..i1, ..]), kh.slice(s![..seen, ..]), i0, dm);
            let mut rows = o.slice_mut(s![i0..i1, ..]);
            general_mat_mul(1.0, &p, &vh.slice(s![..seen, ..]), 0.0, &mut rows);
        }
    });
    Some(host(out))
}

/// `(dq, dk, dv)` for the forward's inputs, output `o` and output gradient `d_o`; `None` as for
/// [`forward`].
pub fn backward(
    q: &Host4,
    k: &Host4,
    v: &Host4,
    o: &Host4,
    d_o: &Host4,
) -> Option<AttentionGrads<NdArray<f32>>> {
    let (pq, pk, pv, po, pd) = (
        primitive(q),
        primitive(k),
        primitive(v),
        primitive(o),
        primitive(d_o),
    );
    let (q, k, v, o, d_o) = (
        view4(&pq)?,
        view4(&pk)?,
        view4(&pv)?,
        view4(&po)?,
        view4(&pd)?,
    );
    let dm = dims(&q, &k, &v)?;
    if o.dim() != q.dim() || d_o.dim() != q.dim() {
        return None;
    }
    let (b, _, _, d) = q.dim();
    let rep = dm.h / dm.kvh;
    let mut dq = Array4::<f32>::zeros((b, dm.h, dm.t, d));
    let mut dk = Array4::<f32>::zeros((b, dm.kvh, dm.s, d));
    let mut dv = Array4::<f32>::zeros((b, dm.kvh, dm.s, d));
    {
        // One task per (batch, key head); its query heads add into dk and dv one after another.
        let units = b * dm.kvh;
        let mut dq_u = dq
            .view_mut()
            .into_shape_with_order((units, rep, dm.t, d))
            .ok()?;
        let mut dk_u = dk.view_mut().into_shape_with_order((units, dm.s, d)).ok()?;
        let mut dv_u = dv.view_mut().into_shape_with_order((units, dm.s, d)).ok()?;
        Zip::indexed(dq_u.outer_iter_mut())
            .and(dk_u.outer_iter_mut())
            .and(dv_u.outer_iter_mut())
            .par_for_each(|u, mut dq_g, mut dk_g, mut dv_g| {
                let (bi, g) = (u / dm.kvh, u % dm.kvh);
                let (kh, vh) = (k.slice(s![bi, g, .., ..]), v.slice(s![bi, g, .., ..]));
                for r in 0..rep {
                    let hi = g * rep + r;
                    let head = Head {
                        q: q.slice(s![bi, hi, .., ..]),
                        k: kh,
                        v: vh,
                        o: o.slice(s![bi, hi, .., ..]),
                        d_o: d_o.slice(s![bi, hi, .., ..]),
                    };
                    head.backward(
                        dm,
                        dq_g.index_axis_mut(Axis(0), r),
                        dk_g.view_mut(),
                        dv_g.view_mut(),
                    );
                }
            });
    }
    Some((host(dq), host(dk), host(dv)))
}

/// One query head's operands, each `[rows, head_dim]`.
struct Head<'a> {
    q: ArrayView2<'a, f32>,
    k: ArrayView2<'a, f32>,
    v: ArrayView2<'a, f32>,
    o: ArrayView2<'a, f32>,
    d_o: ArrayView2<'a, f32>,
}

impl Head<'_> {
    /// Writes this head's `dq` and adds its share of `dk` and `dv`.
    fn backward(
        &self,
        dm: Dims,
        mut dq: ArrayViewMut2<f32>,
        mut dk: ArrayViewMut2<f32>,
        mut dv: ArrayViewMut2<f32>,
    ) {
        for i0 in (0..dm.t).step_by(ROW_BLOCK) {
            let i1 = (i0 + ROW_BLOCK).min(dm.t);
            let seen = dm.keys_for(i1);
            let (q_rows, keys, values) = (
                self.q.slice(s![i0..i1, ..]),
                self.k.slice(s![..seen, ..]),
                self.v.slice(s![..seen, ..]),
            );
            let d_o = self.d_o.slice(s![i0..i1, ..]);
            let p = block_probabilities(q_rows, keys, i0, dm);
            general_mat_mul(1.0, &p.t(), &d_o, 1.0, &mut dv.slice_mut(s![..seen, ..]));
            // dp = do·vᵀ, then ds = p ∘ (dp − rowsum(do ∘ o)) · scale in its place.
            let mut ds = Array2::<f32>::zeros((i1 - i0, seen));
            general_mat_mul(1.0, &d_o, &values.t(), 0.0, &mut ds);
            for (r, (mut ds_row, p_row)) in ds.outer_iter_mut().zip(p.outer_iter()).enumerate() {
                let delta = d_o.row(r).dot(&self.o.row(i0 + r));
                ds_row.zip_mut_with(&p_row, |x, &p| *x = p * (*x - delta) * dm.scale);
            }
            general_mat_mul(1.0, &ds, &keys, 0.0, &mut dq.slice_mut(s![i0..i1, ..]));
            general_mat_mul(
                1.0,
                &ds.t(),
                &q_rows,
                1.0,
                &mut dk.slice_mut(s![..seen, ..]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::attention::recomputed_backward;
    use crate::runtime::attention::tests::{SHAPES, close, reference, tensor4};

    #[test]
    fn forward_matches_burns_ops_for_every_shape() {
        for (b, h, kvh, t, s, d) in SHAPES {
            let q = tensor4::<NdArray<f32>>([b, h, t, d], 1);
            let k = tensor4::<NdArray<f32>>([b, kvh, s, d], 2);
            let v = tensor4::<NdArray<f32>>([b, kvh, s, d], 3);
            let ours = forward(&q, &k, &v).expect("f32 tensors of fitting shapes");
            close(ours, reference(q, k, v), "forward");
        }
    }

    #[test]
    fn rows_past_one_block_and_strided_inputs_match_burns_ops() {
        // 150 rows: three blocks, the last partial; q, k, v transposed views as the model makes them.
        let (b, h, kvh, t, d) = (1, 4, 2, 150, 8);
        let qt = tensor4::<NdArray<f32>>([b, t, h, d], 4).swap_dims(1, 2);
        let kt = tensor4::<NdArray<f32>>([b, t, kvh, d], 5).swap_dims(1, 2);
        let vt = tensor4::<NdArray<f32>>([b, t, kvh, d], 6).swap_dims(1, 2);
        let o = forward(&qt, &kt, &vt).unwrap();
        close(
            o.clone(),
            reference(qt.clone(), kt.clone(), vt.clone()),
            "forward",
        );
        let d_o = tensor4::<NdArray<f32>>([b, h, t, d], 7);
        let ours = backward(&qt, &kt, &vt, &o, &d_o).unwrap();
        let theirs = recomputed_backward(qt, kt, vt, o, d_o);
        close(ours.0, theirs.0, "dq");
        close(ours.1, theirs.1, "dk");
        close(ours.2, theirs.2, "dv");
    }

    #[test]
    fn shapes_that_do_not_fit_are_declined() {
        let q = tensor4::<NdArray<f32>>([1, 3, 4, 8], 1);
        let k = tensor4::<NdArray<f32>>([1, 2, 4, 8], 2);
        assert!(
            forward(&q, &k, &k).is_none(),
            "3 heads cannot share 2 key heads"
        );
        let short = tensor4::<NdArray<f32>>([1, 3, 2, 8], 2);
        assert!(
            forward(&q, &short, &short).is_none(),
            "fewer keys than queries"
        );
    }
}
