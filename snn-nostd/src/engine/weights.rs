//! Weight element access, monomorphised for `i8` and little-endian `i16` weights.

/// Weight element access, monomorphised for `i8` and little-endian `i16`.
pub(super) trait Wt {
    const BYTES: usize;
    fn at(w: &[u8], i: usize) -> i32;
    /// `acc[o] += col[o]`, saturating (the reference's adds).
    fn add_col(acc: &mut [i32], col: &[u8]);
    /// `acc[o] += col[o]`, wrapping (only where no sum can leave the `i32` range).
    fn add_col_wrapping(acc: &mut [i32], col: &[u8]);
}

pub(super) struct W8;
pub(super) struct W16;

impl Wt for W8 {
    const BYTES: usize = 1;
    #[inline]
    fn at(w: &[u8], i: usize) -> i32 {
        w[i] as i8 as i32
    }
    #[inline]
    fn add_col(acc: &mut [i32], col: &[u8]) {
        for (a, &b) in acc.iter_mut().zip(col) {
            *a = a.saturating_add(b as i8 as i32);
        }
    }
    #[inline(always)]
    fn add_col_wrapping(acc: &mut [i32], col: &[u8]) {
        for (a, &b) in acc.iter_mut().zip(col) {
            *a = a.wrapping_add(b as i8 as i32);
        }
    }
}

impl Wt for W16 {
    const BYTES: usize = 2;
    #[inline]
    fn at(w: &[u8], i: usize) -> i32 {
        i16::from_le_bytes([w[2 * i], w[2 * i + 1]]) as i32
    }
    #[inline]
    fn add_col(acc: &mut [i32], col: &[u8]) {
        for (a, b) in acc.iter_mut().zip(col.chunks_exact(2)) {
            #[cfg(target_endian = "little")]
            // SAFETY: `b` is two readable bytes; one (possibly unaligned) halfword load, which
            // is their little-endian `i16` here (the compiler would load and merge two bytes).
            let w = unsafe { b.as_ptr().cast::<i16>().read_unaligned() };
            #[cfg(not(target_endian = "little"))]
            let w = i16::from_le_bytes([b[0], b[1]]);
            *a = a.saturating_add(w as i32);
        }
    }
    /// Two weights per 32-bit load: the low one sign-extended and added (`SXTAH`), the high one
    /// added arithmetic-shifted (`ADD ..., ASR #16`).
    #[inline(always)]
    fn add_col_wrapping(acc: &mut [i32], col: &[u8]) {
        let mut quads = acc.chunks_exact_mut(4);
        let mut wq = col.chunks_exact(8);
        for (a, w) in (&mut quads).zip(&mut wq) {
            if let (Ok(a), Ok(w)) = (a.try_into(), w.try_into()) {
                crate::simd::add_i16x4(a, w);
            }
        }
        for (a, w) in quads
            .into_remainder()
            .chunks_exact_mut(2)
            .zip(wq.remainder().chunks_exact(4))
        {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            a[0] = crate::simd::sxtah(a[0], w);
            a[1] = crate::simd::add_asr16(a[1], w);
        }
    }
}
