//! The LIF neuron (docs/design.md, "The LIF neuron") for one sample, writing its spikes as bits.

use super::simd::simd_kernel;
use crate::config::LifParams;
use snn_nostd::bits::gather64;

/// The LIF constants in f32, as Candle's `affine` applies them.
#[derive(Clone, Copy, Debug)]
pub struct LifK {
    /// `1 / tau`.
    k: f32,
    /// `1 - 1 / tau`.
    decay: f32,
    /// `-V_th`.
    neg_th: f32,
    /// `V_reset`.
    v_reset: f32,
}

impl LifK {
    /// Converts the f64 constants the way `Tensor::affine` does (compute in f64, cast to f32).
    pub fn new(p: &LifParams) -> LifK {
        let k = 1.0 / p.tau;
        LifK {
            k: k as f32,
            decay: (1.0 - k) as f32,
            neg_th: (-p.v_threshold) as f32,
            v_reset: p.v_reset as f32,
        }
    }
}

simd_kernel! {
    /// One LIF step for one sample: charges the membranes `v` (0 before the first step) with
    /// input `x`, fires, resets, and writes the spikes as bits into `code`
    /// (`code.len() == words_for(x.len())`; bit `e` is element `e`, the padding bits 0).
    ///
    /// Same arithmetic as `LifState::step` without surrogate: `charged = (v * (1 - k) + 0) +
    /// (x * k + 0)` (at the first step `v = 0` gives `x * k + 0` exactly), spike if
    /// `charged * 1 - V_th >= 0`, `v = charged * (1 - spike)` (+ `spike * V_reset` if non-zero).
    pub fn lif_step(x: &[f32], v: &mut [f32], p: &LifK, code: &mut [u64]) => lif_step_impl
}

#[inline(always)]
fn lif_step_impl(x: &[f32], v: &mut [f32], p: &LifK, code: &mut [u64]) {
    assert_eq!(x.len(), v.len());
    assert_eq!(code.len(), x.len().div_ceil(64));
    for ((xc, vc), word) in x.chunks(64).zip(v.chunks_mut(64)).zip(code.iter_mut()) {
        let mut bits = [0u8; 64];
        for ((&xi, vi), b) in xc.iter().zip(vc.iter_mut()).zip(bits.iter_mut()) {
            let charged = (*vi * p.decay + 0.0) + (xi * p.k + 0.0);
            let fire = charged * 1.0 + p.neg_th >= 0.0;
            let spike = if fire { 1.0f32 } else { 0.0 };
            // Candle's affine(-1, 1): spike * -1 is exactly -spike.
            let keep = -spike + 1.0;
            let mut nv = charged * keep;
            if p.v_reset != 0.0 {
                nv += spike * p.v_reset + 0.0;
            }
            *vi = nv;
            *b = fire as u8;
        }
        *word = gather64(&bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snn_nostd::bits;

    #[test]
    fn lif_matches_spec_example() {
        let p = LifK::new(&LifParams::default());
        let x = [1.0f32, 1.5, 0.5];
        let mut v = [0.0f32; 3];
        let mut code = [0u64; 1];
        lif_step(&x, &mut v, &p, &mut code);
        assert_eq!(code[0], 0b010);
        lif_step(&x, &mut v, &p, &mut code);
        assert_eq!(code[0], 0b010);
        assert_eq!(v, [0.9375, 0.0, 0.46875]);
    }

    #[test]
    fn lif_packs_long_rows() {
        let p = LifK::new(&LifParams::default());
        let x: Vec<f32> = (0..130)
            .map(|i| if i % 3 == 0 { 2.0 } else { 0.0 })
            .collect();
        let mut v = vec![0.0; 130];
        let mut code = vec![0u64; 3];
        lif_step(&x, &mut v, &p, &mut code);
        for i in 0..130 {
            assert_eq!(bits::get(&code, i), i % 3 == 0);
        }
        assert_eq!(code[2] >> 2, 0, "padding bits stay clear");
    }
}
