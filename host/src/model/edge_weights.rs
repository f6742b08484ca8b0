//! The op weights of one forward pass, resolved per edge: for one [`Mixing`], or for several
//! candidate mixings stacked on the batch axis (candidate `g` owns samples `g*N..(g+1)*N`).
//!
//! Stacking scores all candidates of a pruning round in one pass, which is what a GPU needs to
//! be busy (a round of docs/design.md, "Pruning by importance", has 24-36 candidates that differ
//! in one edge). The weights are chosen so that every sample sees exactly the arithmetic of its
//! own candidate's unstacked
//! pass: an op whose weight is the same for every candidate keeps the scalar path, an op some
//! candidates lack is multiplied by 0 for their samples (`x + 0 = x` exactly), and the
//! summation order over ops is the candidates' common op order.

use super::mixing::Mixing;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use snn_nostd::genotype::{CellType, Op, NUM_NODES};

/// How one op's output is scaled before it is summed into the edge output.
#[derive(Debug)]
pub(crate) enum OpWeight {
    /// Weight 1 for every sample: no multiply.
    One,
    /// The same weight for every sample.
    Scalar(f64),
    /// One weight per sample, `[G*N, 1, 1, 1]` (0 for candidates without the op).
    PerSample(Tensor),
}

/// Resolved weights of a forward pass.
#[derive(Debug)]
pub(crate) struct EdgeWeights {
    /// Number of stacked candidates G (1 for a plain forward pass).
    pub groups: usize,
    /// Per edge: the ops present in any candidate, in the candidates' common order.
    pub edges: Vec<Vec<(Op, OpWeight)>>,
    /// Per candidate: how many LIF-headed ops read each node (docs/design.md, "Operations"), the
    /// multiplicity of that node's spike layer.
    pub node_mult: Vec<[u32; NUM_NODES]>,
}

impl EdgeWeights {
    /// The weights of one mixing.
    pub fn single(mixing: &Mixing, cell: CellType) -> EdgeWeights {
        let edges = mixing
            .edges
            .iter()
            .map(|e| {
                e.ops
                    .iter()
                    .map(|&(op, w)| {
                        let ow = if w == 1.0 {
                            OpWeight::One
                        } else {
                            OpWeight::Scalar(f64::from(w))
                        };
                        (op, ow)
                    })
                    .collect()
            })
            .collect();
        EdgeWeights {
            groups: 1,
            edges,
            node_mult: vec![mixing.schedule(cell).lif_multiplicities()],
        }
    }

    /// The weights of `candidates` stacked on the batch axis, `n` samples each.
    ///
    /// Errors if the candidates' edge counts differ or if two candidates order the same ops
    /// differently (the sums would not match their unstacked passes).
    pub fn stacked(
        candidates: &[Mixing],
        cell: CellType,
        n: usize,
        device: &Device,
    ) -> Result<EdgeWeights> {
        let Some(first) = candidates.first() else {
            bail!("no candidates to stack");
        };
        if candidates.len() == 1 {
            return Ok(EdgeWeights::single(first, cell));
        }
        let num_edges = first.edges.len();
        if let Some(c) = candidates.iter().find(|c| c.edges.len() != num_edges) {
            bail!(
                "stacked candidates have {} and {} edges",
                num_edges,
                c.edges.len()
            );
        }
        let mut edges = Vec::with_capacity(num_edges);
        for ei in 0..num_edges {
            let order = union_order(candidates, ei)?;
            let mut ops = Vec::with_capacity(order.len());
            for op in order {
                let w: Vec<Option<f32>> = candidates
                    .iter()
                    .map(|c| {
                        c.edges[ei]
                            .ops
                            .iter()
                            .find(|&&(o, _)| o == op)
                            .map(|&(_, w)| w)
                    })
                    .collect();
                let ow = match w[0] {
                    Some(w0) if w.iter().all(|&x| x == Some(w0)) => {
                        if w0 == 1.0 {
                            OpWeight::One
                        } else {
                            OpWeight::Scalar(f64::from(w0))
                        }
                    }
                    _ => {
                        let per: Vec<f32> = w
                            .iter()
                            .flat_map(|x| std::iter::repeat_n(x.unwrap_or(0.0), n))
                            .collect();
                        let len = per.len();
                        OpWeight::PerSample(Tensor::from_vec(per, (len, 1, 1, 1), device)?)
                    }
                };
                ops.push((op, ow));
            }
            edges.push(ops);
        }
        Ok(EdgeWeights {
            groups: candidates.len(),
            edges,
            node_mult: candidates
                .iter()
                .map(|m| m.schedule(cell).lif_multiplicities())
                .collect(),
        })
    }

    /// Multiplicities of node `j`'s spike layer, one per candidate.
    pub fn mults(&self, j: usize) -> Vec<u32> {
        self.node_mult.iter().map(|m| m[j]).collect()
    }

    /// Whether any candidate reads node `j` through a LIF-headed op.
    pub fn node_spikes_needed(&self, j: usize) -> bool {
        self.node_mult.iter().any(|m| m[j] > 0)
    }
}

/// The ops of edge `ei` over all candidates, in an order every candidate agrees with: a
/// topological order of "comes before" over each candidate's op list (ties broken by first
/// appearance).
fn union_order(candidates: &[Mixing], ei: usize) -> Result<Vec<Op>> {
    let mut ops: Vec<Op> = Vec::new();
    let mut before: Vec<(Op, Op)> = Vec::new();
    for c in candidates {
        let list = &c.edges[ei].ops;
        for (k, &(op, _)) in list.iter().enumerate() {
            if !ops.contains(&op) {
                ops.push(op);
            }
            if let Some(&(next, _)) = list.get(k + 1) {
                before.push((op, next));
            }
        }
    }
    let mut order = Vec::with_capacity(ops.len());
    while order.len() < ops.len() {
        let ready = ops.iter().copied().find(|&o| {
            !order.contains(&o)
                && !before
                    .iter()
                    .any(|&(a, b)| b == o && a != o && !order.contains(&a))
        });
        match ready {
            Some(o) => order.push(o),
            None => bail!("stacked candidates order the ops of edge {ei} differently"),
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use snn_nostd::genotype::OpSet;

    #[test]
    fn stacked_weights_and_multiplicities() -> Result<()> {
        let cell = CellType::Forward;
        let alive = vec![OpSet::lightsnn().ops().to_vec(); cell.num_edges()];
        let mut a = alive.clone();
        a[0].retain(|&o| o != Op::Conv3);
        let mut b = alive.clone();
        b[0].retain(|&o| o != Op::Zero);
        let cands = [Mixing::uniform(&a), Mixing::uniform(&b)];
        let w = EdgeWeights::stacked(&cands, cell, 3, &Device::Cpu)?;
        assert_eq!(w.groups, 2);
        // Edge 0: zero, conv3, skip in op-set order; a lacks conv3, b lacks zero.
        let ops: Vec<Op> = w.edges[0].iter().map(|(o, _)| *o).collect();
        assert_eq!(ops, OpSet::lightsnn().ops().to_vec());
        let per_sample = |k: usize| -> Result<Vec<f32>> {
            match &w.edges[0][k].1 {
                OpWeight::PerSample(t) => Ok(t.flatten_all()?.to_vec1()?),
                other => bail!("op {k} of edge 0 should be per-sample, got {other:?}"),
            }
        };
        assert_eq!(per_sample(0)?, vec![0.5, 0.5, 0.5, 0.0, 0.0, 0.0]);
        assert_eq!(per_sample(1)?, vec![0.0, 0.0, 0.0, 0.5, 0.5, 0.5]);
        assert!(matches!(w.edges[0][2].1, OpWeight::Scalar(x) if x == 0.5));
        // Edge 1 is the same in both: scalar 1/3.
        assert!(matches!(w.edges[1][0].1, OpWeight::Scalar(x) if (x - 1.0 / 3.0).abs() < 1e-7));
        // Node 0 loses one conv in candidate a only.
        let from0 = cell.edges().iter().filter(|e| e.from == 0).count() as u32;
        assert_eq!(w.mults(0), vec![from0 - 1, from0]);
        Ok(())
    }

    #[test]
    fn conflicting_op_orders_are_refused() {
        let cell = CellType::Forward;
        let ne = cell.num_edges();
        let a = Mixing::uniform(&vec![vec![Op::Skip, Op::Conv3]; ne]);
        let b = Mixing::uniform(&vec![vec![Op::Conv3, Op::Skip]; ne]);
        let e = EdgeWeights::stacked(&[a, b], cell, 2, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("order"), "{e}");
    }
}
