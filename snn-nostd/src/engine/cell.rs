//! One timestep of a cell: the edges into each node, its LIF, the back states, and the post-cell
//! affine + LIF.

use super::conv;
use super::fixed::sat_i16;
use super::fixed::threshold;
use super::geom::Geom;
use super::kernels::add_sat;
use super::kernels::conv_edge;
use super::kernels::lif_pairs;
use super::kernels::lif_slice;
use super::kernels::pool3_add;
use super::reporting::Ctx;
use super::weights::Wt;
use crate::genotype::Genotype;
use crate::genotype::LifClass;
use crate::genotype::Op;
use crate::genotype::NUM_EDGES;
use crate::genotype::NUM_NODES;
use crate::model::CellParts;
use crate::model::CellPlan;
use crate::model::LayerParts;
use crate::model::PostParts;
use crate::observer::SpikeObserver;
use crate::simd;
use crate::skeleton::{self, LayerId};

/// Per-cell persistent state.
pub(super) struct CellState<'b> {
    pub(super) back: [&'b mut [i16]; 3],
    pub(super) mem: [&'b mut [i16]; NUM_NODES],
    pub(super) spk: [&'b mut [u64]; NUM_NODES],
}

/// Affine (folded BN) -> LIF over a cell output `x` (HWC, `c` channels). `x` is scratch: its
/// contents on return are unspecified (the affine outputs, where computed in place).
pub(super) fn post_lif(
    x: &mut [i16],
    c: usize,
    post: &PostParts<'_>,
    mem: &mut [i16],
    bits: &mut [u64],
) -> u64 {
    let th = threshold(post.exp);
    // `round_shift(v, s)` is `(v + 2^(s-1)) >> s` here: `|v| < 2^47` cannot overflow with the
    // rounding term (`s <= 62`, as `round_shift` clamps it).
    let s = (post.shift as u32).min(62);
    let x = &mut x[..mem.len()];
    let (mul, add) = (post.mul, post.add);
    // Model validation gives `4 * c` bytes to each; without them, the definition's zeros.
    if s >= 16 && mul.len() >= 4 * c && add.len() >= 4 * c {
        // In 32-bit halves: with `l = max(0, 32 - s)` and `r = max(0, s - 32)`, `(x * mul +
        // add + 2^(s-1)) >> s` is the high word of `(x << l) * mul + add * 2^l + 2^(s-1+l)`,
        // shifted right by `r` (no overflow: `|x << l| <= 2^31`, `|mul| <= 2^31`, `|add * 2^l|
        // < 2^47`): two `SMLAL`s.
        let (l, r) = (32u32.saturating_sub(s), s.saturating_sub(32));
        // Opaque, so that `add * scale` stays a multiply-accumulate (not a 64-bit shift).
        let (round, scale) = (1i64 << (s - 1 + l), core::hint::black_box(1i32 << l));
        let word = |b: &[u8], ch: usize| {
            // SAFETY: `ch < c` and `b.len() >= 4 * c` (checked above).
            let w = unsafe { b.get_unchecked(4 * ch..4 * ch + 4) };
            i32::from_le_bytes([w[0], w[1], w[2], w[3]]) as i64
        };
        // Channel by channel, its constants in registers, in place; then the LIF over the
        // outputs (`mem` order, two neurons at a time).
        let n = x.len();
        for ch in 0..c {
            let (m, bias) = (word(mul, ch), word(add, ch) * scale as i64 + round);
            let mut i = ch;
            while i < n {
                // SAFETY: `i < n = x.len()`.
                let v = unsafe { x.get_unchecked_mut(i) };
                let acc = (((*v as i32) << l) as i64) * m + bias;
                *v = sat_i16((((acc >> 32) as i32) >> r) as i64);
                i += c;
            }
        }
        lif_slice(mem, th, bits, x)
    } else {
        let round = (1i64 << s) >> 1;
        let affine = |v: i16, ch: usize| -> i16 {
            let mul = crate::model::read_i32(mul, ch) as i64;
            let add = crate::model::read_i32(add, ch) as i64;
            sat_i16((v as i64 * mul + add + round) >> s)
        };
        post_pairs(x, c, mem, th, bits, affine)
    }
}

/// The LIF of `affine(x[i], channel of i)` over `mem`, two neurons at a time.
#[inline(always)]
fn post_pairs(
    x: &[i16],
    c: usize,
    mem: &mut [i16],
    th: i16,
    bits: &mut [u64],
    affine: impl Fn(i16, usize) -> i16,
) -> u64 {
    // `lif_pairs` asks for the pairs in order (then the rest one by one): the channel is a
    // running counter.
    let next = |ch: usize| if ch + 1 == c { 0 } else { ch + 1 };
    let mut ch = 0;
    let mut ch1 = None;
    lif_pairs(
        mem,
        th,
        bits,
        |i| {
            let c1 = next(ch);
            // `lif_pairs` asks for pairs inside whole 64-neuron words: `i + 1 < x.len()`.
            debug_assert!(i + 1 < x.len());
            // SAFETY: `i + 1 < x.len()` (above).
            let (a, b) = unsafe { (*x.get_unchecked(i), *x.get_unchecked(i + 1)) };
            let (lo, hi) = (affine(a, ch), affine(b, c1));
            ch = next(c1);
            simd::pack(lo, hi)
        },
        |i| {
            let c1 = *ch1.get_or_insert(i % c);
            ch1 = Some(next(c1));
            affine(x[i], c1)
        },
    )
}

/// Applies edge op `op` from node input `src` (spikes `spk` for convs) into `dst`: as one more
/// edge of the sum in `dst`, or (`sum`) as a finished sum of its own (see [`cell_step`]; the
/// same for skip and pool edges, whose values are `i16` already).
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_edge<W: Wt>(
    op: Op,
    src: &[i16],
    spk: &[u64],
    conv: Option<&LayerParts<'_>>,
    kernel: conv::Kernel,
    g: Geom,
    dst: &mut [i16],
    sum: bool,
    row: &mut [i32],
    dense: Option<&mut [i32]>,
) -> u64 {
    let out = |dst| {
        if sum {
            conv::Out::AddSum(dst)
        } else {
            conv::Out::Add(dst)
        }
    };
    match (op, conv) {
        (Op::Zero, _) => 0,
        (Op::Skip, _) => {
            add_sat(dst, src);
            0
        }
        (Op::AvgPool, _) => {
            pool3_add(src, g, true, dst, row);
            0
        }
        (Op::MaxPool, _) => {
            pool3_add(src, g, false, dst, row);
            0
        }
        (Op::Conv3, Some(l)) => conv_edge::<W>(spk, g, 3, l, kernel, g.c, out(dst), row, dense),
        (Op::Conv1, Some(l)) => conv_edge::<W>(spk, g, 1, l, kernel, g.c, out(dst), row, dense),
        // Validation guarantees a conv on every conv edge.
        (Op::Conv3 | Op::Conv1, None) => 0,
        // `Model::new` refuses the thresholded convs (one LIF per node here).
        (Op::Conv3Th05 | Op::Conv3Th15, _) => 0,
    }
}

/// The cell input `x0` (the stem's or the down conv's output), added into a node buffer as a
/// finished sum: `(dst, row scratch, dense scratch) -> synaptic operations`. A trait object, so
/// that each cell's step is compiled once.
pub(super) type CellInput<'a> = dyn FnMut(&mut [i16], &mut [i32], Option<&mut [i32]>) -> u64 + 'a;

/// One timestep (`t`) of a cell. `input` adds the cell input `x0` into node buffer 0. On exit
/// buffer `plan.slot[3]` holds the output `x3`, and the buffer of every kept node `j < 3`
/// (`plan.schedule.reads_tensor`) holds `x_j + B_j`. Returns the weight adds.
///
/// Node `i`'s input is `x_i + B_i`: the saturating sum of its forward edges (`x_i`; for node 0
/// the cell input), plus, saturating, the saturating sum of its backward edges at `t - 1`
/// (`B_i`, 0 at `t = 0`). Where `B_i` is kept between timesteps ([`CellPlan::stored_back`]) it
/// is computed at the end of the timestep, as the reference does. Otherwise every backward edge
/// into node `i` is a conv of a later node's spikes, which still hold timestep `t - 1` when node
/// `i` runs: `B_i` is computed then, in the node's own buffer, with no buffer of its own. Two
/// sums meet in one buffer without changing the result because one of them is always a single
/// edge (node 0's forward sum is the cell input, node 1 has one forward edge, node 2 one backward
/// edge, node 3 none): the longer sum is computed first, then the single edge is added as a
/// finished sum (saturated, then added: [`conv::Out::AddSum`]), which is `sat(x_i + B_i)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn cell_step<W: Wt, O: SpikeObserver>(
    nodes: &mut [&mut [i16]; NUM_NODES],
    st: &mut CellState<'_>,
    cp: &CellParts<'_>,
    g: &Genotype,
    plan: &CellPlan,
    geom: Geom,
    kernels: &[conv::Kernel; NUM_EDGES],
    row: &mut [i32],
    mut dense: Option<&mut [i32]>,
    ctx: &mut Ctx<'_, O>,
    cell_no: u8,
    input: &mut CellInput<'_>,
) -> u64 {
    let n = geom.len();
    let th = threshold(cp.exp);
    let mut ops = 0;
    let slot = plan.slot.map(usize::from);
    let op_of = |k: usize| g.ops().get(k).copied().unwrap_or(Op::Zero);
    // The tensor an op reads (skip, pools), in a buffer other than `dst`'s (`CellPlan::slot`).
    let source = |op: Op, j: usize| (!op.has_lif()).then_some(slot[j]);
    for i in 0..NUM_NODES {
        // Backward edges computed here (convs of the previous timestep's spikes), if any.
        let live_back = ctx.t > 0 && plan.back_from_spikes(i);
        let forward =
            || skeleton::forward_edges_into(g.cell(), i).filter(|&(k, _)| op_of(k) != Op::Zero);
        // The forward sum is a single edge: node 0 (the cell input) or one non-zero edge.
        let single_forward = i == 0 || forward().count() <= 1;
        // B_i's edges (convs of the spikes of timestep t - 1) into `x`: each as one more edge
        // of the sum, or (`sum`, a single edge) as a finished sum.
        let back = |x: &mut [i16], sum: bool, row: &mut [i32], mut dense: Option<&mut [i32]>| {
            let mut ops = 0;
            for (k, edge) in skeleton::backward_edges_into(g.cell(), i) {
                let spk = &*st.spk[edge.from as usize];
                let (conv, d) = (cp.convs[k].as_ref(), dense.as_deref_mut());
                ops += apply_edge::<W>(op_of(k), &[], spk, conv, kernels[k], geom, x, sum, row, d);
            }
            ops
        };
        let x = &mut nodes[slot[i]][..n];
        simd::zero_i16(x);
        if live_back && single_forward {
            // B_i first (every edge a conv), then the forward edge as a finished sum.
            ops += back(x, false, row, dense.as_deref_mut());
        }
        let as_sum = live_back && single_forward;
        if i == 0 {
            ops += input(&mut nodes[slot[0]][..n], row, dense.as_deref_mut());
        }
        for (k, edge) in forward() {
            let op = op_of(k);
            let j = edge.from as usize;
            let (dst, src) = dst_and_src(nodes, slot[i], source(op, j), n);
            let conv = cp.convs[k].as_ref();
            let d = dense.as_deref_mut();
            ops += apply_edge::<W>(
                op, src, st.spk[j], conv, kernels[k], geom, dst, as_sum, row, d,
            );
        }
        let xi = &mut nodes[slot[i]][..n];
        if live_back && !single_forward {
            // Node 2 (several forward edges): its one backward edge as a finished sum.
            debug_assert!(skeleton::backward_edges_into(g.cell(), i).count() <= 1);
            ops += back(xi, true, row, dense.as_deref_mut());
        } else if i < 3 && plan.stored_back[i] {
            add_sat(xi, st.back[i]);
        }
        // One LIF per node: `Model::new` refuses the other threshold classes.
        let mult = plan.schedule.lif_multiplicity(i, LifClass::Th10);
        if mult > 0 {
            let cnt = lif_slice(st.mem[i], th, st.spk[i], xi);
            let layer = LayerId::CellNode {
                cell: cell_no,
                node: i as u8,
                class: LifClass::Th10,
            };
            ctx.report(layer, st.spk[i], n, cnt, mult);
        }
    }
    // Kept back states for the next timestep, from x_j + B_j (j < 3, old B) and x3.
    for i in 0..3 {
        if !plan.stored_back[i] {
            continue;
        }
        let dst = &mut *st.back[i];
        simd::zero_i16(dst);
        for (k, edge) in skeleton::backward_edges_into(g.cell(), i) {
            let op = op_of(k);
            if op == Op::Zero {
                continue;
            }
            let j = edge.from as usize;
            let src: &[i16] = match source(op, j) {
                Some(s) => &nodes[s][..n],
                None => &[],
            };
            let conv = cp.convs[k].as_ref();
            let dense = dense.as_deref_mut();
            ops += apply_edge::<W>(
                op, src, st.spk[j], conv, kernels[k], geom, dst, false, row, dense,
            );
        }
    }
    ops
}

/// Node buffer `d` (first `n` elements) for writing and, if asked, buffer `s != d` for
/// reading. `s == d` cannot happen for a plan from [`CellPlan::new`] (tested); it would read
/// nothing.
pub(super) fn dst_and_src<'a>(
    nodes: &'a mut [&mut [i16]; NUM_NODES],
    d: usize,
    s: Option<usize>,
    n: usize,
) -> (&'a mut [i16], &'a [i16]) {
    match s {
        Some(s) if s < d => {
            let (lo, hi) = nodes.split_at_mut(d);
            (&mut hi[0][..n], &lo[s][..n])
        }
        Some(s) if s > d => {
            let (lo, hi) = nodes.split_at_mut(s);
            (&mut lo[d][..n], &hi[0][..n])
        }
        _ => (&mut nodes[d][..n], &[]),
    }
}
