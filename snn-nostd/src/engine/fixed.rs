//! Fixed-point arithmetic of the engine: rounding shifts, saturation, the requantisation of
//! `i32` sums and the LIF update (the definitions in the [`super`] docs).

/// Shifts `x` right by `s` with round half up (`s > 0`), or left by `-s` with saturation
/// (`s < 0`). `s` is clamped to `-62..=62`.
#[inline]
pub fn round_shift(x: i64, s: i32) -> i64 {
    let s = s.clamp(-62, 62);
    if s > 0 {
        // floor((x + 2^(s-1)) / 2^s) without overflow: floor(x / 2^s) + bit s-1 of x.
        (x >> s) + ((x >> (s - 1)) & 1)
    } else if s < 0 {
        let l = (-s) as u32;
        if x.unsigned_abs() > (i64::MAX >> l) as u64 {
            if x < 0 {
                i64::MIN
            } else {
                i64::MAX
            }
        } else {
            x << l
        }
    } else {
        x
    }
}

/// Saturates to `i16`.
#[inline]
pub fn sat_i16(x: i64) -> i16 {
    x.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Saturates to `i32`.
#[inline]
pub fn sat_i32(x: i64) -> i32 {
    x.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Bound of [`requant`]'s result: any `|v| >= 2^17` saturates `dst + v` for every `i16` `dst`.
pub(super) const REQUANT_BOUND: i64 = 1 << 17;

/// `round_shift(a, s)` in 32-bit arithmetic, clamped to `±2^17` where a left shift would make it
/// larger: the same `sat_i16(d + v)` for every `i16` `d`, and the same `sat_i16(v)`, as the
/// `i64` [`round_shift`] (tested against it).
#[inline(always)]
pub(super) fn requant(a: i32, s: i32) -> i32 {
    if s > 0 {
        if s >= 32 {
            // |a| < 2^31 <= 2^(s-1): rounds to 0 (round half up of a value in (-1/2, 1/2)).
            0
        } else {
            (a >> s) + ((a >> (s - 1)) & 1)
        }
    } else if s == 0 {
        a.clamp(-(REQUANT_BOUND as i32), REQUANT_BOUND as i32)
    } else {
        let l = (-s).min(18) as u32;
        ((a as i64) << l).clamp(-REQUANT_BOUND, REQUANT_BOUND) as i32
    }
}

/// LIF charge with tau = 4/3: `(v + 3x) / 4` rounded half up, exactly (`(v + 3x + 2) >> 2`).
#[inline]
pub fn lif_charge(v: i16, x: i16) -> i16 {
    // |v + 3x + 2| <= 4 * 32768, and the quotient lies between v and x: no overflow.
    ((v as i32 + 3 * x as i32 + 2) >> 2) as i16
}

/// One LIF step: charge, fire if `v >= threshold`, hard reset to 0. Returns the spike.
#[inline]
pub fn lif_update(v: &mut i16, x: i16, threshold: i16) -> bool {
    let nv = lif_charge(*v, x);
    if nv >= threshold {
        *v = 0;
        true
    } else {
        *v = nv;
        false
    }
}

/// The threshold 1.0 in format `exp` (`exp <= 14`).
#[inline]
pub(super) fn threshold(exp: u8) -> i16 {
    1i16 << exp.min(14)
}
