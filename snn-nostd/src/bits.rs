//! Bit-packed spike codes (docs/design.md, "The SAHD score").
//!
//! A code of `n` bits is stored in [`words_for`]`(n)` `u64` words, least significant bit first:
//! bit `k` of the code is bit `k % 64` of word `k / 64`. The unused high bits of the last word are
//! always 0; every function here writes them as 0 and [`popcount`] / [`hamming`] rely on it.
//!
//! Several codes of equal length (one per sample of a batch) are stored row after row, each row
//! taking `words_for(n)` words ([`pack_rows_f32`], [`pack_rows_u8`]).
//!
//! The packing and counting loops are written for the host's hot path (32 codes of 262,144 bits
//! per LIF layer and timestep) and stay portable (no `unsafe`, no target features): 64 values
//! become 64 bytes 0/1 by a vectorised compare and then one word by a multiply-gather, without
//! branches; [`hamming`] and [`popcount`] use Harley-Seal carry-save adders on four lanes, which
//! LLVM maps onto SSE2 on the baseline x86_64 target (no `popcnt` needed). On the build machine
//! (x86_64, no `-C target-cpu`): Hamming distance of two 131,072-bit codes about 1.7-2.4 us;
//! packing 32 x 262,144 floats about 3.6 ms (bytes: 1.6 ms); measured by
//! `lightsnn bench search`. The SAHD kernel's all-pairs loop does not call [`hamming`] pair by
//! pair: [`crate::pairwise`] tiles it and dispatches to AVX2 or AVX-512 where the CPU has them.

use crate::error::SahdError;

/// Number of `u64` words that hold a code of `n_bits` bits.
pub const fn words_for(n_bits: usize) -> usize {
    n_bits.div_ceil(64)
}

/// Gathers eight bytes that are each 0 or 1 (little-endian in `v`) into 8 bits: the bit of byte
/// `k` (at `8k`) moves to `56 + k`; the partial products never overlap, so nothing carries.
#[inline(always)]
fn gather8(v: u64) -> u64 {
    v.wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Gathers 64 bytes that are each 0 or 1 into one word: byte `j` becomes bit `j` (LSB-first,
/// the layout of every spike code).
///
/// ```
/// let mut b = [0u8; 64];
/// (b[0], b[5], b[63]) = (1, 1, 1);
/// assert_eq!(snn_nostd::bits::gather64(&b), 1 | 1 << 5 | 1 << 63);
/// ```
#[inline(always)]
pub fn gather64(b: &[u8; 64]) -> u64 {
    let mut w = 0u64;
    for (k, c) in b.chunks_exact(8).enumerate() {
        let mut v = [0u8; 8];
        v.copy_from_slice(c);
        w |= gather8(u64::from_le_bytes(v)) << (8 * k);
    }
    w
}

/// Packs up to 64 floats into one word: bit `j` is `chunk[j] > 0.5`. A full chunk compares
/// into 0/1 bytes (vectorised) and gathers them eight at a time.
#[inline(always)]
fn word_f32(chunk: &[f32]) -> u64 {
    if let Ok(c) = <&[f32; 64]>::try_from(chunk) {
        let mut b = [0u8; 64];
        for (o, &x) in b.iter_mut().zip(c) {
            *o = (x > 0.5) as u8;
        }
        return gather64(&b);
    }
    let mut w = 0u64;
    for (j, &x) in chunk.iter().enumerate() {
        w |= ((x > 0.5) as u64) << j;
    }
    w
}

/// Packs up to 64 bytes into one word: bit `j` is `chunk[j] != 0`.
#[inline(always)]
fn word_u8(chunk: &[u8]) -> u64 {
    if let Ok(c) = <&[u8; 64]>::try_from(chunk) {
        let mut b = [0u8; 64];
        for (o, &x) in b.iter_mut().zip(c) {
            *o = (x != 0) as u8;
        }
        return gather64(&b);
    }
    let mut w = 0u64;
    for (j, &x) in chunk.iter().enumerate() {
        w |= ((x != 0) as u64) << j;
    }
    w
}

fn check_out(needed: usize, got: usize) -> Result<(), SahdError> {
    if got < needed {
        Err(SahdError::BufferTooSmall { needed, got })
    } else {
        Ok(())
    }
}

/// Packs one code of 0/1 spikes given as floats: bit `k` is `spikes[k] > 0.5`.
///
/// Writes the first [`words_for`]`(spikes.len())` words of `out` (the rest is left untouched) and
/// returns that number. Errors with [`SahdError::BufferTooSmall`] if `out` is shorter.
pub fn pack_f32(spikes: &[f32], out: &mut [u64]) -> Result<usize, SahdError> {
    let words = words_for(spikes.len());
    check_out(words, out.len())?;
    for (w, c) in out.iter_mut().zip(spikes.chunks(64)) {
        *w = word_f32(c);
    }
    Ok(words)
}

/// Packs one code of spikes given as bytes: bit `k` is `spikes[k] != 0`.
///
/// Writes the first [`words_for`]`(spikes.len())` words of `out` and returns that number.
/// Errors with [`SahdError::BufferTooSmall`] if `out` is shorter.
pub fn pack_u8(spikes: &[u8], out: &mut [u64]) -> Result<usize, SahdError> {
    let words = words_for(spikes.len());
    check_out(words, out.len())?;
    for (w, c) in out.iter_mut().zip(spikes.chunks(64)) {
        *w = word_u8(c);
    }
    Ok(words)
}

/// Shared checks of the row packers: returns (bits per row, words per row).
fn rows_layout(len: usize, rows: usize, out_len: usize) -> Result<(usize, usize), SahdError> {
    if rows == 0 {
        return if len == 0 {
            Ok((0, 0))
        } else {
            Err(SahdError::LengthMismatch {
                expected: 0,
                found: len,
            })
        };
    }
    let n_bits = len / rows;
    if n_bits * rows != len {
        return Err(SahdError::LengthMismatch {
            expected: (n_bits + 1) * rows,
            found: len,
        });
    }
    let wpc = words_for(n_bits);
    check_out(rows * wpc, out_len)?;
    Ok((n_bits, wpc))
}

/// Packs `rows` codes of equal length stored one after the other in `spikes` (row-major, e.g. a
/// `[N, C, H, W]` spike tensor with `rows = N`); bit = value `> 0.5`.
///
/// Row `i` goes to `out[i * wpc .. (i + 1) * wpc]` with `wpc = words_for(spikes.len() / rows)`;
/// returns `wpc`. Errors if `spikes.len()` is not a multiple of `rows`
/// ([`SahdError::LengthMismatch`]) or `out` holds fewer than `rows * wpc` words.
pub fn pack_rows_f32(spikes: &[f32], rows: usize, out: &mut [u64]) -> Result<usize, SahdError> {
    let (n_bits, wpc) = rows_layout(spikes.len(), rows, out.len())?;
    if wpc == 0 {
        return Ok(0);
    }
    for (row, o) in spikes.chunks_exact(n_bits).zip(out.chunks_exact_mut(wpc)) {
        pack_f32(row, o)?;
    }
    Ok(wpc)
}

/// Like [`pack_rows_f32`] for byte spikes (bit = value `!= 0`).
pub fn pack_rows_u8(spikes: &[u8], rows: usize, out: &mut [u64]) -> Result<usize, SahdError> {
    let (n_bits, wpc) = rows_layout(spikes.len(), rows, out.len())?;
    if wpc == 0 {
        return Ok(0);
    }
    for (row, o) in spikes.chunks_exact(n_bits).zip(out.chunks_exact_mut(wpc)) {
        pack_u8(row, o)?;
    }
    Ok(wpc)
}

/// Unpacks the first `out.len()` bits of `code` into bytes 0/1 (bits past the end of `code` read
/// as 0).
pub fn unpack_u8(code: &[u64], out: &mut [u8]) {
    for (k, o) in out.iter_mut().enumerate() {
        *o = get(code, k) as u8;
    }
}

/// Four lanes of words, so that LLVM maps the carry-save adders onto SIMD registers.
type Lanes = [u64; 4];

/// Carry-save adder on four lanes: returns (carry, sum) of `a + b + c` bitwise.
#[inline(always)]
fn csa(a: Lanes, b: Lanes, c: Lanes) -> (Lanes, Lanes) {
    let mut hi = [0; 4];
    let mut lo = [0; 4];
    for k in 0..4 {
        let u = a[k] ^ b[k];
        hi[k] = (a[k] & b[k]) | (u & c[k]);
        lo[k] = u ^ c[k];
    }
    (hi, lo)
}

#[inline(always)]
fn lanes_pop(v: Lanes) -> u64 {
    v.iter().map(|x| u64::from(x.count_ones())).sum()
}

/// Population count of `op(a[i], b[i])` over `i < min(a.len(), b.len())`: Harley-Seal
/// carry-save adders over blocks of 64 words in four lanes (one population count per 16 words
/// and lane), then four plain accumulators for the tail.
#[inline(always)]
fn count_words(a: &[u64], b: &[u64], op: impl Fn(u64, u64) -> u64) -> u64 {
    let z = [0u64; 4];
    let (mut ones, mut twos, mut fours, mut eights) = (z, z, z, z);
    let mut sixteens_total = [0u64; 4];
    let mut ba = a.chunks_exact(64);
    let mut bb = b.chunks_exact(64);
    for (x, y) in (&mut ba).zip(&mut bb) {
        let (Ok(x), Ok(y)) = (<&[u64; 64]>::try_from(x), <&[u64; 64]>::try_from(y)) else {
            continue; // unreachable: chunks_exact(64)
        };
        let d = |k: usize| -> Lanes {
            let i = 4 * k;
            [
                op(x[i], y[i]),
                op(x[i + 1], y[i + 1]),
                op(x[i + 2], y[i + 2]),
                op(x[i + 3], y[i + 3]),
            ]
        };
        let (twos_a, o) = csa(ones, d(0), d(1));
        let (twos_b, o) = csa(o, d(2), d(3));
        let (fours_a, t) = csa(twos, twos_a, twos_b);
        let (twos_a, o) = csa(o, d(4), d(5));
        let (twos_b, o) = csa(o, d(6), d(7));
        let (fours_b, t) = csa(t, twos_a, twos_b);
        let (eights_a, f) = csa(fours, fours_a, fours_b);
        let (twos_a, o) = csa(o, d(8), d(9));
        let (twos_b, o) = csa(o, d(10), d(11));
        let (fours_a, t) = csa(t, twos_a, twos_b);
        let (twos_a, o) = csa(o, d(12), d(13));
        let (twos_b, o) = csa(o, d(14), d(15));
        let (fours_b, t) = csa(t, twos_a, twos_b);
        let (eights_b, f) = csa(f, fours_a, fours_b);
        let (sixteens, e) = csa(eights, eights_a, eights_b);
        (ones, twos, fours, eights) = (o, t, f, e);
        for (s, w) in sixteens_total.iter_mut().zip(sixteens) {
            *s += u64::from(w.count_ones());
        }
    }
    let total = 16 * sixteens_total.iter().sum::<u64>()
        + 8 * lanes_pop(eights)
        + 4 * lanes_pop(fours)
        + 2 * lanes_pop(twos)
        + lanes_pop(ones);
    let mut acc = [0u64; 4];
    let mut qa = ba.remainder().chunks_exact(4);
    let mut qb = bb.remainder().chunks_exact(4);
    for (x, y) in (&mut qa).zip(&mut qb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += u64::from(op(x, y).count_ones());
        }
    }
    let rest: u64 = qa
        .remainder()
        .iter()
        .zip(qb.remainder())
        .map(|(&x, &y)| u64::from(op(x, y).count_ones()))
        .sum();
    total + acc.iter().sum::<u64>() + rest
}

/// Population count of `a[i] ^ b[i]` over `i < min(a.len(), b.len())`, inlined into the caller
/// (so that a caller compiled with target features gets them; see `crate::pairwise`).
#[inline(always)]
pub(crate) fn xor_count(a: &[u64], b: &[u64]) -> u64 {
    count_words(a, b, |x, y| x ^ y)
}

/// Population count of `a`, inlined into the caller (see [`xor_count`]).
#[inline(always)]
pub(crate) fn ones_count(a: &[u64]) -> u64 {
    count_words(a, a, |x, _| x)
}

/// Number of set bits of a code (truncated to `u32`; codes of 2^32 bits or more are not
/// supported).
pub fn popcount(code: &[u64]) -> u32 {
    ones_count(code) as u32
}

/// Hamming distance of two codes: the population count of `a ^ b`.
///
/// Codes of different lengths are compared as if the shorter were padded with zero words (so
/// the words past the shorter one's end count their set bits); no length makes it panic.
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    let common = a.len().min(b.len());
    let (a0, a1) = a.split_at(common);
    let (b0, b1) = b.split_at(common);
    let d = xor_count(a0, b0);
    (d + u64::from(popcount(a1)) + u64::from(popcount(b1))) as u32
}

/// Bit `k` of a code; bits past the end of `code` read as 0.
#[inline]
pub fn get(code: &[u64], k: usize) -> bool {
    match code.get(k / 64) {
        Some(w) => (w >> (k % 64)) & 1 == 1,
        None => false,
    }
}

/// Sets bit `k` of a code to `value`.
///
/// Errors with [`SahdError::IndexOutOfRange`] if `k` is past the end of `code` (the caller keeps
/// bits at or above the code's length 0 by not setting them).
#[inline]
pub fn set(code: &mut [u64], k: usize, value: bool) -> Result<(), SahdError> {
    let len = code.len() * 64;
    let w = code
        .get_mut(k / 64)
        .ok_or(SahdError::IndexOutOfRange { index: k, len })?;
    let mask = 1u64 << (k % 64);
    *w = (*w & !mask) | (u64::from(value) << (k % 64));
    Ok(())
}

/// Sets bit `i` (LSB-first layout). The caller guarantees `i < 64 * words.len()`; the
/// engine only calls it with validated sizes.
#[inline]
pub fn set_bit(words: &mut [u64], i: usize) {
    words[i / 64] |= 1u64 << (i % 64);
}

/// Calls `f(i)` for every set bit `i` in `start..end`, in increasing order.
#[inline]
pub fn for_each_set_bit(words: &[u64], start: usize, end: usize, mut f: impl FnMut(usize)) {
    if start >= end {
        return;
    }
    let first = start / 64;
    let last = (end - 1) / 64;
    for (wi, &word) in words.iter().enumerate().take(last + 1).skip(first) {
        let mut w = word;
        if wi == first {
            w &= !0u64 << (start % 64);
        }
        if wi == last {
            let e = end - wi * 64;
            if e < 64 {
                w &= (1u64 << e) - 1;
            }
        }
        #[cfg(target_pointer_width = "32")]
        {
            // Two 32-bit halves: 64-bit bit tricks cost twice the instructions on 32-bit cores.
            for (half, mut h) in [(0, w as u32), (32, (w >> 32) as u32)] {
                while h != 0 {
                    f(wi * 64 + half + h.trailing_zeros() as usize);
                    h &= h - 1;
                }
            }
        }
        #[cfg(not(target_pointer_width = "32"))]
        while w != 0 {
            f(wi * 64 + w.trailing_zeros() as usize);
            w &= w - 1;
        }
    }
}

/// Number of set bits in positions `start..end` of `words` (LSB-first).
pub fn count_ones_range(words: &[u64], start: usize, end: usize) -> u32 {
    if start >= end {
        return 0;
    }
    let (first, last) = (start / 64, (end - 1) / 64);
    let mut n = 0;
    for (wi, &word) in words.iter().enumerate().take(last + 1).skip(first) {
        let mut w = word;
        if wi == first {
            w &= !0u64 << (start % 64);
        }
        let e = end - wi * 64;
        if wi == last && e < 64 {
            w &= (1u64 << e) - 1;
        }
        n += w.count_ones();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn naive_pack(bits: &[bool]) -> Vec<u64> {
        let mut out = vec![0u64; words_for(bits.len())];
        for (k, &b) in bits.iter().enumerate() {
            if b {
                out[k / 64] |= 1 << (k % 64);
            }
        }
        out
    }

    fn pseudo_bits(len: usize, seed: u64) -> Vec<bool> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s % 3 == 1
            })
            .collect()
    }

    #[test]
    fn words_for_values() {
        assert_eq!(words_for(0), 0);
        assert_eq!(words_for(1), 1);
        assert_eq!(words_for(64), 1);
        assert_eq!(words_for(65), 2);
        assert_eq!(words_for(131_072), 2048);
    }

    #[test]
    fn gather8_all_patterns() {
        for pattern in 0u64..256 {
            let mut b = [0u8; 8];
            for (k, x) in b.iter_mut().enumerate() {
                *x = (pattern >> k & 1) as u8;
            }
            assert_eq!(gather8(u64::from_le_bytes(b)), pattern);
        }
    }

    #[test]
    fn round_trip_lengths() {
        for len in [0usize, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let bits = pseudo_bits(len, len as u64 + 7);
            let f: Vec<f32> = bits.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
            let u: Vec<u8> = bits.iter().map(|&b| b as u8 * 3).collect();
            let expect = naive_pack(&bits);
            let mut out = vec![u64::MAX; words_for(len)];
            assert_eq!(pack_f32(&f, &mut out), Ok(words_for(len)));
            assert_eq!(out, expect);
            let mut out2 = vec![u64::MAX; words_for(len)];
            assert_eq!(pack_u8(&u, &mut out2), Ok(words_for(len)));
            assert_eq!(out2, expect);
            let mut back = vec![9u8; len];
            unpack_u8(&out, &mut back);
            assert!(back.iter().zip(&bits).all(|(&x, &b)| x == b as u8));
            // get/set
            let mut code = vec![0u64; words_for(len)];
            for (k, &b) in bits.iter().enumerate() {
                set(&mut code, k, b).unwrap();
                assert_eq!(get(&code, k), b);
            }
            assert_eq!(code, expect);
            assert!(!get(&code, len + 64));
            assert_eq!(popcount(&code), bits.iter().filter(|&&b| b).count() as u32);
            if len > 0 {
                assert!(code[code.len() - 1] >> ((len - 1) % 64) >> 1 == 0);
            }
        }
    }

    #[test]
    fn pack_errors_and_rows() {
        let f = [1.0f32; 130];
        let mut small = [0u64; 2];
        assert_eq!(
            pack_f32(&f, &mut small),
            Err(SahdError::BufferTooSmall { needed: 3, got: 2 })
        );
        assert!(pack_u8(&[1u8; 130], &mut small).is_err());
        assert!(set(&mut small, 128, true).is_err());
        // rows: 2 rows of 65 bits
        let mut out = [0u64; 4];
        assert_eq!(pack_rows_f32(&f, 2, &mut out), Ok(2));
        assert_eq!(out, [u64::MAX, 1, u64::MAX, 1]);
        let mut out = [0u64; 4];
        assert_eq!(pack_rows_u8(&[1u8; 130], 2, &mut out), Ok(2));
        assert_eq!(out, [u64::MAX, 1, u64::MAX, 1]);
        assert!(pack_rows_f32(&f, 3, &mut out).is_err());
        assert!(pack_rows_f32(&f, 0, &mut out).is_err());
        assert_eq!(pack_rows_f32(&[], 0, &mut out), Ok(0));
        assert!(pack_rows_f32(&f, 1, &mut out[..2]).is_err());
        // thresholds
        let mut w = [0u64; 1];
        pack_f32(&[0.5, 0.51, -1.0, f32::NAN, f32::INFINITY, 2.0], &mut w).unwrap();
        assert_eq!(w[0], 0b110010);
    }

    #[test]
    fn hamming_unequal_lengths() {
        assert_eq!(hamming(&[1, 3], &[0]), 3);
        assert_eq!(hamming(&[], &[u64::MAX; 5]), 320);
        assert_eq!(hamming(&[], &[]), 0);
    }

    proptest! {
        #[test]
        fn hamming_matches_naive(
            a in proptest::collection::vec(any::<u64>(), 0..300),
            seed in any::<u64>(),
        ) {
            let b: Vec<u64> = a.iter().enumerate()
                .map(|(i, &x)| x ^ seed.rotate_left(i as u32 * 7) & seed.rotate_right(i as u32))
                .collect();
            let n = a.len() * 64;
            let naive = (0..n).filter(|&k| get(&a, k) != get(&b, k)).count() as u32;
            prop_assert_eq!(hamming(&a, &b), naive);
            prop_assert_eq!(hamming(&b, &a), naive);
            prop_assert_eq!(popcount(&a), (0..n).filter(|&k| get(&a, k)).count() as u32);
        }

        #[test]
        fn pack_round_trip(bits in proptest::collection::vec(any::<bool>(), 0..700)) {
            let f: Vec<f32> = bits.iter().map(|&b| b as u8 as f32).collect();
            let u: Vec<u8> = bits.iter().map(|&b| b as u8).collect();
            let mut p1 = vec![0u64; words_for(bits.len())];
            let mut p2 = vec![0u64; words_for(bits.len())];
            pack_f32(&f, &mut p1).unwrap();
            pack_u8(&u, &mut p2).unwrap();
            prop_assert_eq!(&p1, &naive_pack(&bits));
            prop_assert_eq!(&p2, &p1);
            let mut back = vec![0u8; bits.len()];
            unpack_u8(&p1, &mut back);
            prop_assert_eq!(back, u);
        }
    }
}
