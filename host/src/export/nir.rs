//! Export of a trained network to the Neuromorphic Intermediate Representation (NIR 1.0, the
//! HDF5 layout that the `nir` Python package's `nir.read` expects).
//!
//! [`build`] maps a [`FloatNetwork`] to a [`NirGraph`] of NIR primitives, [`write()`] stores it.
//! Every node name starts with its evaluation order (`003_cell1_x0`), so a simulator that steps
//! the nodes in name order (as `nirtorch` does, `nir.read` returning them sorted) computes each
//! node after its forward inputs, and a cycle (a backward edge of the cell) reads the value of
//! the previous timestep. See docs/nir.md for the mapping.

use super::{ConvBn, FloatNetwork};
use crate::config::PoolKind;
use snn_nostd::genotype::{LifClass, Op, LIF_CLASSES};
use snn_nostd::model::InputKind;
use snn_nostd::skeleton::{self, CellSchedule};
use std::path::Path;

/// The NIR version whose layout [`write()`] produces (the `version` dataset of the file).
pub const NIR_VERSION: &str = "1.0.8";

/// The LIF time constant that makes NIR's Euler step at dt = 1,
/// `v += (dt / tau) (v_leak - v + r I)`, equal to our `V = 0.25 V + 0.75 X`.
pub const LIF_TAU: f32 = snn_nostd::skeleton::LIF_TAU as f32;

/// Our LIF fires at `V >= 1`; NIR fires at `v > v_threshold`. The largest f32 below 1 makes the
/// two agree on every f32 membrane value.
pub const LIF_THRESHOLD: f32 = 0.999_999_94;

/// The NIR threshold of a LIF of class `class` (fires at `V >= scale`): the largest f32 below
/// the class's threshold ([`LIF_THRESHOLD`] for the network's own).
pub fn lif_threshold(class: LifClass) -> f32 {
    (class.scale() as f32).next_down()
}

/// The suffix of a cell LIF's node name for class `class`: none for the network's threshold,
/// `_th05` / `_th15` otherwise (NIR node names become Python identifiers in `nirtorch`, so no
/// `@` or `.`).
fn class_suffix(class: LifClass) -> &'static str {
    match class {
        LifClass::Th05 => "_th05",
        LifClass::Th10 => "",
        LifClass::Th15 => "_th15",
    }
}

/// A parameter of a NIR node.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// A float array of the given shape (row-major).
    F32(Vec<usize>, Vec<f32>),
    /// A 1-D integer array.
    Ints(Vec<i64>),
    /// An integer scalar.
    Int(i64),
}

/// One node of a NIR graph: its name, NIR type (`Conv2d`, `LIF`, ...) and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct NirNode {
    /// Unique name (starts with the evaluation order).
    pub name: String,
    /// NIR node type, as `nir.read` spells it.
    pub kind: &'static str,
    /// Parameters, named as the NIR dataclass fields.
    pub params: Vec<(&'static str, Param)>,
}

/// A NIR graph: nodes and identity edges (`(from, to)`; edges into one node are summed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NirGraph {
    /// Nodes in evaluation order.
    pub nodes: Vec<NirNode>,
    /// Edges by node name.
    pub edges: Vec<(String, String)>,
}

/// Choices for parts of a network that NIR has no exact primitive for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NirOptions {
    /// Map a max pool over analog values (the MaxPool2 after the down conv, after a DVS stem,
    /// and `max_pool_3x3` cell edges) to the average pool of the same window. Without it such a
    /// network is refused.
    pub approx_maxpool: bool,
}

/// Why a network cannot be written as NIR.
#[derive(Debug, thiserror::Error)]
pub enum NirError {
    /// A part of the network has no NIR primitive.
    #[error(
        "{part}: NIR 1.0 has no max-pool primitive, and a max over analog values cannot be built \
         from its linear nodes and thresholds; pass --approx-maxpool to write it as an average \
         pool of the same window (an approximation: measure it with tools/nir-check.sh)"
    )]
    MaxPool {
        /// The part of the network.
        part: String,
    },
    /// The float network's shapes are inconsistent.
    #[error(transparent)]
    Shape(#[from] super::ExportError),
    /// HDF5 failed.
    #[error("cannot write NIR file {path}: {message}")]
    Hdf5 {
        /// The file.
        path: String,
        /// The HDF5 library's message.
        message: String,
    },
    /// This build has no HDF5 writer.
    #[error("this lightsnn was built without NIR support: rebuild with `cargo build --release --features nir` (needs the system HDF5 library; Debian: apt-get install libhdf5-dev pkg-config)")]
    NoHdf5,
    /// File I/O failed.
    #[error("cannot write NIR file {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Builds the graph node by node.
struct Builder {
    g: NirGraph,
}

impl Builder {
    fn add(
        &mut self,
        what: &str,
        kind: &'static str,
        params: Vec<(&'static str, Param)>,
    ) -> String {
        let name = format!("{:03}_{what}", self.g.nodes.len());
        self.g.nodes.push(NirNode {
            name: name.clone(),
            kind,
            params,
        });
        name
    }

    fn edge(&mut self, from: &str, to: &str) {
        self.g.edges.push((from.to_string(), to.to_string()));
    }

    /// A Conv2d (stride 1, padding `k / 2`) on a `h x w` input.
    fn conv(
        &mut self,
        what: &str,
        (c_out, c_in, k): (usize, usize, usize),
        weight: Vec<f32>,
        bias: Vec<f32>,
        (h, w): (usize, usize),
    ) -> String {
        let pad = (k / 2) as i64;
        self.add(
            what,
            "Conv2d",
            vec![
                ("input_shape", Param::Ints(vec![h as i64, w as i64])),
                ("weight", Param::F32(vec![c_out, c_in, k, k], weight)),
                ("bias", Param::F32(vec![c_out], bias)),
                ("stride", Param::Ints(vec![1, 1])),
                ("padding", Param::Ints(vec![pad, pad])),
                ("dilation", Param::Ints(vec![1, 1])),
                ("groups", Param::Int(1)),
            ],
        )
    }

    /// A per-channel `k x k` filter `filt[c]` (plus bias) over `c x h x w`, as a Conv2d with
    /// zero weights across channels. (NIR 1.0's type inference takes `weight.shape[1]` as the
    /// input channels, ignoring `groups`, so a depthwise conv would not pass `nir.read`.)
    fn per_channel(
        &mut self,
        what: &str,
        k: usize,
        filt: &[Vec<f32>],
        bias: Vec<f32>,
        hw: (usize, usize),
    ) -> String {
        let c = bias.len();
        let kk = k * k;
        let mut w = vec![0f32; c * c * kk];
        for (ch, f) in filt.iter().enumerate() {
            w[(ch * c + ch) * kk..(ch * c + ch + 1) * kk].copy_from_slice(f);
        }
        self.conv(what, (c, c, k), w, bias, hw)
    }

    /// A per-channel affine `g x + b` over `c x h x w` as a 1x1 Conv2d (the identity when
    /// `g = 1, b = 0`: the node that sums the edges into it).
    fn channel_affine(
        &mut self,
        what: &str,
        g: Vec<f32>,
        b: Vec<f32>,
        hw: (usize, usize),
    ) -> String {
        let filt: Vec<Vec<f32>> = g.iter().map(|&v| vec![v]).collect();
        self.per_channel(what, 1, &filt, b, hw)
    }

    /// The 3x3 average pool (stride 1, pad 1, zeros counted) over `c x h x w`.
    fn avg_pool3(&mut self, what: &str, c: usize, hw: (usize, usize)) -> String {
        self.per_channel(what, 3, &vec![vec![1.0 / 9.0; 9]; c], vec![0.0; c], hw)
    }

    /// A LIF layer over `shape` with time constant `tau` and threshold `thr`.
    fn lif(&mut self, what: &str, shape: &[usize], tau: f32, thr: f32) -> String {
        let n: usize = shape.iter().product();
        let full = |v: f32| Param::F32(shape.to_vec(), vec![v; n]);
        self.add(
            what,
            "LIF",
            vec![
                ("tau", full(tau)),
                ("r", full(1.0)),
                ("v_leak", full(0.0)),
                ("v_threshold", full(thr)),
                ("v_reset", full(0.0)),
            ],
        )
    }

    fn sum_pool(&mut self, what: &str, k: usize) -> String {
        let k = k as i64;
        self.add(
            what,
            "SumPool2d",
            vec![
                ("kernel_size", Param::Ints(vec![k, k])),
                ("stride", Param::Ints(vec![k, k])),
                ("padding", Param::Ints(vec![0, 0])),
            ],
        )
    }

    /// A max pool `k x k` (stride `k`) over analog values, approximated by the average pool.
    fn analog_max_pool(
        &mut self,
        what: &str,
        src: &str,
        c: usize,
        k: usize,
        hw: (usize, usize),
        opts: NirOptions,
    ) -> Result<String, NirError> {
        if !opts.approx_maxpool {
            return Err(NirError::MaxPool {
                part: what.to_string(),
            });
        }
        Ok(self.avg_pool(what, src, c, k, hw))
    }

    /// An average pool `k x k` (stride `k`) over `c x h x w`: a sum pool, then `1 / k^2` per
    /// channel (exact).
    fn avg_pool(
        &mut self,
        what: &str,
        src: &str,
        c: usize,
        k: usize,
        (h, w): (usize, usize),
    ) -> String {
        let pool = self.sum_pool(&format!("{what}_sum"), k);
        self.edge(src, &pool);
        let inv = 1.0 / (k * k) as f32;
        let avg = self.channel_affine(
            &format!("{what}_avg"),
            vec![inv; c],
            vec![0.0; c],
            (h / k, w / k),
        );
        self.edge(&pool, &avg);
        avg
    }

    /// The down block's 2x2 pool of `src` (`c x h x w`): exact for [`PoolKind::Avg`], the
    /// approximation of [`Self::analog_max_pool`] for a max pool.
    fn down_pool(
        &mut self,
        src: &str,
        kind: PoolKind,
        c: usize,
        hw: (usize, usize),
        opts: NirOptions,
    ) -> Result<String, NirError> {
        match kind {
            PoolKind::Max => self.analog_max_pool("down_maxpool2", src, c, 2, hw, opts),
            PoolKind::Avg => Ok(self.avg_pool("down_avgpool2", src, c, 2, hw)),
        }
    }
}

/// Cell `ci` (0 or 1) on input node `x0_in` (`c x h x w`); returns the name of its output
/// spikes (the LIF after the cell's BatchNorm).
fn cell(
    b: &mut Builder,
    net: &FloatNetwork,
    ci: usize,
    x0_in: &str,
    c: usize,
    hw: (usize, usize),
    opts: NirOptions,
) -> Result<String, NirError> {
    let g = &net.genotype;
    let weights = if ci == 0 { &net.cell1 } else { &net.cell2 };
    let schedule = CellSchedule::of_genotype(g.cell(), g.ops());
    let pre = format!("cell{}", ci + 1);
    let shape = [c, hw.0, hw.1];
    let mut x: Vec<String> = Vec::new();
    // Per node: its LIF of each class, where it has one.
    let mut lif: Vec<[Option<String>; LIF_CLASSES]> = Vec::new();
    // The op of edge `k` (from node `j`); returns the node that carries its output, `None`
    // for a zero edge.
    let op_node = |b: &mut Builder,
                   k: usize,
                   j: usize,
                   op: Op,
                   x: &[String],
                   lif: &[[Option<String>; LIF_CLASSES]]|
     -> Result<Option<String>, NirError> {
        let what = format!("{pre}_e{k}_{j}_{op}");
        // `conv3@0.5` -> `conv3_th05` in node names.
        let what = what.replace("@0.5", "_th05").replace("@1.5", "_th15");
        Ok(match op {
            Op::Zero => None,
            Op::Skip => Some(x[j].clone()),
            Op::Conv1 | Op::Conv3 | Op::Conv3Th05 | Op::Conv3Th15 => {
                let cb: &ConvBn = weights.convs[k]
                    .as_ref()
                    .ok_or_else(|| super::ExportError::Shape(format!("{what}: conv missing")))?;
                let kk = op.kernel().expect("a conv op");
                let class = op.lif_class().expect("a conv op");
                let (wt, bias) = cb.folded();
                let n = b.conv(&what, (c, c, kk), wt, bias, hw);
                let src = lif[j][class.index()]
                    .as_ref()
                    .expect("the schedule puts a LIF of its class on every conv source");
                b.edge(src, &n);
                Some(n)
            }
            Op::AvgPool => {
                // 3x3, stride 1, pad 1, zeros counted: a depthwise conv of 1/9.
                let n = b.avg_pool3(&what, c, hw);
                b.edge(&x[j], &n);
                Some(n)
            }
            Op::MaxPool => {
                if !opts.approx_maxpool {
                    return Err(NirError::MaxPool { part: what });
                }
                let n = b.avg_pool3(&what, c, hw);
                b.edge(&x[j], &n);
                Some(n)
            }
        })
    };
    for i in 0..4 {
        let mut ins = Vec::new();
        if i == 0 {
            ins.push(x0_in.to_string());
        }
        for (k, e) in skeleton::forward_edges_into(g.cell(), i) {
            if let Some(n) = op_node(b, k, e.from as usize, g.ops()[k], &x, &lif)? {
                ins.push(n);
            }
        }
        let xi = b.channel_affine(&format!("{pre}_x{i}"), vec![1.0; c], vec![0.0; c], hw);
        for s in &ins {
            b.edge(s, &xi);
        }
        x.push(xi.clone());
        let mut node_lifs: [Option<String>; LIF_CLASSES] = Default::default();
        for (class, _) in schedule.node_lifs(i) {
            let name = format!("{pre}_lif{i}{}", class_suffix(class));
            let l = b.lif(&name, &shape, LIF_TAU, lif_threshold(class));
            b.edge(&xi, &l);
            node_lifs[class.index()] = Some(l);
        }
        lif.push(node_lifs);
    }
    // Backward edges: a cycle into an earlier node, read at the next timestep.
    for to in 0..3 {
        for (k, e) in skeleton::backward_edges_into(g.cell(), to) {
            if let Some(n) = op_node(b, k, e.from as usize, g.ops()[k], &x, &lif)? {
                b.edge(&n, &x[to]);
            }
        }
    }
    let (gain, bias) = if ci == 0 {
        &net.bn_cell1
    } else {
        &net.bn_cell2
    }
    .affine();
    let bn = b.channel_affine(&format!("{pre}_bn"), gain, bias, hw);
    b.edge(&x[3], &bn);
    let out = b.lif(&format!("{pre}_out_lif"), &shape, LIF_TAU, LIF_THRESHOLD);
    b.edge(&bn, &out);
    Ok(out)
}

/// The NIR graph of `net`. Errors name the part that NIR cannot express (see [`NirOptions`]).
pub fn build(net: &FloatNetwork, opts: NirOptions) -> Result<NirGraph, NirError> {
    net.validate()?;
    if net.shape.input == InputKind::Events && net.shape.timesteps == 0 {
        return Err(super::ExportError::Shape("zero timesteps".into()).into());
    }
    let mut b = Builder {
        g: NirGraph::default(),
    };
    let [(h1, w1), (h2, w2), (ph, pw)] = net.sizes();
    let (ih, iw) = (net.shape.in_h, net.shape.in_w);
    let input = b.add(
        "input",
        "Input",
        vec![(
            "shape",
            Param::Ints(vec![net.shape.in_c as i64, ih as i64, iw as i64]),
        )],
    );
    let (sw, sb) = net.stem.folded();
    let stem = b.conv("stem", (net.shape.c1, net.shape.in_c, 3), sw, sb, (ih, iw));
    b.edge(&input, &stem);
    let x0 = if net.shape.stem_pool {
        b.analog_max_pool("stem_maxpool2", &stem, net.shape.c1, 2, (ih, iw), opts)?
    } else {
        stem
    };
    let s1 = cell(&mut b, net, 0, &x0, net.shape.c1, (h1, w1), opts)?;
    let (dw, db) = net.down.folded();
    let down = b.conv("down", (net.shape.c2, net.shape.c1, 3), dw, db, (h1, w1));
    b.edge(&s1, &down);
    let x0b = b.down_pool(&down, net.downsample, net.shape.c2, (h1, w1), opts)?;
    let s2 = cell(&mut b, net, 1, &x0b, net.shape.c2, (h2, w2), opts)?;
    let pooled = match net.downsample {
        _ if net.shape.pool == 1 => s2,
        // MaxPool(p) of 0/1 spikes is their OR: a sum pool, then a LIF with tau = dt = 1
        // (which forgets its state every step) firing when the count exceeds 1/2.
        PoolKind::Max => {
            let sum = b.sum_pool("pool_sum", net.shape.pool);
            b.edge(&s2, &sum);
            let or = b.lif("pool_or", &[net.shape.c2, ph, pw], 1.0, 0.5);
            b.edge(&sum, &or);
            or
        }
        PoolKind::Avg => b.avg_pool("pool", &s2, net.shape.c2, net.shape.pool, (h2, w2)),
    };
    let flat = b.add(
        "flatten",
        "Flatten",
        vec![
            ("start_dim", Param::Int(0)),
            ("end_dim", Param::Int(-1)),
            (
                "input_type",
                Param::Ints(vec![net.shape.c2 as i64, ph as i64, pw as i64]),
            ),
        ],
    );
    b.edge(&pooled, &flat);
    let n_in = net.shape.fc1_in();
    let fc1 = b.add(
        "fc1",
        "Linear",
        vec![(
            "weight",
            Param::F32(vec![net.shape.hidden, n_in], net.fc1.clone()),
        )],
    );
    b.edge(&flat, &fc1);
    let hid = b.lif("hidden_lif", &[net.shape.hidden], LIF_TAU, LIF_THRESHOLD);
    b.edge(&fc1, &hid);
    let no = net.shape.classes * net.shape.votes;
    let fc2 = b.add(
        "fc2",
        "Affine",
        vec![
            (
                "weight",
                Param::F32(vec![no, net.shape.hidden], net.fc2_weight.clone()),
            ),
            ("bias", Param::F32(vec![no], net.fc2_bias.clone())),
        ],
    );
    b.edge(&hid, &fc2);
    // Voting: class c is the mean of its v outputs.
    let mut vote = vec![0f32; net.shape.classes * no];
    for c in 0..net.shape.classes {
        for k in 0..net.shape.votes {
            vote[c * no + c * net.shape.votes + k] = 1.0 / net.shape.votes as f32;
        }
    }
    let vote = b.add(
        "vote",
        "Affine",
        vec![
            ("weight", Param::F32(vec![net.shape.classes, no], vote)),
            (
                "bias",
                Param::F32(vec![net.shape.classes], vec![0.0; net.shape.classes]),
            ),
        ],
    );
    b.edge(&fc2, &vote);
    let out = b.add(
        "output",
        "Output",
        vec![("shape", Param::Ints(vec![net.shape.classes as i64]))],
    );
    b.edge(&vote, &out);
    Ok(b.g)
}

/// The HDF5 writer (cargo feature `nir`: links the system HDF5 library).
#[cfg(feature = "nir")]
mod h5 {
    use super::{NirError, NirGraph, Param, NIR_VERSION};
    use std::path::Path;

    /// Writes `graph` to `path` (no rename: [`super::write`] does that).
    pub(super) fn write_file(graph: &NirGraph, path: &Path) -> Result<(), NirError> {
        write_hdf5(graph, path).map_err(|e| NirError::Hdf5 {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    fn write_str(g: &hdf5::Group, name: &str, s: &str) -> hdf5::Result<()> {
        let v: hdf5::types::VarLenUnicode =
            s.parse().map_err(|e| hdf5::Error::from(format!("{e}")))?;
        g.new_dataset::<hdf5::types::VarLenUnicode>()
            .create(name)?
            .write_scalar(&v)
    }

    fn write_param(g: &hdf5::Group, name: &str, p: &Param) -> hdf5::Result<()> {
        match p {
            Param::F32(shape, data) => {
                let a = ndarray::ArrayViewD::from_shape(ndarray::IxDyn(shape), data)
                    .map_err(|e| hdf5::Error::from(format!("{name}: {e}")))?;
                g.new_dataset_builder().with_data(&a).create(name)?;
            }
            Param::Ints(v) => {
                g.new_dataset_builder()
                    .with_data(v.as_slice())
                    .create(name)?;
            }
            Param::Int(v) => {
                g.new_dataset::<i64>().create(name)?.write_scalar(v)?;
            }
        }
        Ok(())
    }

    fn write_hdf5(graph: &NirGraph, path: &Path) -> hdf5::Result<()> {
        let f = hdf5::File::create(path)?;
        write_str(&f, "version", NIR_VERSION)?;
        let root = f.create_group("node")?;
        write_str(&root, "type", "NIRGraph")?;
        let nodes = root.create_group("nodes")?;
        for n in &graph.nodes {
            let g = nodes.create_group(&n.name)?;
            write_str(&g, "type", n.kind)?;
            for (k, p) in &n.params {
                write_param(&g, k, p)?;
            }
        }
        let mut edges = Vec::with_capacity(graph.edges.len() * 2);
        for (a, b) in &graph.edges {
            for s in [a, b] {
                edges.push(
                    s.parse::<hdf5::types::VarLenUnicode>()
                        .map_err(|e| hdf5::Error::from(format!("{e}")))?,
                );
            }
        }
        let e = ndarray::Array2::from_shape_vec((graph.edges.len(), 2), edges)
            .map_err(|e| hdf5::Error::from(format!("edges: {e}")))?;
        root.new_dataset_builder().with_data(&e).create("edges")?;
        f.close()
    }
}

/// Without the `nir` feature there is no HDF5 writer.
#[cfg(not(feature = "nir"))]
mod h5 {
    use super::{NirError, NirGraph};
    use std::path::Path;

    /// Always [`NirError::NoHdf5`].
    pub(super) fn write_file(_graph: &NirGraph, _path: &Path) -> Result<(), NirError> {
        Err(NirError::NoHdf5)
    }
}

/// [`NirError::NoHdf5`] in a build without the `nir` feature: checked before any work or
/// output folder.
pub fn check_available() -> Result<(), NirError> {
    if cfg!(feature = "nir") {
        Ok(())
    } else {
        Err(NirError::NoHdf5)
    }
}

/// Writes `graph` to `path` as a NIR HDF5 file (through a temporary file and a rename).
pub fn write(graph: &NirGraph, path: &Path) -> Result<(), NirError> {
    check_available()?;
    let io = |source| NirError::Io {
        path: path.display().to_string(),
        source,
    };
    let out = crate::fsutil::PendingOutput::new(path).map_err(io)?;
    h5::write_file(graph, out.tmp()).map_err(|e| match e {
        NirError::Hdf5 { message, .. } => NirError::Hdf5 {
            path: path.display().to_string(),
            message,
        },
        e => e,
    })?;
    out.commit().map_err(io)
}

/// Our own network's results on some samples, written next to a NIR file so that a NIR
/// simulator run can be compared with it (`tools/nir-check.py`).
#[derive(Debug, serde::Serialize)]
pub struct Reference {
    /// Timesteps to run the graph for (the static input is repeated every step).
    pub timesteps: usize,
    /// Input frames per sample (1: static input, `timesteps`: event frames).
    pub frames: usize,
    /// Shape of one frame (C, H, W).
    pub frame_shape: [usize; 3],
    /// Per sample: label, our prediction, our class scores and the normalised input.
    pub samples: Vec<RefSample>,
    /// Per LIF node of the graph (by name without its order prefix): neurons of the layer and
    /// its spikes summed over all samples and timesteps.
    pub layers: std::collections::BTreeMap<String, (usize, u64)>,
}

/// One sample of a [`Reference`].
#[derive(Debug, serde::Serialize)]
pub struct RefSample {
    /// True class.
    pub label: usize,
    /// Our top-1 class.
    pub prediction: usize,
    /// Our scores (the mean over timesteps of the voted outputs).
    pub scores: Vec<f32>,
    /// The normalised input, `frames x C x H x W` values.
    pub input: Vec<f32>,
}

/// Counts spikes per layer, under the NIR node names of [`build`].
struct LayerCounts(std::collections::BTreeMap<String, (usize, u64)>);

impl crate::model::SpikeSink for LayerCounts {
    fn record(
        &mut self,
        layer: crate::model::LayerId,
        _t: usize,
        spikes: &candle_core::Tensor,
        _multiplicity: u32,
    ) -> anyhow::Result<()> {
        use crate::model::LayerId;
        let name = match layer {
            LayerId::CellNode { cell, node, class } => {
                format!("cell{}_lif{node}{}", cell + 1, class_suffix(class))
            }
            LayerId::CellOut { cell } => format!("cell{}_out_lif", cell + 1),
            LayerId::Hidden => "hidden_lif".to_string(),
        };
        let dims = spikes.dims();
        let neurons: usize = dims[1..].iter().product();
        let n = spikes
            .to_dtype(candle_core::DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        let e = self.0.entry(name).or_insert((neurons, 0));
        e.1 += n.round() as u64;
        Ok(())
    }
}

/// Runs `net` (single path `genotype`, eval mode, CPU) on the first `n` samples of `data`.
pub fn reference(
    net: &crate::model::Network,
    genotype: &snn_nostd::genotype::Genotype,
    data: &crate::data::Dataset,
    n: usize,
) -> anyhow::Result<Reference> {
    use crate::model::{Forward, Mixing, Mode};
    let n = n.min(data.len());
    anyhow::ensure!(n > 0, "the dataset is empty");
    let idx: Vec<usize> = (0..n).collect();
    let mut buf = Vec::new();
    data.fill_batch(&idx, None, &mut buf);
    let per = buf.len() / n;
    let [c, h, w] = data.frame_shape();
    let f = data.frames();
    let mix = Mixing::single_path(genotype);
    let mut counts = LayerCounts(Default::default());
    let mut samples = Vec::with_capacity(n);
    for chunk in idx.chunks(16) {
        let x = candle_core::Tensor::from_slice(
            &buf[chunk[0] * per..(chunk[0] + chunk.len()) * per],
            (chunk.len(), f, c, h, w),
            &candle_core::Device::Cpu,
        )?;
        let out = net.forward(
            &x,
            Forward {
                mixing: &mix,
                mode: Mode::Eval,
                sink: &mut counts,
                dropout_rng: None,
            },
        )?;
        let scores: Vec<Vec<f32>> = out.logits.to_vec2()?;
        for (&i, s) in chunk.iter().zip(scores) {
            let mut prediction = 0;
            for (k, &v) in s.iter().enumerate() {
                if v > s[prediction] {
                    prediction = k;
                }
            }
            samples.push(RefSample {
                label: data.label(i),
                prediction,
                scores: s,
                input: buf[i * per..(i + 1) * per].to_vec(),
            });
        }
    }
    Ok(Reference {
        timesteps: net.cfg.shape.timesteps,
        frames: f,
        frame_shape: [c, h, w],
        samples,
        layers: counts.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::testnet::{random_weights, RandomSpec};

    fn net(genotype: &str) -> FloatNetwork {
        let spec = RandomSpec::tiny(InputKind::Static, genotype.parse().unwrap());
        random_weights(&spec, 7)
    }

    const APPROX: NirOptions = NirOptions {
        approx_maxpool: true,
    };

    #[test]
    fn max_pools_are_refused_by_name_unless_approximated() {
        let all = net("conv3 avgpool conv1 conv3 zero skip conv1 maxpool conv3 skip avgpool conv3");
        let e = build(&all, NirOptions::default()).unwrap_err().to_string();
        assert!(e.contains("cell1_e7_"), "{e}");
        let plain = net("conv3 avgpool conv1 conv3 zero skip conv1 skip conv3 skip avgpool conv3");
        let e = build(&plain, NirOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("down_maxpool2: NIR 1.0 has no max-pool"),
            "{e}"
        );
        assert!(build(&all, APPROX).is_ok());
    }

    #[test]
    fn graph_is_in_evaluation_order_with_cycles_only_for_backward_edges() {
        let n = net("conv3 avgpool conv1 conv3 zero skip conv1 skip conv3 skip avgpool conv3");
        let g = build(&n, APPROX).unwrap();
        let pos = |s: &str| g.nodes.iter().position(|x| x.name == s).unwrap();
        let names: Vec<&str> = g.nodes.iter().map(|x| x.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "name order is evaluation order");
        let back_ops = n
            .genotype
            .edges()
            .filter(|(e, op)| e.is_backward() && *op != Op::Zero)
            .count();
        let mut cycles = 0;
        for (a, b) in &g.edges {
            let (pa, pb) = (pos(a), pos(b));
            if pa >= pb {
                cycles += 1;
                assert!(
                    b.contains("_x"),
                    "{a} -> {b}: a cycle must enter a cell node"
                );
            }
        }
        assert_eq!(cycles, 2 * back_ops);
        assert_eq!(g.nodes[0].kind, "Input");
        assert_eq!(g.nodes.last().unwrap().kind, "Output");
        // Every LIF has our dynamics: tau 4/3 (dt = 1 Euler gives 0.25 / 0.75), reset to 0.
        for x in g.nodes.iter().filter(|x| x.kind == "LIF") {
            let get = |k: &str| match &x.params.iter().find(|p| p.0 == k).unwrap().1 {
                Param::F32(_, v) => v[0],
                p => panic!("{k}: {p:?}"),
            };
            let (tau, thr) = (get("tau"), get("v_threshold"));
            if x.name.ends_with("pool_or") {
                assert_eq!((tau, thr), (1.0, 0.5));
            } else {
                assert_eq!((tau, thr), (LIF_TAU, LIF_THRESHOLD));
                assert!(1.0 - 1.0 / tau == 0.25 && thr < 1.0 && thr.next_up() == 1.0);
            }
            assert_eq!((get("r"), get("v_leak"), get("v_reset")), (1.0, 0.0, 0.0));
        }
        let vote = g.nodes.iter().find(|x| x.name.ends_with("vote")).unwrap();
        let Param::F32(shape, w) = &vote.params[0].1 else {
            panic!()
        };
        assert_eq!(shape, &vec![5, 10]);
        for row in w.chunks(10) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn thresholded_convs_and_average_pools() {
        // Node 0 feeds a conv of each threshold (three LIFs on x0), node 2 one at 0.5.
        let mut n = net("conv3@0.5 conv3 conv3@1.5 conv3@1.5 skip conv3@0.5");
        n.downsample = PoolKind::Avg;
        // No max pool anywhere: exact without --approx-maxpool.
        let g = build(&n, NirOptions::default()).unwrap();
        let node = |suffix: &str| {
            g.nodes
                .iter()
                .find(|x| x.name.ends_with(suffix))
                .unwrap_or_else(|| panic!("no node {suffix}"))
        };
        let threshold = |x: &NirNode| match &x.params.iter().find(|p| p.0 == "v_threshold") {
            Some((_, Param::F32(_, v))) => v[0],
            p => panic!("{}: {p:?}", x.name),
        };
        for ci in ["cell1", "cell2"] {
            let lif = |s: &str| threshold(node(&format!("{ci}_lif{s}")));
            assert_eq!(lif("0_th05"), 0.5f32.next_down());
            assert_eq!(lif("0"), LIF_THRESHOLD);
            assert_eq!(lif("0_th15"), 1.5f32.next_down());
            assert_eq!(lif("1_th15"), 1.5f32.next_down());
            assert_eq!(lif("2_th05"), 0.5f32.next_down());
            // Each conv reads the LIF of its own threshold.
            for (edge, lif) in [
                ("e0_0_conv3_th05", "lif0_th05"),
                ("e1_0_conv3", "lif0"),
                ("e3_0_conv3_th15", "lif0_th15"),
                ("e2_1_conv3_th15", "lif1_th15"),
                ("e5_2_conv3_th05", "lif2_th05"),
            ] {
                let (e, l) = (node(&format!("{ci}_{edge}")), node(&format!("{ci}_{lif}")));
                assert!(
                    g.edges.contains(&(l.name.clone(), e.name.clone())),
                    "{edge}"
                );
            }
        }
        assert!(!g
            .nodes
            .iter()
            .any(|x| x.name.ends_with("_lif1") || x.name.ends_with("_lif3")));
        assert_eq!(lif_threshold(LifClass::Th10), LIF_THRESHOLD);
        // Average pools: a sum pool and 1/4 after the down conv and before fc1, no OR.
        for pool in ["down_avgpool2", "pool"] {
            let avg = node(&format!("{pool}_avg"));
            assert!(
                matches!(&avg.params[1].1, Param::F32(_, w) if w.iter().all(|&v| v == 0.0 || v == 0.25))
            );
            assert_eq!(node(&format!("{pool}_sum")).kind, "SumPool2d");
        }
        assert!(!g
            .nodes
            .iter()
            .any(|x| x.name.contains("pool_or") || x.name.contains("maxpool")));
    }

    #[cfg(feature = "nir")]
    #[test]
    fn written_file_has_the_nir_layout() {
        let n = net("conv3 avgpool conv1 conv3 zero skip conv1 skip conv3 skip avgpool conv3");
        let g = build(&n, APPROX).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.nir");
        write(&g, &path).unwrap();
        let f = hdf5::File::open(&path).unwrap();
        let s = |ds: hdf5::Dataset| {
            ds.read_scalar::<hdf5::types::VarLenUnicode>()
                .unwrap()
                .to_string()
        };
        assert_eq!(s(f.dataset("version").unwrap()), NIR_VERSION);
        assert_eq!(s(f.dataset("node/type").unwrap()), "NIRGraph");
        let edges = f
            .dataset("node/edges")
            .unwrap()
            .read_2d::<hdf5::types::VarLenUnicode>()
            .unwrap();
        assert_eq!(edges.shape(), &[g.edges.len(), 2]);
        assert_eq!(edges[[0, 0]].as_str(), g.edges[0].0);
        let stem = f.group("node/nodes/001_stem").unwrap();
        assert_eq!(s(stem.dataset("type").unwrap()), "Conv2d");
        let w = stem.dataset("weight").unwrap();
        assert_eq!(w.shape(), vec![4, 3, 3, 3]);
        assert_eq!(w.read_raw::<f32>().unwrap(), n.stem.folded().0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        let bad = write(&g, &dir.path().join("no/such\0dir/x.nir"));
        assert!(bad.is_err());
    }
}
