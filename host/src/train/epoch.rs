//! The training steps of one epoch (docs/design.md, "Training").
//!
//! Nothing here reads a tensor's value on the host: the loss and the correct predictions are
//! summed on the device ([`EpochSums`]) and read once at the end of the epoch, through the
//! counting [`HostReads`] (a test scans this file for other reads). Batches and labels go the
//! other way, host to device, once per step.

use super::config::TrainConfig;
use super::fast::{FastNet, FastTrainer};
use super::host_reads::{EpochSums, HostReads};
use super::metrics::LossKind;
use super::optim::Sgd;
use crate::data::Dataset;
use crate::model::{Forward, Mixing, Mode, Network, NoSink};
use crate::progress::Progress;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rand::RngCore;

/// One SGD step on a batch: training-mode forward pass (dropout masks from `rng`), loss,
/// backward pass and update at learning rate `lr`. Returns the loss (a scalar tensor, still on
/// the device) and the logits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_step(
    net: &Network,
    mixing: &Mixing,
    opt: &mut Sgd,
    loss: LossKind,
    x: &Tensor,
    labels: &[u32],
    lr: f64,
    rng: &mut dyn RngCore,
) -> Result<(Tensor, Tensor)> {
    let out = net.forward(
        x,
        Forward {
            mixing,
            mode: Mode::Train,
            sink: &mut NoSink,
            dropout_rng: Some(rng),
        },
    )?;
    let l = loss.loss(&out.logits, labels)?;
    let grads = l.backward()?;
    opt.step(net.params.trainable(), &grads, lr)?;
    Ok((l, out.logits))
}

/// What one epoch of steps gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EpochTotals {
    /// Sum over steps of mean loss x batch size.
    pub loss_sum: f64,
    /// Correct training predictions (first maximum of the logits).
    pub correct: usize,
    /// Steps run.
    pub steps: usize,
}

/// Everything an epoch of steps reads.
pub(crate) struct EpochRun<'a> {
    /// The network being trained.
    pub net: &'a Network,
    /// Its single path.
    pub mixing: &'a Mixing,
    /// The run configuration (batch size, loss).
    pub cfg: &'a TrainConfig,
    /// The training data.
    pub data: &'a Dataset,
    /// Sample indices in this epoch's order.
    pub order: &'a [usize],
    /// The epoch's learning rate.
    pub lr: f64,
    /// 0-based epoch (for messages).
    pub epoch: usize,
    /// Where tensors live.
    pub device: &'a Device,
    /// The CPU training path, when it runs the steps (else Candle does).
    pub fast: Option<&'a FastNet>,
}

/// Runs the steps of one epoch; augmentation (static data) and dropout draw from `rng` in step
/// order. Fails if the epoch's loss is not finite.
pub(crate) fn train_epoch(
    run: &EpochRun<'_>,
    opt: &mut Sgd,
    rng: &mut dyn RngCore,
    pb: &dyn Progress,
    reads: &mut HostReads,
) -> Result<EpochTotals> {
    if let Some(fast) = run.fast {
        return train_epoch_fast(run, fast, opt, rng, pb);
    }
    let (data, cfg) = (run.data, run.cfg);
    let augment = !cfg.net.dataset.is_event();
    let [c, h, w] = data.frame_shape();
    let frames = data.frames();
    let mut buf = Vec::new();
    let mut sums = EpochSums::default();
    let mut steps = 0;
    for chunk in run.order.chunks(cfg.batch) {
        let aug: Option<&mut dyn RngCore> = if augment { Some(&mut *rng) } else { None };
        data.fill_batch(chunk, aug, &mut buf);
        let x = Tensor::from_slice(&buf, (chunk.len(), frames, c, h, w), run.device)?;
        let labels: Vec<u32> = chunk.iter().map(|&i| data.label(i) as u32).collect();
        let (l, logits) = train_step(
            run.net, run.mixing, opt, cfg.loss, &x, &labels, run.lr, &mut *rng,
        )?;
        let labels = Tensor::from_slice(&labels, chunk.len(), run.device)?;
        sums.add(&l, chunk.len(), &logits, &labels)?;
        steps += 1;
        pb.advance(1);
    }
    let (loss_sum, correct) = sums.read(reads)?;
    if !loss_sum.is_finite() {
        bail!(
            "the training loss became {loss_sum} in epoch {}: the run diverged; start it \
             again with a lower --lr",
            run.epoch + 1
        );
    }
    Ok(EpochTotals {
        loss_sum,
        correct,
        steps,
    })
}

/// [`train_epoch`] on the CPU training path: the weights and momentum buffers are copied out
/// of `run.net` and `opt` before the first step and written back after the last. The loss and
/// correct predictions are host values already: no device read.
fn train_epoch_fast(
    run: &EpochRun<'_>,
    fast: &FastNet,
    opt: &mut Sgd,
    rng: &mut dyn RngCore,
    pb: &dyn Progress,
) -> Result<EpochTotals> {
    let (data, cfg) = (run.data, run.cfg);
    let mut trainer = FastTrainer::new(fast.clone(), run.net, opt)?;
    let mut buf = Vec::new();
    let (mut loss_sum, mut correct, mut steps) = (0f64, 0usize, 0usize);
    for chunk in run.order.chunks(cfg.batch) {
        data.fill_batch(chunk, Some(&mut *rng), &mut buf);
        let labels: Vec<u32> = chunk.iter().map(|&i| data.label(i) as u32).collect();
        let out = trainer.step(&buf, &labels, cfg.loss, run.lr, &mut *rng)?;
        loss_sum += out.loss * chunk.len() as f64;
        correct += out.correct;
        steps += 1;
        pb.advance(1);
    }
    trainer.store(run.net, opt)?;
    if !loss_sum.is_finite() {
        bail!(
            "the training loss became {loss_sum} in epoch {}",
            run.epoch + 1
        );
    }
    Ok(EpochTotals {
        loss_sum,
        correct,
        steps,
    })
}

#[cfg(test)]
mod tests {
    /// The steps read nothing on the host except through `HostReads`: no value-reading call
    /// appears in this file above its tests.
    #[test]
    fn steps_have_no_other_host_reads() {
        let src = include_str!("epoch.rs");
        let code = &src[..src.find("#[cfg(test)]").expect("a test module")];
        for read in [
            ".to_scalar",
            ".to_vec",
            ".to_device",
            "to_dtype(DType::F64)",
            ".storage(",
        ] {
            assert!(!code.contains(read), "epoch.rs reads on the host: {read}");
        }
    }
}
