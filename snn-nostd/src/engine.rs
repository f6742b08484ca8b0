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
//!   1.0), then hard reset to 0. Membranes start at 0 on [`Engine::reset`].
//! - AvgPool 3x3: the sum of the 9 neighbours (zero padding) divided by 9, rounded half up
//!   (`floor((2 sum + 9) / 18)`). MaxPool 3x3 ignores padding.
//! - Node sums add their incoming edges in canonical edge order, saturating after each edge.
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
//! input is real-valued): static input runs it once per sample, event input once per frame
//! (with the DVS MaxPool2 fused).
//!
//! # Buffers
//! The caller provides three arenas sized by [`buffer_sizes`] (or the `const`
//! [`buffer_sizes_for`]): `act` (`i16`), `acc` (`i32`), `bits` (`u64`). The four node tensors are
//! transient and shared by both cells; back states and membranes persist across timesteps.
//!
//! # Use
//! ```ignore
//! use snn_nostd::engine::{buffer_sizes, buffer_sizes_for, quantize_input_u8, Engine};
//! use snn_nostd::model::decode;
//!
//! static BLOB: &[u8] = include_bytes!("model.lsnn");
//! // Sizes known at build time (same dims and genotype as the blob), checked by Engine::new:
//! // const SIZES: BufferSizes = buffer_sizes_for(&DIMS, CellType::Backward, &OPS);
//! let model = decode(BLOB)?;
//! let s = buffer_sizes(&model);
//! let (mut act, mut acc, mut bits) = ([0i16; N_ACT], [0i32; N_ACC], [0u64; N_BITS]);
//! let mut engine = Engine::new(&model, &mut act, &mut acc, &mut bits)?;
//! let mut input = [0i16; N_INPUT]; // s.input elements
//! quantize_input_u8(&model, &raw_rgb_planes, &mut input)?;
//! let class = engine.infer(&input, &mut ())?; // or a SpikeObserver for SAHD codes
//! for layer in engine.stats() { /* layer.spikes, layer.sar() */ }
//! ```

#[cfg(test)]
use crate::bits::count_ones_range;
use crate::bits::{for_each_set_bit, set_bit, words_for};
use crate::genotype::NUM_NODES;
use crate::model::{Bits, InputKind, Model};

mod cell;
mod conv;
#[cfg_attr(not(any(feature = "dense", test)), allow(dead_code))]
mod dense;
mod error;
mod fixed;
#[cfg(test)]
mod golden;
mod input;
mod kernels;
mod plan;
mod sizing;
mod stats;
mod stem;
#[cfg(test)]
mod tests;
mod weights;

pub use crate::observer::{SpikeCodes, SpikeObserver};
pub use crate::skeleton::{LayerId, MAX_LAYERS};
pub use error::EngineError;
pub use fixed::{lif_charge, lif_update, round_shift, sat_i16, sat_i32};
pub use input::{quantize_input_f32, quantize_input_u8};
pub use sizing::{buffer_sizes, buffer_sizes_for, dense_scratch_len, BufferSizes};
pub use stats::LayerStats;

use cell::*;
use fixed::*;
use kernels::*;
use plan::*;
use sizing::*;
use weights::*;

/// Takes the next `n` elements of `rest`.
fn carve<'x, T>(rest: &mut &'x mut [T], n: usize) -> &'x mut [T] {
    let r = core::mem::take(rest);
    let (a, b) = r.split_at_mut(n);
    *rest = b;
    a
}

/// Counters and the observer, threaded through a timestep.
struct Ctx<'o, O: SpikeObserver> {
    obs: &'o mut O,
    t: usize,
    stats: &'o mut [LayerStats],
}

impl<O: SpikeObserver> Ctx<'_, O> {
    /// Layer `layer` (`neurons` neurons, standing for `multiplicity` reference LIFs) fired
    /// `spikes` spikes, bit-packed in `code`.
    fn report(
        &mut self,
        layer: LayerId,
        code: &[u64],
        neurons: usize,
        spikes: u64,
        multiplicity: u32,
    ) {
        if let Some(s) = self.stats.iter_mut().find(|s| s.layer == layer) {
            s.spikes += spikes;
            s.steps += 1;
        }
        let wpc = words_for(neurons);
        let codes = SpikeCodes {
            words: &code[..wpc],
            words_per_code: wpc,
            n_bits: neurons,
            multiplicity,
        };
        self.obs.on_spikes(self.t, layer, &codes);
    }
}

/// The integer inference engine: a model plus caller-provided scratch.
pub struct Engine<'m, 'b> {
    model: &'m Model<'m>,
    stem_out: &'b mut [i16],
    stem_valid: bool,
    nodes: [&'b mut [i16]; NUM_NODES],
    cells: [CellState<'b>; 2],
    post_mem: [&'b mut [i16]; 2],
    post_spk: [&'b mut [u64]; 2],
    pooled: &'b mut [u64],
    hid_mem: &'b mut [i16],
    hid_spk: &'b mut [u64],
    row: &'b mut [i32],
    out: &'b mut [i32],
    scores: &'b mut [i32],
    kernels: KernelPlan,
    /// [`BufferSizes::input_staged`].
    input_staged: bool,
    /// Scratch of the dense baseline while it is selected ([`Engine::use_dense`]).
    dense: Option<&'b mut [i32]>,
    t: usize,
    stats: [LayerStats; MAX_LAYERS],
    n_stats: usize,
    synops: u64,
}

impl<'m, 'b> Engine<'m, 'b> {
    /// An engine over `model` using the arenas `act`, `acc`, `bits` (at least
    /// [`buffer_sizes`]; extra space is unused). The state starts reset.
    pub fn new(
        model: &'m Model<'m>,
        act: &'b mut [i16],
        acc: &'b mut [i32],
        bits: &'b mut [u64],
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
        let d = *model.dims();
        let plan = *model.plan();
        let kernels = KernelPlan::new(model);
        let l = layout(&d, kernels.lanes16_only(model));
        let hidden = d.hidden as usize;
        let mut act = act;
        let mut acc = acc;
        let mut bits = bits;
        let stem_out = carve(&mut act, l.stem);
        let nodes = [
            carve(&mut act, l.nmax),
            carve(&mut act, if plan.slots > 1 { l.nmax } else { 0 }),
            carve(&mut act, if plan.slots > 2 { l.nmax } else { 0 }),
            carve(&mut act, if plan.slots > 3 { l.nmax } else { 0 }),
        ];
        let cell = |n: usize, act: &mut &'b mut [i16], bits: &mut &'b mut [u64]| {
            let back: [&'b mut [i16]; 3] = core::array::from_fn(|i| {
                carve(act, if plan.schedule.need_back[i] { n } else { 0 })
            });
            let mem: [&'b mut [i16]; 4] =
                core::array::from_fn(|i| carve(act, if plan.schedule.has_lif(i) { n } else { 0 }));
            let spk: [&'b mut [u64]; 4] = core::array::from_fn(|i| {
                carve(
                    bits,
                    if plan.schedule.has_lif(i) {
                        words_for(n)
                    } else {
                        0
                    },
                )
            });
            CellState { back, mem, spk }
        };
        let c1 = cell(l.n1, &mut act, &mut bits);
        let c2 = cell(l.n2, &mut act, &mut bits);
        let post_mem = [carve(&mut act, l.n1), carve(&mut act, l.n2)];
        let post_spk = [
            carve(&mut bits, words_for(l.n1)),
            carve(&mut bits, words_for(l.n2)),
        ];
        let hid_mem = carve(&mut act, hidden);
        let pooled = carve(&mut bits, words_for(d.fc1_in()));
        let hid_spk = carve(&mut bits, words_for(hidden));
        let row = carve(&mut acc, l.row);
        let out = carve(&mut acc, d.outputs());
        let scores = carve(&mut acc, d.classes as usize);

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
        for (cell, n) in [(0u8, l.n1), (1u8, l.n2)] {
            for node in 0..NUM_NODES {
                if plan.schedule.has_lif(node) {
                    push(
                        LayerId::CellNode {
                            cell,
                            node: node as u8,
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
            stem_out,
            stem_valid: false,
            nodes,
            cells: [c1, c2],
            post_mem,
            post_spk,
            pooled,
            hid_mem,
            hid_spk,
            row,
            out,
            scores,
            kernels,
            input_staged: need.input_staged,
            dense: None,
            t: 0,
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

    /// Starts a new sample: zeroes membranes, back states and class scores, timestep 0.
    /// Statistics are kept (see [`Engine::reset_stats`]).
    pub fn reset(&mut self) {
        for c in self.cells.iter_mut() {
            for b in c.back.iter_mut() {
                crate::simd::zero_i16(b);
            }
            for m in c.mem.iter_mut() {
                crate::simd::zero_i16(m);
            }
        }
        for m in self.post_mem.iter_mut() {
            crate::simd::zero_i16(m);
        }
        crate::simd::zero_i16(self.hid_mem);
        self.scores.fill(0);
        self.t = 0;
        self.stem_valid = false;
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

    /// Timesteps run since [`Engine::reset`].
    pub fn timestep(&self) -> usize {
        self.t
    }

    /// Class scores: the fc2 outputs summed over each voting group and over the timesteps run,
    /// in format `out_exp` (real mean output = `score / (votes * T * 2^out_exp)`).
    pub fn scores(&self) -> &[i32] {
        self.scores
    }

    /// The predicted class: the first index of the largest score.
    pub fn prediction(&self) -> usize {
        let mut best = 0;
        for (i, &s) in self.scores.iter().enumerate() {
            if s > self.scores[best] {
                best = i;
            }
        }
        best
    }

    /// The bit-packed spike code (HWC) that `layer` produced at the latest timestep, with its
    /// neuron count; `None` if the network has no such layer.
    pub fn spikes(&self, layer: LayerId) -> Option<(&[u64], usize)> {
        let d = self.model.dims();
        let (n1, n2) = (d.n1(), d.n2());
        match layer {
            LayerId::CellNode { cell, node } => {
                let node = node as usize;
                let n = match cell {
                    0 => n1,
                    1 => n2,
                    _ => return None,
                };
                if node >= NUM_NODES || !self.model.plan().schedule.has_lif(node) {
                    return None;
                }
                Some((&*self.cells[cell as usize].spk[node], n))
            }
            LayerId::CellOut { cell: 0 } => Some((&*self.post_spk[0], n1)),
            LayerId::CellOut { cell: 1 } => Some((&*self.post_spk[1], n2)),
            LayerId::CellOut { .. } => None,
            LayerId::Hidden => Some((&*self.hid_spk, d.hidden as usize)),
        }
    }

    /// Runs a whole sample from [`Engine::reset`]: `input` is one quantised frame (static input,
    /// repeated for `T` timesteps) or `T` frames back to back (events). Returns the prediction;
    /// see also [`Engine::scores`].
    pub fn infer<O: SpikeObserver>(
        &mut self,
        input: &[i16],
        obs: &mut O,
    ) -> Result<usize, EngineError> {
        let d = *self.model.dims();
        if input.len() != d.input_len() {
            return Err(EngineError::InputLength {
                expected: d.input_len(),
                got: input.len(),
            });
        }
        self.reset();
        let frame = d.frame_len();
        for t in 0..d.t as usize {
            let f = match d.input {
                InputKind::Static => input,
                InputKind::Events => &input[t * frame..(t + 1) * frame],
            };
            self.step(f, obs)?;
        }
        Ok(self.prediction())
    }

    /// Runs one timestep on `frame` (one quantised CHW frame). For static input the frame is
    /// read only at the first step after [`Engine::reset`] (the stem output is cached).
    pub fn step<O: SpikeObserver>(
        &mut self,
        frame: &[i16],
        obs: &mut O,
    ) -> Result<(), EngineError> {
        let d = *self.model.dims();
        if frame.len() != d.frame_len() {
            return Err(EngineError::InputLength {
                expected: d.frame_len(),
                got: frame.len(),
            });
        }
        self.step_from(Some(frame), obs);
        Ok(())
    }

    /// The engine's own input buffer, for static input whose frame fits a node buffer
    /// ([`BufferSizes::input_staged`]): quantise a sample into it (e.g. with
    /// [`quantize_input_u8`]) and run [`Engine::infer_staged`], and the caller needs no input
    /// buffer. The buffer is free until the stem has read it; any step overwrites it.
    pub fn staged_input(&mut self) -> Option<&mut [i16]> {
        let d = *self.model.dims();
        let n = d.input_len();
        (self.input_staged && self.nodes[0].len() >= n).then(|| &mut self.nodes[0][..n])
    }

    /// [`Engine::infer`] of the sample in [`Engine::staged_input`].
    pub fn infer_staged<O: SpikeObserver>(&mut self, obs: &mut O) -> Result<usize, EngineError> {
        if self.staged_input().is_none() {
            return Err(EngineError::NoStagedInput);
        }
        self.reset();
        for _ in 0..self.model.dims().t {
            self.step_from(None, obs);
        }
        Ok(self.prediction())
    }

    /// One timestep on `frame`, or on the staged input (`None`; static input only).
    fn step_from<O: SpikeObserver>(&mut self, frame: Option<&[i16]>, obs: &mut O) {
        match self.model.bits() {
            Bits::B8 => self.step_w::<W8, O>(frame, obs),
            Bits::B16 => self.step_w::<W16, O>(frame, obs),
        }
        self.t += 1;
    }

    fn step_w<W: Wt, O: SpikeObserver>(&mut self, frame: Option<&[i16]>, obs: &mut O) {
        let model = self.model;
        let p = model.parts();
        let d = *model.dims();
        let plan = *model.plan();
        let g = &p.genotype;
        let (h1, w1) = d.cell1_hw();
        let (h2, w2) = d.cell2_hw();
        let (ph, pw) = d.pooled_hw();
        let (c1, c2) = (d.c1 as usize, d.c2 as usize);
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
        let mut ctx = Ctx {
            obs,
            t: self.t,
            stats: &mut self.stats[..self.n_stats],
        };
        let mut synops = 0u64;

        // Stem -> cell-1 input x0 (nodes[0]).
        let (in_c, in_h, in_w) = (d.in_c as usize, d.in_h as usize, d.in_w as usize);
        let shape = stem::Shape {
            c: in_c,
            h: in_h,
            w: in_w,
            pool: d.stem_pool,
        };
        match d.input {
            InputKind::Static => {
                if !self.stem_valid {
                    // The staged input lives in node buffer 0, which the stem does not write.
                    let input = frame.unwrap_or(&self.nodes[0][..d.frame_len()]);
                    stem::stem::<W>(input, shape, &p.stem, c1, self.stem_out, self.row);
                    self.stem_valid = true;
                }
                self.nodes[0][..n1].copy_from_slice(self.stem_out);
            }
            InputKind::Events => {
                // `infer_staged` refuses event input: a frame is always given here.
                let frame = frame.unwrap_or(&[]);
                let dst = &mut self.nodes[0][..n1];
                stem::stem::<W>(frame, shape, &p.stem, c1, dst, self.row);
            }
        }

        // Cell 1 and cell 2, each followed by BN -> LIF.
        let stages = [(&p.cell1, &p.post1, g1), (&p.cell2, &p.post2, g2)];
        for (k, (cp, post, geom)) in stages.into_iter().enumerate() {
            if k == 1 {
                // Down conv + BN + MaxPool2 of the cell-1 spikes -> cell-2 input x0.
                synops += conv_edge::<W>(
                    self.post_spk[0],
                    g1,
                    3,
                    &p.down,
                    self.kernels.down,
                    c2,
                    conv::Out::MaxPool2(&mut self.nodes[0][..n2]),
                    self.row,
                    self.dense.as_deref_mut(),
                );
            }
            let cell = k as u8;
            synops += cell_step::<W, O>(
                &mut self.nodes,
                &mut self.cells[k],
                cp,
                g,
                &plan,
                geom,
                &self.kernels.cells[k],
                self.row,
                self.dense.as_deref_mut(),
                &mut ctx,
                cell,
            );
            let n = geom.len();
            let spikes = post_lif(
                &mut self.nodes[plan.slot[3] as usize][..n],
                geom.c,
                post,
                self.post_mem[k],
                self.post_spk[k],
            );
            ctx.report(LayerId::CellOut { cell }, self.post_spk[k], n, spikes, 1);
        }

        // MaxPool(p) on the cell-2 spikes (OR).
        let pp = d.p as usize;
        self.pooled.fill(0);
        for_each_set_bit(self.post_spk[1], 0, n2, |idx| {
            let pix = idx / c2;
            let c = idx - pix * c2;
            let (y, x) = (pix / w2, pix % w2);
            let (py, px) = (y / pp, x / pp);
            if py < ph && px < pw {
                set_bit(self.pooled, (py * pw + px) * c2 + c);
            }
        });

        // fc1 -> hidden LIF.
        let hidden = d.hidden as usize;
        let acc = &mut self.row[..hidden];
        synops += fc_event::<W>(self.pooled, d.fc1_in(), &p.fc1, acc);
        let th = threshold(p.hidden_exp);
        let n = lif_layer(self.hid_mem, th, self.hid_spk, |i| {
            sat_i16(round_shift(acc[i] as i64, p.fc1.shift_at(i) as i32))
        });
        ctx.report(LayerId::Hidden, self.hid_spk, hidden, n, 1);

        // fc2 -> voting -> scores.
        synops += fc_event::<W>(self.hid_spk, hidden, &p.fc2, self.out);
        let v = d.votes as usize;
        for (c, s) in self.scores.iter_mut().enumerate() {
            let mut sum = *s as i64;
            for (k, &a) in self.out[c * v..(c + 1) * v].iter().enumerate() {
                sum += sat_i32(round_shift(a as i64, p.fc2.shift_at(c * v + k) as i32)) as i64;
            }
            *s = sat_i32(sum);
        }
        self.synops += synops;
    }
}
