//! Arena sizes: how much scratch a network needs, `const` for firmware statics.

use super::conv;
use super::dense;
use super::plan::KernelPlan;
use super::stem;
use crate::bits::words_for;
use crate::genotype::CellType;
use crate::genotype::Op;
use crate::model::CellPlan;
use crate::model::InputKind;
use crate::model::Model;
use crate::model::Shape;

/// Scratch sizes, in elements of each arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferSizes {
    /// `i16` activations: the staged input or the kept stem output, node buffers, kept back
    /// states, membranes (of one stage at a time).
    pub act: usize,
    /// `i32` accumulators: class scores, fc2 outputs, conv output-row ring.
    pub acc: usize,
    /// `u64` words of bit-packed spike maps: cell 1's output at every timestep, and the spike
    /// maps of one stage at a time.
    pub bits: usize,
    /// `i16` elements of one quantised input sample (the caller's input buffer; not part of
    /// [`BufferSizes::bytes`]).
    pub input: usize,
    /// Whether the engine can hold the input itself ([`Engine::staged_input`](super::Engine::staged_input): static input),
    /// so that a caller using [`Engine::infer_staged`](super::Engine::infer_staged) needs
    /// no input buffer.
    pub input_staged: bool,
    /// Extra `act` elements with which the engine keeps the stem's output between timesteps
    /// (static input) instead of recomputing it at every timestep: `T - 1` fewer stem runs per
    /// inference for `2 * stem_cache` more bytes. 0 where it is kept anyway (a stem output at
    /// most a third larger than the input: up to 4 channels on RGB input) or cannot help (event
    /// input, a new frame every timestep). [`Engine::new`](super::Engine::new) keeps it when
    /// `act` has room.
    pub stem_cache: usize,
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

/// Where every buffer lives, shared by [`buffer_sizes_for`] and [`Engine::new`](super::Engine::new).
///
/// The engine runs in two stages, each over all `T` timesteps: stage 1 is the stem, cell 1 and
/// its post-cell LIF, whose output spikes of every timestep it keeps (`carry`); stage 2 is the
/// down conv, cell 2, its post-cell LIF and the classifier. Each stage's buffers (node
/// buffers, kept back states, membranes, spike maps) exist only during that stage, so the
/// arenas hold the larger stage, not both:
/// - `act` (`i16`): stage 1 is `[lead][node buffers][kept backs][membranes][post membranes]` of
///   `n1` elements each (`lead`: the staged input, or the kept stem output); stage 2 is the same
///   of `n2` elements, then the hidden membranes.
/// - `bits` (`u64`): `[carry: T cell-1 output maps]`, then stage 1's node spike maps, or stage
///   2's node spike maps, its output map, the pooled map and the hidden spikes.
/// - `acc` (`i32`): `[scores][fc2 outputs][row]`; `row` is scratch shared by every layer (the
///   conv ring, the pools' columns, fc1's sums, the stem's rows).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    pub(super) n1: usize,
    pub(super) n2: usize,
    /// The stem's output is kept between timesteps (static input) in `act[..n1]`.
    pub(super) keep_stem: bool,
    /// `act` elements before stage 1's node buffers.
    pub(super) lead: usize,
    /// Offset of the staged input in `act` (static input).
    pub(super) input_at: usize,
    pub(super) act: usize,
    /// `bits` words of cell 1's output maps (all timesteps).
    pub(super) carry: usize,
    pub(super) bits: usize,
    pub(super) acc: usize,
}

/// `i16` elements of a stage's cell buffers for maps of `n` neurons.
const fn cell_act(plan: &CellPlan, n: usize) -> usize {
    let per = plan.slots as usize + plan.stored_backs() + plan.lifs() + 1;
    per.saturating_mul(n)
}

/// The layout of a network of shape `d` with cell plan `plan`. `lanes_only`: every conv runs on
/// `i16` lanes, so the ring needs half the words. `keep_stem`: keep the stem output (static
/// input only).
pub(super) const fn layout(
    d: &Shape,
    plan: &CellPlan,
    lanes_only: bool,
    keep_stem: bool,
) -> Layout {
    let n1 = d.n1();
    let n2 = d.n2();
    let (_, w1) = d.cell1_hw();
    let (_, w2) = d.cell2_hw();
    let c1 = d.c1;
    let c2 = d.c2;
    let ring = max(conv::ring_len(w1, max(c1, c2)), conv::ring_len(w2, c2));
    let ring = if lanes_only { ring / 2 } else { ring };
    let hidden = d.hidden;
    let row = max(ring, max(hidden, stem::scratch_len(d)));
    let stat = matches!(d.input, InputKind::Static);
    let keep_stem = stat && keep_stem;
    let input = d.input_len();
    let cell1 = cell_act(plan, n1);
    // Kept stem: the input is staged after it (read once, at the first timestep, before any
    // buffer behind it is used). Recomputed stem: the input stays first, for every timestep.
    let (lead, input_at, act1) = if keep_stem {
        (n1, n1, n1.saturating_add(max(cell1, input)))
    } else if stat {
        (input, 0, input.saturating_add(cell1))
    } else {
        (0, 0, cell1)
    };
    let act2 = cell_act(plan, n2).saturating_add(hidden);
    let lifs = plan.lifs();
    let (wd1, wd2) = (words_for(n1), words_for(n2));
    let carry = d.timesteps.saturating_mul(wd1);
    let bits1 = lifs.saturating_mul(wd1);
    let bits2 = (lifs + 1)
        .saturating_mul(wd2)
        .saturating_add(words_for(d.fc1_in()))
        .saturating_add(words_for(hidden));
    Layout {
        n1,
        n2,
        keep_stem,
        lead,
        input_at,
        act: max(act1, act2),
        carry,
        bits: carry.saturating_add(max(bits1, bits2)),
        acc: d.classes.saturating_add(d.outputs()).saturating_add(row),
    }
}

/// Whether the engine keeps the stem's output by default (static input): where that output
/// (`n1` elements) is at most a third larger than the input it replaces, i.e. up to 4 channels
/// on RGB input. There the stem is a large share of the work (the convs' cost grows with `C1^2`,
/// the stem's with `C1`) and keeping it costs at most a third of the input's RAM; wider networks
/// recompute it at every timestep and keep the input instead ([`BufferSizes::stem_cache`]).
pub(super) const fn keep_stem_by_default(d: &Shape) -> bool {
    matches!(d.input, InputKind::Static)
        && d.n1().saturating_mul(3) <= d.input_len().saturating_mul(4)
}

/// Scratch sizes for a network of shape `shape` whose cells have genotype `ops` (one op per edge
/// of `cell`). `const`, so firmware can size static buffers at build time; [`Engine::new`](super::Engine::new)
/// checks them at start-up. They do not depend on the weights, so they can exceed
/// [`buffer_sizes`] (by the half of the conv ring that `i16` lanes do not need).
pub const fn buffer_sizes_for(shape: &Shape, cell: CellType, ops: &[Op]) -> BufferSizes {
    buffer_sizes_for_plan(shape, &CellPlan::new(cell, ops), false)
}

/// [`buffer_sizes_for`] of a cell plan: the sizes depend on the genotype only through its plan
/// (node buffers, kept back states, LIF layers), so a bound over many genotypes needs only their
/// distinct plans. `lanes16`: every conv is known to run on `i16` lanes (as [`buffer_sizes`]
/// finds from the weights), which halves the conv ring.
pub const fn buffer_sizes_for_plan(shape: &Shape, plan: &CellPlan, lanes16: bool) -> BufferSizes {
    sizes(shape, plan, lanes16)
}

pub(super) const fn sizes(shape: &Shape, plan: &CellPlan, lanes_only: bool) -> BufferSizes {
    let plan = *plan;
    let free = keep_stem_by_default(shape);
    let l = layout(shape, &plan, lanes_only, free);
    let kept = layout(shape, &plan, lanes_only, true);
    let stat = matches!(shape.input, InputKind::Static);
    BufferSizes {
        act: l.act,
        acc: l.acc,
        bits: l.bits,
        input: shape.input_len(),
        input_staged: stat,
        stem_cache: if free || !stat {
            0
        } else {
            kept.act.saturating_sub(l.act)
        },
    }
}

/// `i32` words of scratch the dense baseline needs (`Engine::use_dense`, feature `dense`).
pub fn dense_scratch_len(model: &Model<'_>) -> usize {
    dense::scratch_len(model.shape())
}

/// Scratch sizes for `model`.
pub fn buffer_sizes(model: &Model<'_>) -> BufferSizes {
    let lanes_only = KernelPlan::new(model).lanes16_only(model);
    sizes(model.shape(), model.plan(), lanes_only)
}
