//! Building blocks: conv + BatchNorm, pooling with the padding of docs/design.md, "Operations",
//! voting.

use super::params::{BnParams, ParamStore};
use anyhow::Result;
use candle_core::{Tensor, Var, D};

/// How a forward pass uses BatchNorm and dropout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Scoring an untrained network: batch statistics, no running-stat update, no dropout.
    ScoreBatchStats,
    /// Scoring with running statistics (the reference's eval-mode BN).
    ScoreRunningStats,
    /// Training: batch statistics, running statistics updated, dropout, surrogate gradients.
    Train,
    /// Evaluation of a trained network: running statistics, no dropout.
    Eval,
}

impl Mode {
    /// The scoring mode of a BatchNorm choice (docs/design.md, "BatchNorm while scoring"): batch
    /// statistics or the reference's running statistics.
    pub fn scoring(bn: crate::config::BnMode) -> Mode {
        match bn {
            crate::config::BnMode::Batch => Mode::ScoreBatchStats,
            crate::config::BnMode::Running => Mode::ScoreRunningStats,
        }
    }

    /// Whether spikes carry surrogate gradients.
    pub fn surrogate(self) -> bool {
        self == Mode::Train
    }
}

/// BatchNorm momentum for running statistics (PyTorch convention).
pub const BN_MOMENTUM: f64 = 0.1;
/// BatchNorm epsilon.
pub const BN_EPS: f64 = snn_nostd::skeleton::BN_EPS;

/// Applies BatchNorm to `x` of shape `[N, C, H, W]` or `[N, C]`.
pub fn batch_norm(x: &Tensor, bn: &BnParams, mode: Mode) -> Result<Tensor> {
    batch_norm_groups(x, bn, mode, 1)
}

/// BatchNorm of `groups` stacked batches: `x` is `[G*N, ...]` and, with batch statistics, each
/// block of `N` samples is normalised with its own statistics (exactly as if it ran alone).
/// Running statistics are only updated in training, which takes one group.
pub fn batch_norm_groups(x: &Tensor, bn: &BnParams, mode: Mode, groups: usize) -> Result<Tensor> {
    if mode == Mode::Train {
        if groups > 1 {
            anyhow::bail!("training runs one network per batch; stacked candidates only score");
        }
        if x.rank() == 4 {
            return batch_norm_train_nchw(x, bn);
        }
    }
    // Stacked batch statistics: view `[G, N, C, ...]`, so the channel dim moves to 2 and the
    // reductions skip the group dim.
    let dims = x.dims();
    let stacked = groups > 1 && mode == Mode::ScoreBatchStats;
    let (xv, cdim) = if stacked {
        let n = dims[0] / groups;
        if n * groups != dims[0] {
            anyhow::bail!("{} samples do not split into {groups} groups", dims[0]);
        }
        let mut split = vec![groups, n];
        split.extend_from_slice(&dims[1..]);
        (x.reshape(split)?, 2)
    } else {
        (x.clone(), 1)
    };
    let c = xv.dim(cdim)?;
    let shape: Vec<usize> = (0..xv.rank())
        .map(|d| if d == cdim { c } else { 1 })
        .collect();
    let red: Vec<usize> = (cdim - 1..xv.rank()).filter(|&d| d != cdim).collect();
    let (mean, var) = match mode {
        Mode::ScoreRunningStats | Mode::Eval => (
            bn.running_mean.as_tensor().reshape(shape.as_slice())?,
            bn.running_var.as_tensor().reshape(shape.as_slice())?,
        ),
        Mode::ScoreBatchStats | Mode::Train => {
            let mean = xv.mean_keepdim(red.as_slice())?;
            let centered = xv.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(red.as_slice())?;
            if mode == Mode::Train {
                let n = (xv.elem_count() / c) as f64;
                update_running(&bn.running_mean, &mean.detach().flatten_all()?)?;
                let unbiased = var
                    .detach()
                    .flatten_all()?
                    .affine(n / (n - 1.0).max(1.0), 0.0)?;
                update_running(&bn.running_var, &unbiased)?;
            }
            (mean, var)
        }
    };
    let inv = (var + BN_EPS)?.sqrt()?.recip()?;
    let w = bn.weight.as_tensor().reshape(shape.as_slice())?;
    let b = bn.bias.as_tensor().reshape(shape.as_slice())?;
    let y = xv
        .broadcast_sub(&mean)?
        .broadcast_mul(&inv.broadcast_mul(&w)?)?
        .broadcast_add(&b)?;
    Ok(if stacked { y.reshape(dims)? } else { y })
}

/// Training-mode BatchNorm of `[N, C, H, W]`, computed in the channel-major layout `[C, N*H*W]`.
///
/// Same mathematics as the generic path; the layout makes every reduction (forward, and the
/// gradient reductions of the broadcasts in backward) run over the contiguous last dimension,
/// which Candle's CPU backend does several times faster than reductions over dims 0, 2, 3.
fn batch_norm_train_nchw(x: &Tensor, bn: &BnParams) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let m = n * h * w;
    let xt = x.transpose(0, 1)?.contiguous()?.reshape((c, m))?;
    let mean = xt.mean_keepdim(1)?;
    let centered = xt.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(1)?;
    update_running(&bn.running_mean, &mean.detach().flatten_all()?)?;
    let unbiased = var
        .detach()
        .flatten_all()?
        .affine(m as f64 / (m as f64 - 1.0).max(1.0), 0.0)?;
    update_running(&bn.running_var, &unbiased)?;
    let inv = (var + BN_EPS)?.sqrt()?.recip()?;
    let scale = inv.broadcast_mul(&bn.weight.as_tensor().reshape((c, 1))?)?;
    let y = centered
        .broadcast_mul(&scale)?
        .broadcast_add(&bn.bias.as_tensor().reshape((c, 1))?)?;
    Ok(y.reshape((c, n, h, w))?.transpose(0, 1)?.contiguous()?)
}

fn update_running(run: &Var, batch: &Tensor) -> Result<()> {
    let new = ((run.as_tensor() * (1.0 - BN_MOMENTUM))? + (batch * BN_MOMENTUM)?)?;
    run.set(&new)?;
    Ok(())
}

/// A convolution (no bias) followed by BatchNorm.
#[derive(Clone, Debug)]
pub struct ConvBn {
    /// Kernel `[out, in, k, k]`.
    pub weight: Var,
    /// The BatchNorm after it.
    pub bn: BnParams,
    /// Kernel size (1 or 3); padding is `k / 2`.
    pub k: usize,
}

impl ConvBn {
    /// Creates the parameters `{name}.conv.weight` and `{name}.bn.*`.
    pub fn new(
        ps: &mut ParamStore,
        name: &str,
        inp: usize,
        out: usize,
        k: usize,
    ) -> Result<ConvBn> {
        Ok(ConvBn {
            weight: ps.conv(&format!("{name}.conv.weight"), out, inp, k)?,
            bn: ps.bn(&format!("{name}.bn"), out)?,
            k,
        })
    }

    /// The convolution alone (stride 1, same padding).
    pub fn conv(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.conv2d(self.weight.as_tensor(), self.k / 2, 1, 1, 1)?)
    }

    /// Convolution then BatchNorm.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_groups(x, mode, 1)
    }

    /// Convolution then BatchNorm of `groups` stacked batches ([`batch_norm_groups`]).
    pub fn forward_groups(&self, x: &Tensor, mode: Mode, groups: usize) -> Result<Tensor> {
        let y = if mode == Mode::Train {
            super::conv::conv2d_same_train(x, self.weight.as_tensor(), self.k / 2)?
        } else {
            self.conv(x)?
        };
        batch_norm_groups(&y, &self.bn, mode, groups)
    }
}

/// 3x3 average pool, stride 1, zero padding 1, dividing by 9 everywhere (count_include_pad).
pub fn avg_pool3(x: &Tensor) -> Result<Tensor> {
    let p = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    Ok(p.avg_pool2d_with_stride(3, 1)?)
}

/// 3x3 max pool, stride 1, padding 1 that never wins (edge replication is equivalent to -inf
/// padding for a 3x3 window with stride 1: the replicated value is already in the window).
///
/// In [`Mode::Train`] the value is the same but the gradient goes to one element per window,
/// the first maximum in row-major order, as PyTorch's `MaxPool2d` routes it (Candle has no
/// backward for a stride-1 max pool). See docs/design.md, 'Operations'.
pub fn max_pool3(x: &Tensor, mode: Mode) -> Result<Tensor> {
    let p = x.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?;
    if mode != Mode::Train {
        return Ok(p.max_pool2d_with_stride(3, 1)?);
    }
    // The nine shifted maps, in window order: `[N, C, H, W, 9]`. Edge replication keeps the
    // order of first occurrences, so the first maximum of a padded window is the first
    // in-map maximum, and the padding's backward routes its gradient there.
    let (h, w) = (x.dim(2)?, x.dim(3)?);
    let mut shifted = Vec::with_capacity(9);
    for ky in 0..3 {
        for kx in 0..3 {
            shifted.push(p.narrow(2, ky, h)?.narrow(3, kx, w)?);
        }
    }
    first_max(&Tensor::stack(&shifted, 4)?)
}

/// `k x k` max pool with stride `k` of `[N, C, H, W]` (trailing rows and columns that do not
/// fill a window are dropped, as in PyTorch's `MaxPool2d(k)`).
///
/// In [`Mode::Train`] the gradient goes to one element per window, the first maximum in
/// row-major window order (PyTorch's semantics): Candle 0.11's own backward instead scales
/// the gradient of every maximum by the fraction of the window at the maximum. The value is
/// the same bits in every mode (both pick the first maximum).
pub fn max_pool(x: &Tensor, k: usize, mode: Mode) -> Result<Tensor> {
    if mode != Mode::Train {
        return Ok(x.max_pool2d(k)?);
    }
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / k, w / k);
    let win = x
        .narrow(2, 0, oh * k)?
        .narrow(3, 0, ow * k)?
        .reshape((n, c, oh, k, ow, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((n, c, oh, ow, k * k))?;
    first_max(&win)
}

/// The element of each window (the last dimension of `win`) at its first maximum, with a
/// gradient that reaches that element alone: a gather at an index computed without a
/// gradient. The index is the arg-maximum of `(window is at its maximum) * (K - position)`,
/// unique by construction, so no backend's tie-breaking matters.
fn first_max(win: &Tensor) -> Result<Tensor> {
    let kk = win.dim(D::Minus1)?;
    let plain = win.detach();
    let at_max = plain
        .broadcast_eq(&plain.max_keepdim(D::Minus1)?)?
        .to_dtype(win.dtype())?;
    let rank: Vec<f32> = (0..kk).map(|i| (kk - i) as f32).collect();
    let rank = Tensor::from_vec(rank, kk, win.device())?.to_dtype(win.dtype())?;
    let idx = at_max.broadcast_mul(&rank)?.argmax_keepdim(D::Minus1)?;
    Ok(win
        .contiguous()?
        .gather(&idx, D::Minus1)?
        .squeeze(D::Minus1)?)
}

/// Averages each consecutive group of `votes` outputs: `[N, classes * V] -> [N, classes]`.
pub fn vote(x: &Tensor, classes: usize, votes: usize) -> Result<Tensor> {
    let n = x.dim(0)?;
    Ok(x.reshape((n, classes, votes))?.mean(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn train_batch_norm_matches_generic_path() -> Result<()> {
        use crate::model::params::ParamStore;
        use rand::{Rng, SeedableRng};
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let data: Vec<f32> = (0..2 * 3 * 5 * 6)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let x = Tensor::from_vec(data, (2, 3, 5, 6), &dev)?;
        let mut ps = ParamStore::new(1, &dev);
        for k in [1, 3] {
            let cb = ConvBn::new(&mut ps, &format!("c{k}"), 3, 4, k)?;
            let b = cb.conv(&x)?;
            // BatchNorm: training layout vs the generic formula (ScoreBatchStats normalises
            // identically but leaves the running statistics alone).
            let generic = batch_norm(&b, &cb.bn, Mode::ScoreBatchStats)?;
            let fast = batch_norm(&b, &cb.bn, Mode::Train)?;
            let d = (generic - fast)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d < 1e-5, "bn k={k}: {d}");
            let rm: Vec<f32> = cb.bn.running_mean.as_tensor().to_vec1()?;
            assert!(rm.iter().any(|&v| v != 0.0), "running mean updated");
        }
        Ok(())
    }

    #[test]
    fn pools_match_definitions() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 9.0, &dev)?.reshape((1, 1, 3, 3))?;
        let a: Vec<f32> = avg_pool3(&x)?.flatten_all()?.to_vec1()?;
        // corner (0,0): (0+1+3+4)/9
        assert!((a[0] - 8.0 / 9.0).abs() < 1e-6);
        assert!((a[4] - 4.0).abs() < 1e-6);
        let neg = x.affine(-1.0, 0.0)?;
        let m: Vec<f32> = max_pool3(&neg, Mode::Eval)?.flatten_all()?.to_vec1()?;
        // corner: max(-0,-1,-3,-4) = 0 ; centre: 0 ; bottom-right: max(-4,-5,-7,-8) = -4
        assert_eq!(m[0], 0.0);
        assert_eq!(m[8], -4.0);
        Ok(())
    }

    /// The training max pools give the same bits as the scoring ones (their gradients are
    /// tested against hand-computed ones in `train::fast::tests`).
    #[test]
    fn train_max_pools_keep_the_value() -> Result<()> {
        use rand::{Rng, SeedableRng};
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (h, w) in [(6, 6), (7, 5)] {
            let data: Vec<f32> = (0..2 * 3 * h * w)
                .map(|i| {
                    if i % 2 == 0 {
                        rng.gen_range(0..2) as f32
                    } else {
                        rng.gen_range(-1.0..1.0)
                    }
                })
                .collect();
            let x = Tensor::from_vec(data, (2, 3, h, w), &dev)?;
            let bits = |t: Tensor| -> Result<Vec<u32>> {
                let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
                Ok(v.iter().map(|f| f.to_bits()).collect())
            };
            for k in [2, 3] {
                assert_eq!(
                    bits(max_pool(&x, k, Mode::Train)?)?,
                    bits(max_pool(&x, k, Mode::Eval)?)?
                );
            }
            assert_eq!(
                bits(max_pool3(&x, Mode::Train)?)?,
                bits(max_pool3(&x, Mode::Eval)?)?
            );
        }
        Ok(())
    }
}
