//! Runtime selection of vector instructions for the hot kernels.
//!
//! The build targets baseline x86_64 (SSE2). A hot kernel is written once as an
//! `#[inline(always)]` function of plain Rust; [`simd_kernel!`] defines the public entry point,
//! which calls it through a copy compiled with AVX-512F or AVX2 enabled when the running CPU
//! has them. The copies differ only in the vector width LLVM may use: the kernels do the same
//! IEEE additions and multiplications in the same order per element (Rust never fuses them into
//! FMAs), so every variant gives the same bits.

/// Defines `fn name(args) -> ret` calling the `#[inline(always)]` function `imp` with the same
/// arguments, compiled for the best of AVX-512F, AVX2 (each with POPCNT) or baseline that the
/// CPU supports.
macro_rules! simd_kernel {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:path
    ) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,popcnt")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,popcnt")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                let popcnt = std::arch::is_x86_feature_detected!("popcnt");
                if popcnt && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the running CPU supports AVX-512F and POPCNT (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if popcnt && std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the running CPU supports AVX2 and POPCNT (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

pub(crate) use simd_kernel;
