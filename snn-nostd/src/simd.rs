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

/// `SXTAH acc, acc, w`: adds the sign-extended low halfword of `w` to `acc` (wrapping). Taking
/// the whole word keeps the compiler from splitting a 32-bit weight-pair load into byte loads.
#[inline(always)]
pub fn sxtah(acc: i32, w: u32) -> i32 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let r;
        // SAFETY: as in `sxtab16`.
        unsafe {
            core::arch::asm!(
                "sxtah {r}, {a}, {w}",
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
        acc.wrapping_add(w as u16 as i16 as i32)
    }
}

/// `ADD acc, acc, w, ASR #16`: adds the high halfword of `w` (sign-extended) to `acc`
/// (wrapping). As an instruction for the same reason as [`sxtah`].
#[inline(always)]
pub fn add_asr16(acc: i32, w: u32) -> i32 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let r;
        // SAFETY: a plain register-to-register add; it touches no memory and no flags.
        unsafe {
            core::arch::asm!(
                "add {r}, {a}, {w}, asr #16",
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
        acc.wrapping_add(w as i32 >> 16)
    }
}

/// Adds four `i16` weights (`w[0..8]`, little-endian) into four `i32` sums (wrapping): one
/// `LDM`, two weight loads, `SXTAH` / `ADD ..., ASR #16` twice and one `STM` (8 instructions
/// for 4 synaptic events; the compiler would load and store each sum on its own).
#[inline(always)]
pub fn add_i16x4(acc: &mut [i32; 4], w: &[u8; 8]) {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        // SAFETY: `acc` is four aligned, writable words (what LDM/STM need); `w` is eight
        // readable bytes, loaded as two (possibly unaligned) words, which Armv7-M allows for
        // LDR. r0-r3 are named because LDM/STM need an ascending register list.
        unsafe {
            core::arch::asm!(
                "ldm {p}, {{r0, r1, r2, r3}}",
                "ldr {w0}, [{c}]",
                "ldr {w1}, [{c}, #4]",
                "sxtah r0, r0, {w0}",
                "add r1, r1, {w0}, asr #16",
                "sxtah r2, r2, {w1}",
                "add r3, r3, {w1}, asr #16",
                "stm {p}, {{r0, r1, r2, r3}}",
                p = in(reg) acc.as_mut_ptr(),
                c = in(reg) w.as_ptr(),
                w0 = out(reg) _,
                w1 = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                options(nostack, preserves_flags)
            );
        }
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = a.wrapping_add(i16::from_le_bytes([w[2 * k], w[2 * k + 1]]) as i32);
        }
    }
}

/// The event conv's adds of one kernel row: `K` consecutive pixels of `C` `i32` sums
/// (`px[..K * C]`, `C` a multiple of 4), pixel `j` taking the `C` `i16` weights of kernel column
/// `K - 1 - j` (`w[(K - 1 - j) * 2C..][..2C]`), wrapping: [`add_i16x4`] per four channels. On
/// Armv7E-M the sums are walked with `LDM p!` / `STMDB p` (eight words at a time where `C` allows,
/// else four) and the weights with a post-incremented load, so no address is recomputed (14
/// instructions per 8 synaptic events, or 8 per 4, and one more per pixel).
#[inline(always)]
pub fn add_i16_run<const K: usize, const C: usize>(px: &mut [i32], w: &[u8]) {
    assert!(C.is_multiple_of(4) && px.len() >= K * C && w.len() >= K * 2 * C);
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    if K == 3 && C == 4 {
        // SAFETY: `px` holds the 12 words (aligned) of the three pixels, `w` the 24 bytes of the
        // three columns (checked above): pixels 0 and 1 (one eight-word LDM/STM) take columns 2
        // and 1 (bytes 16..24, 8..16), pixel 2 column 0; r6 and r7 are reserved by the compiler.
        unsafe {
            core::arch::asm!(
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {w0}, [{c}, #16]",
                "ldr {w1}, [{c}, #20]",
                "sxtah r0, r0, {w0}",
                "add r1, r1, {w0}, asr #16",
                "sxtah r2, r2, {w1}",
                "add r3, r3, {w1}, asr #16",
                "ldr {w0}, [{c}, #8]",
                "ldr {w1}, [{c}, #12]",
                "sxtah r4, r4, {w0}",
                "add r5, r5, {w0}, asr #16",
                "sxtah r8, r8, {w1}",
                "add r9, r9, {w1}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}, {{r0, r1, r2, r3}}",
                "ldr {w0}, [{c}]",
                "ldr {w1}, [{c}, #4]",
                "sxtah r0, r0, {w0}",
                "add r1, r1, {w0}, asr #16",
                "sxtah r2, r2, {w1}",
                "add r3, r3, {w1}, asr #16",
                "stm {p}, {{r0, r1, r2, r3}}",
                p = inout(reg) px.as_mut_ptr() => _,
                c = in(reg) w.as_ptr(),
                w0 = out(reg) _,
                w1 = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    if K == 3 && C == 8 {
        // SAFETY: `px` holds the 24 words (aligned) of the three pixels, `w` the 48 bytes of the
        // three columns (checked above): pixel j takes column 2 - j (bytes 32 (2 - j)..); one
        // eight-word LDM/STMDB per pixel; r6 and r7 are reserved by the compiler.
        unsafe {
            core::arch::asm!(
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {w0}, [{c}, #32]",
                "ldr {w1}, [{c}, #36]",
                "sxtah r0, r0, {w0}",
                "add r1, r1, {w0}, asr #16",
                "sxtah r2, r2, {w1}",
                "add r3, r3, {w1}, asr #16",
                "ldr {w0}, [{c}, #40]",
                "ldr {w1}, [{c}, #44]",
                "sxtah r4, r4, {w0}",
                "add r5, r5, {w0}, asr #16",
                "sxtah r8, r8, {w1}",
                "add r9, r9, {w1}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {w0}, [{c}, #16]",
                "ldr {w1}, [{c}, #20]",
                "sxtah r0, r0, {w0}",
                "add r1, r1, {w0}, asr #16",
                "sxtah r2, r2, {w1}",
                "add r3, r3, {w1}, asr #16",
                "ldr {w0}, [{c}, #24]",
                "ldr {w1}, [{c}, #28]",
                "sxtah r4, r4, {w0}",
                "add r5, r5, {w0}, asr #16",
                "sxtah r8, r8, {w1}",
                "add r9, r9, {w1}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {w0}, [{c}, #0]",
                "ldr {w1}, [{c}, #4]",
                "sxtah r0, r0, {w0}",
                "add r1, r1, {w0}, asr #16",
                "sxtah r2, r2, {w1}",
                "add r3, r3, {w1}, asr #16",
                "ldr {w0}, [{c}, #8]",
                "ldr {w1}, [{c}, #12]",
                "sxtah r4, r4, {w0}",
                "add r5, r5, {w0}, asr #16",
                "sxtah r8, r8, {w1}",
                "add r9, r9, {w1}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                p = inout(reg) px.as_mut_ptr() => _,
                c = in(reg) w.as_ptr(),
                w0 = out(reg) _,
                w1 = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let mut p = px.as_mut_ptr();
        // SAFETY: in bounds: the last column starts at `(K - 1) * 2C <= w.len() - 2C`.
        let mut c = unsafe { w.as_ptr().add((K - 1) * 2 * C) };
        for j in 0..K {
            for _ in 0..C / 8 {
                // SAFETY: as below, eight words and sixteen bytes per step (r6 and r7 are
                // reserved by the compiler, so the list skips them).
                unsafe {
                    core::arch::asm!(
                        "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                        "ldr {w1}, [{c}, #4]",
                        "ldr {w0}, [{c}], #8",
                        "sxtah r0, r0, {w0}",
                        "add r1, r1, {w0}, asr #16",
                        "sxtah r2, r2, {w1}",
                        "add r3, r3, {w1}, asr #16",
                        "ldr {w1}, [{c}, #4]",
                        "ldr {w0}, [{c}], #8",
                        "sxtah r4, r4, {w0}",
                        "add r5, r5, {w0}, asr #16",
                        "sxtah r8, r8, {w1}",
                        "add r9, r9, {w1}, asr #16",
                        "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                        p = inout(reg) p,
                        c = inout(reg) c,
                        w0 = out(reg) _,
                        w1 = out(reg) _,
                        out("r0") _,
                        out("r1") _,
                        out("r2") _,
                        out("r3") _,
                        out("r4") _,
                        out("r5") _,
                        out("r8") _,
                        out("r9") _,
                        options(nostack, preserves_flags)
                    );
                }
            }
            for _ in 0..(C % 8) / 4 {
                // SAFETY: `p` walks the `K * C` words of `px` (checked above), four aligned words
                // per step, `c` the `2C` bytes of kernel column `K - 1 - j` (unaligned `LDR`s are
                // allowed on Armv7-M); r0-r3 are named because LDM/STM need an ascending list.
                unsafe {
                    core::arch::asm!(
                        "ldm {p}!, {{r0, r1, r2, r3}}",
                        "ldr {w1}, [{c}, #4]",
                        "ldr {w0}, [{c}], #8",
                        "sxtah r0, r0, {w0}",
                        "add r1, r1, {w0}, asr #16",
                        "sxtah r2, r2, {w1}",
                        "add r3, r3, {w1}, asr #16",
                        "stmdb {p}, {{r0, r1, r2, r3}}",
                        p = inout(reg) p,
                        c = inout(reg) c,
                        w0 = out(reg) _,
                        w1 = out(reg) _,
                        out("r0") _,
                        out("r1") _,
                        out("r2") _,
                        out("r3") _,
                        options(nostack, preserves_flags)
                    );
                }
            }
            if j + 1 < K {
                // Back over the column just added and the one before it.
                c = c.wrapping_sub(4 * C);
            }
        }
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        for (j, pixel) in px[..K * C].chunks_exact_mut(C).enumerate() {
            let col = &w[(K - 1 - j) * 2 * C..(K - j) * 2 * C];
            for (a, wq) in pixel.chunks_exact_mut(4).zip(col.chunks_exact(8)) {
                if let (Ok(a), Ok(wq)) = (a.try_into(), wq.try_into()) {
                    add_i16x4(a, wq);
                }
            }
        }
    }
}

/// `SMLALD lo, hi, a, b`: `acc + a.lo * b.lo + a.hi * b.hi` (signed 16 x 16 products, 64-bit
/// accumulator).
#[inline(always)]
pub fn smlald(a: u32, b: u32, acc: i64) -> i64 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let (mut lo, mut hi) = (acc as u32, (acc >> 32) as u32);
        // SAFETY: a register-to-register instruction of Armv7E-M; it touches no memory and no
        // flags.
        unsafe {
            core::arch::asm!(
                "smlald {lo}, {hi}, {a}, {b}",
                lo = inout(reg) lo,
                hi = inout(reg) hi,
                a = in(reg) a,
                b = in(reg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        ((hi as u64) << 32 | lo as u64) as i64
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        let ((a0, a1), (b0, b1)) = (lanes(a), lanes(b));
        acc.wrapping_add(a0 as i64 * b0 as i64 + a1 as i64 * b1 as i64)
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

/// One LIF step ([`crate::engine::lif_update`]: `nv = (v + 3x + 2) >> 2`, fire if `nv >= th`,
/// then reset to 0) of the two `i16` lanes of `v` (membranes) and `x` (inputs), `th2` the
/// threshold in both lanes. Returns the new membranes and `acc >> 1` with bit 15 (low lane) and
/// bit 31 (high lane) set for the lanes that fire. `k` must be `0x8000_8000` and `z` zero (kept
/// in registers by the caller). On Armv7E-M: `MVN`, `SHADD16`, `SHSUB16`, `SSUB16`, two `SEL`
/// and an `ORR`: `nv = floor((floor((v + x) / 2) - !x) / 2)`, exact in 16 bits.
#[inline(always)]
pub fn lif2(v: u32, x: u32, th2: u32, acc: u32, k: u32, z: u32) -> (u32, u32) {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let nv;
        let mut acc = acc;
        // SAFETY: register-to-register instructions of Armv7E-M; they set the GE flags (not
        // declared preserved) and touch no memory.
        unsafe {
            core::arch::asm!(
                "mvn {t}, {x}",
                "shadd16 {n}, {v}, {x}",
                "shsub16 {n}, {n}, {t}",
                "ssub16 {t}, {n}, {th}",
                "sel {n}, {z}, {n}",
                "sel {t}, {k}, {z}",
                "orr {acc}, {t}, {acc}, lsr #1",
                t = out(reg) _,
                n = out(reg) nv,
                acc = inout(reg) acc,
                v = in(reg) v,
                x = in(reg) x,
                th = in(reg) th2,
                z = in(reg) z,
                k = in(reg) k,
                options(pure, nomem, nostack)
            );
        }
        (nv, acc)
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        let _ = (k, z);
        let (th, _) = lanes(th2);
        let lane = |v: i16, x: i16| -> (i16, bool) {
            let nv = ((v as i32 + 3 * x as i32 + 2) >> 2) as i16;
            if nv >= th {
                (0, true)
            } else {
                (nv, false)
            }
        };
        let ((v0, v1), (x0, x1)) = (lanes(v), lanes(x));
        let ((n0, f0), (n1, f1)) = (lane(v0, x0), lane(v1, x1));
        (
            pack(n0, n1),
            (f0 as u32) << 15 | (f1 as u32) << 31 | acc >> 1,
        )
    }
}

/// Interleaves the halves of `x`: bit `k` of the low half goes to bit `2k`, bit `k` of the high
/// half to bit `2k + 1` (four delta swaps).
#[inline(always)]
pub fn interleave_halves(mut x: u32) -> u32 {
    let mut swap = |m: u32, s: u32| {
        let t = (x ^ (x >> s)) & m;
        x ^= t ^ (t << s);
    };
    swap(0x0000_FF00, 8);
    swap(0x00F0_00F0, 4);
    swap(0x0C0C_0C0C, 2);
    swap(0x2222_2222, 1);
    x
}

/// The lane-wise maximum of two pairs of `i16` lanes: `SSUB16` (its GE flags) then `SEL`.
#[inline(always)]
pub fn max16(a: u32, b: u32) -> u32 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let r;
        // SAFETY: register-to-register instructions of Armv7E-M; they set the GE flags (not
        // declared preserved) and touch no memory.
        unsafe {
            core::arch::asm!(
                "ssub16 {r}, {a}, {b}",
                "sel {r}, {a}, {b}",
                r = out(reg) r,
                a = in(reg) a,
                b = in(reg) b,
                options(pure, nomem, nostack)
            );
        }
        r
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        let ((a0, a1), (b0, b1)) = (lanes(a), lanes(b));
        pack(a0.max(b0), a1.max(b1))
    }
}

/// `QADD16 a, b`: the two `i16` lanes of `a` and `b` added with saturation.
#[inline(always)]
pub fn qadd16(a: u32, b: u32) -> u32 {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        let r;
        // SAFETY: as in `sxtab16` (QADD16 does not set the Q flag).
        unsafe {
            core::arch::asm!(
                "qadd16 {r}, {a}, {b}",
                r = lateout(reg) r,
                a = in(reg) a,
                b = in(reg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        r
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    {
        let ((a0, a1), (b0, b1)) = (lanes(a), lanes(b));
        pack(a0.saturating_add(b0), a1.saturating_add(b1))
    }
}

#[cfg(not(all(feature = "dsp", target_arch = "arm")))]
#[inline(always)]
fn lanes_add(acc: u32, lo: u16, hi: u16) -> u32 {
    let l = (acc as u16).wrapping_add(lo);
    let h = ((acc >> 16) as u16).wrapping_add(hi);
    l as u32 | (h as u32) << 16
}

/// Bytes a pointer advances over one kernel row in [`add_i16_rows3`] (`C` = 4: one eight-word
/// `LDM p!`; 8: three).
pub const fn rows3_advance(c: usize) -> usize {
    if c == 8 {
        96
    } else {
        32
    }
}

/// The row deltas of [`add_i16_rows3`]: with `o` the word offsets of the three kernel rows' first
/// pixels (kernel rows 0, 1, 2), the byte steps `4 (o[1] - o[0]) - A` and `4 (o[2] - o[1]) - A`
/// (`A` = [`rows3_advance`]`(C)`) as the low and high `i16` halves, if both fit.
pub fn rows3_deltas<const C: usize>(o: [usize; 3]) -> Option<u32> {
    let a = rows3_advance(C) as i64;
    let d1 = 4 * (o[1] as i64 - o[0] as i64) - a;
    let d2 = 4 * (o[2] as i64 - o[1] as i64) - a;
    let fits = |d: i64| (i16::MIN as i64..=i16::MAX as i64).contains(&d);
    (fits(d1) && fits(d2)).then_some(pack(d1 as i16, d2 as i16))
}

/// The event conv's adds of one spike for all three rows of a 3x3 kernel (`C` = 4 or 8 `i32`
/// sums per pixel, `i16` weights, wrapping): [`add_i16_run`]`::<3, C>` of `w[k * 6C..][..6C]`
/// (kernel row `k`) into the three pixels at word offset `o[k]` of `ring`, where `o[0] = o0` and
/// `dd` = [`rows3_deltas`]`(o)`. On Armv7E-M one block: the row pointer steps by the deltas
/// (`SXTAH`, `ADD ..., ASR #16`), the weights at immediate offsets (no address recomputed).
///
/// # Safety
/// `dd` is `rows3_deltas::<C>(o).unwrap()` for offsets `o` with `o[0] = o0` and `o[k] + 3C <=
/// ring.len()`; `w.len() >= 18 C`; `C` is 4 or 8.
#[inline(always)]
pub unsafe fn add_i16_rows3<const C: usize>(ring: &mut [i32], o0: usize, dd: u32, w: &[u8]) {
    debug_assert!((C == 4 || C == 8) && w.len() >= 18 * C);
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    if C == 4 {
        // SAFETY: the caller's contract: each row's 12 words lie in `ring` (aligned), the 72
        // weight bytes in `w`; r6 and r7 are reserved by the compiler.
        unsafe {
            core::arch::asm!(
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #16]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #20]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #8]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #12]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}, {{r0, r1, r2, r3}}",
                "ldr {t}, [{c}, #0]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #4]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "stm {p}, {{r0, r1, r2, r3}}",
                "sxtah {p}, {p}, {dd}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #40]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #44]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #32]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #36]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}, {{r0, r1, r2, r3}}",
                "ldr {t}, [{c}, #24]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #28]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "stm {p}, {{r0, r1, r2, r3}}",
                "add {p}, {p}, {dd}, asr #16",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #64]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #68]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #56]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #60]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}, {{r0, r1, r2, r3}}",
                "ldr {t}, [{c}, #48]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #52]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "stm {p}, {{r0, r1, r2, r3}}",
                p = inout(reg) ring.as_mut_ptr().add(o0) => _,
                c = in(reg) w.as_ptr(),
                dd = in(reg) dd,
                t = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    if C == 8 {
        // SAFETY: as above: 24 words per row, 144 weight bytes.
        unsafe {
            core::arch::asm!(
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #32]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #36]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #40]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #44]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #16]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #20]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #24]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #28]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #0]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #4]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #8]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #12]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "sxtah {p}, {p}, {dd}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #80]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #84]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #88]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #92]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #64]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #68]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #72]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #76]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #48]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #52]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #56]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #60]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "add {p}, {p}, {dd}, asr #16",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #128]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #132]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #136]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #140]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #112]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #116]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #120]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #124]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldm {p}!, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                "ldr {t}, [{c}, #96]",
                "sxtah r0, r0, {t}",
                "add r1, r1, {t}, asr #16",
                "ldr {t}, [{c}, #100]",
                "sxtah r2, r2, {t}",
                "add r3, r3, {t}, asr #16",
                "ldr {t}, [{c}, #104]",
                "sxtah r4, r4, {t}",
                "add r5, r5, {t}, asr #16",
                "ldr {t}, [{c}, #108]",
                "sxtah r8, r8, {t}",
                "add r9, r9, {t}, asr #16",
                "stmdb {p}, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
                p = inout(reg) ring.as_mut_ptr().add(o0) => _,
                c = in(reg) w.as_ptr(),
                dd = in(reg) dd,
                t = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    let (d1, d2) = lanes(dd);
    let a = rows3_advance(C) as isize;
    let o1 = o0 as isize + (d1 as isize + a) / 4;
    let o2 = o1 + (d2 as isize + a) / 4;
    for (k, o) in [o0 as isize, o1, o2].into_iter().enumerate() {
        let o = o as usize;
        add_i16_run::<3, C>(&mut ring[o..o + 3 * C], &w[k * 6 * C..(k + 1) * 6 * C]);
    }
}

/// Sets every element of `buf` to zero (`buf.fill(0)`): the 4-byte aligned middle in blocks of
/// 16 bytes ([`zero_blocks`]), the at most 1 + 7 elements around it one by one. `fill(0)` calls
/// `__aeabi_memclr`, 3 instructions per word for `i16` (1.5 for 4-aligned `i32`); this is 0.5.
#[inline]
pub fn zero_i16(buf: &mut [i16]) {
    // SAFETY: every bit pattern is a valid `i16` and a valid `[u32; 4]`.
    let (head, mid, tail) = unsafe { buf.align_to_mut::<[u32; 4]>() };
    zero_few(head);
    zero_blocks(mid);
    zero_few(tail);
}

/// [`zero_i16`] for `i32`s.
#[inline]
pub fn zero_i32(buf: &mut [i32]) {
    // SAFETY: every bit pattern is a valid `i32` and a valid `[u32; 4]`.
    let (head, mid, tail) = unsafe { buf.align_to_mut::<[u32; 4]>() };
    zero_few(head);
    zero_blocks(mid);
    zero_few(tail);
}

/// Zeroes a few elements one at a time (volatile stores, so that the optimiser does not turn the
/// loop back into a `memset` call).
#[inline(always)]
fn zero_few<T: Copy + Default>(s: &mut [T]) {
    for v in s {
        // SAFETY: `v` is a valid, aligned, exclusive reference.
        unsafe { core::ptr::write_volatile(v, T::default()) };
    }
}

/// Zeroes 16-byte blocks. On Armv7E-M: one four-register `STM` per block, two per loop
/// iteration (0.5 instructions per word).
#[inline(always)]
pub fn zero_blocks(b: &mut [[u32; 4]]) {
    #[cfg(all(feature = "dsp", target_arch = "arm"))]
    {
        if b.is_empty() {
            return;
        }
        // SAFETY: the loop stores exactly `b.len()` 16-byte blocks from `b`'s start (4-aligned,
        // exclusive): one if the count is odd, then two per iteration while any remain.
        unsafe {
            core::arch::asm!(
                "lsrs {n}, {n}, #1",
                "it cs",
                "stmcs {p}!, {{r0, r1, r2, r3}}",
                "beq 3f",
                "2:",
                "stm {p}!, {{r0, r1, r2, r3}}",
                "stm {p}!, {{r0, r1, r2, r3}}",
                "subs {n}, {n}, #1",
                "bne 2b",
                "3:",
                p = inout(reg) b.as_mut_ptr() => _,
                n = inout(reg) b.len() => _,
                in("r0") 0u32,
                in("r1") 0u32,
                in("r2") 0u32,
                in("r3") 0u32,
                options(nostack)
            );
        }
    }
    #[cfg(not(all(feature = "dsp", target_arch = "arm")))]
    b.fill([0; 4]);
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
        fn sxtah_adds_the_low_halfword(acc: i32, w: u32) {
            prop_assert_eq!(sxtah(acc, w), acc.wrapping_add(w as u16 as i16 as i32));
        }

        #[test]
        fn add_asr16_adds_the_high_halfword(acc: i32, w: u32) {
            prop_assert_eq!(add_asr16(acc, w), acc.wrapping_add((w >> 16) as u16 as i16 as i32));
        }

        #[test]
        fn add_i16x4_adds_four_weights(acc: [i32; 4], w: [i16; 4]) {
            let mut got = acc;
            let bytes: [u8; 8] = core::array::from_fn(|i| w[i / 2].to_le_bytes()[i % 2]);
            add_i16x4(&mut got, &bytes);
            let want: [i32; 4] = core::array::from_fn(|k| acc[k].wrapping_add(w[k] as i32));
            prop_assert_eq!(got, want);
        }

        #[test]
        fn lif2_is_two_lif_updates(v0: i16, v1: i16, x0: i16, x1: i16, e in 0u8..=14) {
            let th = 1i16 << e;
            let (nv, m) = lif2(pack(v0, v1), pack(x0, x1), pack(th, th), 0, 0x8000_8000, 0);
            let (mut w0, mut w1) = (v0, v1);
            let f0 = crate::engine::lif_update(&mut w0, x0, th);
            let f1 = crate::engine::lif_update(&mut w1, x1, th);
            prop_assert_eq!(lanes(nv), (w0, w1));
            prop_assert_eq!(m, (f0 as u32) << 15 | (f1 as u32) << 31);
        }

        #[test]
        fn interleave_halves_moves_each_bit(x: u32) {
            let mut want = 0u32;
            for k in 0..16 {
                want |= (x >> k & 1) << (2 * k) | (x >> (16 + k) & 1) << (2 * k + 1);
            }
            prop_assert_eq!(interleave_halves(x), want);
        }

        #[test]
        fn zero_i16_clears_every_element(v in proptest::collection::vec(any::<i16>(), 0..80), from in 0usize..8) {
            let mut v = v;
            let from = from.min(v.len());
            let before = v[..from].to_vec();
            zero_i16(&mut v[from..]);
            prop_assert_eq!(&v[..from], &before[..]);
            prop_assert!(v[from..].iter().all(|&x| x == 0));
            let mut w: alloc::vec::Vec<i32> = (0..v.len() as i32).map(|x| x - 40).collect();
            let wbefore = w[..from].to_vec();
            zero_i32(&mut w[from..]);
            prop_assert_eq!(&w[..from], &wbefore[..]);
            prop_assert!(w[from..].iter().all(|&x| x == 0));
        }

        #[test]
        fn max16_is_the_lane_maximum(a0: i16, a1: i16, b0: i16, b1: i16) {
            prop_assert_eq!(lanes(max16(pack(a0, a1), pack(b0, b1))), (a0.max(b0), a1.max(b1)));
        }

        #[test]
        fn qadd16_saturates_each_lane(a0: i16, a1: i16, b0: i16, b1: i16) {
            prop_assert_eq!(
                lanes(qadd16(pack(a0, a1), pack(b0, b1))),
                (a0.saturating_add(b0), a1.saturating_add(b1))
            );
        }

        #[test]
        fn add_i16_rows3_is_three_runs(acc in proptest::collection::vec(any::<i32>(), 200), w in proptest::collection::vec(any::<i16>(), 144), o in proptest::array::uniform3(0usize..170), eight: bool) {
            let bytes: alloc::vec::Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let c = if eight { 8 } else { 4 };
            let dd = if eight { rows3_deltas::<8>(o) } else { rows3_deltas::<4>(o) }.unwrap();
            let mut got = acc.clone();
            // SAFETY: `o[k] + 24 <= 194 <= 200`, 288 weight bytes, `dd` from `rows3_deltas`.
            unsafe {
                if eight {
                    add_i16_rows3::<8>(&mut got, o[0], dd, &bytes);
                } else {
                    add_i16_rows3::<4>(&mut got, o[0], dd, &bytes);
                }
            }
            let mut want = acc.clone();
            for k in 0..3 {
                for j in 0..3 {
                    for co in 0..c {
                        let i = o[k] + j * c + co;
                        want[i] = want[i].wrapping_add(w[k * 3 * c + (2 - j) * c + co] as i32);
                    }
                }
            }
            prop_assert_eq!(got, want);
        }

        #[test]
        fn add_i16_run_adds_reversed_columns(acc in proptest::collection::vec(any::<i32>(), 24), w in proptest::collection::vec(any::<i16>(), 24)) {
            let bytes: alloc::vec::Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let mut got = acc.clone();
            add_i16_run::<3, 8>(&mut got, &bytes);
            let mut want = acc.clone();
            for j in 0..3 {
                for co in 0..8 {
                    want[j * 8 + co] = want[j * 8 + co].wrapping_add(w[(2 - j) * 8 + co] as i32);
                }
            }
            prop_assert_eq!(&got, &want);
            let mut got = acc.clone();
            add_i16_run::<1, 4>(&mut got, &bytes);
            let mut want = acc.clone();
            for co in 0..4 {
                want[co] = want[co].wrapping_add(w[co] as i32);
            }
            prop_assert_eq!(got, want);
        }

        #[test]
        fn smlald_is_two_products(a0: i16, a1: i16, b0: i16, b1: i16, acc in -(1i64 << 62)..(1i64 << 62)) {
            let want = acc + a0 as i64 * b0 as i64 + a1 as i64 * b1 as i64;
            prop_assert_eq!(smlald(pack(a0, a1), pack(b0, b1), acc), want);
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
