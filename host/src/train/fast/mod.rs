//! The CPU training path: a hand-written forward and backward pass (BPTT) of the single-path
//! network in plain Rust, used by `train` and `bench train` on the CPU instead of Candle's
//! autograd (see docs/design.md, 'Training'; figures in docs/results.md, 'Training speed').
//!
//! Why: Candle builds a graph of small element-wise tensors per LIF, BatchNorm and edge, every
//! one allocated, written and read back; its backward pass walks that graph. Here:
//! - maps are channels-last (`[n][h][w][c]`) vectors; every pass over samples runs on rayon;
//! - the LIF writes its spikes as bits and records only its membrane before firing (the
//!   backward pass derives the spike and the ATan surrogate from it); its backward is one
//!   fused pass per layer and timestep;
//! - convolutions whose input is spikes (every conv op, the down conv) run event-driven in the
//!   forward pass (the CPU scoring engine's `conv_gather`) and for the kernel gradient
//!   ([`kernels::conv_dw_events`]); the input gradient is a dense convolution with the flipped
//!   kernel ([`kernels::conv_dense`]); the conv ops reading one node run as one convolution;
//! - BatchNorm (training mode) is fused: statistics, then normalise-and-add into the node sum;
//!   backward in two passes;
//! - the classifier (fc1, hidden LIF, fc2, votes) runs all timesteps as one matrix product.
//!
//! It computes the same function as the Candle network in `Mode::Train` (same dropout draws,
//! BatchNorm running statistics, max-pool gradients to the first maximum), up to float
//! rounding: a test compares gradients with Candle's autograd and trained weights after a few
//! steps. Deterministic: reductions over samples add per-sample partials in sample order.
//!
//! Covers every configuration `lightsnn train` builds: static input (CIFAR) and event frames
//! (N-MNIST, DVS128 Gesture with the stem's max pool), every op (the thresholded convs
//! `conv3@0.5`, `conv3@1.5` with one LIF layer per source node and threshold class), both cell
//! types, both downsampling kinds (the SpikeNAS-Bench network's average pools), both losses,
//! any LIF reset. [`FastNet::new`] says why when it does not (a frame count other than 1 or T;
//! [`CellPlan::new`] refuses ops it does not know).

mod bn;
mod buf;
mod cell;
mod classifier;
mod down;
pub mod kernels;
mod matmul;
mod net;
mod params;
mod stem;
mod step;

#[cfg(test)]
mod tests;

use crate::model::Network;
use crate::train::metrics::LossKind;
use crate::train::optim::Sgd;
use anyhow::Result;
pub use net::FastNet;
pub use params::{Grads, Params};
pub use step::StepOut;

/// Which implementation runs the training steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainPath {
    /// The CPU path where it covers the configuration, else Candle (the default).
    #[default]
    Auto,
    /// Candle's autograd on any device.
    Candle,
    /// The CPU path; an error where it does not cover the configuration.
    Cpu,
}

/// Training steps on the CPU path, with the network's tensors and the optimiser's momentum
/// copied in ([`FastTrainer::new`]) and written back ([`FastTrainer::store`]).
#[derive(Debug)]
pub struct FastTrainer {
    net: FastNet,
    params: Params,
    momentum: f64,
    weight_decay: f64,
}

impl FastTrainer {
    /// Copies the tensors of `net` and the buffers of `opt`.
    pub fn new(fast: FastNet, net: &Network, opt: &Sgd) -> Result<FastTrainer> {
        Ok(FastTrainer {
            net: fast,
            params: Params::load(net, opt)?,
            momentum: opt.momentum,
            weight_decay: opt.weight_decay,
        })
    }

    /// One SGD step at rate `lr` on `x` (`[n][C][H][W]` values) with `labels`; the dropout
    /// mask (0 or 2 per feature) is drawn from `rng` as the Candle path draws it.
    pub fn step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        loss: LossKind,
        lr: f64,
        rng: &mut dyn rand::RngCore,
    ) -> Result<StepOut> {
        let (out, grads) = self.gradients(x, labels, loss, Some(rng))?;
        self.params
            .sgd(&grads, self.momentum, self.weight_decay, lr);
        Ok(out)
    }

    /// The loss and gradients of a training-mode pass (dropout from `rng` when given),
    /// updating the BatchNorm running statistics.
    pub fn gradients(
        &mut self,
        x: &[f32],
        labels: &[u32],
        loss: LossKind,
        rng: Option<&mut dyn rand::RngCore>,
    ) -> Result<(StepOut, Grads)> {
        let n = labels.len();
        let mask =
            rng.map(|r| crate::model::network::dropout_values(r, n, self.net.cfg.shape.fc1_in()));
        step::step(
            &self.net,
            &mut self.params,
            x,
            labels,
            mask.as_deref(),
            loss,
        )
    }

    /// Writes the tensors back into `net` and the momentum buffers into `opt`.
    pub fn store(&self, net: &Network, opt: &mut Sgd) -> Result<()> {
        self.params.store(net, opt)
    }
}

impl Drop for FastTrainer {
    /// The steps' buffers go back to the allocator.
    fn drop(&mut self) {
        buf::release();
    }
}
