//! SplitMix64 (Steele, Lea and Flood, 2014): a tiny deterministic generator, and its output
//! function as a well-mixed bijective map of 64-bit words. Used where a seed must be derived or
//! test data drawn reproducibly without a generator crate (the random search's candidate seeds,
//! the test models of `testutil`, the kernels' tests).
//!
//! ```
//! use snn_nostd::rng::{splitmix64, SplitMix64};
//! let mut g = SplitMix64::new(1);
//! let first = g.next_u64();
//! assert_eq!(first, splitmix64(1)); // the output drawn from state 1
//! assert_ne!(g.next_u64(), first);
//! assert!((0.0..1.0).contains(&g.next_f64()));
//! ```

/// The increment of the state (2^64 / golden ratio, odd).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The output of a SplitMix64 generator whose state is `x` before the draw: a bijective,
/// well-mixed map of 64-bit words.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A SplitMix64 generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state is `state` (no seed mixing).
    pub const fn new(state: u64) -> SplitMix64 {
        SplitMix64 { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let out = splitmix64(self.state);
        self.state = self.state.wrapping_add(GAMMA);
        out
    }

    /// Uniform in `[0, 1)`: the top 53 bits of [`next_u64`](Self::next_u64).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
