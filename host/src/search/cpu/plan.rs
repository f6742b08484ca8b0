//! What one forward pass under a [`Mixing`] computes, decided once per pass: which conv ops read
//! each node's spikes of each LIF class (grouped into one convolution per node, class and kernel
//! size), and the weighted terms of every edge.

use super::weights::{ConvW, Weights};
use crate::model::Mixing;
use anyhow::{bail, Result};
use snn_nostd::genotype::{CellType, LifClass, Op, LIF_CLASSES, NUM_NODES};

/// Where one term of an edge comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// The source value itself.
    Skip,
    /// 3x3 average pool of the source value.
    AvgPool,
    /// 3x3 max pool of the source value.
    MaxPool,
    /// Output `slot` of the conv group of the source node's LIF class `class` and kernel size
    /// 3 (`k1 == false`) or 1.
    Conv {
        /// The LIF class whose spikes the conv reads.
        class: LifClass,
        /// The 1x1 group rather than the 3x3 one.
        k1: bool,
        /// Position in the group.
        slot: usize,
    },
}

/// One edge: `sum over terms of w * src` (Candle order: terms in op-set order).
#[derive(Clone, Debug)]
pub struct EdgePlan {
    /// Source node.
    pub from: usize,
    /// Destination node.
    pub to: usize,
    /// Carries the value to the next timestep.
    pub backward: bool,
    /// Non-zero ops with their mixing weights.
    pub terms: Vec<(Src, f32)>,
}

/// Conv groups of one node and LIF class: the 3x3 and the 1x1 ops, merged (`[k3, k1]`).
pub type ClassGroups = [Option<ConvW>; 2];

/// The plan of one cell.
#[derive(Debug)]
pub struct CellPlan {
    /// LIF-headed ops of each class reading each node (the multiplicity of that spike record;
    /// 0: no such layer).
    pub mult: [[u32; LIF_CLASSES]; NUM_NODES],
    /// Per node and LIF class ([`LifClass::index`]): the 3x3 and the 1x1 conv ops reading its
    /// spikes, merged (see [`ConvW::group`]).
    pub groups: [[ClassGroups; LIF_CLASSES]; NUM_NODES],
    /// Edges in canonical order.
    pub edges: Vec<EdgePlan>,
}

impl CellPlan {
    /// The plan of cell `ci` of `w` under `mixing`.
    pub fn new(w: &Weights, ci: usize, cell: CellType, mixing: &Mixing) -> Result<CellPlan> {
        let mut members: [[[Vec<&ConvW>; 2]; LIF_CLASSES]; NUM_NODES] = Default::default();
        let mut edges = Vec::new();
        for (ei, (e, mix)) in cell.edges().iter().zip(&mixing.edges).enumerate() {
            let from = e.from as usize;
            let mut terms = Vec::new();
            for &(op, weight) in &mix.ops {
                let src = match op {
                    Op::Zero => continue,
                    Op::Skip => Src::Skip,
                    Op::AvgPool => Src::AvgPool,
                    Op::MaxPool => Src::MaxPool,
                    Op::Conv1 | Op::Conv3 | Op::Conv3Th05 | Op::Conv3Th15 => {
                        let Some(c) = w.cells[ci].get(ei).and_then(|m| m.get(&op)) else {
                            bail!("edge {ei} has no parameters for {op} (network built for other ops)");
                        };
                        let class = op.lif_class().expect("conv ops have a LIF");
                        let k1 = op.kernel() == Some(1);
                        let g = &mut members[from][class.index()][k1 as usize];
                        g.push(c);
                        Src::Conv {
                            class,
                            k1,
                            slot: g.len() - 1,
                        }
                    }
                };
                terms.push((src, weight));
            }
            edges.push(EdgePlan {
                from,
                to: e.to as usize,
                backward: e.is_backward(),
                terms,
            });
        }
        let mut groups: [[ClassGroups; LIF_CLASSES]; NUM_NODES] = Default::default();
        for (gj, mj) in groups.iter_mut().zip(&members) {
            for (gc, mc) in gj.iter_mut().zip(mj) {
                for (g, m) in gc.iter_mut().zip(mc) {
                    if !m.is_empty() {
                        *g = Some(ConvW::group(m));
                    }
                }
            }
        }
        Ok(CellPlan {
            mult: mixing.schedule(cell).lif_multiplicities(),
            groups,
            edges,
        })
    }
}
