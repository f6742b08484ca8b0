//! Operations, cell edges, cell types and genotypes (docs/design.md, "Operations" and "The cell").
//!
//! A cell has four nodes `x0..x3`. Edge `i<-j` carries node `j` into node `i`; it is a forward
//! edge when `j < i` and a backward edge (carrying the value of timestep `t-1`) when `j > i`.
//! Every file format and printout lists edges in the canonical order of [`EDGES`].

use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// One candidate operation of an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Op {
    /// Output zero (the edge is absent).
    Zero = 0,
    /// Identity.
    Skip = 1,
    /// LIF -> Conv1x1 (no bias) -> BatchNorm.
    Conv1 = 2,
    /// LIF -> Conv3x3 (stride 1, pad 1, no bias) -> BatchNorm.
    Conv3 = 3,
    /// AvgPool 3x3, stride 1, pad 1 (no LIF).
    AvgPool = 4,
    /// MaxPool 3x3, stride 1, pad 1 (no LIF).
    MaxPool = 5,
    /// LIF at half the network's threshold -> Conv3x3 (stride 1, pad 1, no bias) -> BatchNorm
    /// (SpikeNAS-Bench's `conv3_th0.5`).
    Conv3Th05 = 6,
    /// LIF at 1.5 times the network's threshold -> Conv3x3 -> BatchNorm (SpikeNAS-Bench's
    /// `conv3_th1.5`).
    Conv3Th15 = 7,
}

/// Which threshold a LIF fires at, as a multiple of the network's threshold
/// (`LifParams::v_threshold`, 1.0 by default): the LIF classes of the conv ops. Every conv op
/// has a LIF on its input; conv ops leaving one node with the same class see the same input and
/// fire the same spikes, so they share one LIF layer. Declared (and ordered) by threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LifClass {
    /// 0.5 times the network's threshold (`conv3@0.5`).
    Th05,
    /// The network's threshold (`conv1`, `conv3`; every LIF outside the cells).
    #[default]
    Th10,
    /// 1.5 times the network's threshold (`conv3@1.5`).
    Th15,
}

/// Number of LIF classes.
pub const LIF_CLASSES: usize = 3;

impl LifClass {
    /// Every class, in threshold order (the order a node's LIF layers run in).
    pub const ALL: [LifClass; LIF_CLASSES] = [LifClass::Th05, LifClass::Th10, LifClass::Th15];

    /// Position in [`LifClass::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The threshold as a multiple of the network's threshold: 0.5, 1.0 or 1.5.
    pub const fn scale(self) -> f64 {
        match self {
            LifClass::Th05 => 0.5,
            LifClass::Th10 => 1.0,
            LifClass::Th15 => 1.5,
        }
    }

    /// The suffix of a layer or op name: empty for the network's own threshold, `@0.5`,
    /// `@1.5` otherwise.
    pub const fn suffix(self) -> &'static str {
        match self {
            LifClass::Th05 => "@0.5",
            LifClass::Th10 => "",
            LifClass::Th15 => "@1.5",
        }
    }
}

impl Op {
    /// Every operation, in id order.
    pub const ALL: [Op; 8] = [
        Op::Zero,
        Op::Skip,
        Op::Conv1,
        Op::Conv3,
        Op::AvgPool,
        Op::MaxPool,
        Op::Conv3Th05,
        Op::Conv3Th15,
    ];

    /// The op's stable numeric id (used in files and on the device).
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The op with this id, if any.
    pub fn from_id(id: u8) -> Option<Op> {
        Op::ALL.get(id as usize).copied()
    }

    /// The op's name as printed in genotypes: `zero`, `skip`, `conv1`, `conv3`, `avgpool`,
    /// `maxpool`, `conv3@0.5`, `conv3@1.5`.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Zero => "zero",
            Op::Skip => "skip",
            Op::Conv1 => "conv1",
            Op::Conv3 => "conv3",
            Op::AvgPool => "avgpool",
            Op::MaxPool => "maxpool",
            Op::Conv3Th05 => "conv3@0.5",
            Op::Conv3Th15 => "conv3@1.5",
        }
    }

    /// Whether the op starts with a LIF neuron (and so produces spike codes).
    pub const fn has_lif(self) -> bool {
        self.lif_class().is_some()
    }

    /// The class of the op's LIF (its threshold), `None` for ops without a LIF.
    pub const fn lif_class(self) -> Option<LifClass> {
        match self {
            Op::Conv1 | Op::Conv3 => Some(LifClass::Th10),
            Op::Conv3Th05 => Some(LifClass::Th05),
            Op::Conv3Th15 => Some(LifClass::Th15),
            Op::Zero | Op::Skip | Op::AvgPool | Op::MaxPool => None,
        }
    }

    /// The kernel size of the op's convolution (1 or 3), `None` for ops without one.
    pub const fn kernel(self) -> Option<usize> {
        match self {
            Op::Conv1 => Some(1),
            Op::Conv3 | Op::Conv3Th05 | Op::Conv3Th15 => Some(3),
            Op::Zero | Op::Skip | Op::AvgPool | Op::MaxPool => None,
        }
    }

    /// Whether the op has learnable weights (a convolution and its BatchNorm).
    pub const fn has_weights(self) -> bool {
        self.has_lif()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = ParseError;

    /// Parses an op name (case-insensitive, a few common aliases accepted) or a numeric id.
    /// The thresholded convs are also accepted in SpikeNAS-Bench's spelling: `conv3_th0.5`,
    /// `conv3_th1.0` (= `conv3`), `conv3_th1.5`; `conv3@1.0` and `conv3@1` are `conv3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(id) = t.parse::<u8>() {
            return Op::from_id(id).ok_or(ParseError::UnknownOp);
        }
        let matches = |a: &str| t.eq_ignore_ascii_case(a);
        let op = if matches("zero") || matches("none") || matches("zeroize") {
            Op::Zero
        } else if matches("skip") || matches("skip_connect") || matches("identity") {
            Op::Skip
        } else if matches("conv1") || matches("conv_1x1") || matches("conv1x1") {
            Op::Conv1
        } else if matches("conv3")
            || matches("conv_3x3")
            || matches("conv3x3")
            || matches("conv3_th1.0")
            || matches("conv3@1.0")
            || matches("conv3@1")
        {
            Op::Conv3
        } else if matches("conv3@0.5") || matches("conv3_th0.5") {
            Op::Conv3Th05
        } else if matches("conv3@1.5") || matches("conv3_th1.5") {
            Op::Conv3Th15
        } else if matches("avgpool") || matches("avg_pool_3x3") {
            Op::AvgPool
        } else if matches("maxpool") || matches("max_pool_3x3") {
            Op::MaxPool
        } else {
            return Err(ParseError::UnknownOp);
        };
        Ok(op)
    }
}

/// Maximum number of ops in an op set (every op once).
pub const MAX_OPS: usize = Op::ALL.len();

/// An ordered set of candidate operations (the search space). Order matters: it is the order in
/// which scores are listed, and ties in pruning go to the op listed first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpSet {
    ops: heapless::Vec<Op, MAX_OPS>,
}

impl OpSet {
    /// The LightSNN space: {zero, conv3, skip} (docs/design.md, "Operations").
    pub fn lightsnn() -> OpSet {
        OpSet::new(&[Op::Zero, Op::Conv3, Op::Skip]).expect("valid op set")
    }

    /// The SNASNet space: {zero, skip, conv1, conv3, avgpool} (docs/design.md, "Operations").
    pub fn snasnet() -> OpSet {
        OpSet::new(&[Op::Zero, Op::Skip, Op::Conv1, Op::Conv3, Op::AvgPool]).expect("valid op set")
    }

    /// The SpikeNAS-Bench space: {zero, skip, conv3@0.5, conv3, conv3@1.5}, in the benchmark's
    /// op-index order (digit `k` of a benchmark id means `ops()[k]`).
    pub fn spikenas_bench() -> OpSet {
        OpSet::new(&[Op::Zero, Op::Skip, Op::Conv3Th05, Op::Conv3, Op::Conv3Th15])
            .expect("valid op set")
    }

    /// An op set from a list; fails on an empty list or a repeated op.
    pub fn new(ops: &[Op]) -> Result<OpSet, ParseError> {
        if ops.is_empty() {
            return Err(ParseError::EmptyOpSet);
        }
        let mut v = heapless::Vec::new();
        for &op in ops {
            if v.contains(&op) {
                return Err(ParseError::DuplicateOp);
            }
            v.push(op).map_err(|_| ParseError::DuplicateOp)?;
        }
        Ok(OpSet { ops: v })
    }

    /// The ops, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Always false: an op set holds at least one op.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Whether `op` is in the set.
    pub fn contains(&self, op: Op) -> bool {
        self.ops.contains(&op)
    }

    /// Position of `op` in the set.
    pub fn index_of(&self, op: Op) -> Option<usize> {
        self.ops.iter().position(|&o| o == op)
    }
}

/// Writes the names of `ops` separated by commas, e.g. `zero,conv3,skip`.
fn write_op_names(f: &mut fmt::Formatter<'_>, ops: &[Op]) -> fmt::Result {
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        f.write_str(op.name())?;
    }
    Ok(())
}

impl fmt::Display for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_op_names(f, &self.ops)
    }
}

impl FromStr for OpSet {
    type Err = ParseError;

    /// `lightsnn`, `snasnet`, `spikenas-bench`, or a comma-separated list of op names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("lightsnn") {
            return Ok(OpSet::lightsnn());
        }
        if t.eq_ignore_ascii_case("snasnet") {
            return Ok(OpSet::snasnet());
        }
        if t.eq_ignore_ascii_case("spikenas-bench") {
            return Ok(OpSet::spikenas_bench());
        }
        let mut ops: heapless::Vec<Op, MAX_OPS> = heapless::Vec::new();
        for part in t.split(',') {
            let op: Op = part.parse()?;
            if ops.contains(&op) {
                return Err(ParseError::DuplicateOp);
            }
            ops.push(op).map_err(|_| ParseError::DuplicateOp)?;
        }
        OpSet::new(&ops)
    }
}

/// A cell edge `to <- from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Edge {
    /// Destination node (0..=3).
    pub to: u8,
    /// Source node (0..=3).
    pub from: u8,
}

impl Edge {
    /// Whether the edge carries the source's value from timestep `t-1` (source after
    /// destination).
    pub const fn is_backward(self) -> bool {
        self.from > self.to
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}<-{}", self.to, self.from)
    }
}

const fn e(to: u8, from: u8) -> Edge {
    Edge { to, from }
}

/// Number of edges in a backward cell.
pub const NUM_EDGES: usize = 12;

/// Number of nodes in a cell.
pub const NUM_NODES: usize = 4;

/// The 12 edges in canonical order: `0<-1, 0<-2, 0<-3, 1<-0, 1<-2, 1<-3, 2<-0, 2<-1, 2<-3,
/// 3<-0, 3<-1, 3<-2`.
pub const EDGES: [Edge; NUM_EDGES] = [
    e(0, 1),
    e(0, 2),
    e(0, 3),
    e(1, 0),
    e(1, 2),
    e(1, 3),
    e(2, 0),
    e(2, 1),
    e(2, 3),
    e(3, 0),
    e(3, 1),
    e(3, 2),
];

/// The 6 forward edges, in canonical order.
pub const FORWARD_EDGES: [Edge; 6] = [e(1, 0), e(2, 0), e(2, 1), e(3, 0), e(3, 1), e(3, 2)];

/// Whether the cell has backward edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CellType {
    /// 12 edges: 6 forward and 6 backward (SNASNet's backward cell).
    Backward,
    /// 6 forward edges only.
    Forward,
}

impl CellType {
    /// The cell's edges in canonical order.
    pub const fn edges(self) -> &'static [Edge] {
        match self {
            CellType::Backward => &EDGES,
            CellType::Forward => &FORWARD_EDGES,
        }
    }

    /// Number of edges.
    pub fn num_edges(self) -> usize {
        self.edges().len()
    }

    /// The name used in files: `backward` or `forward`.
    pub const fn name(self) -> &'static str {
        match self {
            CellType::Backward => "backward",
            CellType::Forward => "forward",
        }
    }
}

impl fmt::Display for CellType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CellType {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            t if t.eq_ignore_ascii_case("backward") => Ok(CellType::Backward),
            t if t.eq_ignore_ascii_case("forward") => Ok(CellType::Forward),
            _ => Err(ParseError::UnknownCellType),
        }
    }
}

/// One op per edge of a cell: the searched architecture. Both cells of a network share it.
///
/// ```
/// use snn_nostd::genotype::{CellType, Edge, Genotype, Op};
/// // 12 ops: a backward cell, in the canonical edge order of `EDGES`
/// let g: Genotype = "conv3 skip conv3 zero conv3 skip zero zero conv3 skip zero zero".parse()?;
/// assert_eq!(g.cell(), CellType::Backward);
/// assert_eq!(g.op_on(Edge { to: 0, from: 1 }), Some(Op::Conv3)); // the first edge, 0 <- 1
/// assert_eq!(g.op_on(Edge { to: 1, from: 0 }), Some(Op::Zero)); // the fourth, 1 <- 0
/// assert_eq!(g.to_string(), "conv3,skip,conv3,zero,conv3,skip,zero,zero,conv3,skip,zero,zero");
/// // 6 ops: a forward cell
/// assert_eq!("skip,conv3,zero,conv3,skip,conv3".parse::<Genotype>()?.cell(), CellType::Forward);
/// assert!("conv3 skip".parse::<Genotype>().is_err());
/// # Ok::<(), snn_nostd::genotype::ParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Genotype {
    cell: CellType,
    ops: heapless::Vec<Op, NUM_EDGES>,
}

impl Genotype {
    /// A genotype from one op per edge of `cell`, in canonical edge order.
    pub fn new(cell: CellType, ops: &[Op]) -> Result<Genotype, ParseError> {
        if ops.len() != cell.num_edges() {
            return Err(ParseError::WrongEdgeCount { found: ops.len() });
        }
        let mut v = heapless::Vec::new();
        for &op in ops {
            v.push(op)
                .map_err(|_| ParseError::WrongEdgeCount { found: ops.len() })?;
        }
        Ok(Genotype { cell, ops: v })
    }

    /// The cell type.
    pub fn cell(&self) -> CellType {
        self.cell
    }

    /// The ops, one per edge in canonical order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The op on edge `to <- from`, or `None` if the cell type has no such edge.
    pub fn op_on(&self, edge: Edge) -> Option<Op> {
        self.cell
            .edges()
            .iter()
            .position(|&x| x == edge)
            .map(|i| self.ops[i])
    }

    /// Pairs of (edge, op) in canonical order.
    pub fn edges(&self) -> impl Iterator<Item = (Edge, Op)> + '_ {
        self.cell
            .edges()
            .iter()
            .copied()
            .zip(self.ops.iter().copied())
    }

    /// Checks that every op of the genotype is in `ops`.
    pub fn check_op_set(&self, ops: &OpSet) -> Result<(), ParseError> {
        match self.ops.iter().find(|&&o| !ops.contains(o)) {
            Some(&op) => Err(ParseError::OpNotInSet { op }),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Genotype {
    /// Comma-separated op names in canonical edge order, e.g.
    /// `zero,conv3,skip,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_op_names(f, &self.ops)
    }
}

impl FromStr for Genotype {
    type Err = ParseError;

    /// Parses 12 (backward cell) or 6 (forward cell) op names or ids in canonical edge order,
    /// separated by commas and/or whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut ops: heapless::Vec<Op, NUM_EDGES> = heapless::Vec::new();
        let mut count = 0usize;
        for part in s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
        {
            count += 1;
            let op: Op = part
                .parse()
                .map_err(|_| ParseError::BadOpAt { index: count - 1 })?;
            // Keep counting past 12 so the error reports how many were given.
            let _ = ops.push(op);
        }
        let cell = match count {
            12 => CellType::Backward,
            6 => CellType::Forward,
            found => return Err(ParseError::WrongEdgeCount { found }),
        };
        Genotype::new(cell, &ops)
    }
}

/// A cell of the SpikeNAS-Bench space: a forward genotype (6 edges) whose ops are all in
/// [`OpSet::spikenas_bench`]. Parses from and prints as a genotype, e.g.
/// `conv3@0.5,skip,zero,conv3,zero,conv3@1.5` (the benchmark's spellings `conv3_th0.5` ...
/// are accepted too).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BenchCell {
    genotype: Genotype,
}

impl BenchCell {
    /// Checks that `genotype` is a forward cell over the SpikeNAS-Bench op set.
    pub fn new(genotype: Genotype) -> Result<BenchCell, ParseError> {
        if genotype.cell() != CellType::Forward {
            return Err(ParseError::WrongCellType {
                expected: CellType::Forward,
            });
        }
        genotype.check_op_set(&OpSet::spikenas_bench())?;
        Ok(BenchCell { genotype })
    }

    /// The cell's genotype.
    pub fn genotype(&self) -> &Genotype {
        &self.genotype
    }

    /// The ops on the 6 forward edges, in canonical edge order ([`FORWARD_EDGES`]).
    pub fn ops(&self) -> [Op; 6] {
        let mut ops = [Op::Zero; 6];
        ops.copy_from_slice(self.genotype.ops());
        ops
    }
}

impl From<BenchCell> for Genotype {
    fn from(c: BenchCell) -> Genotype {
        c.genotype
    }
}

impl fmt::Display for BenchCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.genotype.fmt(f)
    }
}

impl FromStr for BenchCell {
    type Err = ParseError;

    /// 6 op names of [`OpSet::spikenas_bench`] in canonical forward edge order, separated by
    /// commas and/or whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BenchCell::new(s.parse()?)
    }
}

/// Why a genotype, op or op set could not be parsed or built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ParseError {
    /// Not an op name or id.
    UnknownOp,
    /// Token `index` (0-based) of a genotype is not an op name or id.
    BadOpAt {
        /// Position of the bad token.
        index: usize,
    },
    /// A genotype needs 12 ops (backward cell) or 6 (forward cell).
    WrongEdgeCount {
        /// How many were given.
        found: usize,
    },
    /// Neither `backward` nor `forward`.
    UnknownCellType,
    /// An op set lists an op twice.
    DuplicateOp,
    /// An op set is empty.
    EmptyOpSet,
    /// The genotype uses an op outside the op set.
    OpNotInSet {
        /// The offending op.
        op: Op,
    },
    /// The genotype is not of the cell type required.
    WrongCellType {
        /// The cell type required.
        expected: CellType,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownOp => f.write_str(
                "unknown op: expected one of zero, skip, conv1, conv3, avgpool, maxpool, conv3@0.5, conv3@1.5 or an id 0-7",
            ),
            ParseError::BadOpAt { index } => write!(
                f,
                "op {index} of the genotype is not one of zero, skip, conv1, conv3, avgpool, maxpool, conv3@0.5, conv3@1.5 (or an id 0-7)"
            ),
            ParseError::WrongEdgeCount { found } => write!(
                f,
                "a genotype lists 12 ops (backward cell) or 6 (forward cell) in canonical edge order, found {found}"
            ),
            ParseError::UnknownCellType => f.write_str("unknown cell type: expected backward or forward"),
            ParseError::DuplicateOp => f.write_str("an op set lists the same op twice"),
            ParseError::EmptyOpSet => f.write_str("an op set needs at least one op"),
            ParseError::OpNotInSet { op } => write!(f, "the genotype uses {op}, which is not in the op set"),
            ParseError::WrongCellType { expected } => write!(f, "expected a {expected} cell ({} ops)", expected.num_edges()),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_order_and_directions() {
        let names: heapless::Vec<heapless::String<8>, 12> = EDGES
            .iter()
            .map(|e| {
                let mut s = heapless::String::new();
                core::fmt::write(&mut s, format_args!("{e}")).unwrap();
                s
            })
            .collect();
        let expected = [
            "0<-1", "0<-2", "0<-3", "1<-0", "1<-2", "1<-3", "2<-0", "2<-1", "2<-3", "3<-0", "3<-1",
            "3<-2",
        ];
        for (n, e) in names.iter().zip(expected) {
            assert_eq!(n.as_str(), e);
        }
        assert_eq!(EDGES.iter().filter(|e| e.is_backward()).count(), 6);
        for f in FORWARD_EDGES {
            assert!(!f.is_backward());
            assert!(EDGES.contains(&f));
        }
    }

    #[test]
    fn genotype_round_trip() {
        let s = "zero,conv3,skip,conv3,zero,zero,skip,conv3,zero,conv3,skip,conv3";
        let g: Genotype = s.parse().unwrap();
        assert_eq!(g.cell(), CellType::Backward);
        let mut out: heapless::String<128> = heapless::String::new();
        core::fmt::write(&mut out, format_args!("{g}")).unwrap();
        assert_eq!(out.as_str(), s);
        assert_eq!(g.op_on(Edge { to: 0, from: 2 }), Some(Op::Conv3));
        assert_eq!(g.op_on(Edge { to: 3, from: 2 }), Some(Op::Conv3));
        // ids and whitespace work too
        let g2: Genotype = "0 3 1 3 0 0 1 3 0 3 1 3".parse().unwrap();
        assert_eq!(g, g2);
        let f: Genotype = "conv3 skip zero conv3 conv3 skip".parse().unwrap();
        assert_eq!(f.cell(), CellType::Forward);
        assert_eq!(f.op_on(Edge { to: 0, from: 1 }), None);
    }

    #[test]
    fn genotype_errors() {
        assert_eq!(
            "conv3,skip".parse::<Genotype>(),
            Err(ParseError::WrongEdgeCount { found: 2 })
        );
        assert_eq!(
            "zero,conv3,skip,conv3,zero,bogus,skip,conv3,zero,conv3,skip,conv3".parse::<Genotype>(),
            Err(ParseError::BadOpAt { index: 5 })
        );
        assert_eq!(
            "zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero".parse::<Genotype>(),
            Err(ParseError::WrongEdgeCount { found: 13 })
        );
        assert_eq!(
            "".parse::<Genotype>(),
            Err(ParseError::WrongEdgeCount { found: 0 })
        );
        let g: Genotype = "conv1 skip zero conv3 conv3 skip".parse().unwrap();
        assert_eq!(
            g.check_op_set(&OpSet::lightsnn()),
            Err(ParseError::OpNotInSet { op: Op::Conv1 })
        );
        assert!(g.check_op_set(&OpSet::snasnet()).is_ok());
    }

    #[test]
    fn op_sets() {
        assert_eq!(OpSet::lightsnn().ops(), &[Op::Zero, Op::Conv3, Op::Skip]);
        assert_eq!("snasnet".parse::<OpSet>().unwrap(), OpSet::snasnet());
        assert_eq!(
            "zero,conv3,maxpool".parse::<OpSet>().unwrap().ops(),
            &[Op::Zero, Op::Conv3, Op::MaxPool]
        );
        assert_eq!("zero,zero".parse::<OpSet>(), Err(ParseError::DuplicateOp));
        for op in Op::ALL {
            assert_eq!(op.name().parse::<Op>(), Ok(op));
            assert_eq!(Op::from_id(op.id()), Some(op));
        }
        assert_eq!(Op::from_id(8), None);
    }

    #[test]
    fn thresholded_convs_names_ids_and_spellings() {
        // Old ids unchanged, new ones appended.
        let ids: heapless::Vec<u8, 8> = Op::ALL.iter().map(|o| o.id()).collect();
        assert_eq!(ids.as_slice(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(Op::from_id(6), Some(Op::Conv3Th05));
        assert_eq!(Op::from_id(7), Some(Op::Conv3Th15));
        assert_eq!(Op::Conv3Th05.name(), "conv3@0.5");
        assert_eq!(Op::Conv3Th15.name(), "conv3@1.5");
        for (text, op) in [
            ("conv3_th0.5", Op::Conv3Th05),
            ("conv3_th1.0", Op::Conv3),
            ("conv3_th1.5", Op::Conv3Th15),
            ("conv3@1.0", Op::Conv3),
            ("conv3@1", Op::Conv3),
            ("CONV3@0.5", Op::Conv3Th05),
            ("6", Op::Conv3Th05),
            ("7", Op::Conv3Th15),
        ] {
            assert_eq!(text.parse::<Op>(), Ok(op), "{text}");
        }
        for bad in ["conv3@2", "conv3_th2.0", "conv3@", "8"] {
            assert_eq!(bad.parse::<Op>(), Err(ParseError::UnknownOp), "{bad}");
        }
        // LIF classes and kernels.
        assert_eq!(Op::Conv3Th05.lif_class(), Some(LifClass::Th05));
        assert_eq!(Op::Conv3.lif_class(), Some(LifClass::Th10));
        assert_eq!(Op::Conv1.lif_class(), Some(LifClass::Th10));
        assert_eq!(Op::Conv3Th15.lif_class(), Some(LifClass::Th15));
        assert_eq!(Op::Skip.lif_class(), None);
        assert!(Op::Conv3Th15.has_lif() && Op::Conv3Th15.has_weights());
        assert_eq!(
            [
                Op::Conv1,
                Op::Conv3,
                Op::Conv3Th05,
                Op::Conv3Th15,
                Op::AvgPool
            ]
            .map(Op::kernel),
            [Some(1), Some(3), Some(3), Some(3), None]
        );
        assert_eq!(LifClass::ALL.map(LifClass::scale), [0.5, 1.0, 1.5]);
        assert_eq!(LifClass::default(), LifClass::Th10);
        for (k, c) in LifClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), k);
        }
    }

    #[test]
    fn spikenas_bench_space_and_cells() {
        let space: OpSet = "spikenas-bench".parse().unwrap();
        assert_eq!(space, OpSet::spikenas_bench());
        assert_eq!(
            space.ops(),
            &[Op::Zero, Op::Skip, Op::Conv3Th05, Op::Conv3, Op::Conv3Th15]
        );
        // The table's spelling, printed back in ours, and parsed again.
        let c: BenchCell = "conv3_th0.5 skip zero conv3_th1.0 zero conv3_th1.5"
            .parse()
            .unwrap();
        let mut out: heapless::String<64> = heapless::String::new();
        core::fmt::write(&mut out, format_args!("{c}")).unwrap();
        assert_eq!(out.as_str(), "conv3@0.5,skip,zero,conv3,zero,conv3@1.5");
        assert_eq!(out.parse::<BenchCell>(), Ok(c.clone()));
        assert_eq!(
            c.ops(),
            [
                Op::Conv3Th05,
                Op::Skip,
                Op::Zero,
                Op::Conv3,
                Op::Zero,
                Op::Conv3Th15
            ]
        );
        assert_eq!(Genotype::from(c.clone()).cell(), CellType::Forward);
        assert_eq!(
            "conv1 skip zero conv3 zero zero".parse::<BenchCell>(),
            Err(ParseError::OpNotInSet { op: Op::Conv1 })
        );
        assert_eq!(
            "zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,conv3".parse::<BenchCell>(),
            Err(ParseError::WrongCellType {
                expected: CellType::Forward
            })
        );
        assert_eq!(
            "conv3 skip".parse::<BenchCell>(),
            Err(ParseError::WrongEdgeCount { found: 2 })
        );
    }
}
