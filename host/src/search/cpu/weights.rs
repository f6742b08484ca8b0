//! The network's tensors copied once into plain `Vec<f32>`s, in the layouts the kernels read.

use super::conv::padded;
use crate::model::layers::ConvBn;
use crate::model::plain::{values, Bn};
use crate::model::Network;
use anyhow::{bail, Result};
use snn_nostd::genotype::Op;
use std::collections::BTreeMap;

/// A convolution with its BatchNorm; the kernel laid out `[ky][kx][ci][co]` (tap-major, one
/// contiguous row of output channels per input channel and tap).
#[derive(Clone, Debug)]
pub struct ConvW {
    /// Kernel size.
    pub k: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Length of a row of output channels in `taps` (and in the outputs): `cout`, or `cout`
    /// rounded up to a multiple of [`LANES`](super::conv::LANES) for the kernels, the extra weights 0.
    pub stride: usize,
    /// `taps[((ky * k + kx) * cin + ci) * stride + co] = weight[co][ci][ky][kx]`.
    pub taps: Vec<f32>,
    /// The BatchNorm after it.
    pub bn: Bn,
}

impl ConvW {
    fn from_conv_bn(c: &ConvBn) -> Result<ConvW> {
        let (cout, cin, k, k2) = c.weight.as_tensor().dims4()?;
        if k != k2 || k != c.k {
            bail!("conv kernel {k}x{k2} does not match k = {}", c.k);
        }
        let w = values(&c.weight, "a conv weight")?;
        let mut taps = vec![0f32; w.len()];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..k * k {
                    taps[(t * cin + ci) * cout + co] = w[(co * cin + ci) * k * k + t];
                }
            }
        }
        Ok(ConvW {
            k,
            cin,
            cout,
            stride: cout,
            taps,
            bn: Bn::from_params(&c.bn, "a conv's BatchNorm")?,
        })
    }

    /// Several convolutions with the same input and kernel size as one, in the layout of
    /// [`conv_gather`](super::conv::conv_gather): output channels concatenated in the order
    /// given, rows padded to a multiple of [`LANES`](super::conv::LANES).
    pub fn group(parts: &[&ConvW]) -> ConvW {
        let (k, cin) = (parts[0].k, parts[0].cin);
        let cout: usize = parts.iter().map(|p| p.cout).sum();
        let stride = padded(cout);
        let mut taps = Vec::with_capacity(k * k * cin * stride);
        for row in 0..k * k * cin {
            for p in parts {
                debug_assert!(p.k == k && p.cin == cin);
                taps.extend_from_slice(&p.taps[row * p.stride..row * p.stride + p.cout]);
            }
            taps.resize(taps.len() + stride - cout, 0.0);
        }
        ConvW {
            k,
            cin,
            cout,
            stride,
            taps,
            bn: Bn::concat(parts.iter().map(|p| &p.bn)),
        }
    }
}

/// Hidden units per column block of the hidden layer's weights.
pub const HIDDEN_BLOCK: usize = 64;

/// Every tensor the spiking part of the network needs (the stem stays in Candle, the output
/// layer does not affect spikes).
#[derive(Debug)]
pub struct Weights {
    /// Per cell, per edge (canonical order): the conv ops present.
    pub cells: [Vec<BTreeMap<Op, ConvW>>; 2],
    /// BatchNorm after each cell.
    pub cell_bn: [Bn; 2],
    /// The C1 -> C2 convolution between the cells (padded for the kernels).
    pub down: ConvW,
    /// Hidden layer transposed, in column blocks: block `b` (hidden units
    /// `b * HIDDEN_BLOCK..`, `width` of them) is a contiguous `[features][width]` matrix.
    pub fc1_blocks: Vec<Vec<f32>>,
    /// Hidden units.
    pub hidden: usize,
}

impl Weights {
    /// Copies the tensors of `net` (on any device) to the host.
    pub fn from_network(net: &Network) -> Result<Weights> {
        let cell = |ci: usize| -> Result<Vec<BTreeMap<Op, ConvW>>> {
            net.cells[ci]
                .edges
                .iter()
                .map(|e| {
                    e.iter()
                        .map(|(&op, c)| Ok((op, ConvW::from_conv_bn(c)?)))
                        .collect()
                })
                .collect()
        };
        let (hidden, features) = net.fc1.as_tensor().dims2()?;
        let fc1 = values(&net.fc1, "fc1.weight")?;
        let fc1_blocks = (0..hidden.div_ceil(HIDDEN_BLOCK))
            .map(|b| {
                let h0 = b * HIDDEN_BLOCK;
                let width = HIDDEN_BLOCK.min(hidden - h0);
                let mut blk = vec![0f32; features * width];
                for f in 0..features {
                    for j in 0..width {
                        blk[f * width + j] = fc1[(h0 + j) * features + f];
                    }
                }
                blk
            })
            .collect();
        Ok(Weights {
            cells: [cell(0)?, cell(1)?],
            cell_bn: [
                Bn::from_params(&net.cell_bn[0], "cell1_bn")?,
                Bn::from_params(&net.cell_bn[1], "cell2_bn")?,
            ],
            down: ConvW::group(&[&ConvW::from_conv_bn(&net.down)?]),
            fc1_blocks,
            hidden,
        })
    }
}
