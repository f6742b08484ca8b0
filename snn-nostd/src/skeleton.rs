//! The network's shape rules and neuron constants (docs/design.md: "The LIF neuron", "The cell",
//! "Macro skeleton"), defined once for the host (Candle network, CPU scoring engine, training
//! statistics, export) and the device (the blob's [`Shape`], the integer engine's [`CellPlan`]):
//! - the LIF constants and BN_EPS;
//! - the map sizes of each stage ([`cell1_hw`], [`cell2_hw`], [`pooled_hw`]);
//! - the cell schedule ([`CellSchedule`]): which node carries a LIF of which threshold class
//!   and how many LIF modules of the reference network it stands for, which back states exist,
//!   which node tensors are read by tensor ops, and the ordered forward and backward edges;
//! - the names of the LIF layers ([`LayerId`]), the same on the host and on the device.
//!
//! [`Shape`]: crate::model::Shape
//! [`CellPlan`]: crate::model::CellPlan

use crate::genotype::{CellType, Edge, LifClass, Op, LIF_CLASSES, NUM_NODES};
use core::fmt;

/// LIF membrane time constant: the charge is `V <- V + (X - V) / tau`, `(V + 3X) / 4`.
pub const LIF_TAU: f64 = 4.0 / 3.0;
/// LIF firing threshold (fire where `V >= V_th`).
pub const LIF_V_THRESHOLD: f64 = 1.0;
/// Membrane potential after a spike (hard reset).
pub const LIF_V_RESET: f64 = 0.0;
/// BatchNorm epsilon.
pub const BN_EPS: f64 = 1e-5;

/// Height and width of cell 1's maps: the input's, halved by the stem's MaxPool2 where it has
/// one.
pub const fn cell1_hw(in_h: usize, in_w: usize, stem_pool: bool) -> (usize, usize) {
    if stem_pool {
        (in_h / 2, in_w / 2)
    } else {
        (in_h, in_w)
    }
}

/// Height and width of cell 2's maps: cell 1's after the down conv's MaxPool2.
pub const fn cell2_hw(cell1: (usize, usize)) -> (usize, usize) {
    (cell1.0 / 2, cell1.1 / 2)
}

/// Height and width of the map entering fc1: cell 2's after MaxPool(`p`) (`floor`; `p = 0`
/// gives an empty map).
pub const fn pooled_hw(cell2: (usize, usize), p: usize) -> (usize, usize) {
    match (cell2.0.checked_div(p), cell2.1.checked_div(p)) {
        (Some(h), Some(w)) => (h, w),
        _ => (0, 0),
    }
}

/// A LIF layer of the network, named the same way by every forward pass (Candle, CPU engine,
/// integer engine) and in every report: `cell1.node0`, `cell1.node0@0.5`, `cell1.out`,
/// `hidden`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LayerId {
    /// The LIF of class `class` at the input of the conv ops reading node `node` of cell
    /// `cell`: on `x_node + B_node` for nodes 0..=2, on `x3` for node 3. Every conv op of that
    /// class leaving the node sees the same input, so one layer stands for all of them
    /// ([`CellSchedule::lif_multiplicity`]). Printed `cell1.node0` for the network's own
    /// threshold ([`LifClass::Th10`]), `cell1.node0@0.5` / `@1.5` for the others.
    CellNode {
        /// Cell index, 0-based (0 = cell 1, 1 = cell 2).
        cell: u8,
        /// Source node (0..=3).
        node: u8,
        /// The LIF's threshold class.
        class: LifClass,
    },
    /// The LIF after a cell's BatchNorm.
    CellOut {
        /// Cell index, 0-based.
        cell: u8,
    },
    /// The LIF of the classifier's hidden layer (after fc1).
    Hidden,
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerId::CellNode { cell, node, class } => {
                write!(f, "cell{}.node{}{}", cell + 1, node, class.suffix())
            }
            LayerId::CellOut { cell } => write!(f, "cell{}.out", cell + 1),
            LayerId::Hidden => f.write_str("hidden"),
        }
    }
}

/// Maximum number of LIF layers: one per node and LIF class in each cell, one after each cell,
/// the hidden one.
pub const MAX_LAYERS: usize = 2 * NUM_NODES * LIF_CLASSES + 3;

/// Maximum number of LIF layers of a network whose LIFs all fire at the network's threshold
/// ([`LifClass::Th10`]: no thresholded convs): one per node in each cell, one after each cell,
/// the hidden one.
pub const MAX_BASE_LAYERS: usize = 2 * NUM_NODES + 3;

/// Conv op counts of one (node, LIF class): `[3x3, 1x1]`.
pub type ConvCounts = [u32; 2];

/// What a cell computes, from the ops on its edges (docs/design.md, "The cell"): the rules every
/// forward pass shares. Built with [`CellSchedule::of_genotype`] (one op per edge) or op by op with
/// [`CellSchedule::add`] (the supernet's several ops per edge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CellSchedule {
    /// Per source node and LIF class ([`LifClass::index`]): the number of 3x3 and of 1x1 conv
    /// ops reading it (`[conv3, conv1]`).
    pub convs: [[ConvCounts; LIF_CLASSES]; NUM_NODES],
    /// `need_back[i]`: some non-zero backward edge enters node `i`, so back state `B_i` exists.
    pub need_back: [bool; 3],
    /// `reads_tensor[j]`: some non-zero op that reads the tensor rather than the spikes (skip,
    /// pools) leaves node `j`.
    pub reads_tensor: [bool; NUM_NODES],
}

impl CellSchedule {
    /// The schedule of a cell with no ops (every edge `zero`).
    pub const fn empty() -> CellSchedule {
        CellSchedule {
            convs: [[[0; 2]; LIF_CLASSES]; NUM_NODES],
            need_back: [false; 3],
            reads_tensor: [false; NUM_NODES],
        }
    }

    /// The schedule of a cell of type `cell` with `ops` (one per edge, canonical order; extra or
    /// missing ops are ignored).
    pub const fn of_genotype(cell: CellType, ops: &[Op]) -> CellSchedule {
        let edges = cell.edges();
        let mut s = CellSchedule::empty();
        let mut i = 0;
        while i < edges.len() && i < ops.len() {
            s.add(edges[i], ops[i]);
            i += 1;
        }
        s
    }

    /// Adds op `op` on edge `e` (`zero` adds nothing; an edge may carry several ops).
    pub const fn add(&mut self, e: Edge, op: Op) {
        let (from, to) = (e.from as usize, e.to as usize);
        if matches!(op, Op::Zero) || from >= NUM_NODES {
            return;
        }
        if e.is_backward() && to < 3 {
            self.need_back[to] = true;
        }
        match (op.lif_class(), op.kernel()) {
            (Some(c), Some(k)) => self.convs[from][c.index()][(k == 1) as usize] += 1,
            _ => self.reads_tensor[from] = true,
        }
    }

    /// How many LIF modules of the reference network the LIF of class `class` on node `node`
    /// stands for: the number of conv ops of that class reading the node; 0 means there is no
    /// such layer.
    pub const fn lif_multiplicity(&self, node: usize, class: LifClass) -> u32 {
        if node < NUM_NODES {
            let c = self.convs[node][class.index()];
            c[0] + c[1]
        } else {
            0
        }
    }

    /// [`lif_multiplicity`](Self::lif_multiplicity) of every node and class.
    pub const fn lif_multiplicities(&self) -> [[u32; LIF_CLASSES]; NUM_NODES] {
        let mut m = [[0; LIF_CLASSES]; NUM_NODES];
        let mut j = 0;
        while j < NUM_NODES {
            let mut c = 0;
            while c < LIF_CLASSES {
                m[j][c] = self.lif_multiplicity(j, LifClass::ALL[c]);
                c += 1;
            }
            j += 1;
        }
        m
    }

    /// Whether node `node` carries a LIF of class `class` (some conv op of that class reads
    /// it).
    pub const fn has_lif(&self, node: usize, class: LifClass) -> bool {
        self.lif_multiplicity(node, class) > 0
    }

    /// Whether node `node` carries a LIF of any class.
    pub const fn node_has_lif(&self, node: usize) -> bool {
        let mut c = 0;
        while c < LIF_CLASSES {
            if self.has_lif(node, LifClass::ALL[c]) {
                return true;
            }
            c += 1;
        }
        false
    }

    /// Whether every LIF of the cell has the network's own threshold ([`LifClass::Th10`]).
    pub const fn base_class_only(&self) -> bool {
        let mut j = 0;
        while j < NUM_NODES {
            if self.has_lif(j, LifClass::Th05) || self.has_lif(j, LifClass::Th15) {
                return false;
            }
            j += 1;
        }
        true
    }

    /// The LIF classes of node `node` that exist, with their multiplicities, in threshold
    /// order (the order a node's layers run and are recorded in).
    pub fn node_lifs(&self, node: usize) -> impl Iterator<Item = (LifClass, u32)> + '_ {
        LifClass::ALL
            .into_iter()
            .map(move |c| (c, self.lif_multiplicity(node, c)))
            .filter(|&(_, m)| m > 0)
    }
}

/// The forward edges (`from < to`) of `cell` that enter node `to`, with their canonical indices,
/// in the order a timestep sums them into `x_to`.
pub fn forward_edges_into(cell: CellType, to: usize) -> impl Iterator<Item = (usize, Edge)> {
    edges_into(cell, to, false)
}

/// The backward edges (`from > to`) of `cell` that enter node `to`, with their canonical
/// indices, in the order they are summed into the back state `B_to` of the next timestep.
pub fn backward_edges_into(cell: CellType, to: usize) -> impl Iterator<Item = (usize, Edge)> {
    edges_into(cell, to, true)
}

fn edges_into(cell: CellType, to: usize, backward: bool) -> impl Iterator<Item = (usize, Edge)> {
    cell.edges()
        .iter()
        .copied()
        .enumerate()
        .filter(move |(_, e)| e.to as usize == to && e.is_backward() == backward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_the_datasets() {
        // CIFAR-10 32x32, DVS128 128x128 with the stem pool, N-MNIST 34x34, p = 2.
        assert_eq!(pooled_hw(cell2_hw(cell1_hw(32, 32, false)), 2), (8, 8));
        assert_eq!(cell1_hw(128, 128, true), (64, 64));
        assert_eq!(pooled_hw(cell2_hw(cell1_hw(128, 128, true)), 2), (16, 16));
        assert_eq!(pooled_hw(cell2_hw(cell1_hw(34, 34, false)), 2), (8, 8));
        assert_eq!(pooled_hw((5, 5), 0), (0, 0));
    }

    #[test]
    fn layer_names() {
        extern crate std;
        use std::string::ToString;
        let node = |node: u8, class: LifClass| LayerId::CellNode {
            cell: 0,
            node,
            class,
        };
        assert_eq!(node(3, LifClass::Th10).to_string(), "cell1.node3");
        assert_eq!(node(0, LifClass::Th05).to_string(), "cell1.node0@0.5");
        assert_eq!(node(2, LifClass::Th15).to_string(), "cell1.node2@1.5");
        assert_eq!(LayerId::CellOut { cell: 1 }.to_string(), "cell2.out");
        assert_eq!(LayerId::Hidden.to_string(), "hidden");
        // Network order: cell 1's nodes (by node, then threshold), its output, cell 2's, the
        // hidden layer.
        assert!(node(3, LifClass::Th15) < LayerId::CellOut { cell: 0 });
        assert!(node(0, LifClass::Th05) < node(0, LifClass::Th10));
        assert!(node(0, LifClass::Th15) < node(1, LifClass::Th05));
    }

    #[test]
    fn schedule_of_a_multi_threshold_cell() {
        // Forward cell: 1<-0 conv3@0.5, 2<-0 conv3, 2<-1 conv3@1.5, 3<-0 conv3@1.5,
        // 3<-1 skip, 3<-2 conv3@0.5. Node 0 feeds one conv of each threshold: three layers.
        use Op::{Conv3, Conv3Th05 as Lo, Conv3Th15 as Hi, Skip};
        let s = CellSchedule::of_genotype(CellType::Forward, &[Lo, Conv3, Hi, Hi, Skip, Lo]);
        assert_eq!(
            s.lif_multiplicities(),
            [[1, 1, 1], [0, 0, 1], [1, 0, 0], [0, 0, 0]]
        );
        assert_eq!(s.reads_tensor, [false, true, false, false]);
        assert!(s.node_has_lif(0) && s.node_has_lif(2) && !s.node_has_lif(3));
        assert!(!s.base_class_only());
        let layers: std::vec::Vec<(LifClass, u32)> = s.node_lifs(0).collect();
        assert_eq!(
            layers,
            [
                (LifClass::Th05, 1),
                (LifClass::Th10, 1),
                (LifClass::Th15, 1)
            ]
        );
        assert_eq!(
            s.node_lifs(1).collect::<std::vec::Vec<_>>(),
            [(LifClass::Th15, 1)]
        );
        // Two ops of one threshold on one node share a layer of multiplicity 2; a conv1 shares
        // the network threshold's layer with conv3.
        let mut t = CellSchedule::empty();
        t.add(Edge { to: 2, from: 0 }, Hi);
        t.add(Edge { to: 3, from: 0 }, Hi);
        t.add(Edge { to: 1, from: 0 }, Op::Conv1);
        t.add(Edge { to: 1, from: 0 }, Conv3);
        assert_eq!(t.lif_multiplicities()[0], [0, 2, 2]);
        assert_eq!(t.convs[0][LifClass::Th10.index()], [1, 1]);
        assert_eq!((MAX_LAYERS, MAX_BASE_LAYERS), (27, 11));
    }

    #[test]
    fn schedule_of_a_genotype() {
        // Backward cell: 12 edges. conv3 on 0->1 and 1->2, conv1 on 1->3, skip on 0->3,
        // avgpool on the backward edge 2->0, zero elsewhere.
        let mut ops = [Op::Zero; 12];
        for (i, e) in CellType::Backward.edges().iter().enumerate() {
            ops[i] = match (e.from, e.to) {
                (0, 1) | (1, 2) => Op::Conv3,
                (1, 3) => Op::Conv1,
                (0, 3) => Op::Skip,
                (2, 0) => Op::AvgPool,
                _ => Op::Zero,
            };
        }
        let s = CellSchedule::of_genotype(CellType::Backward, &ops);
        let base = LifClass::Th10;
        assert_eq!(
            s.lif_multiplicities(),
            [[0, 1, 0], [0, 2, 0], [0, 0, 0], [0, 0, 0]]
        );
        assert_eq!(s.convs[1][base.index()], [1, 1]);
        assert_eq!(s.need_back, [true, false, false]);
        assert_eq!(s.reads_tensor, [true, false, true, false]);
        assert!(s.has_lif(0, base) && !s.has_lif(2, base) && !s.has_lif(7, base));
        assert!(!s.has_lif(0, LifClass::Th05) && s.base_class_only());
        let (b, f) = (CellType::Backward, CellType::Forward);
        let fwd: std::vec::Vec<_> = (0..NUM_NODES)
            .flat_map(|i| forward_edges_into(b, i))
            .collect();
        let back: std::vec::Vec<_> = (0..NUM_NODES)
            .flat_map(|i| backward_edges_into(b, i))
            .collect();
        assert_eq!((fwd.len(), back.len()), (6, 6));
        assert!(fwd
            .iter()
            .all(|(k, e)| !e.is_backward() && b.edges()[*k] == *e));
        assert!(back
            .iter()
            .all(|(k, e)| e.is_backward() && b.edges()[*k] == *e));
        assert_eq!(
            (0..NUM_NODES)
                .flat_map(|i| backward_edges_into(f, i))
                .count(),
            0
        );
        assert_eq!(
            (0..NUM_NODES)
                .flat_map(|i| forward_edges_into(f, i))
                .count(),
            6
        );
    }
}
