//! Which ops are alive on each edge, with their mixing weights (docs/design.md, "Pruning by
//! importance").

use snn_nostd::genotype::{CellType, Genotype, Op, OpSet};
use snn_nostd::skeleton::CellSchedule;

/// The alive ops of one edge and their weights. The edge output is `sum_o w_o * op_o(x)`.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeMix {
    /// (op, weight) pairs in op-set order.
    pub ops: Vec<(Op, f32)>,
}

/// Per-edge mixing of a cell, in canonical edge order. Both cells share it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixing {
    /// One entry per edge of the cell type.
    pub edges: Vec<EdgeMix>,
}

impl Mixing {
    /// Softmax over equal logits of the alive ops on each edge: weight `1/k` for `k` alive ops.
    pub fn uniform(alive: &[Vec<Op>]) -> Mixing {
        Mixing {
            edges: alive
                .iter()
                .map(|ops| {
                    let w = 1.0 / ops.len().max(1) as f32;
                    EdgeMix {
                        ops: ops.iter().map(|&o| (o, w)).collect(),
                    }
                })
                .collect(),
        }
    }

    /// The full supernet: every op of `ops` on every edge of `cell`.
    pub fn supernet(cell: CellType, ops: &OpSet) -> Mixing {
        Mixing::uniform(&vec![ops.ops().to_vec(); cell.num_edges()])
    }

    /// A single-path network: the genotype's op on each edge with weight 1.
    pub fn single_path(g: &Genotype) -> Mixing {
        Mixing {
            edges: g
                .ops()
                .iter()
                .map(|&o| EdgeMix {
                    ops: vec![(o, 1.0)],
                })
                .collect(),
        }
    }

    /// The schedule of a cell of type `cell` under this mixing: every op on every edge counts
    /// (the supernet's LIF multiplicities sum over the ops of each edge).
    pub fn schedule(&self, cell: CellType) -> CellSchedule {
        let mut s = CellSchedule::empty();
        for (&e, mix) in cell.edges().iter().zip(&self.edges) {
            for &(op, _) in &mix.ops {
                s.add(e, op);
            }
        }
        s
    }

    /// The ops that appear on each edge (with any weight).
    pub fn alive(&self) -> Vec<Vec<Op>> {
        self.edges
            .iter()
            .map(|e| e.ops.iter().map(|&(o, _)| o).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_weights() {
        let m = Mixing::supernet(CellType::Backward, &OpSet::lightsnn());
        assert_eq!(m.edges.len(), 12);
        assert!(m
            .edges
            .iter()
            .all(|e| e.ops.len() == 3 && e.ops[0].1 == 1.0 / 3.0));
        let g: Genotype = "conv3 skip zero conv3 conv3 skip".parse().unwrap();
        let s = Mixing::single_path(&g);
        assert_eq!(s.edges[2].ops, vec![(Op::Zero, 1.0)]);
    }
}
