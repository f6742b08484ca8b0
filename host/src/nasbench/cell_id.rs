//! SpikeNAS-Bench's architecture ids and the cells they name.
//!
//! The benchmark numbers its 15,625 cells `0..=15624`: written in base 5 as six digits
//! `d0..d5` (most significant first), digit `k` is the op index of one edge, and the edges take
//! their digits in the order `1<-0 = d5`, `2<-0 = d4`, `3<-0 = d3`, `2<-1 = d2`, `3<-1 = d1`,
//! `3<-2 = d0`. Here a cell is the array of its six op indices in lightsnn's canonical forward
//! edge order (`1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`), the order of the benchmark's own `ops`
//! column, so that it converts to a forward-cell genotype edge by edge.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Number of ops per edge in the benchmark's space.
pub const NUM_OPS: usize = 5;
/// Number of edges of a cell (the forward edges of four nodes).
pub const NUM_EDGES: usize = 6;
/// Number of cells: `5^6`.
pub const NUM_CELLS: u32 = 15_625;

/// The benchmark's op names, in its op-index order (`zero` is 0).
pub const OP_NAMES: [&str; NUM_OPS] = ["zero", "skip", "conv3_th0.5", "conv3_th1.0", "conv3_th1.5"];

/// lightsnn's names of the benchmark's ops, in its op-index order: `conv3` fires at the network's
/// threshold (1.0), `conv3@0.5` and `conv3@1.5` at half and one and a half times it.
pub const LIGHTSNN_OP_NAMES: [&str; NUM_OPS] = ["zero", "skip", "conv3@0.5", "conv3", "conv3@1.5"];

/// For each canonical edge, the position (0 = most significant) of its base-5 digit in the id.
const DIGIT_OF_EDGE: [u32; NUM_EDGES] = [5, 4, 2, 3, 1, 0];

/// A cell of the benchmark: one op index (`0..5`, see [`OP_NAMES`]) per canonical edge. In JSON
/// it is the benchmark's spelling (six op names separated by spaces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BenchCell(pub [u8; NUM_EDGES]);

/// An id outside `0..=15624`, or an op index outside `0..5`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellIdError {
    /// The id is not a cell of the benchmark.
    #[error("architecture id {0} is out of range (SpikeNAS-Bench has ids 0..=15624)")]
    IdOutOfRange(u64),
    /// An op index is not one of the five ops.
    #[error("op index {0} is out of range (SpikeNAS-Bench has 5 ops: 0..=4)")]
    OpOutOfRange(u8),
    /// An op name is not one of the benchmark's.
    #[error("unknown op `{0}` (SpikeNAS-Bench's ops: zero, skip, conv3_th0.5, conv3_th1.0, conv3_th1.5)")]
    UnknownOp(String),
    /// Not six ops.
    #[error("a cell has 6 edges, got {0} ops")]
    EdgeCount(usize),
}

impl BenchCell {
    /// The cell with architecture id `id`.
    ///
    /// ```
    /// use lightsnn::nasbench::BenchCell;
    /// // The benchmark's own example: id 10001 is 1<-0 skip, 3<-1 skip, 3<-2 conv3_th1.0.
    /// let c = BenchCell::from_id(10001).unwrap();
    /// assert_eq!(c.to_string(), "skip zero zero zero skip conv3_th1.0");
    /// assert_eq!(c.id(), 10001);
    /// ```
    pub fn from_id(id: u32) -> Result<BenchCell, CellIdError> {
        if id >= NUM_CELLS {
            return Err(CellIdError::IdOutOfRange(id as u64));
        }
        let mut ops = [0u8; NUM_EDGES];
        for (op, &d) in ops.iter_mut().zip(&DIGIT_OF_EDGE) {
            *op = ((id / 5u32.pow(5 - d)) % 5) as u8;
        }
        Ok(BenchCell(ops))
    }

    /// The cell with these op indices (canonical edge order).
    pub fn new(ops: [u8; NUM_EDGES]) -> Result<BenchCell, CellIdError> {
        match ops.iter().find(|&&o| o as usize >= NUM_OPS) {
            Some(&o) => Err(CellIdError::OpOutOfRange(o)),
            None => Ok(BenchCell(ops)),
        }
    }

    /// The cell's architecture id.
    pub fn id(&self) -> u32 {
        self.0
            .iter()
            .zip(&DIGIT_OF_EDGE)
            .map(|(&op, &d)| op as u32 * 5u32.pow(5 - d))
            .sum()
    }

    /// Parses the benchmark's `ops` column: six op names separated by spaces or commas.
    pub fn parse(s: &str) -> Result<BenchCell, CellIdError> {
        let names: Vec<&str> = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if names.len() != NUM_EDGES {
            return Err(CellIdError::EdgeCount(names.len()));
        }
        let mut ops = [0u8; NUM_EDGES];
        for (op, name) in ops.iter_mut().zip(names) {
            *op = OP_NAMES
                .iter()
                .position(|&n| n == name)
                .ok_or_else(|| CellIdError::UnknownOp(name.to_string()))? as u8;
        }
        Ok(BenchCell(ops))
    }

    /// The cell as a lightsnn forward-cell genotype string (six op names separated by commas,
    /// [`LIGHTSNN_OP_NAMES`]), as `lightsnn search` prints it.
    ///
    /// ```
    /// use lightsnn::nasbench::BenchCell;
    /// let c = BenchCell::from_id(10001).unwrap();
    /// assert_eq!(c.genotype_string(), "skip,zero,zero,zero,skip,conv3");
    /// assert_eq!(BenchCell::parse_genotype("skip,zero,zero,zero,skip,conv3").unwrap(), c);
    /// ```
    pub fn genotype_string(&self) -> String {
        self.0.map(|o| LIGHTSNN_OP_NAMES[o as usize]).join(",")
    }

    /// Parses a lightsnn forward-cell genotype string over the benchmark's ops (the inverse of
    /// [`genotype_string`](Self::genotype_string)); `conv3@1.0` is accepted for `conv3`.
    pub fn parse_genotype(s: &str) -> Result<BenchCell, CellIdError> {
        let names: Vec<&str> = s.split(',').map(str::trim).collect();
        if names.len() != NUM_EDGES {
            return Err(CellIdError::EdgeCount(names.len()));
        }
        let mut ops = [0u8; NUM_EDGES];
        for (op, name) in ops.iter_mut().zip(names) {
            let name = if name == "conv3@1.0" || name == "conv3@1" {
                "conv3"
            } else {
                name
            };
            *op = LIGHTSNN_OP_NAMES
                .iter()
                .position(|&n| n == name)
                .ok_or_else(|| CellIdError::UnknownOp(name.to_string()))? as u8;
        }
        Ok(BenchCell(ops))
    }

    /// The benchmark's names of the six ops.
    pub fn op_names(&self) -> [&'static str; NUM_EDGES] {
        self.0.map(|o| OP_NAMES[o as usize])
    }

    /// Number of conv ops (each adds one conv + BN to both cells).
    pub fn conv_count(&self) -> usize {
        self.0.iter().filter(|&&o| o >= 2).count()
    }

    /// Every cell of the benchmark, in id order.
    pub fn all() -> impl Iterator<Item = BenchCell> {
        (0..NUM_CELLS).map(|id| BenchCell::from_id(id).expect("id in range"))
    }
}

impl TryFrom<String> for BenchCell {
    type Error = CellIdError;

    fn try_from(s: String) -> Result<BenchCell, CellIdError> {
        BenchCell::parse(&s)
    }
}

impl From<BenchCell> for String {
    fn from(c: BenchCell) -> String {
        c.to_string()
    }
}

impl fmt::Display for BenchCell {
    /// The benchmark's spelling: six op names separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.op_names().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readmes_example() {
        // id 10001 = digits 3,1,0,0,0,1: 1<-0 = d5 = 1 (skip), 3<-1 = d1 = 1 (skip),
        // 3<-2 = d0 = 3 (conv3_th1.0), the rest zero.
        let c = BenchCell::from_id(10001).unwrap();
        assert_eq!(c, BenchCell([1, 0, 0, 0, 1, 3]));
        assert_eq!(c.op_names()[5], "conv3_th1.0");
        assert_eq!(c.conv_count(), 1);
    }

    #[test]
    fn every_id_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for (id, c) in BenchCell::all().enumerate() {
            assert_eq!(c.id(), id as u32);
            assert_eq!(BenchCell::parse(&c.to_string()).unwrap(), c);
            assert_eq!(BenchCell::parse_genotype(&c.genotype_string()).unwrap(), c);
            assert!(seen.insert(c), "two ids give the cell {c}");
        }
        assert_eq!(seen.len(), NUM_CELLS as usize);
    }

    #[test]
    fn rows_of_the_benchmark_table() {
        // (id, ops) as in SpikeNAS-Bench's cifar10.csv
        for (id, ops) in [
            (0, "zero zero zero zero zero zero"),
            (2, "conv3_th0.5 zero zero zero zero zero"),
            (
                12617,
                "conv3_th0.5 conv3_th1.0 zero conv3_th1.5 zero conv3_th1.5",
            ),
            (
                3113,
                "conv3_th1.0 conv3_th0.5 conv3_th1.5 conv3_th1.5 conv3_th1.5 zero",
            ),
            (
                15624,
                "conv3_th1.5 conv3_th1.5 conv3_th1.5 conv3_th1.5 conv3_th1.5 conv3_th1.5",
            ),
        ] {
            assert_eq!(BenchCell::from_id(id).unwrap().to_string(), ops, "id {id}");
            assert_eq!(BenchCell::parse(ops).unwrap().id(), id);
        }
    }

    #[test]
    fn bad_ids_and_ops() {
        assert_eq!(
            BenchCell::from_id(15625),
            Err(CellIdError::IdOutOfRange(15625))
        );
        assert_eq!(
            BenchCell::new([0, 0, 5, 0, 0, 0]),
            Err(CellIdError::OpOutOfRange(5))
        );
        assert_eq!(
            BenchCell::parse("zero zero"),
            Err(CellIdError::EdgeCount(2))
        );
        assert!(matches!(
            BenchCell::parse("zero zero zero zero zero conv5"),
            Err(CellIdError::UnknownOp(o)) if o == "conv5"
        ));
    }
}
