//! Sizing a network to a board before it is trained (`--board` on `search`, `train`, `study`).
//!
//! The footprint of a network that does not exist yet comes from the same model as
//! [`footprint`](super::footprint) of an exported blob, and goes through the same
//! [`check_fit`](super::check_fit):
//! - flash: the blob of the network's shape ([`shape_blob`]: the real encoder on all-zero
//!   weights). A blob's length depends only on the shapes, except for the input normalisation's
//!   integers (variable-length), which are set to their longest encodings here: the planned
//!   blob is never shorter than the exported one.
//! - RAM: the engine's own sizing for the network's dims and cell plan
//!   ([`buffer_sizes_for_plan`]). Its conv ring holds `i16` lanes where every conv is sure to
//!   run on them ([`lanes16_sure`]), else the general `i32` accumulators (twice the words, which
//!   an exported network whose convs happen to run on lanes only halves): never less than what
//!   [`footprint`](super::footprint) reports at export.
//!
//! A search does not know its cell in advance: [`Cells::Space`] takes, over every genotype of
//! the op set, the largest RAM (over the distinct cell plans, see [`space_plans`]) and the
//! largest blob (every edge the op set's heaviest conv). A network sized for a space therefore
//! fits with whichever cell the search returns.

use super::error::blob_shape;
use super::{check_fit, Board, ExportError, Footprint};
use crate::config::NetConfig;
use snn_nostd::engine::{buffer_sizes_for_plan, BufferSizes};
use snn_nostd::genotype::{CellType, Genotype, Op, OpSet};
use snn_nostd::model::owned::{OwnedCell, OwnedLayer, OwnedModel, OwnedPost};
use snn_nostd::model::{decode, Bits, CellPlan, InputKind, InputNorm, InputParts};
use std::fmt;

/// Which cells a network must fit with.
#[derive(Clone, Copy, Debug)]
pub enum Cells<'a> {
    /// One genotype (`train`).
    One(&'a Genotype),
    /// Every genotype of a cell type over an op set (`search`, `study`).
    Space {
        /// Cell type.
        cell: CellType,
        /// Candidate ops.
        ops: &'a OpSet,
    },
}

impl fmt::Display for Cells<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cells::One(g) => write!(f, "genotype {g}"),
            Cells::Space { cell, ops } => write!(f, "the worst-case {cell} cell over {{{ops}}}"),
        }
    }
}

/// The blob of a network of configuration `cfg` with cell `genotype` and every weight, bias
/// and format zero; the input normalisation's integers at their longest encodings, so that no
/// exported blob of this shape is longer.
pub fn shape_blob(
    cfg: &NetConfig,
    genotype: &Genotype,
    bits: Bits,
) -> Result<Vec<u8>, ExportError> {
    let d = blob_shape(&cfg.shape)?;
    let (c_in, c1, c2) = (cfg.shape.in_c, cfg.shape.c1, cfg.shape.c2);
    let layer = |weights: usize, outputs: usize| {
        OwnedLayer::new(
            bits,
            &vec![0; weights],
            &vec![0; outputs],
            &vec![0; outputs],
        )
    };
    let cell = |c: usize| OwnedCell {
        exp: 0,
        convs: genotype
            .ops()
            .iter()
            .map(|op| match op {
                Op::Conv3 => Some(layer(c * c * 9, c)),
                Op::Conv1 => Some(layer(c * c, c)),
                _ => None,
            })
            .collect(),
    };
    let post = |c: usize| OwnedPost::new(0, &vec![0; c], &vec![0; c], 0);
    let norm = match d.input {
        InputKind::Static => {
            let longest = vec![i32::MIN; c_in];
            Some(InputNorm::new(&longest, &longest, 0).ok_or_else(|| {
                ExportError::Shape(format!("{c_in} input channels: at most 8 are normalised"))
            })?)
        }
        InputKind::Events => None,
    };
    let outputs = d.outputs();
    let model = OwnedModel {
        dataset: cfg.dataset,
        shape: d,
        genotype: genotype.clone(),
        bits,
        input: InputParts { exp: 0, norm },
        stem: layer(c1 * c_in * 9, c1),
        cell1: cell(c1),
        post1: post(c1),
        down: layer(c2 * c1 * 9, c2),
        cell2: cell(c2),
        post2: post(c2),
        fc1: layer(d.fc1_in() * cfg.shape.hidden, cfg.shape.hidden),
        hidden_exp: 0,
        fc2: layer(cfg.shape.hidden * outputs, outputs),
        out_exp: 0,
    };
    Ok(model.encode()?)
}

/// The distinct cell plans of every genotype of `cell` over `ops`: what the engine's buffers
/// depend on is which edges are absent, read spikes (convs) or read tensors (skip, pools), so
/// one op of each kind stands for its kind; plans with the same buffer counts are kept once.
pub fn space_plans(cell: CellType, ops: &OpSet) -> Vec<CellPlan> {
    let mut kinds: Vec<Op> = Vec::new();
    if ops.contains(Op::Zero) {
        kinds.push(Op::Zero);
    }
    if let Some(&c) = ops.ops().iter().find(|o| o.has_lif()) {
        kinds.push(c);
    }
    if let Some(&t) = ops.ops().iter().find(|o| **o != Op::Zero && !o.has_lif()) {
        kinds.push(t);
    }
    let n = cell.num_edges();
    let total = kinds.len().pow(n as u32);
    let mut seen: Vec<(usize, usize, usize)> = Vec::new();
    let mut plans = Vec::new();
    let mut genotype = vec![Op::Zero; n];
    for mut code in 0..total {
        for g in genotype.iter_mut() {
            *g = kinds[code % kinds.len()];
            code /= kinds.len();
        }
        let plan = CellPlan::new(cell, &genotype);
        let key = (plan.slots as usize, plan.stored_backs(), plan.lifs());
        if !seen.contains(&key) {
            seen.push(key);
            plans.push(plan);
        }
    }
    plans
}

/// Whether every conv of an exported network of configuration `cfg` runs on the engine's `i16`
/// lanes whatever its trained weights: 8-bit weights, 4, 8 or 16 output channels (the lane
/// kernels compiled in), and at most 28 input channels, so that no sum of `9 c_in` weights of
/// magnitude at most 127 leaves the `i16` range; the quantiser keeps every bias within `2^30`
/// (see `quant::quantize_outputs`), so bias plus sum stays an `i32`.
pub fn lanes16_sure(cfg: &NetConfig, bits: Bits) -> bool {
    let lanes = |c: usize| matches!(c, 4 | 8 | 16);
    bits == Bits::B8
        && lanes(cfg.shape.c1)
        && lanes(cfg.shape.c2)
        && cfg.shape.c1 <= 28
        && cfg.shape.c2 <= 28
}

/// The genotype of `cell` over `ops` with the largest blob: every edge the heaviest conv of the
/// op set (conv3, else conv1, else any op).
pub fn heaviest_genotype(cell: CellType, ops: &OpSet) -> Genotype {
    let op = [Op::Conv3, Op::Conv1]
        .into_iter()
        .find(|o| ops.contains(*o))
        .or_else(|| ops.ops().first().copied())
        .unwrap_or(Op::Zero);
    Genotype::new(cell, &vec![op; cell.num_edges()]).expect("one op per edge")
}

/// The footprint a network of configuration `cfg` will have once exported with `bits`-bit
/// weights, with the largest RAM and blob over `cells` (see the module docs).
pub fn planned_footprint(
    cfg: &NetConfig,
    cells: Cells<'_>,
    bits: Bits,
) -> Result<Footprint, ExportError> {
    let d = blob_shape(&cfg.shape)?;
    let (plans, heaviest) = match cells {
        Cells::One(g) => (vec![CellPlan::new(g.cell(), g.ops())], g.clone()),
        Cells::Space { cell, ops } => (space_plans(cell, ops), heaviest_genotype(cell, ops)),
    };
    let lanes16 = lanes16_sure(cfg, bits);
    let buffers: BufferSizes = plans
        .iter()
        .map(|p| buffer_sizes_for_plan(&d, p, lanes16))
        .max_by_key(|b| b.bytes_with_input())
        .ok_or_else(|| ExportError::Shape("no cell to size".into()))?;
    let blob = shape_blob(cfg, &heaviest, bits)?;
    let model = decode(&blob)?;
    Ok(super::footprint_of(
        blob.len(),
        model.weight_bytes(),
        buffers,
    ))
}

/// Which cells of a search space fit a board at a fixed network size: the search's filter
/// (`search --board`), so that the cell a search returns is the best-scoring one *among those
/// that fit*.
///
/// A cell fits when [`planned_footprint`] of the network with that one cell passes
/// [`check_fit`] (what `train --board` and `export --board` check). The footprint depends on
/// the cell only through its plan's buffer counts (node buffers, kept back states, LIF nodes:
/// the key [`space_plans`] uses) and its numbers of `conv3` and `conv1` edges (the blob), so
/// answers are cached by that key.
pub struct FitFilter {
    board: Board,
    cfg: NetConfig,
    bits: Bits,
    cache: std::sync::Mutex<std::collections::HashMap<FitKey, bool>>,
}

/// What a cell's footprint depends on: (node buffers, kept back states, LIF nodes, conv3
/// edges, conv1 edges).
type FitKey = (u8, usize, usize, usize, usize);

impl fmt::Debug for FitFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FitFilter({}, C1/C2 {}/{}, H {}, T {}, {}-bit)",
            self.board.name,
            self.cfg.shape.c1,
            self.cfg.shape.c2,
            self.cfg.shape.hidden,
            self.cfg.shape.timesteps,
            self.bits.bits()
        )
    }
}

impl FitFilter {
    /// The filter of networks of configuration `cfg` (its sizes fixed) on `board` with
    /// `bits`-bit weights.
    pub fn new(board: &Board, cfg: &NetConfig, bits: Bits) -> FitFilter {
        FitFilter {
            board: *board,
            cfg: cfg.clone(),
            bits,
            cache: Default::default(),
        }
    }

    /// The board's name.
    pub fn board_name(&self) -> &'static str {
        self.board.name
    }

    fn key(cell: CellType, ops: &[Op]) -> FitKey {
        let plan = CellPlan::new(cell, ops);
        let count = |o: Op| ops.iter().filter(|&&x| x == o).count();
        (
            plan.slots,
            plan.stored_backs(),
            plan.lifs(),
            count(Op::Conv3),
            count(Op::Conv1),
        )
    }

    fn fits_ops(&self, cell: CellType, ops: &[Op]) -> Result<bool, ExportError> {
        let key = Self::key(cell, ops);
        if let Some(&f) = self.cache.lock().expect("fit cache").get(&key) {
            return Ok(f);
        }
        let g = Genotype::new(cell, ops).map_err(|e| ExportError::Shape(e.to_string()))?;
        let fp = planned_footprint(&self.cfg, Cells::One(&g), self.bits)?;
        let f = check_fit(&fp, &self.board).is_ok();
        self.cache.lock().expect("fit cache").insert(key, f);
        Ok(f)
    }

    /// Whether a network with cell `g` fits the board.
    pub fn fits(&self, g: &Genotype) -> Result<bool, ExportError> {
        self.fits_ops(g.cell(), g.ops())
    }

    /// Whether some cell with one op of `alive[e]` on every edge `e` fits: the pruning
    /// search keeps this true, so that the one cell left at its end fits. Each edge's ops are
    /// reduced to one of each kind that could fit best (`zero`; the lightest conv, `conv1`
    /// before `conv3`; one tensor op: the plan is the same for `skip` and the pools), and the
    /// reduced cells are tried (at most 3^12 plans, each cheap; footprints come from the cache).
    pub fn any_fits(&self, cell: CellType, alive: &[Vec<Op>]) -> Result<bool, ExportError> {
        let reps: Vec<Vec<Op>> = alive
            .iter()
            .map(|ops| {
                let mut r = Vec::new();
                if ops.contains(&Op::Zero) {
                    r.push(Op::Zero);
                }
                if let Some(c) = [Op::Conv1, Op::Conv3].into_iter().find(|o| ops.contains(o)) {
                    r.push(c);
                }
                if let Some(&t) = ops.iter().find(|o| **o != Op::Zero && !o.has_lif()) {
                    r.push(t);
                }
                r
            })
            .collect();
        if reps.iter().any(|r| r.is_empty()) {
            return Ok(false);
        }
        let total: usize = reps.iter().map(|r| r.len()).product();
        let mut ops = vec![Op::Zero; reps.len()];
        for mut code in 0..total {
            for (o, r) in ops.iter_mut().zip(&reps) {
                *o = r[code % r.len()];
                code /= r.len();
            }
            if self.fits_ops(cell, &ops)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Sizes the user fixed (`None`: the sizing chooses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fixed {
    /// C1/C2 (`--width`).
    pub channels: bool,
    /// Hidden units (`--hidden`).
    pub hidden: bool,
    /// Timesteps (`--timesteps`).
    pub timesteps: bool,
}

impl Fixed {
    /// Every size fixed: [`size_for_board`] only checks.
    pub fn all() -> Fixed {
        Fixed {
            channels: true,
            hidden: true,
            timesteps: true,
        }
    }
}

/// A network sized to a board.
#[derive(Clone, Debug)]
pub struct Sized {
    /// The configuration, with the chosen sizes.
    pub cfg: NetConfig,
    /// Its planned footprint.
    pub footprint: Footprint,
    /// What was chosen and why, for the user.
    pub why: String,
}

/// Hidden sizes tried when `--hidden` is not given: the dataset's default capped at 128, then
/// halved down to 16 (fc1's weights, `C2 * 64 * H` bytes on CIFAR, are most of the blob).
fn hidden_choices(default: usize) -> Vec<usize> {
    let mut h = default.min(128);
    let mut out = vec![h];
    while h > 16 {
        h /= 2;
        out.push(h);
    }
    out
}

/// C1 values tried when `--width` is not given, widest first: multiples of 4 (the engine's
/// fastest conv kernels take 4, 8 or 16 channels) up to the dataset's default, then 3, 2, 1.
fn c1_choices(default: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (1..=default / 4).rev().map(|k| 4 * k).collect();
    out.extend([3, 2, 1].into_iter().filter(|&c| c <= default));
    out
}

/// KiB, for messages.
fn kib(b: usize) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

/// Sizes `base` (the dataset's configuration with the user's flags applied) to fit `board`
/// with `cells` and `bits`-bit weights. Sizes in `fixed` are kept (and refused with the first
/// resource they exceed); otherwise the hidden size is the dataset's default capped at 128
/// (halved while nothing fits), the timesteps the dataset's default, and C1 the widest of
/// [`c1_choices`] that fits, C2 keeping the dataset's C2/C1 ratio.
pub fn size_for_board(
    board: &Board,
    base: &NetConfig,
    fixed: Fixed,
    cells: Cells<'_>,
    bits: Bits,
) -> Result<Sized, ExportError> {
    let ratio = (base.shape.c2 as f64 / base.shape.c1 as f64).max(1.0);
    let with = |c1: usize, hidden: usize| {
        let mut cfg = base.clone();
        if !fixed.channels {
            cfg.shape.c1 = c1;
            cfg.shape.c2 = ((c1 as f64 * ratio).round() as usize).max(1);
        }
        if !fixed.hidden {
            cfg.shape.hidden = hidden;
        }
        cfg
    };
    let fits = |cfg: &NetConfig| -> Result<Result<Footprint, ExportError>, ExportError> {
        let fp = planned_footprint(cfg, cells, bits)?;
        Ok(check_fit(&fp, board).map(|()| fp))
    };
    let hs = if fixed.hidden {
        vec![base.shape.hidden]
    } else {
        hidden_choices(base.shape.hidden)
    };
    let c1s = if fixed.channels {
        vec![base.shape.c1]
    } else {
        c1_choices(base.shape.c1)
    };
    for &h in &hs {
        // The footprint grows with C1: the widest that fits, by bisection over the choices.
        let (mut lo, mut hi) = (0, c1s.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match fits(&with(c1s[mid], h))? {
                Ok(_) => hi = mid,
                Err(_) => lo = mid + 1,
            }
        }
        let Some(&c1) = c1s.get(lo) else {
            continue;
        };
        let cfg = with(c1, h);
        let fp = fits(&cfg)??;
        let usable_ram = board.ram_bytes - super::FIRMWARE_RAM_RESERVE;
        let usable_flash = board.flash_bytes - super::FIRMWARE_FLASH_RESERVE;
        let mut chose = Vec::new();
        if !fixed.channels {
            chose.push(format!(
                "C1/C2 {}/{}, the widest C1 in steps of 4 that fits",
                cfg.shape.c1, cfg.shape.c2
            ));
        }
        if !fixed.hidden {
            let capped = if h == hs[0] {
                format!("the dataset's {} capped at 128", base.shape.hidden)
            } else {
                format!("halved from {} until a width fits", hs[0])
            };
            chose.push(format!("H {h} ({capped})"));
        }
        if !fixed.timesteps {
            chose.push(format!("T {} (the dataset's)", cfg.shape.timesteps));
        }
        let chose = if chose.is_empty() {
            "all sizes as given".to_string()
        } else {
            chose.join("; ")
        };
        let why = format!(
            "board {}: {chose}; with {cells} and {}-bit weights it needs {} of RAM (of {} \
             usable besides the firmware's {}) and {} of flash (of {} besides {} of code)",
            board.name,
            bits.bits(),
            kib(fp.activation_ram + fp.input_ram),
            kib(usable_ram),
            kib(super::FIRMWARE_RAM_RESERVE),
            kib(fp.blob_bytes),
            kib(usable_flash),
            kib(super::FIRMWARE_FLASH_RESERVE),
        );
        return Ok(Sized {
            cfg,
            footprint: fp,
            why,
        });
    }
    // Nothing fits: the smallest configuration tried names the resource.
    let smallest = with(c1s[c1s.len() - 1], hs[hs.len() - 1]);
    let sizes = format!(
        "C1/C2 {}/{}, H {}, T {}{}",
        smallest.shape.c1,
        smallest.shape.c2,
        smallest.shape.hidden,
        smallest.shape.timesteps,
        if fixed.channels && fixed.hidden {
            ""
        } else {
            " (the smallest tried)"
        }
    );
    match fits(&smallest)? {
        Err(e) => Err(ExportError::NoSizeFits {
            sizes,
            cause: Box::new(e),
        }),
        Ok(_) => Err(ExportError::Shape("board sizing: no size tried".into())),
    }
}

#[cfg(test)]
mod tests;
