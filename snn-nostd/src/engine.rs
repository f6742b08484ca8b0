//! Allocation-free, event-driven integer inference of a decoded [`Model`].
//!
//! # Arithmetic
//! - Activations (stem output, node sums `x_i`, node inputs `x_i + B_i`, back states `B_i`,
//!   membranes) are `i16` in the format of their layer (value = `int / 2^exp`, see
//!   [`crate::model`]); every add into an `i16` saturates. Accumulators of weighted layers are
//!   `i32` with saturating adds (`i64` in the dense stem, whose inputs are `i16`).
//! - [`round_shift`]`(x, s)`: `s > 0` is a right shift with round half up,
//!   `(x + 2^(s-1)) >> s` (arithmetic shift = floor); `s < 0` is a saturating left shift.
//! - LIF charge, tau = 4/3, `V <- V + (X - V) * 3/4 = (V + 3X) / 4`: computed exactly in `i32` as
//!   `(V + 3X + 2) >> 2`, i.e. `(V + 3X) / 4` rounded half up; the result always fits an `i16`
//!   (it lies between `V` and `X`), so no saturation is needed. Fire if `V >= 2^exp` (threshold
//!   1.0), then hard reset to 0. Membranes start at 0 for every sample.
//! - AvgPool 3x3: the sum of the 9 neighbours (zero padding) divided by 9, rounded half up
//!   (`floor((2 sum + 9) / 18)`). MaxPool 3x3 ignores padding.
//! - A node's input is `x_i + B_i`, saturating: `x_i` adds its forward edges (node 0: the cell
//!   input), `B_i` its backward edges at the previous timestep (0 at the first), each in
//!   canonical edge order, saturating after each edge (see `cell::cell_step` for how the engine
//!   computes `B_i` without keeping it where every backward edge is a conv).
//!
//! # Event-driven layers and spike maps
//! Spike maps are bit-packed, LSB-first in `u64` words (bit `i` is `word[i / 64] >> (i % 64)`),
//! in HWC order: neuron `(c, y, x)` of a `C x H x W` map is bit `(y * W + x) * C + c`. Padding bits
//! of the last word are 0. Every layer fed by spikes (cell convs, the down conv, fc1, fc2) walks
//! the set bits only and adds, per spike, a contiguous weight column of `C_out` values (weights
//! are stored `[ci][ky][kx][co]`): its cost follows the spike count. Convolutions scan their
//! input once and accumulate into a ring of four padded output rows (`conv` module; the down
//! conv's MaxPool2 is fused), so no full-size accumulator tensor is ever needed and no spike
//! tests a border. With `i8` weights and 4, 8 or 16 output channels the accumulators are `i16`
//! lanes added two at a time with `SXTAB16` (feature `dsp` on Cortex-M4/M7, portable code
//! elsewhere), wherever the weight sums prove the result equal to the saturating `i32` adds of
//! the definition above; every other layer uses those `i32` adds. Only the stem is dense (its
//! input is real-valued): event input runs it once per frame (with the DVS MaxPool2 fused);
//! static input once per sample where its output is kept, else once per timestep
//! ([`BufferSizes::stem_cache`]).
//!
//! # Stages and buffers
//! A sample runs in two stages, each over all `T` timesteps: stage 1 is the stem, cell 1 and its
//! post-cell LIF, whose output spikes it keeps for every timestep (`T` bits per neuron); stage 2
//! is the down conv, cell 2, its post-cell LIF, the pool and the classifier. Stage 2 at timestep
//! `t` needs only stage 1's output at `t`, so the results are those of running the network
//! timestep by timestep, while the two cells' state (membranes, node tensors, spike maps) never
//! exists at once: the arenas hold the larger stage. Within a cell, node tensors are shared
//! where they are dead (`CellPlan::slot`), and a back state is kept between timesteps only
//! where a skip or pool edge makes it (`CellPlan::stored_back`). Observers see stage 1's layers
//! at every timestep, then stage 2's.
//!
//! The caller provides three arenas sized by [`buffer_sizes`] (or the `const`
//! [`buffer_sizes_for`]): `act` (`i16`), `acc` (`i32`), `bits` (`u64`); the layout is in the
//! `sizing` module.
//!
//! # Use
//! On a device the arenas are static arrays sized at build time
//! (`buffer_sizes_for(&DIMS, cell, &ops)`, checked by [`Engine::new`]); here the firmware's
//! random test model runs on the first CIFAR-10 test image of its assets:
//! ```
//! use snn_nostd::engine::{buffer_sizes, quantize_input_u8, Engine};
//! use snn_nostd::model::decode;
//!
//! let blob = include_bytes!("../../firmware/assets/model.bin");
//! let images = include_bytes!("../../firmware/assets/images.bin"); // label byte + RGB planes
//! let model = decode(blob).expect("a valid blob");
//! let s = buffer_sizes(&model);
//! let (mut act, mut acc, mut bits) = (vec![0i16; s.act], vec![0i32; s.acc], vec![0u64; s.bits]);
//! let mut engine = Engine::new(&model, &mut act, &mut acc, &mut bits).expect("buffers fit");
//! let mut input = vec![0i16; s.input];
//! quantize_input_u8(&model, &images[1..1 + 3 * 32 * 32], &mut input).expect("one image");
//! let class = engine.infer(&input, &mut ()).expect("ran"); // or a SpikeObserver for SAHD codes
//! assert!(class < 10);
//! for layer in engine.stats() {
//!     assert!((0.0..=1.0).contains(&layer.sar())); // spikes per neuron and timestep
//! }
//! ```

#[cfg(test)]
use crate::bits::count_ones_range;
use crate::bits::{for_each_set_bit, set_bit, words_for};
use crate::genotype::{LifClass, NUM_NODES};
use crate::model::{Bits, CellPlan, InputKind, Model};

mod cell;
mod conv;
#[cfg_attr(not(any(feature = "dense", test)), allow(dead_code))]
mod dense;
mod error;
mod fixed;
mod geom;
#[cfg(test)]
mod golden;
mod input;
mod kernels;
mod plan;
mod reporting;
mod sizing;
mod stats;
mod stem;
#[cfg(test)]
mod tests;
mod weights;

pub use crate::observer::{SpikeCodes, SpikeObserver};
pub use crate::skeleton::LayerId;

/// Most LIF layers the engine reports: one per cell node, one after each cell, the hidden one
/// (it runs the network's own threshold only, see [`Model::new`]; the host's networks may have
/// up to [`skeleton::MAX_LAYERS`](crate::skeleton::MAX_LAYERS)).
pub const MAX_LAYERS: usize = crate::skeleton::MAX_BASE_LAYERS;
pub use error::EngineError;
pub use fixed::{lif_charge, lif_update, round_shift, sat_i16, sat_i32};
pub use input::{quantize_input_f32, quantize_input_u8};
pub use sizing::{
    buffer_sizes, buffer_sizes_for, buffer_sizes_for_plan, dense_scratch_len, BufferSizes,
};
pub use stats::LayerStats;

use cell::*;
use fixed::*;
use geom::Geom;
use kernels::*;
use plan::*;
use reporting::Ctx;
use sizing::*;
use weights::*;

/// Takes the next `n` elements of `rest`.
fn carve<'x, T>(rest: &mut &'x mut [T], n: usize) -> &'x mut [T] {
    let r = core::mem::take(rest);
    let (a, b) = r.split_at_mut(n);
    *rest = b;
    a
}

/// The buffers of one stage's cell (carved from the arenas at the start of the stage).
struct StageBufs<'a> {
    nodes: [&'a mut [i16]; NUM_NODES],
    cell: CellState<'a>,
    post_mem: &'a mut [i16],
}

impl<'a> StageBufs<'a> {
    /// Takes the buffers of a cell of `n` neurons per map from the fronts of `act` and `bits`
    /// (see [`sizing::Layout`]), and zeroes the state (membranes, kept back states, spikes).
    fn carve(act: &mut &'a mut [i16], bits: &mut &'a mut [u64], plan: &CellPlan, n: usize) -> Self {
        let s = &plan.schedule;
        let nodes =
            core::array::from_fn(|i| carve(act, if i < plan.slots as usize { n } else { 0 }));
        let back: [&'a mut [i16]; 3] =
            core::array::from_fn(|i| carve(act, if plan.stored_back[i] { n } else { 0 }));
        let mem: [&'a mut [i16]; NUM_NODES] =
            core::array::from_fn(|i| carve(act, if s.has_lif(i, LifClass::Th10) { n } else { 0 }));
        let spk: [&'a mut [u64]; NUM_NODES] = core::array::from_fn(|i| {
            carve(
                bits,
                if s.has_lif(i, LifClass::Th10) {
                    words_for(n)
                } else {
                    0
                },
            )
        });
        let post_mem = carve(act, n);
        let mut b = StageBufs {
            nodes,
            cell: CellState { back, mem, spk },
            post_mem,
        };
        for x in b.cell.back.iter_mut().chain(b.cell.mem.iter_mut()) {
            crate::simd::zero_i16(x);
        }
        for x in b.cell.spk.iter_mut() {
            x.fill(0);
        }
        crate::simd::zero_i16(b.post_mem);
        b
    }
}

/// The integer inference engine: a model plus caller-provided scratch.
pub struct Engine<'m, 'b> {
    model: &'m Model<'m>,
    act: &'b mut [i16],
    acc: &'b mut [i32],
    bits: &'b mut [u64],
    layout: Layout,
    kernels: KernelPlan,
    /// [`BufferSizes::input_staged`].
    input_staged: bool,
    /// Scratch of the dense baseline while it is selected ([`Engine::use_dense`]).
    dense: Option<&'b mut [i32]>,
    stats: [LayerStats; MAX_LAYERS],
    n_stats: usize,
    synops: u64,
}

impl<'m, 'b> Engine<'m, 'b> {
    /// An engine over `model` using the arenas `act`, `acc`, `bits` (at least
    /// [`buffer_sizes`]). With [`BufferSizes::stem_cache`] more `act` elements it keeps the
    /// stem's output between timesteps (faster, same results); other extra space is unused.
    pub fn new(
        model: &'m Model<'m>,
        act: &'b mut [i16],
        acc: &'b mut [i32],
        bits: &'b mut [u64],
    ) -> Result<Engine<'m, 'b>, EngineError> {
        Self::with_stem(model, act, acc, bits, None)
    }

    /// [`Engine::new`], keeping the stem's output (`Some(true)`), recomputing it at every
    /// timestep (`Some(false)`: static input) or choosing as [`Engine::new`] does (`None`).
    pub(crate) fn with_stem(
        model: &'m Model<'m>,
        act: &'b mut [i16],
        acc: &'b mut [i32],
        bits: &'b mut [u64],
        keep: Option<bool>,
    ) -> Result<Engine<'m, 'b>, EngineError> {
        let need = buffer_sizes(model);
        for (buffer, needed, got) in [
            ("act", need.act, act.len()),
            ("acc", need.acc, acc.len()),
            ("bits", need.bits, bits.len()),
        ] {
            if got < needed {
                return Err(EngineError::BufferTooSmall {
                    buffer,
                    needed,
                    got,
                });
            }
        }
        let d = *model.shape();
        let plan = *model.plan();
        let kernels = KernelPlan::new(model);
        let keep_stem = keep.unwrap_or(
            keep_stem_by_default(&d) || act.len() >= need.act.saturating_add(need.stem_cache),
        );
        let layout = layout(&d, &plan, kernels.lanes16_only(model), keep_stem);
        if act.len() < layout.act {
            return Err(EngineError::BufferTooSmall {
                buffer: "act",
                needed: layout.act,
                got: act.len(),
            });
        }
        let hidden = d.hidden;

        let mut stats = [LayerStats {
            layer: LayerId::Hidden,
            neurons: 0,
            spikes: 0,
            steps: 0,
        }; MAX_LAYERS];
        let mut n_stats = 0;
        let mut push = |layer: LayerId, neurons: usize| {
            stats[n_stats] = LayerStats {
                layer,
                neurons: neurons as u32,
                spikes: 0,
                steps: 0,
            };
            n_stats += 1;
        };
        for (cell, n) in [(0u8, layout.n1), (1u8, layout.n2)] {
            for node in 0..NUM_NODES {
                if plan.schedule.has_lif(node, LifClass::Th10) {
                    push(
                        LayerId::CellNode {
                            cell,
                            node: node as u8,
                            class: LifClass::Th10,
                        },
                        n,
                    );
                }
            }
            push(LayerId::CellOut { cell }, n);
        }
        push(LayerId::Hidden, hidden);

        let mut e = Engine {
            model,
            act,
            acc,
            bits,
            layout,
            kernels,
            input_staged: need.input_staged,
            dense: None,
            stats,
            n_stats,
            synops: 0,
        };
        e.reset();
        Ok(e)
    }

    /// Selects the dense baseline for the convolutions (every input multiplied, `SMLAD`
    /// direct convolution; same results, see the `dense` module) with `scratch` of at least
    /// [`dense_scratch_len`] words, until [`Engine::use_events`]. Feature `dense`.
    #[cfg(any(feature = "dense", test))]
    pub fn use_dense(&mut self, scratch: &'b mut [i32]) -> Result<(), EngineError> {
        let needed = dense_scratch_len(self.model);
        if scratch.len() < needed {
            return Err(EngineError::BufferTooSmall {
                buffer: "dense",
                needed,
                got: scratch.len(),
            });
        }
        self.dense = Some(scratch);
        Ok(())
    }

    /// Back to the event-driven convolutions; returns the dense scratch, if one was in use.
    /// Feature `dense`.
    #[cfg(any(feature = "dense", test))]
    pub fn use_events(&mut self) -> Option<&'b mut [i32]> {
        self.dense.take()
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Whether the engine keeps the stem's output between timesteps (see
    /// [`BufferSizes::stem_cache`]) rather than recomputing it at every timestep.
    pub fn keeps_stem(&self) -> bool {
        self.layout.keep_stem
    }

    /// Zeroes the class scores (every state is zeroed when its stage starts).
    fn reset(&mut self) {
        let classes = self.model.shape().classes;
        self.acc[..classes].fill(0);
    }

    /// Zeroes the spike and synaptic-operation counters.
    pub fn reset_stats(&mut self) {
        for s in self.stats.iter_mut() {
            s.spikes = 0;
            s.steps = 0;
        }
        self.synops = 0;
    }

    /// Per-layer spike statistics, in network order (cell-1 LIFs by node, post 1, cell-2 LIFs,
    /// post 2, hidden).
    pub fn stats(&self) -> &[LayerStats] {
        &self.stats[..self.n_stats]
    }

    /// Synaptic operations (weight additions) since [`Engine::reset_stats`]; the dense stem's
    /// multiply-accumulates are not counted.
    pub fn synops(&self) -> u64 {
        self.synops
    }

    /// Class scores of the latest sample: the fc2 outputs summed over each voting group and
    /// over the timesteps, in format `out_exp` (real mean output = `score / (votes * T *
    /// 2^out_exp)`).
    pub fn scores(&self) -> &[i32] {
        &self.acc[..self.model.shape().classes]
    }

    /// The predicted class: the first index of the largest score.
    pub fn prediction(&self) -> usize {
        let scores = self.scores();
        let mut best = 0;
        for (i, &s) in scores.iter().enumerate() {
            if s > scores[best] {
                best = i;
            }
        }
        best
    }

    /// Runs a whole sample: `input` is one quantised frame (static input, repeated for `T`
    /// timesteps) or `T` frames back to back (events). Returns the prediction; see also
    /// [`Engine::scores`]. The observer sees stage 1's layers (cell 1) at every timestep, then
    /// stage 2's (cell 2, hidden); see [`SpikeObserver`].
    pub fn infer<O: SpikeObserver>(
        &mut self,
        input: &[i16],
        obs: &mut O,
    ) -> Result<usize, EngineError> {
        let d = *self.model.shape();
        if input.len() != d.input_len() {
            return Err(EngineError::InputLength {
                expected: d.input_len(),
                got: input.len(),
            });
        }
        self.run(Some(input), obs);
        Ok(self.prediction())
    }

    /// The engine's own input buffer (static input, [`BufferSizes::input_staged`]): quantise a
    /// sample into it (e.g. with [`quantize_input_u8`]) and run [`Engine::infer_staged`], and
    /// the caller needs no input buffer. An inference may overwrite it.
    pub fn staged_input(&mut self) -> Option<&mut [i16]> {
        let n = self.model.shape().input_len();
        let at = self.layout.input_at;
        self.input_staged.then(|| &mut self.act[at..at + n])
    }

    /// [`Engine::infer`] of the sample in [`Engine::staged_input`].
    pub fn infer_staged<O: SpikeObserver>(&mut self, obs: &mut O) -> Result<usize, EngineError> {
        if !self.input_staged {
            return Err(EngineError::NoStagedInput);
        }
        self.run(None, obs);
        Ok(self.prediction())
    }

    /// A whole sample on `input`, or on the staged input (`None`; static input only).
    fn run<O: SpikeObserver>(&mut self, input: Option<&[i16]>, obs: &mut O) {
        self.reset();
        match self.model.bits() {
            Bits::B8 => self.run_w::<W8, O>(input, obs),
            Bits::B16 => self.run_w::<W16, O>(input, obs),
        }
    }

    fn run_w<W: Wt, O: SpikeObserver>(&mut self, input: Option<&[i16]>, obs: &mut O) {
        let model = self.model;
        let p = model.parts();
        let d = *model.shape();
        let plan = *model.plan();
        let l = self.layout;
        let g = &p.genotype;
        let (h1, w1) = d.cell1_hw();
        let (h2, w2) = d.cell2_hw();
        let (c1, c2) = (d.c1, d.c2);
        let g1 = Geom {
            c: c1,
            h: h1,
            w: w1,
        };
        let g2 = Geom {
            c: c2,
            h: h2,
            w: w2,
        };
        let (n1, n2) = (g1.len(), g2.len());
        let wd1 = words_for(n1);
        let t_max = d.timesteps;
        let frame_len = d.frame_len();
        let stats = &mut self.stats[..self.n_stats];
        let kernels = &self.kernels;
        let mut dense = self.dense.as_deref_mut();
        let (carry, bits) = self.bits.split_at_mut(l.carry);
        let classes = d.classes;
        let (scores, acc) = self.acc.split_at_mut(classes);
        let (out, row) = acc.split_at_mut(d.outputs());
        let mut synops = 0u64;

        // Stage 1: stem -> cell 1 -> BN -> LIF, every timestep; the output spikes go to `carry`.
        {
            let (lead, mut act) = self.act.split_at_mut(l.lead);
            let shape = stem::StemInput {
                c: d.in_c,
                h: d.in_h,
                w: d.in_w,
                pool: d.stem_pool,
            };
            if l.keep_stem {
                // The stem once, into `lead`, from the caller's input or the staged one (behind
                // `lead`, in buffers not used yet).
                let staged = &act[l.input_at - l.lead..][..frame_len];
                let frame = input.map_or(staged, |i| &i[..frame_len]);
                crate::simd::zero_i16(lead);
                stem::stem::<W>(frame, shape, &p.stem, c1, lead, row);
            }
            let mut bits1 = &mut *bits;
            let mut s = StageBufs::carve(&mut act, &mut bits1, &plan, n1);
            for t in 0..t_max {
                let mut ctx = Ctx { obs, t, stats };
                let kept: &[i16] = lead;
                let frame: &[i16] = match (d.input, input) {
                    (InputKind::Events, Some(i)) => &i[t * frame_len..(t + 1) * frame_len],
                    (_, Some(i)) => &i[..frame_len],
                    // The staged input (static, stem recomputed): `lead`.
                    (_, None) => kept,
                };
                let keep = l.keep_stem;
                let mut x0 = |dst: &mut [i16], row: &mut [i32], _: Option<&mut [i32]>| {
                    if keep {
                        add_sat(dst, kept);
                    } else {
                        stem::stem::<W>(frame, shape, &p.stem, c1, dst, row);
                    }
                    0
                };
                synops += cell_step::<W, O>(
                    &mut s.nodes,
                    &mut s.cell,
                    &p.cell1,
                    g,
                    &plan,
                    g1,
                    &kernels.cells[0],
                    row,
                    dense.as_deref_mut(),
                    &mut ctx,
                    0,
                    &mut x0,
                );
                let spk = &mut carry[t * wd1..(t + 1) * wd1];
                let x3 = &mut s.nodes[plan.slot[3] as usize][..n1];
                let spikes = post_lif(x3, c1, &p.post1, s.post_mem, spk);
                ctx.report(LayerId::CellOut { cell: 0 }, spk, n1, spikes, 1);
            }
        }

        // Stage 2: down conv + BN + MaxPool2 -> cell 2 -> BN -> LIF -> MaxPool(p) -> fc1 -> LIF
        // -> fc2, every timestep.
        let mut act = &mut *self.act;
        let mut bits2 = &mut *bits;
        let mut s = StageBufs::carve(&mut act, &mut bits2, &plan, n2);
        let hidden = d.hidden;
        let hid_mem = carve(&mut act, hidden);
        crate::simd::zero_i16(hid_mem);
        let post_spk = carve(&mut bits2, words_for(n2));
        let pooled = carve(&mut bits2, words_for(d.fc1_in()));
        let hid_spk = carve(&mut bits2, words_for(hidden));
        let (ph, pw) = d.pooled_hw();
        let th = threshold(p.hidden_exp);
        for t in 0..t_max {
            let mut ctx = Ctx { obs, t, stats };
            let spk1: &[u64] = &carry[t * wd1..(t + 1) * wd1];
            let down = kernels.down;
            let mut x0 = |dst: &mut [i16], row: &mut [i32], dense: Option<&mut [i32]>| {
                let out = conv::Out::MaxPool2(dst);
                conv_edge::<W>(spk1, g1, 3, &p.down, down, c2, out, row, dense)
            };
            synops += cell_step::<W, O>(
                &mut s.nodes,
                &mut s.cell,
                &p.cell2,
                g,
                &plan,
                g2,
                &kernels.cells[1],
                row,
                dense.as_deref_mut(),
                &mut ctx,
                1,
                &mut x0,
            );
            let x3 = &mut s.nodes[plan.slot[3] as usize][..n2];
            let spikes = post_lif(x3, c2, &p.post2, s.post_mem, post_spk);
            ctx.report(LayerId::CellOut { cell: 1 }, post_spk, n2, spikes, 1);

            // MaxPool(p) on the cell-2 spikes (OR).
            let pp = d.pool;
            pooled.fill(0);
            for_each_set_bit(post_spk, 0, n2, |idx| {
                let pix = idx / c2;
                let c = idx - pix * c2;
                let (y, x) = (pix / w2, pix % w2);
                let (py, px) = (y / pp, x / pp);
                if py < ph && px < pw {
                    set_bit(pooled, (py * pw + px) * c2 + c);
                }
            });

            // fc1 -> hidden LIF.
            let acc = &mut row[..hidden];
            synops += fc_event::<W>(pooled, d.fc1_in(), &p.fc1, acc);
            let n = lif_layer(hid_mem, th, hid_spk, |i| {
                sat_i16(round_shift(acc[i] as i64, p.fc1.shift_at(i) as i32))
            });
            ctx.report(LayerId::Hidden, hid_spk, hidden, n, 1);

            // fc2 -> voting -> scores.
            synops += fc_event::<W>(hid_spk, hidden, &p.fc2, out);
            let v = d.votes;
            for (c, s) in scores.iter_mut().enumerate() {
                let mut sum = *s as i64;
                for (k, &a) in out[c * v..(c + 1) * v].iter().enumerate() {
                    sum += sat_i32(round_shift(a as i64, p.fc2.shift_at(c * v + k) as i32)) as i64;
                }
                *s = sat_i32(sum);
            }
        }
        self.synops += synops;
    }
}
