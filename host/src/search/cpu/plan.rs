//! What one forward pass under a [`Mixing`] computes, decided once per pass: which conv ops read
//! each node (grouped into one convolution per node and kernel size), and the weighted terms of
//! every edge.

use super::weights::{ConvW, Weights};
use crate::model::Mixing;
use anyhow::{bail, Result};
use snn_nostd::genotype::{CellType, Op, NUM_NODES};

/// Where one term of an edge comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// The source value itself.
    Skip,
    /// 3x3 average pool of the source value.
    AvgPool,
    /// 3x3 max pool of the source value.
    MaxPool,
    /// Output `slot` of the source node's conv group of kernel size 3 (`k1 == false`) or 1.
    Conv {
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

/// The plan of one cell.
#[derive(Debug)]
pub struct CellPlan {
    /// LIF-headed ops reading each node (the multiplicity of its spike record).
    pub mult: [u32; NUM_NODES],
    /// Per node: the 3x3 and the 1x1 conv ops reading it, merged (`[k3, k1]`, see
    /// [`ConvW::group`]).
    pub groups: [[Option<ConvW>; 2]; NUM_NODES],
    /// Edges in canonical order.
    pub edges: Vec<EdgePlan>,
}

impl CellPlan {
    /// The plan of cell `ci` of `w` under `mixing`.
    pub fn new(w: &Weights, ci: usize, cell: CellType, mixing: &Mixing) -> Result<CellPlan> {
        let mut members: [[Vec<&ConvW>; 2]; NUM_NODES] = Default::default();
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
                    Op::Conv1 | Op::Conv3 => {
                        let Some(c) = w.cells[ci].get(ei).and_then(|m| m.get(&op)) else {
                            bail!("edge {ei} has no parameters for {op} (network built for other ops)");
                        };
                        let k1 = op == Op::Conv1;
                        let g = &mut members[from][k1 as usize];
                        g.push(c);
                        Src::Conv {
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
        let mut groups: [[Option<ConvW>; 2]; NUM_NODES] = Default::default();
        for j in 0..NUM_NODES {
            for g in 0..2 {
                if !members[j][g].is_empty() {
                    groups[j][g] = Some(ConvW::group(&members[j][g]));
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
