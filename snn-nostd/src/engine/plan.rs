//! Which accumulator each convolution runs on, fixed when the engine is built.

use super::conv;
use super::weights::Wt;
use super::weights::W16;
use super::weights::W8;
use crate::genotype::Op;
use crate::genotype::NUM_EDGES;
use crate::model::Bits;
use crate::model::CellParts;
use crate::model::Model;

/// The accumulator of every convolution ([`conv::Kernel::choose`]), fixed when the engine is
/// built.
#[derive(Clone, Copy)]
pub(super) struct KernelPlan {
    /// Per cell, per edge: the conv's kernel (`Sat` where the edge has no conv).
    pub(super) cells: [[conv::Kernel; NUM_EDGES]; 2],
    /// The down conv.
    pub(super) down: conv::Kernel,
}

impl KernelPlan {
    pub(super) fn new(model: &Model<'_>) -> KernelPlan {
        match model.bits() {
            Bits::B8 => Self::with::<W8>(model),
            Bits::B16 => Self::with::<W16>(model),
        }
    }

    fn with<W: Wt>(model: &Model<'_>) -> KernelPlan {
        let p = model.parts();
        let d = model.shape();
        let bits = model.bits();
        let g = model.genotype();
        let cell = |cp: &CellParts<'_>, c: usize| {
            let mut ks = [conv::Kernel::Sat; NUM_EDGES];
            for (k, (l, &op)) in cp.convs.iter().zip(g.ops()).enumerate() {
                let size = if op == Op::Conv1 { 1 } else { 3 };
                if let Some(l) = l {
                    ks[k] = conv::Kernel::choose::<W>(l, bits, size, c);
                }
            }
            ks
        };
        KernelPlan {
            cells: [cell(&p.cell1, d.c1), cell(&p.cell2, d.c2)],
            down: conv::Kernel::choose::<W>(&p.down, bits, 3, d.c2),
        }
    }

    /// Whether every conv of `model` (cells and down conv) runs on `i16` lanes (then the ring
    /// needs half the words).
    pub(super) fn lanes16_only(&self, model: &Model<'_>) -> bool {
        let p = model.parts();
        let is16 = |k: &conv::Kernel| matches!(k, conv::Kernel::Lanes16(_));
        let covered = |cp: &CellParts<'_>, ks: &[conv::Kernel; NUM_EDGES]| {
            cp.convs.iter().zip(ks).all(|(l, k)| l.is_none() || is16(k))
        };
        is16(&self.down) && covered(&p.cell1, &self.cells[0]) && covered(&p.cell2, &self.cells[1])
    }
}
