//! Arena sizes: how much scratch a network needs, `const` for firmware statics.

use super::conv;
use super::dense;
use super::plan::KernelPlan;
use super::stem;
use crate::bits::words_for;
use crate::genotype::CellType;
use crate::genotype::Op;
use crate::model::CellPlan;
use crate::model::Dims;
use crate::model::InputKind;
use crate::model::Model;

/// Scratch sizes, in elements of each arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferSizes {
    /// `i16` activations: nodes, back states, membranes, cached stem output.
    pub act: usize,
    /// `i32` accumulators: conv output-row ring, fc outputs, class scores.
    pub acc: usize,
    /// `u64` words of bit-packed spike maps.
    pub bits: usize,
    /// `i16` elements of one quantised input sample (the caller's input buffer; not part of
    /// [`BufferSizes::bytes`]).
    pub input: usize,
    /// Whether the engine can hold the input itself ([`Engine::staged_input`](super::Engine::staged_input): static input
    /// whose frame fits a node buffer), so that a caller using [`Engine::infer_staged`](super::Engine::infer_staged) needs
    /// no input buffer.
    pub input_staged: bool,
}

impl BufferSizes {
    /// Bytes of the three arenas (`act * 2 + acc * 4 + bits * 8`).
    pub const fn bytes(&self) -> usize {
        self.act
            .saturating_mul(2)
            .saturating_add(self.acc.saturating_mul(4))
            .saturating_add(self.bits.saturating_mul(8))
    }

    /// Bytes of the arenas plus the input buffer (none where the input is staged).
    pub const fn bytes_with_input(&self) -> usize {
        if self.input_staged {
            self.bytes()
        } else {
            self.bytes().saturating_add(self.input.saturating_mul(2))
        }
    }
}

pub(super) const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Arena layout, shared by [`buffer_sizes_for`] and [`Engine::new`].
#[derive(Clone, Copy)]
pub(super) struct Layout {
    pub(super) n1: usize,
    pub(super) n2: usize,
    pub(super) nmax: usize,
    pub(super) stem: usize,
    pub(super) row: usize,
}

/// `lanes_only`: every conv runs on `i16` lanes, so the ring needs half the words.
pub(super) const fn layout(d: &Dims, lanes_only: bool) -> Layout {
    let n1 = d.n1();
    let n2 = d.n2();
    let (_, w1) = d.cell1_hw();
    let (_, w2) = d.cell2_hw();
    let c1 = d.c1 as usize;
    let c2 = d.c2 as usize;
    let ring = max(conv::ring_len(w1, max(c1, c2)), conv::ring_len(w2, c2));
    let ring = if lanes_only { ring / 2 } else { ring };
    let row = max(ring, max(d.hidden as usize, stem::scratch_len(d)));
    Layout {
        n1,
        n2,
        nmax: max(n1, n2),
        stem: match d.input {
            InputKind::Static => n1,
            InputKind::Events => 0,
        },
        row,
    }
}

/// Scratch sizes for a network of shape `dims` whose cells have genotype `ops` (one op per edge
/// of `cell`). `const`, so firmware can size static buffers at build time; [`Engine::new`](super::Engine::new)
/// checks them at start-up. They do not depend on the weights, so they can exceed
/// [`buffer_sizes`] (by the half of the conv ring that `i16` lanes do not need).
pub const fn buffer_sizes_for(dims: &Dims, cell: CellType, ops: &[Op]) -> BufferSizes {
    sizes(dims, cell, ops, false)
}

pub(super) const fn sizes(
    dims: &Dims,
    cell: CellType,
    ops: &[Op],
    lanes_only: bool,
) -> BufferSizes {
    let plan = CellPlan::new(cell, ops);
    let l = layout(dims, lanes_only);
    let per_cell = plan.backs() + plan.lifs();
    let hidden = dims.hidden as usize;
    let act = l
        .stem
        .saturating_add(l.nmax.saturating_mul(plan.slots as usize))
        .saturating_add(per_cell.saturating_mul(l.n1.saturating_add(l.n2)))
        .saturating_add(l.n1)
        .saturating_add(l.n2)
        .saturating_add(hidden);
    let bits = (plan.lifs() + 1)
        .saturating_mul(words_for(l.n1).saturating_add(words_for(l.n2)))
        .saturating_add(words_for(dims.fc1_in()))
        .saturating_add(words_for(hidden));
    let acc = l
        .row
        .saturating_add(dims.outputs())
        .saturating_add(dims.classes as usize);
    BufferSizes {
        act,
        acc,
        bits,
        input: dims.input_len(),
        input_staged: matches!(dims.input, InputKind::Static) && l.nmax >= dims.input_len(),
    }
}

/// `i32` words of scratch the dense baseline needs (`Engine::use_dense`, feature `dense`).
pub fn dense_scratch_len(model: &Model<'_>) -> usize {
    dense::scratch_len(model.dims())
}

/// Scratch sizes for `model`.
pub fn buffer_sizes(model: &Model<'_>) -> BufferSizes {
    let g = model.genotype();
    let lanes_only = KernelPlan::new(model).lanes16_only(model);
    sizes(model.dims(), g.cell(), g.ops(), lanes_only)
}
