//! All-pairs Hamming distances of a batch of bit-packed codes: the inner loop of the SAHD kernel
//! (docs/design.md, "The SAHD score"), tiled for the L1 cache and dispatched on the CPU's popcount
//! instructions.
//!
//! For `N` codes of `W` words the kernel needs `N (N - 1) / 2` Hamming distances. Computed pair
//! by pair, every pair streams both codes from L2 (for the host's 32 codes of 131,072 bits that
//! is 16 MiB of reads over 512 KiB of codes). Here the words are cut into tiles small enough that
//! the tile of all `N` codes stays in L1 (about 16 KiB), every pair is counted on the tile, and
//! each code row is read once per four partners (register blocking), so L2 sees each code once.
//!
//! Three implementations ([`PairKernel`]), chosen at run time when the `std` feature is on
//! (otherwise from the compile-time target features):
//! - [`PairKernel::Avx512`]: AVX-512F + VPOPCNTDQ, one `vpopcntq` per 8 words (x86_64);
//! - [`PairKernel::Avx2`]: the portable Harley-Seal counter compiled for AVX2 + POPCNT (x86_64);
//! - [`PairKernel::Portable`]: the same counter for the baseline target (any CPU, the firmware).
//!
//! All three give identical counts (tested); only the speed differs.

use crate::bits::{ones_count, xor_count};
use crate::error::SahdError;
use core::sync::atomic::{AtomicU8, Ordering};

/// Bytes of codes (all rows) per tile: half of a typical 32-48 KiB L1 data cache.
const TILE_BYTES: usize = 16 * 1024;

/// Bytes of codes per tile for the 4x4 AVX-512 kernel: half of a typical 1 MiB L2.
const L2_TILE_BYTES: usize = 512 * 1024;

/// An implementation of the all-pairs count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairKernel {
    /// Harley-Seal carry-save counting in plain Rust for the build target (no target features).
    Portable,
    /// The Harley-Seal counter compiled with AVX2 and POPCNT enabled.
    Avx2,
    /// AVX-512F with the VPOPCNTDQ extension: XOR and population count on 512-bit vectors.
    Avx512,
}

impl PairKernel {
    /// Every implementation, slowest first.
    pub const ALL: [PairKernel; 3] = [PairKernel::Portable, PairKernel::Avx2, PairKernel::Avx512];

    /// A short name for reports: `portable`, `avx2` or `avx512-vpopcntdq`.
    pub fn name(self) -> &'static str {
        match self {
            PairKernel::Portable => "portable",
            PairKernel::Avx2 => "avx2",
            PairKernel::Avx512 => "avx512-vpopcntdq",
        }
    }

    /// Whether this CPU runs the implementation (detected at run time with the `std` feature,
    /// otherwise read from the compile-time target features).
    pub fn available(self) -> bool {
        match self {
            PairKernel::Portable => true,
            PairKernel::Avx2 => has_avx2(),
            PairKernel::Avx512 => has_avx512(),
        }
    }

    /// The fastest implementation this CPU runs: the last available one of [`Self::ALL`]
    /// (detected once, then cached as its index).
    pub fn best() -> PairKernel {
        static BEST: AtomicU8 = AtomicU8::new(u8::MAX);
        if let Some(&k) = Self::ALL.get(usize::from(BEST.load(Ordering::Relaxed))) {
            return k;
        }
        let i = Self::ALL.iter().rposition(|k| k.available()).unwrap_or(0);
        BEST.store(i as u8, Ordering::Relaxed);
        Self::ALL[i]
    }
}

#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt")
}

#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vpopcntdq")
}

#[cfg(not(all(target_arch = "x86_64", any(test, feature = "std"))))]
fn has_avx2() -> bool {
    cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "popcnt"
    ))
}

#[cfg(not(all(target_arch = "x86_64", any(test, feature = "std"))))]
fn has_avx512() -> bool {
    cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512vpopcntdq"
    ))
}

/// Words per tile for `rows` codes: a multiple of 8 (one 512-bit vector), at least 8. The
/// one-row kernels keep the tile of all rows in L1; the 4x4 AVX-512 kernel re-reads each row
/// only once per four partners, so its tile only has to stay in L2.
fn tile_words(kernel: PairKernel, rows: usize) -> usize {
    let bytes = match kernel {
        PairKernel::Avx512 => L2_TILE_BYTES,
        _ => TILE_BYTES,
    };
    ((bytes / 8 / rows.max(1)) / 8 * 8).max(8)
}

/// Calls `add(i, j, d)` for every pair `i < j` of the `rows` codes with partial Hamming
/// distances `d` whose sum over the calls of a pair is the pair's distance. Code `i` is
/// `codes[i * stride..i * stride + words]`. Uses [`PairKernel::best`].
///
/// Errors: `stride < words`, or `codes` shorter than `rows * stride` (nothing is called).
pub fn for_each_pair(
    codes: &[u64],
    rows: usize,
    stride: usize,
    words: usize,
    add: impl FnMut(usize, usize, u32),
) -> Result<(), SahdError> {
    for_each_pair_with(PairKernel::best(), codes, rows, stride, words, add)
}

/// [`for_each_pair`] with a chosen implementation; a kernel this CPU lacks
/// ([`PairKernel::available`] false) runs the portable one instead.
pub fn for_each_pair_with(
    kernel: PairKernel,
    codes: &[u64],
    rows: usize,
    stride: usize,
    words: usize,
    mut add: impl FnMut(usize, usize, u32),
) -> Result<(), SahdError> {
    if stride < words {
        return Err(SahdError::TooFewWords {
            needed: words,
            got: stride,
        });
    }
    let needed = rows.checked_mul(stride).ok_or(SahdError::Overflow)?;
    if codes.len() < needed {
        return Err(SahdError::BufferTooSmall {
            needed,
            got: codes.len(),
        });
    }
    if rows < 2 || words == 0 {
        return Ok(());
    }
    let kernel = if kernel.available() {
        kernel
    } else {
        PairKernel::Portable
    };
    let tile = tile_words(kernel, rows);
    let mut w0 = 0;
    while w0 < words {
        let len = tile.min(words - w0);
        let row = |i: usize| &codes[i * stride + w0..i * stride + w0 + len];
        if kernel == PairKernel::Avx512 {
            blocked_4x4(rows, row, &mut add);
        } else {
            one_by_four(kernel, rows, row, &mut add);
        }
        w0 += len;
    }
    Ok(())
}

/// Every pair on one tile, row `i` against four partners at a time.
#[inline]
fn one_by_four<'c>(
    kernel: PairKernel,
    rows: usize,
    row: impl Fn(usize) -> &'c [u64],
    add: &mut impl FnMut(usize, usize, u32),
) {
    for i in 0..rows {
        let a = row(i);
        let mut j = i + 1;
        while j + 4 <= rows {
            let d = count4(kernel, a, [row(j), row(j + 1), row(j + 2), row(j + 3)]);
            for (q, &dq) in d.iter().enumerate() {
                add(i, j + q, dq as u32);
            }
            j += 4;
        }
        for j in j..rows {
            add(i, j, count1(kernel, a, row(j)) as u32);
        }
    }
}

/// Every pair on one tile with AVX-512, four rows against four rows at a time (16 pairs per
/// pass over 8 codes); pairs inside a block of four and the rows past the last full block go
/// through the one-row kernel.
#[cfg(target_arch = "x86_64")]
#[inline]
fn blocked_4x4<'c>(
    rows: usize,
    row: impl Fn(usize) -> &'c [u64],
    add: &mut impl FnMut(usize, usize, u32),
) {
    let kernel = PairKernel::Avx512;
    let full = rows / 4 * 4;
    let quad = |b: usize| [row(b), row(b + 1), row(b + 2), row(b + 3)];
    for ib in (0..full).step_by(4) {
        for i in ib..ib + 4 {
            for j in i + 1..ib + 4 {
                add(i, j, count1(kernel, row(i), row(j)) as u32);
            }
        }
        for jb in (ib + 4..full).step_by(4) {
            // SAFETY: only reached for `PairKernel::Avx512`, which `available()` confirmed.
            let d = unsafe { x86::count4x4_avx512(quad(ib), quad(jb)) };
            for (r, dr) in d.iter().enumerate() {
                for (q, &x) in dr.iter().enumerate() {
                    add(ib + r, jb + q, x as u32);
                }
            }
        }
        for j in full..rows {
            // Row j (past the blocks) against the four rows of this block.
            let d = count4(kernel, row(j), quad(ib));
            for (r, &x) in d.iter().enumerate() {
                add(ib + r, j, x as u32);
            }
        }
    }
    for i in full..rows {
        for j in i + 1..rows {
            add(i, j, count1(kernel, row(i), row(j)) as u32);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn blocked_4x4<'c>(
    rows: usize,
    row: impl Fn(usize) -> &'c [u64],
    add: &mut impl FnMut(usize, usize, u32),
) {
    one_by_four(PairKernel::Portable, rows, row, add)
}

/// Number of set bits of `code`, with [`PairKernel::best`] (the same count as
/// [`bits::popcount`](crate::bits::popcount), faster on AVX2 / AVX-512 CPUs).
pub fn popcount(code: &[u64]) -> u64 {
    match PairKernel::best() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `best()` only returns kernels this CPU runs.
        PairKernel::Avx512 => unsafe { x86::popcount_avx512(code) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        PairKernel::Avx2 => unsafe { x86::popcount_avx2(code) },
        _ => ones_count(code),
    }
}

/// Hamming distances of `a` to each of four codes of `a`'s length.
#[inline]
fn count4(kernel: PairKernel, a: &[u64], b: [&[u64]; 4]) -> [u64; 4] {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `for_each_pair_with` only passes kernels that `available()` confirmed.
        PairKernel::Avx512 => unsafe { x86::count4_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        PairKernel::Avx2 => unsafe { x86::count4_avx2(a, b) },
        _ => b.map(|b| xor_count(a, b)),
    }
}

/// Hamming distance of two codes of equal length.
#[inline]
fn count1(kernel: PairKernel, a: &[u64], b: &[u64]) -> u64 {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `for_each_pair_with` only passes kernels that `available()` confirmed.
        PairKernel::Avx512 => unsafe { x86::count1_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        PairKernel::Avx2 => unsafe { x86::count1_avx2(a, b) },
        _ => xor_count(a, b),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::bits::{ones_count, xor_count};
    use core::arch::x86_64::*;

    /// The portable counter compiled for AVX2 + POPCNT.
    ///
    /// # Safety
    /// The CPU must support AVX2 and POPCNT.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn count4_avx2(a: &[u64], b: [&[u64]; 4]) -> [u64; 4] {
        [
            xor_count(a, b[0]),
            xor_count(a, b[1]),
            xor_count(a, b[2]),
            xor_count(a, b[3]),
        ]
    }

    /// The portable Hamming distance compiled for AVX2 + POPCNT.
    ///
    /// # Safety
    /// The CPU must support AVX2 and POPCNT.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn count1_avx2(a: &[u64], b: &[u64]) -> u64 {
        xor_count(a, b)
    }

    /// The portable population count compiled for AVX2 + POPCNT.
    ///
    /// # Safety
    /// The CPU must support AVX2 and POPCNT.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn popcount_avx2(a: &[u64]) -> u64 {
        ones_count(a)
    }

    /// Population count with `vpopcntq`, 8 words at a time (masked tail).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VPOPCNTDQ.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(super) unsafe fn popcount_avx512(a: &[u64]) -> u64 {
        // SAFETY: same CPU requirements; `b` is `a` and is not read.
        unsafe { count1_masked::<false>(a, a) }
    }

    /// One Hamming distance, `vpopcntq` on 8 words at a time (masked tail).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VPOPCNTDQ; `b` must be at least as long as
    /// `a`.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(super) unsafe fn count1_avx512(a: &[u64], b: &[u64]) -> u64 {
        // SAFETY: the caller's guarantees.
        unsafe { count1_masked::<true>(a, b) }
    }

    /// Population count of `a ^ b` (`XOR`) or of `a` alone (`b` unread), 8 words at a time
    /// with a masked tail.
    ///
    /// # Safety
    /// As [`count1_avx512`].
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    unsafe fn count1_masked<const XOR: bool>(a: &[u64], b: &[u64]) -> u64 {
        debug_assert!(b.len() >= a.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm512_setzero_si512();
        let mut k = 0;
        while k < a.len() {
            let m: __mmask8 = if a.len() - k >= 8 {
                0xff
            } else {
                (1u8 << (a.len() - k)) - 1
            };
            // SAFETY: masked-off lanes are not read; the unmasked ones are in bounds.
            let mut v = unsafe { _mm512_maskz_loadu_epi64(m, pa.add(k).cast()) };
            if XOR {
                // SAFETY: as above, `b` is at least as long as `a`.
                let vb = unsafe { _mm512_maskz_loadu_epi64(m, pb.add(k).cast()) };
                v = _mm512_xor_si512(v, vb);
            }
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(v));
            k += 8;
        }
        _mm512_reduce_add_epi64(acc) as u64
    }

    /// The 16 Hamming distances of four codes `a` to four codes `b` (all of `a[0]`'s length):
    /// per 8 words, 8 vector loads feed 16 XOR + `vpopcntq` + add, in 16 accumulators.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VPOPCNTDQ; every slice must be at least as
    /// long as `a[0]`.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(super) unsafe fn count4x4_avx512(a: [&[u64]; 4], b: [&[u64]; 4]) -> [[u64; 4]; 4] {
        let len = a[0].len();
        debug_assert!(a.iter().chain(&b).all(|x| x.len() >= len));
        let pa = a.map(|x| x.as_ptr());
        let pb = b.map(|x| x.as_ptr());
        let mut acc = [[_mm512_setzero_si512(); 4]; 4];
        let mut k = 0;
        while k + 8 <= len {
            // (Plain loops, not `array::map`: closures do not inherit the target features, so
            // they would not inline.)
            let mut va = [_mm512_setzero_si512(); 4];
            let mut vb = [_mm512_setzero_si512(); 4];
            for q in 0..4 {
                // SAFETY: k + 8 <= len and every slice has at least len words.
                unsafe {
                    va[q] = _mm512_loadu_si512(pa[q].add(k).cast());
                    vb[q] = _mm512_loadu_si512(pb[q].add(k).cast());
                }
            }
            for r in 0..4 {
                for q in 0..4 {
                    let x = _mm512_popcnt_epi64(_mm512_xor_si512(va[r], vb[q]));
                    acc[r][q] = _mm512_add_epi64(acc[r][q], x);
                }
            }
            k += 8;
        }
        if k < len {
            let m: __mmask8 = (1u8 << (len - k)) - 1;
            let mut va = [_mm512_setzero_si512(); 4];
            let mut vb = [_mm512_setzero_si512(); 4];
            for q in 0..4 {
                // SAFETY: masked-off lanes are not read; the unmasked ones are in bounds.
                unsafe {
                    va[q] = _mm512_maskz_loadu_epi64(m, pa[q].add(k).cast());
                    vb[q] = _mm512_maskz_loadu_epi64(m, pb[q].add(k).cast());
                }
            }
            for r in 0..4 {
                for q in 0..4 {
                    let x = _mm512_popcnt_epi64(_mm512_xor_si512(va[r], vb[q]));
                    acc[r][q] = _mm512_add_epi64(acc[r][q], x);
                }
            }
        }
        let mut out = [[0u64; 4]; 4];
        for r in 0..4 {
            for q in 0..4 {
                out[r][q] = _mm512_reduce_add_epi64(acc[r][q]) as u64;
            }
        }
        out
    }

    /// Four Hamming distances from `a`: each vector of `a` is loaded once and XORed with the
    /// four partners; `vpopcntq` counts 8 words at a time into four accumulators. The tail
    /// (fewer than 8 words) uses masked loads, which read nothing past the slice.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VPOPCNTDQ; every `b[q]` must be at least as
    /// long as `a`.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(super) unsafe fn count4_avx512(a: &[u64], b: [&[u64]; 4]) -> [u64; 4] {
        let len = a.len();
        debug_assert!(b.iter().all(|x| x.len() >= len));
        let pa = a.as_ptr();
        let pb = b.map(|x| x.as_ptr());
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut k = 0;
        while k + 8 <= len {
            // SAFETY: k + 8 <= len, and each b[q] has at least len words.
            let va = unsafe { _mm512_loadu_si512(pa.add(k).cast()) };
            for q in 0..4 {
                let vb = unsafe { _mm512_loadu_si512(pb[q].add(k).cast()) };
                acc[q] = _mm512_add_epi64(acc[q], _mm512_popcnt_epi64(_mm512_xor_si512(va, vb)));
            }
            k += 8;
        }
        if k < len {
            let m: __mmask8 = (1u8 << (len - k)) - 1;
            // SAFETY: masked-off lanes are not read; the unmasked ones are in bounds.
            let va = unsafe { _mm512_maskz_loadu_epi64(m, pa.add(k).cast()) };
            for q in 0..4 {
                let vb = unsafe { _mm512_maskz_loadu_epi64(m, pb[q].add(k).cast()) };
                acc[q] = _mm512_add_epi64(acc[q], _mm512_popcnt_epi64(_mm512_xor_si512(va, vb)));
            }
        }
        let mut out = [0u64; 4];
        for q in 0..4 {
            out[q] = _mm512_reduce_add_epi64(acc[q]) as u64;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::hamming;
    use std::vec;
    use std::vec::Vec;

    fn random_codes(rows: usize, stride: usize, words: usize, seed: u64) -> Vec<u64> {
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut v = vec![0u64; rows * stride];
        for r in 0..rows {
            for w in 0..words {
                // Sparse and dense words mixed, like spike codes at different rates.
                v[r * stride + w] = if w % 3 == 0 { next() } else { next() & next() };
            }
        }
        v
    }

    fn all_pairs(
        kernel: PairKernel,
        codes: &[u64],
        rows: usize,
        stride: usize,
        words: usize,
    ) -> Vec<u64> {
        let mut d = vec![0u64; rows * rows];
        for_each_pair_with(kernel, codes, rows, stride, words, |i, j, x| {
            assert!(i < j && j < rows);
            d[i * rows + j] += u64::from(x);
        })
        .unwrap();
        d
    }

    #[test]
    fn every_kernel_matches_pairwise_hamming() {
        // Row counts around the 4-blocking, word counts around vector and tile boundaries.
        for &(rows, words) in &[
            (2, 1),
            (3, 7),
            (5, 8),
            (6, 9),
            (9, 130),
            (32, 2048),
            (33, 517),
            (300, 3),
        ] {
            let stride = words + (rows % 3);
            let codes = random_codes(rows, stride, words, (rows * 1000 + words) as u64);
            let mut want = vec![0u64; rows * rows];
            for i in 0..rows {
                for j in i + 1..rows {
                    let a = &codes[i * stride..i * stride + words];
                    let b = &codes[j * stride..j * stride + words];
                    want[i * rows + j] = u64::from(hamming(a, b));
                }
            }
            for k in PairKernel::ALL.into_iter().filter(|k| k.available()) {
                let got = all_pairs(k, &codes, rows, stride, words);
                assert_eq!(got, want, "{} rows {rows} words {words}", k.name());
            }
        }
    }

    #[test]
    fn popcount_matches_bits() {
        for words in [0, 1, 7, 8, 9, 64, 2048, 2051] {
            let codes = random_codes(1, words, words, words as u64 + 3);
            assert_eq!(
                popcount(&codes),
                u64::from(crate::bits::popcount(&codes)),
                "{words} words"
            );
        }
    }

    #[test]
    fn layout_errors_and_trivial_sizes() {
        let codes = vec![0u64; 10];
        let never = |_: usize, _: usize, _: u32| panic!("no pair expected");
        assert_eq!(
            for_each_pair(&codes, 2, 4, 5, never),
            Err(SahdError::TooFewWords { needed: 5, got: 4 })
        );
        assert_eq!(
            for_each_pair(&codes, 3, 4, 4, never),
            Err(SahdError::BufferTooSmall {
                needed: 12,
                got: 10
            })
        );
        assert_eq!(for_each_pair(&codes, 1, 4, 4, never), Ok(()));
        assert_eq!(for_each_pair(&codes, 2, 5, 0, never), Ok(()));
    }

    #[test]
    fn kernels_tested_here() {
        let names: Vec<&str> = PairKernel::ALL
            .iter()
            .filter(|k| k.available())
            .map(|k| k.name())
            .collect();
        std::eprintln!("pair kernels this CPU runs (each checked above): {names:?}");
        assert!(names.contains(&"portable"));
    }

    #[test]
    fn best_is_available_and_stable() {
        let b = PairKernel::best();
        assert!(b.available());
        assert_eq!(PairKernel::best(), b);
        assert!(PairKernel::Portable.available());
    }
}
