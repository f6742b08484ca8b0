//! Log-determinants in f64 without `std` or `libm`, the same on the host and the device.
//!
//! # The logarithm
//! `core` has no f64 logarithm, so [`ln`] computes it from the bits, after fdlibm's `e_log`:
//! `x = 2^e * m` with `m` in `[sqrt(1/2), sqrt(2)]`, `f = m - 1` (exact),
//! `s = f / (2 + f)`, and `ln(1 + f) = 2 atanh(s) = 2s + s R(s^2)` where
//! `R(z) = 2/3 z + 2/5 z^2 + 2/7 z^3 + ...` is the atanh series, summed by Horner to the `z^12`
//! term (`z <= 0.0295`, so the first omitted term is below `1e-19` of `R`). The result is
//! assembled as `e ln2_hi - ((f^2/2 - (s (f^2/2 + R) + e ln2_lo)) - f)` with `ln 2` split in two
//! parts so that `e ln2_hi` is exact. Measured against the host's (glibc) `ln` over a million
//! values spread over the whole f64 range, near 1, and subnormals: at most 1 ulp apart (relative
//! difference `<= 2.3e-16`; see the `ln_matches_std` test).
//!
//! Only IEEE-754 additions, multiplications and divisions are used, in a fixed order, and Rust
//! never fuses a multiply-add unless asked to, so the Cortex-M's software f64 (which is
//! correctly rounded) gives bit-for-bit the host's result: a SAHD score computed on the device
//! equals the host's.
//!
//! # Determinants
//! [`ln_abs_det`] is an LU factorisation with partial pivoting that sums `ln |pivot|` (so it
//! neither overflows nor underflows). [`ln_abs_det_rank_one`] computes `ln |det(c J + A)|`
//! (`J` all ones) by the matrix determinant lemma, which keeps the large constant `c` out of the
//! factorisation; see its documentation. Both return `(log, sign)` like numpy's `slogdet`: a
//! singular matrix gives `(-inf, 0)`.

use crate::error::SahdError;

/// `ln 2` split so that `e * LN2_HI` is exact for any f64 exponent (fdlibm).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 6.93147180369123816490e-01
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.90821492927058770002e-10
/// `2^54`, to normalise subnormals.
const TWO54: f64 = 18_014_398_509_481_984.0;
const MANTISSA: u64 = (1 << 52) - 1;

/// Coefficients `2 / (2k + 1)`, `k = 1..=12`, of the atanh series `R(z)`.
const ATANH: [f64; 12] = [
    2.0 / 3.0,
    2.0 / 5.0,
    2.0 / 7.0,
    2.0 / 9.0,
    2.0 / 11.0,
    2.0 / 13.0,
    2.0 / 15.0,
    2.0 / 17.0,
    2.0 / 19.0,
    2.0 / 21.0,
    2.0 / 23.0,
    2.0 / 25.0,
];

/// Natural logarithm in f64 (see the module documentation for the method and its precision).
///
/// `ln(±0) = -inf`, `ln(+inf) = +inf`, `ln(x) = NaN` for `x < 0` or NaN; subnormals are handled.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i32 = 0;
    if bits >> 52 == 0 {
        bits = (x * TWO54).to_bits();
        e = -54;
    }
    e += (bits >> 52) as i32 - 1023;
    let mut m = f64::from_bits((bits & MANTISSA) | (1023 << 52));
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0; // exact: m is within a factor 2 of 1
    if f == 0.0 {
        return f64::from(e) * LN2_HI + f64::from(e) * LN2_LO;
    }
    let s = f / (2.0 + f);
    let z = s * s;
    let mut r = 0.0;
    for &c in ATANH.iter().rev() {
        r = z * (c + r);
    }
    let hfsq = 0.5 * f * f;
    let dk = f64::from(e);
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// LU with partial pivoting of the `n x n` row-major matrix in `a[..n*n]`, in place: `U` on and
/// above the diagonal, the multipliers of unit-lower `L` below. Returns `(sum ln|u_kk|, sign of
/// det)`, or `(-inf, 0)` at the first exactly-zero pivot (the factorisation is then partial).
fn lu_in_place(a: &mut [f64], n: usize) -> (f64, i8) {
    let mut log = 0.0;
    let mut sign = 1i8;
    for k in 0..n {
        let mut p = k;
        let mut best = a[k * n + k].abs();
        for i in k + 1..n {
            let v = a[i * n + k].abs();
            if v > best {
                best = v;
                p = i;
            }
        }
        if best == 0.0 {
            return (f64::NEG_INFINITY, 0);
        }
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
            sign = -sign;
        }
        let (top, rest) = a.split_at_mut((k + 1) * n);
        let prow = &top[k * n..];
        let piv = prow[k];
        if piv < 0.0 {
            sign = -sign;
        }
        log += ln(best);
        for row in rest.chunks_exact_mut(n) {
            let l = row[k] / piv;
            row[k] = l;
            if l != 0.0 {
                for (x, &y) in row[k + 1..].iter_mut().zip(&prow[k + 1..]) {
                    *x -= l * y;
                }
            }
        }
    }
    (log, sign)
}

/// Solves `A x = 1` (all ones) with the complete factorisation from [`lu_in_place`]. The row
/// permutation does not change a vector of ones, so it need not be recorded.
fn solve_ones(lu: &[f64], n: usize, x: &mut [f64]) {
    for i in 0..n {
        let row = &lu[i * n..i * n + i];
        let mut v = 1.0;
        for (l, y) in row.iter().zip(&x[..i]) {
            v -= l * y;
        }
        x[i] = v;
    }
    for i in (0..n).rev() {
        let row = &lu[i * n..(i + 1) * n];
        let mut v = x[i];
        for (u, y) in row[i + 1..].iter().zip(&x[i + 1..n]) {
            v -= u * y;
        }
        x[i] = v / row[i];
    }
}

/// Core of the rank-one log-determinant: `work[..n*n]` holds `A` (destroyed), `x` has `n`
/// elements; `rebuild` writes `c J + A` into `work` for the fallback.
pub(crate) fn rank_one_core(
    c: f64,
    work: &mut [f64],
    x: &mut [f64],
    n: usize,
    rebuild: impl FnOnce(&mut [f64]),
) -> (f64, i8) {
    let (log_a, sign_a) = lu_in_place(work, n);
    if sign_a != 0 {
        solve_ones(work, n, x);
        let u: f64 = x[..n].iter().sum();
        let t = 1.0 + c * u;
        if t.is_finite() && t != 0.0 && log_a.is_finite() {
            let sign_t = if t < 0.0 { -1 } else { 1 };
            return (log_a + ln(t.abs()), sign_a * sign_t);
        }
    }
    rebuild(work);
    lu_in_place(work, n)
}

/// The checked `n * n`.
pub(crate) fn square(n: usize) -> Result<usize, SahdError> {
    n.checked_mul(n).ok_or(SahdError::Overflow)
}

fn all_finite(a: &[f64]) -> Result<(), SahdError> {
    if a.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(SahdError::NonFinite)
    }
}

/// `(ln |det A|, sign det A)` of the `n x n` row-major matrix in `a[..n*n]`, by LU with partial
/// pivoting in place (`a` is overwritten with the factors).
///
/// A singular matrix (an exactly-zero pivot) gives `Ok((-inf, 0))`, like numpy's `slogdet`; the
/// empty matrix (`n = 0`) gives `(0, 1)`. Errors: `a` shorter than `n * n`
/// ([`SahdError::BufferTooSmall`]), a NaN or infinite entry ([`SahdError::NonFinite`]).
pub fn ln_abs_det(a: &mut [f64], n: usize) -> Result<(f64, i8), SahdError> {
    let nn = square(n)?;
    let got = a.len();
    let a = a
        .get_mut(..nn)
        .ok_or(SahdError::BufferTooSmall { needed: nn, got })?;
    all_finite(a)?;
    Ok(lu_in_place(a, n))
}

/// `(ln |det(c J + A)|, sign)` for the `n x n` row-major `A` in `a[..n*n]` and `J` the all-ones
/// matrix, without ever adding `c` to the entries of `A`.
///
/// By the matrix determinant lemma, `det(A + c 1 1^T) = det(A) (1 + c 1^T A^{-1} 1)`: one LU of
/// `A` gives `det A` and, with the same factors, `x = A^{-1} 1`. When `c` is much larger than the
/// entries of `A` (the SAHD kernel: `c` is the code length, `A` is O(1)) this keeps every digit
/// of `A`, which the direct LU of the assembled `c J + A` loses (about `log10(c / |A|)` digits).
/// A tiny pivot of `A` is harmless here: it cancels between `det A` and `1 + c 1^T x`.
///
/// Fallback: when the LU of `A` meets an exactly-zero pivot (e.g. `n = 1` with `A = [0]`, or
/// identical rows), or `1 + c 1^T x` is zero or not finite, it returns the direct LU of
/// `c J + A` in f64 instead (exact-zero pivot there too gives `(-inf, 0)`).
///
/// `scratch` needs at least `n * n + n` elements; `a` is not modified. Errors: short `a` or
/// `scratch` ([`SahdError::BufferTooSmall`]), non-finite `c` or entry ([`SahdError::NonFinite`]).
pub fn ln_abs_det_rank_one(
    c: f64,
    a: &[f64],
    n: usize,
    scratch: &mut [f64],
) -> Result<(f64, i8), SahdError> {
    let nn = square(n)?;
    let a = a.get(..nn).ok_or(SahdError::BufferTooSmall {
        needed: nn,
        got: a.len(),
    })?;
    let need = nn.checked_add(n).ok_or(SahdError::Overflow)?;
    if scratch.len() < need {
        return Err(SahdError::BufferTooSmall {
            needed: need,
            got: scratch.len(),
        });
    }
    all_finite(a)?;
    if !c.is_finite() {
        return Err(SahdError::NonFinite);
    }
    let (work, x) = scratch.split_at_mut(nn);
    work.copy_from_slice(a);
    Ok(rank_one_core(c, work, &mut x[..n], n, |w| {
        for (wi, &ai) in w.iter_mut().zip(a) {
            *wi = c + ai;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// Distance in ulps between two finite f64 of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            return 0;
        }
        let (x, y) = (a.to_bits() as i64, b.to_bits() as i64);
        if (x < 0) != (y < 0) {
            // straddle zero: count both sides
            return (x & i64::MAX) as u64 + (y & i64::MAX) as u64;
        }
        x.abs_diff(y)
    }

    #[test]
    fn ln_specials() {
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(-0.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f64::NEG_INFINITY).is_nan());
        assert!(ln(f64::NAN).is_nan());
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(2.0), core::f64::consts::LN_2);
        assert_eq!(ln(f64::MAX), f64::MAX.ln());
        assert_eq!(ln(f64::MIN_POSITIVE), f64::MIN_POSITIVE.ln());
        let tiny = f64::from_bits(1);
        assert_eq!(ln(tiny), tiny.ln());
    }

    #[test]
    fn ln_matches_std() {
        let mut rng = SplitMix64::new(42);
        let mut max_ulps = 0u64;
        let mut max_rel = 0.0f64;
        let mut worst = 0.0;
        let mut check = |x: f64| {
            let (got, want) = (ln(x), x.ln());
            let u = ulps(got, want);
            if u > max_ulps {
                max_ulps = u;
                worst = x;
            }
            if want != 0.0 {
                max_rel = max_rel.max(((got - want) / want).abs());
            }
        };
        for _ in 0..400_000 {
            // any positive finite f64, normal or subnormal
            let x = f64::from_bits(rng.next_u64() >> 1);
            if x.is_finite() && x > 0.0 {
                check(x);
            }
        }
        for _ in 0..400_000 {
            // near 1, where ln is smallest relative to its argument
            let d = (rng.next_f64() - 0.5) * f64::powi(2.0, -((rng.next_u64() % 50) as i32));
            check(1.0 + d);
        }
        for _ in 0..200_000 {
            // the range of SAHD scores' factors
            check(rng.next_f64() * 1e7);
        }
        for k in 1..2000u64 {
            check(k as f64);
            check(1.0 / k as f64);
        }
        std::println!("ln vs std: max {max_ulps} ulp (at {worst:e}), max relative {max_rel:e}");
        assert!(max_ulps <= 1, "max {max_ulps} ulp at {worst:e}");
        assert!(max_rel <= 2.3e-16);
    }

    /// Reference: LU with complete pivoting and std's ln, on a copy.
    fn reference_slogdet(a: &[f64], n: usize) -> (f64, i8) {
        let mut m = a.to_vec();
        let mut sign = 1i8;
        let mut log = 0.0;
        let mut cols: Vec<usize> = (0..n).collect();
        for k in 0..n {
            let (mut pi, mut pj, mut best) = (k, k, -1.0);
            for i in k..n {
                for j in k..n {
                    let v = m[i * n + cols[j]].abs();
                    if v > best {
                        (pi, pj, best) = (i, j, v);
                    }
                }
            }
            if best == 0.0 {
                return (f64::NEG_INFINITY, 0);
            }
            if pi != k {
                for j in 0..n {
                    m.swap(k * n + j, pi * n + j);
                }
                sign = -sign;
            }
            if pj != k {
                cols.swap(k, pj);
                sign = -sign;
            }
            let piv = m[k * n + cols[k]];
            if piv < 0.0 {
                sign = -sign;
            }
            log += piv.abs().ln();
            for i in k + 1..n {
                let l = m[i * n + cols[k]] / piv;
                for j in k + 1..n {
                    m[i * n + cols[j]] -= l * m[k * n + cols[j]];
                }
            }
        }
        (log, sign)
    }

    fn closed_form(d: f64, b: f64, n: usize) -> (f64, i8) {
        // det((a-b) I + b J) = d^(n-1) (d + n b), d = a - b
        let last = d + n as f64 * b;
        if last == 0.0 || (d == 0.0 && n > 1) {
            return (f64::NEG_INFINITY, 0);
        }
        let head = if n == 1 {
            0.0
        } else {
            (n - 1) as f64 * d.abs().ln()
        };
        let log = head + last.abs().ln();
        let neg = (d < 0.0 && (n - 1) % 2 == 1) != (last < 0.0);
        (log, if neg { -1 } else { 1 })
    }

    fn diag(d: f64, n: usize) -> Vec<f64> {
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            a[i * n + i] = d;
        }
        a
    }

    #[test]
    fn closed_forms_both_routes() {
        let b = 131_072.0;
        for n in [1usize, 2, 5, 32] {
            for d in [-0.5, -0.25, 0.0, 0.1, 0.5, 1.0, 1.5, 2.0, 3.0] {
                let want = closed_form(d, b, n);
                let a = diag(d, n);
                let mut scratch = vec![0.0; n * n + n];
                let split = ln_abs_det_rank_one(b, &a, n, &mut scratch).unwrap();
                let mut k: Vec<f64> = a.iter().map(|&x| b + x).collect();
                let direct = ln_abs_det(&mut k, n).unwrap();
                assert_eq!(split.1, want.1, "n={n} d={d}");
                assert_eq!(direct.1, want.1, "n={n} d={d}");
                if want.1 == 0 {
                    assert_eq!(split.0, f64::NEG_INFINITY);
                    assert_eq!(direct.0, f64::NEG_INFINITY);
                } else {
                    let tol = 1e-13 * want.0.abs().max(1.0);
                    assert!(
                        (split.0 - want.0).abs() <= tol,
                        "n={n} d={d} {split:?} {want:?}"
                    );
                    // the direct route only keeps ~1e-9 here (b / |d| ~ 1e6)
                    assert!((direct.0 - want.0).abs() <= 1e-7, "n={n} d={d}");
                }
            }
        }
    }

    #[test]
    fn split_route_keeps_digits_the_direct_route_loses() {
        // c = 1e9, A = d I with d = 0.3: det(cJ + A) = d^(n-1) (d + n c).
        let (c, d, n) = (1e9, 0.3, 16);
        let want = closed_form(d, c, n);
        let a = diag(d, n);
        let mut scratch = vec![0.0; n * n + n];
        let split = ln_abs_det_rank_one(c, &a, n, &mut scratch).unwrap();
        let mut k: Vec<f64> = a.iter().map(|&x| c + x).collect();
        let direct = ln_abs_det(&mut k, n).unwrap();
        let (err_split, err_direct) = ((split.0 - want.0).abs(), (direct.0 - want.0).abs());
        std::println!("c=1e9: split error {err_split:e}, direct error {err_direct:e}");
        assert!(err_split <= 1e-13, "{err_split:e}");
        assert!(err_direct >= 1e-9, "{err_direct:e}");
        // Same with a random O(1) A against a reference that is exact by construction:
        // det(cJ + A) = det(A) (1 + c 1^T A^{-1} 1) with A = D diagonal.
        let mut rng = SplitMix64::new(7);
        let dd: Vec<f64> = (0..n).map(|_| 0.5 + rng.next_f64()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            a[i * n + i] = dd[i];
        }
        let want: f64 = dd.iter().map(|x| x.ln()).sum::<f64>()
            + (1.0 + c * dd.iter().map(|x| 1.0 / x).sum::<f64>()).ln();
        let split = ln_abs_det_rank_one(c, &a, n, &mut scratch).unwrap();
        let mut k: Vec<f64> = a.iter().map(|&x| c + x).collect();
        let direct = ln_abs_det(&mut k, n).unwrap();
        assert!((split.0 - want).abs() <= 1e-13);
        assert!((direct.0 - want).abs() >= 1e-9);
    }

    #[test]
    fn singular_and_degenerate() {
        let mut scratch = [0.0; 2];
        // n = 1, A = [0]: falls back to the direct route, det = c
        assert_eq!(
            ln_abs_det_rank_one(5.0, &[0.0], 1, &mut scratch).unwrap(),
            (5f64.ln(), 1)
        );
        assert_eq!(
            ln_abs_det_rank_one(-5.0, &[0.0], 1, &mut scratch).unwrap(),
            (5f64.ln(), -1)
        );
        let mut z = [0.0; 4];
        assert_eq!(ln_abs_det(&mut z, 2).unwrap(), (f64::NEG_INFINITY, 0));
        assert_eq!(ln_abs_det(&mut [], 0).unwrap(), (0.0, 1));
        let mut s6 = [0.0; 6];
        // A = [[1, 1], [1, 1]] and c = -1: c J + A = 0
        assert_eq!(
            ln_abs_det_rank_one(-1.0, &[1.0, 1.0, 1.0, 1.0], 2, &mut s6).unwrap(),
            (f64::NEG_INFINITY, 0)
        );
        // errors, no panics
        assert_eq!(
            ln_abs_det(&mut [1.0; 3], 2),
            Err(SahdError::BufferTooSmall { needed: 4, got: 3 })
        );
        assert_eq!(ln_abs_det(&mut [f64::NAN; 4], 2), Err(SahdError::NonFinite));
        assert!(ln_abs_det_rank_one(1.0, &[1.0; 4], 2, &mut [0.0; 5]).is_err());
        assert!(ln_abs_det_rank_one(f64::NAN, &[1.0; 4], 2, &mut s6).is_err());
        assert_eq!(ln_abs_det(&mut [], usize::MAX), Err(SahdError::Overflow));
    }

    #[test]
    fn nearly_singular_a_is_fine() {
        // A has rank n-1 mathematically (last row = sum of the others, rounded), c J + A does not.
        let mut rng = SplitMix64::new(3);
        for n in [3usize, 6, 12] {
            let mut a = vec![0.0; n * n];
            for i in 0..n - 1 {
                for j in 0..n {
                    a[i * n + j] = rng.next_f64() - 0.5;
                }
            }
            for j in 0..n {
                a[(n - 1) * n + j] = (0..n - 1).map(|i| a[i * n + j]).sum();
            }
            let c = 1.0;
            let mut scratch = vec![0.0; n * n + n];
            let split = ln_abs_det_rank_one(c, &a, n, &mut scratch).unwrap();
            let k: Vec<f64> = a.iter().map(|&x| c + x).collect();
            let want = reference_slogdet(&k, n);
            assert_eq!(split.1, want.1);
            assert!((split.0 - want.0).abs() <= 1e-9, "{split:?} {want:?}");
        }
    }

    proptest! {
        #[test]
        fn random_matrices_match_reference(n in 1usize..20, seed in any::<u64>(), c in -10.0f64..10.0) {
            let mut rng = SplitMix64::new(seed);
            let a: Vec<f64> = (0..n * n).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
            let want = reference_slogdet(&a, n);
            let got = ln_abs_det(&mut a.clone(), n).unwrap();
            prop_assert_eq!(got.1, want.1);
            prop_assert!((got.0 - want.0).abs() <= 1e-10 * want.0.abs().max(1.0));
            // rank-one route vs direct on the assembled matrix (c small: direct is accurate)
            let k: Vec<f64> = a.iter().map(|&x| c + x).collect();
            let want = reference_slogdet(&k, n);
            let mut scratch = vec![0.0; n * n + n];
            let got = ln_abs_det_rank_one(c, &a, n, &mut scratch).unwrap();
            prop_assert_eq!(got.1, want.1);
            prop_assert!((got.0 - want.0).abs() <= 1e-8 * want.0.abs().max(1.0), "{:?} {:?}", got, want);
        }
    }
}
