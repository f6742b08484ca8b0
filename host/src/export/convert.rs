//! Converts a trained Candle [`Network`] into the plain-Rust [`FloatNetwork`] that the quantiser
//! takes.

use super::weights::{Bn, CellWeights, ConvBn, FloatNetwork, Normalization};
use crate::model::layers::ConvBn as CandleConvBn;
use crate::model::params::BnParams;
use crate::model::plain::values;
use crate::model::Network;
use anyhow::{bail, Context, Result};
use snn_nostd::genotype::Genotype;

fn bn(b: &BnParams, what: &str) -> Result<Bn> {
    Bn::from_params(b, what)
}

fn conv_bn(c: &CandleConvBn, what: &str) -> Result<ConvBn> {
    Ok(ConvBn {
        weight: values(&c.weight, what)?,
        bn: bn(&c.bn, what)?,
    })
}

/// The float description of `net` running `genotype` (one op per edge; the network must hold
/// parameters for every conv op of the genotype).
pub fn from_network(net: &Network, genotype: &Genotype) -> Result<FloatNetwork> {
    let cfg = &net.cfg;
    // The integer engine (and the NIR graph) implement the default LIF only (docs/design.md,
    // "The LIF neuron"): refuse other constants rather than export a network that computes
    // something else.
    let (lif, spec) = (cfg.lif, crate::config::LifParams::default());
    if (lif.tau, lif.v_threshold, lif.v_reset) != (spec.tau, spec.v_threshold, spec.v_reset) {
        bail!(
            "the network's LIF (tau {}, threshold {}, reset {}) cannot be exported: the integer \
             engine and the NIR graph implement tau {}, threshold {}, hard reset to {} only",
            lif.tau,
            lif.v_threshold,
            lif.v_reset,
            spec.tau,
            spec.v_threshold,
            spec.v_reset
        );
    }
    if genotype.cell() != cfg.cell {
        bail!(
            "genotype is a {} cell, the network a {} cell",
            genotype.cell(),
            cfg.cell
        );
    }
    let mut cells = Vec::new();
    for (ci, cell) in net.cells.iter().enumerate() {
        let mut convs = Vec::new();
        for (ei, &op) in genotype.ops().iter().enumerate() {
            convs.push(match op.kernel() {
                Some(_) => {
                    let c = cell.edges[ei].get(&op).with_context(|| {
                        format!("cell {} edge {ei} has no {op} weights", ci + 1)
                    })?;
                    Some(conv_bn(c, &format!("cell{}.e{ei}.{op}", ci + 1))?)
                }
                None => None,
            });
        }
        cells.push(CellWeights { convs });
    }
    let cell2 = cells.pop().expect("two cells");
    let cell1 = cells.pop().expect("two cells");
    let (mean, std) = cfg.dataset.mean_std();
    let is_event = cfg.dataset.is_event();
    Ok(FloatNetwork {
        dataset: cfg.dataset,
        shape: cfg.shape,
        downsample: cfg.downsample,
        genotype: genotype.clone(),
        stem: conv_bn(&net.stem, "stem")?,
        cell1,
        bn_cell1: bn(&net.cell_bn[0], "cell1_bn")?,
        down: conv_bn(&net.down, "down")?,
        cell2,
        bn_cell2: bn(&net.cell_bn[1], "cell2_bn")?,
        fc1: values(&net.fc1, "fc1.weight")?,
        fc2_weight: values(&net.fc2, "fc2.weight")?,
        fc2_bias: values(&net.fc2_bias, "fc2.bias")?,
        normalization: (!is_event).then(|| Normalization {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }),
    })
}
