//! How a row-major product `a · b` (or `a · bᵀ`) is asked of a column-major BLAS (cuBLAS) without
//! copying transposed operands: which operand goes first, with which transpose flag and
//! leading dimension. Pure index arithmetic, so it is tested on the CPU against a reference
//! column-major GEMM; `cublas_gemm` (feature `cuda`) feeds the plan to `cublasGemmEx`.

/// How a 2-D operand `[rows, cols]` lies in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Element `(i, j)` at `i · cols + j`.
    RowMajor,
    /// Element `(i, j)` at `j · rows + i`: a transposed view of a row-major tensor.
    ColMajor,
}

/// The layout of a `[rows, cols]` view with element strides `strides`, if it is dense in one
/// of the two (a size-1 dimension's stride does not matter); `None` needs a contiguous copy.
pub fn layout(shape: [usize; 2], strides: [usize; 2]) -> Option<Layout> {
    let [rows, cols] = shape;
    let row_major = (cols == 1 || strides[1] == 1) && (rows == 1 || strides[0] == cols);
    let col_major = (rows == 1 || strides[0] == 1) && (cols == 1 || strides[1] == rows);
    if row_major {
        Some(Layout::RowMajor)
    } else if col_major {
        Some(Layout::ColMajor)
    } else {
        None
    }
}

/// One column-major operand read: transpose it or not, and its leading dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// BLAS `op = T`.
    pub transpose: bool,
    /// BLAS `ld`.
    pub ld: usize,
}

/// A column-major `C [m, n] = op(first) [m, k] · op(second) [k, n]`, `ldc = m`, whose memory
/// is the row-major `[n, m]` result wanted. `first` is the right operand's memory, `second` the
/// left's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColMajorGemm {
    /// BLAS `m` (the result's row-major column count).
    pub m: usize,
    /// BLAS `n` (the result's row-major row count).
    pub n: usize,
    /// BLAS `k`.
    pub k: usize,
    /// How to read the right operand's memory (BLAS `A`).
    pub first: Read,
    /// How to read the left operand's memory (BLAS `B`).
    pub second: Read,
    /// BLAS `ldc`.
    pub ldc: usize,
}

/// The read that makes a column-major BLAS see `Xᵀ [cols, rows]` in the memory of
/// `X [rows, cols]` laid out as `layout`.
fn transposed_read(layout: Layout, rows: usize, cols: usize) -> Read {
    match layout {
        // Row-major X read column-major is Xᵀ already.
        Layout::RowMajor => Read {
            transpose: false,
            ld: cols,
        },
        // Column-major X read column-major is X: ask for the transpose.
        Layout::ColMajor => Read {
            transpose: true,
            ld: rows,
        },
    }
}

/// Plans row-major `C [n, m] = a [n, k] · R`, where `R [k, m]` is `b` (`b [k, m]`) or, with
/// `b_transposed`, `bᵀ` (`b [m, k]`). Column-major, that memory is `Cᵀ = Rᵀ · aᵀ`.
pub fn plan(
    (n, k, m): (usize, usize, usize),
    a: Layout,
    b: Layout,
    b_transposed: bool,
) -> ColMajorGemm {
    let r = match (b_transposed, b) {
        (false, l) => l,
        // The transpose of a row-major b is a column-major R, and the other way round.
        (true, Layout::RowMajor) => Layout::ColMajor,
        (true, Layout::ColMajor) => Layout::RowMajor,
    };
    ColMajorGemm {
        m,
        n,
        k,
        first: transposed_read(r, k, m),
        second: transposed_read(a, n, k),
        ldc: m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference column-major GEMM with BLAS's argument semantics (alpha 1, beta 0).
    fn blas_gemm(g: &ColMajorGemm, first: &[f32], second: &[f32]) -> Vec<f32> {
        let at = |x: &[f32], r: Read, i: usize, j: usize| {
            if r.transpose {
                x[i * r.ld + j]
            } else {
                x[j * r.ld + i]
            }
        };
        let mut c = vec![0.0; g.ldc * g.n];
        for j in 0..g.n {
            for i in 0..g.m {
                c[j * g.ldc + i] = (0..g.k)
                    .map(|p| at(first, g.first, i, p) * at(second, g.second, p, j))
                    .sum();
            }
        }
        c
    }

    /// `x [rows, cols]` (row-major values) stored as `layout`.
    fn store(x: &[f32], rows: usize, cols: usize, layout: Layout) -> Vec<f32> {
        match layout {
            Layout::RowMajor => x.to_vec(),
            Layout::ColMajor => (0..cols)
                .flat_map(|j| (0..rows).map(move |i| x[i * cols + j]))
                .collect(),
        }
    }

    fn values(len: usize, salt: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + salt) % 11) as f32 - 5.0)
            .collect()
    }

    #[test]
    fn every_layout_and_transpose_gives_the_row_major_product() {
        let (n, k, m) = (3, 5, 4);
        let a = values(n * k, 1);
        for b_transposed in [false, true] {
            // b [k, m], or b [m, k] used transposed.
            let (b_rows, b_cols) = if b_transposed { (m, k) } else { (k, m) };
            let b = values(b_rows * b_cols, 2);
            let want: Vec<f32> = (0..n * m)
                .map(|idx| {
                    let (i, j) = (idx / m, idx % m);
                    (0..k)
                        .map(|p| {
                            let r = if b_transposed {
                                b[j * k + p]
                            } else {
                                b[p * m + j]
                            };
                            a[i * k + p] * r
                        })
                        .sum()
                })
                .collect();
            for a_layout in [Layout::RowMajor, Layout::ColMajor] {
                for b_layout in [Layout::RowMajor, Layout::ColMajor] {
                    let g = plan((n, k, m), a_layout, b_layout, b_transposed);
                    let got = blas_gemm(
                        &g,
                        &store(&b, b_rows, b_cols, b_layout),
                        &store(&a, n, k, a_layout),
                    );
                    assert_eq!(
                        got, want,
                        "a {a_layout:?}, b {b_layout:?}, bᵀ {b_transposed}"
                    );
                }
            }
        }
    }

    #[test]
    fn layouts_come_from_strides() {
        assert_eq!(layout([3, 5], [5, 1]), Some(Layout::RowMajor));
        // The transposed view of a row-major [5, 3].
        assert_eq!(layout([3, 5], [1, 3]), Some(Layout::ColMajor));
        // A slice of every other column is neither.
        assert_eq!(layout([3, 5], [10, 2]), None);
        // Vectors: a size-1 dimension's stride is irrelevant.
        assert_eq!(layout([1, 5], [99, 1]), Some(Layout::RowMajor));
        assert_eq!(layout([5, 1], [1, 99]), Some(Layout::RowMajor));
        assert_eq!(layout([1, 5], [1, 1]), Some(Layout::RowMajor));
        assert_eq!(layout([5, 1], [3, 1]), None);
    }
}
