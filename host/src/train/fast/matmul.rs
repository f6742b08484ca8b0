//! Matrix products of the CPU training path's classifier, on the GEMM kernels Candle's CPU
//! matmul uses (the `gemm` crate), reading and writing the path's buffers in place: no tensor
//! copies in or out.

/// A row-major matrix (`rows x cols` values of `data`) or its transpose.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    /// Rows and columns as seen (after the transpose).
    dims: (usize, usize),
    /// Strides of a row and a column step as seen.
    strides: (isize, isize),
}

impl<'a> Mat<'a> {
    /// `data` as a row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        assert_eq!(data.len(), rows * cols, "matrix size");
        Mat {
            data,
            dims: (rows, cols),
            strides: (cols as isize, 1),
        }
    }

    /// The transpose.
    pub fn t(self) -> Mat<'a> {
        Mat {
            data: self.data,
            dims: (self.dims.1, self.dims.0),
            strides: (self.strides.1, self.strides.0),
        }
    }
}

/// `out = a @ b`, or `out += a @ b` when `add`; `out` is row-major. Runs on rayon's threads;
/// each output value is one sum in a fixed order, whatever the thread count.
pub fn matmul(a: Mat<'_>, b: Mat<'_>, out: &mut [f32], add: bool) {
    let (m, k) = a.dims;
    let n = b.dims.1;
    assert_eq!(b.dims.0, k, "inner dimensions");
    assert_eq!(out.len(), m * n, "output size");
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `a` and `b` address exactly their `data` (`rows * cols` values, checked in
    // `Mat::new`; a transpose swaps dims and strides together), `out` holds `m * n` values
    // addressed with row stride `n` and column stride 1, and `out` (a unique borrow) aliases
    // neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            add,
            a.data.as_ptr(),
            a.strides.1,
            a.strides.0,
            b.data.as_ptr(),
            b.strides.1,
            b.strides.0,
            if add { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Products with either operand transposed, written or added, against the definition.
    #[test]
    fn products_match_the_definition() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2x3
        let b: Vec<f32> = (0..12).map(|v| (v as f32) * 0.5 - 2.0).collect(); // 3x4
        let want = |i: usize, j: usize| (0..3).map(|l| a[i * 3 + l] * b[l * 4 + j]).sum::<f32>();
        let mut out = vec![0f32; 8];
        matmul(Mat::new(&a, 2, 3), Mat::new(&b, 3, 4), &mut out, false);
        for i in 0..2 {
            for j in 0..4 {
                assert_eq!(out[i * 4 + j], want(i, j));
            }
        }
        // (b^T a^T)^T = a b: b^T (4x3) @ a^T (3x2) = (a b)^T, added twice.
        let mut outt = vec![1f32; 8];
        matmul(
            Mat::new(&b, 3, 4).t(),
            Mat::new(&a, 2, 3).t(),
            &mut outt,
            true,
        );
        for i in 0..2 {
            for j in 0..4 {
                assert_eq!(outt[j * 2 + i], 1.0 + want(i, j));
            }
        }
    }
}
