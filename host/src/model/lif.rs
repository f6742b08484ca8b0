//! The LIF neuron (docs/design.md, "The LIF neuron") with the ATan surrogate gradient, for search
//! and training alike.

use crate::config::LifParams;
use anyhow::Result;
use candle_core::Tensor;
use std::f64::consts::PI;

/// The ATan surrogate derivative `dS/dV = (alpha/2) / (1 + (pi/2 * alpha * x)^2)` at
/// `x = V - V_th`, element-wise.
pub fn atan_surrogate_grad(x: &Tensor, alpha: f64) -> Result<Tensor> {
    let k = PI / 2.0 * alpha;
    Ok(((x * k)?.sqr()? + 1.0)?.recip()?.affine(alpha / 2.0, 0.0)?)
}

/// The same derivative for one value (for tests and documentation).
pub fn atan_surrogate_grad_scalar(x: f64, alpha: f64) -> f64 {
    let k = PI / 2.0 * alpha;
    (alpha / 2.0) / (1.0 + (k * x).powi(2))
}

/// Heaviside step `x >= 0` as 0/1 values whose gradient is the ATan surrogate when
/// `surrogate` is true.
///
/// The forward value is exactly 0 or 1: it is `h + (g*x - (g*x).detach())` where `h` and `g`
/// are detached, and `a - a` is exactly zero in floating point.
pub fn spike_fn(x: &Tensor, alpha: f64, surrogate: bool) -> Result<Tensor> {
    let h = x.ge(0.0)?.to_dtype(x.dtype())?;
    if !surrogate {
        return Ok(h);
    }
    let g = atan_surrogate_grad(&x.detach(), alpha)?;
    let gx = (x * &g)?;
    let zero_with_grad = (&gx - gx.detach())?;
    Ok((h + zero_with_grad)?)
}

/// One LIF layer's membrane state over a sample sequence. It starts at 0 (`None`) for every
/// new sequence and never carries over between batches.
#[derive(Debug, Default)]
pub struct LifState {
    v: Option<Tensor>,
}

impl LifState {
    /// A fresh state (membrane at 0).
    pub fn new() -> LifState {
        LifState { v: None }
    }

    /// One timestep: charge `V <- V + (X - V)/tau`, fire where `V >= V_th`, hard reset to
    /// `V_reset`. The reset is detached from the graph (docs/design.md, "The LIF neuron").
    /// Returns the spikes.
    pub fn step(&mut self, x: &Tensor, p: &LifParams, surrogate: bool) -> Result<Tensor> {
        let k = 1.0 / p.tau;
        let charged = match &self.v {
            // V = 0 at the start: V + (X - 0)/tau.
            None => x.affine(k, 0.0)?,
            Some(v) => ((v * (1.0 - k))? + x.affine(k, 0.0)?)?,
        };
        let spikes = spike_fn(&charged.affine(1.0, -p.v_threshold)?, p.alpha, surrogate)?;
        let keep = spikes.detach().affine(-1.0, 1.0)?;
        let mut v = (charged * &keep)?;
        if p.v_reset != 0.0 {
            v = (v + spikes.detach().affine(p.v_reset, 0.0)?)?;
        }
        self.v = Some(v);
        Ok(spikes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn lif_dynamics_match_spec() -> Result<()> {
        let dev = Device::Cpu;
        let p = LifParams::default();
        let mut s = LifState::new();
        let x = Tensor::new(&[1.0f32, 1.5, 0.5], &dev)?;
        // t0: V = 0.75 X = 0.75, 1.125, 0.375 -> spikes 0,1,0 ; reset -> 0.75, 0, 0.375
        let s0: Vec<f32> = s.step(&x, &p, false)?.to_vec1()?;
        assert_eq!(s0, vec![0.0, 1.0, 0.0]);
        // t1: V = 0.25 V + 0.75 X = 0.9375, 1.125, 0.46875 -> 0,1,0
        let s1: Vec<f32> = s.step(&x, &p, false)?.to_vec1()?;
        assert_eq!(s1, vec![0.0, 1.0, 0.0]);
        let v: Vec<f32> = s.v.as_ref().unwrap().to_vec1()?;
        assert_eq!(v, vec![0.9375, 0.0, 0.46875]);
        Ok(())
    }

    #[test]
    fn surrogate_backward_is_atan_derivative() -> Result<()> {
        let dev = Device::Cpu;
        let xs = [-1.0f32, -0.3, 0.0, 0.2, 0.7, 2.0];
        let x = Var::new(&xs, &dev)?;
        let y = spike_fn(x.as_tensor(), 2.0, true)?;
        let fwd: Vec<f32> = y.to_vec1()?;
        assert_eq!(fwd, vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        let grads = y.sum_all()?.backward()?;
        let g: Vec<f32> = grads.get(x.as_tensor()).unwrap().to_vec1()?;
        for (xi, gi) in xs.iter().zip(g) {
            let want = atan_surrogate_grad_scalar(*xi as f64, 2.0);
            assert!((gi as f64 - want).abs() < 1e-6, "x={xi}: {gi} vs {want}");
        }
        // at 0 the derivative is alpha/2 = 1
        assert!((atan_surrogate_grad_scalar(0.0, 2.0) - 1.0).abs() < 1e-15);
        Ok(())
    }
}
