//! Two-lane 16-bit arithmetic of the Armv7E-M DSP extension, with a portable fallback.
//!
//! With feature `dsp` on a 32-bit Arm target (Cortex-M4/M7, `thumbv7em-*`), each function is one
//! instruction emitted with `core::arch::asm!` (the `core::arch::arm` DSP intrinsics are not
//! stable). Everywhere else, plain Rust computes the same bits, so the host and the device share
//! every result: the tests run the portable code against the definition below.
//!
//! A `u32` holds two `i16` lanes: bits 0..16 (low lane) and 16..32 (high lane). Lane adds wrap
//! (mod 2^16) exactly like the instructions.

/// `SXTAB16 acc, acc, w`: sign-extends bytes 0 and 2 of `w` and adds them to the low and high
/// `i16` lanes of `acc` (wrapping).
#[inline(always)]
pub fn sxtab16(acc: u32, w: u32) -> u32 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let r;
        // SAFETY: a pure register-to-register instruction of Armv7E-M (feature `dsp` promises
        // the DSP extension); it touches no memory and no flags.
        unsafe {
            core::arch::asm!(
                "sxtab16 {r}, {a}, {w}",
                r = lateout(reg) r,
                a = in(reg) acc,
                w = in(reg) w,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        r
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        lanes_add(
            acc,
            w as u8 as i8 as i16 as u16,
            (w >> 16) as u8 as i8 as i16 as u16,
        )
    }
}

/// `SXTAB16 acc, acc, w, ROR #8`: sign-extends bytes 1 and 3 of `w` and adds them to the low and
/// high `i16` lanes of `acc` (wrapping).
#[inline(always)]
pub fn sxtab16_ror8(acc: u32, w: u32) -> u32 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let r;
        // SAFETY: as in `sxtab16`.
        unsafe {
            core::arch::asm!(
                "sxtab16 {r}, {a}, {w}, ror #8",
                r = lateout(reg) r,
                a = in(reg) acc,
                w = in(reg) w,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        r
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        sxtab16(acc, w.rotate_right(8))
    }
}

/// `SMLAD a, b, acc`: `acc + a.lo * b.lo + a.hi * b.hi` (signed 16 x 16 products, wrapping
/// 32-bit sum; the Q flag the instruction may set is never read).
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let r;
        // SAFETY: a register-to-register instruction of Armv7E-M; it may set the sticky Q flag,
        // which nothing reads, and touches no memory.
        unsafe {
            core::arch::asm!(
                "smlad {r}, {a}, {b}, {c}",
                r = lateout(reg) r,
                a = in(reg) a,
                b = in(reg) b,
                c = in(reg) acc,
                options(pure, nomem, nostack)
            );
        }
        r
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        let p0 = (a as u16 as i16 as i32) * (b as u16 as i16 as i32);
        let p1 = ((a >> 16) as u16 as i16 as i32) * ((b >> 16) as u16 as i16 as i32);
        acc.wrapping_add(p0).wrapping_add(p1)
    }
}

#[cfg(not(all(feature = "dsp", target_arch = "arm")))]
#[inline(always)]
fn lanes_add(acc: u32, lo: u16, hi: u16) -> u32 {
    let l = (acc as u16).wrapping_add(lo);
    let h = ((acc >> 16) as u16).wrapping_add(hi);
    l as u32 | (h as u32) << 16
}

/// The low and high lanes of `v`.
#[inline(always)]
pub fn lanes(v: u32) -> (i16, i16) {
    (v as u16 as i16, (v >> 16) as u16 as i16)
}

/// Packs two lanes.
#[inline(always)]
pub fn pack(lo: i16, hi: i16) -> u32 {
    lo as u16 as u32 | (hi as u16 as u32) << 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sxtab16_adds_sign_extended_bytes(lo: i16, hi: i16, w: [i8; 4]) {
            let word = u32::from_le_bytes(w.map(|b| b as u8));
            let acc = pack(lo, hi);
            prop_assert_eq!(
                lanes(sxtab16(acc, word)),
                (lo.wrapping_add(w[0] as i16), hi.wrapping_add(w[2] as i16))
            );
            prop_assert_eq!(
                lanes(sxtab16_ror8(acc, word)),
                (lo.wrapping_add(w[1] as i16), hi.wrapping_add(w[3] as i16))
            );
        }

        #[test]
        fn smlad_is_two_products(a0: i16, a1: i16, b0: i16, b1: i16, acc: i32) {
            let want = acc
                .wrapping_add(a0 as i32 * b0 as i32)
                .wrapping_add(a1 as i32 * b1 as i32);
            prop_assert_eq!(smlad(pack(a0, a1), pack(b0, b1), acc), want);
        }
    }
}
