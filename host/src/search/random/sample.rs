//! SNASNet's sampler of random cells: `connection_matrix_gen` and the sanity check of
//! `find_best_neuroncell` in SNASNet's `model_snn.py`
//! (github.com/Intelligent-Computing-Lab-Yale/SNASNet), restated on this crate's edges.
//!
//! SNASNet keeps a 4x4 connection matrix `m[a][b]`: the op on the edge from node `a` into node
//! `b` (here edge `b<-a`); `a < b` is a forward edge, `a > b` a backward one. Its op ids 0..4
//! (none, identity, LIF-conv1x1-BN, LIF-conv3x3-BN, avgpool3x3) are this crate's `zero`, `skip`,
//! `conv1`, `conv3`, `avgpool`.
//!
//! 1. Sampling. Forward cell: every forward edge gets an op drawn uniformly from the op set.
//!    Backward cell: for every node pair `a < b` a fair coin picks *one* direction, forward
//!    `b<-a` or backward `a<-b`, which gets a uniform op; the other direction is `zero`. (SNASNet
//!    draws an upper and a lower triangle and a 0/1 selection mask; the distribution is the
//!    same.) The op drawn may itself be `zero`.
//! 2. Dangling nodes. With `R` = reachability over paths of 1 to 4 edges of the sampled
//!    (non-zero) edges, forward and backward: every node of 0..=2 that cannot reach node 3
//!    loses all its edges (in and out), then every node of 1..=3 that node 0 cannot reach loses
//!    all its edges, both rules reading the `R` of the sampled matrix.
//! 3. Acceptance. The cell is kept only if the direct edge `3<-0` (input to output) is not
//!    `zero` -- SNASNet demands this direct edge, a stronger rule than "some path from input to
//!    output" -- otherwise it is discarded and a new one is drawn.

// The connection matrix is indexed by node pairs (`m[a][b]` and `m[b][a]` together), which
// index loops say more plainly than iterator chains.
#![allow(clippy::needless_range_loop)]

use anyhow::{bail, Result};
use rand::Rng;
use snn_nostd::genotype::{CellType, Genotype, Op, OpSet, NUM_NODES};

/// `m[a][b]`: the op on edge `b<-a`.
pub type ConnectionMatrix = [[Op; NUM_NODES]; NUM_NODES];

/// Draws that fail acceptance before [`snasnet_genotype`] gives up. A draw is accepted with
/// probability at least 1/16 (coin 1/2, a non-zero op at least 1/8: an op set has at most 8
/// ops), so reaching the cap means a bug, not bad luck (the chance is below 1e-280).
pub const MAX_DRAWS: usize = 10_000;

/// Step 1: a sampled connection matrix of `cell` over `ops`.
pub fn sample_matrix(cell: CellType, ops: &OpSet, rng: &mut impl Rng) -> ConnectionMatrix {
    let mut m = [[Op::Zero; NUM_NODES]; NUM_NODES];
    let all = ops.ops();
    for a in 0..NUM_NODES {
        for b in a + 1..NUM_NODES {
            let forward = match cell {
                CellType::Forward => true,
                CellType::Backward => rng.gen_bool(0.5),
            };
            let op = all[rng.gen_range(0..all.len())];
            if forward {
                m[a][b] = op;
            } else {
                m[b][a] = op;
            }
        }
    }
    m
}

/// `r[a][b]`: node `b` is reachable from node `a` along 1 to 4 non-zero edges.
pub fn reachability(m: &ConnectionMatrix) -> [[bool; NUM_NODES]; NUM_NODES] {
    let adj = m.map(|row| row.map(|op| op != Op::Zero));
    let mut power = adj;
    let mut r = adj;
    for _ in 1..4 {
        let mut next = [[false; NUM_NODES]; NUM_NODES];
        for (a, row) in next.iter_mut().enumerate() {
            for (b, cell) in row.iter_mut().enumerate() {
                *cell = (0..NUM_NODES).any(|k| power[a][k] && adj[k][b]);
            }
        }
        power = next;
        for a in 0..NUM_NODES {
            for b in 0..NUM_NODES {
                r[a][b] |= power[a][b];
            }
        }
    }
    r
}

/// Step 2: removes every edge of the nodes that cannot reach the output (node 3) or cannot be
/// reached from the input (node 0).
pub fn remove_dangling(m: &mut ConnectionMatrix) {
    let r = reachability(m);
    let out = NUM_NODES - 1;
    let mut cut = |node: usize| {
        for k in 0..NUM_NODES {
            m[node][k] = Op::Zero;
            m[k][node] = Op::Zero;
        }
    };
    for node in 0..out {
        if !r[node][out] {
            cut(node);
        }
    }
    for node in 1..NUM_NODES {
        if !r[0][node] {
            cut(node);
        }
    }
}

/// Step 3: whether SNASNet keeps the cell (the direct input-to-output edge `3<-0` is present).
pub fn accepted(m: &ConnectionMatrix) -> bool {
    m[0][NUM_NODES - 1] != Op::Zero
}

/// The genotype of `m` (the op of each edge of `cell`, in canonical order).
pub fn genotype_of(cell: CellType, m: &ConnectionMatrix) -> Result<Genotype> {
    let ops: Vec<Op> = cell
        .edges()
        .iter()
        .map(|e| m[e.from as usize][e.to as usize])
        .collect();
    Ok(Genotype::new(cell, &ops)?)
}

/// The connection matrix of `g`.
pub fn matrix_of(g: &Genotype) -> ConnectionMatrix {
    let mut m = [[Op::Zero; NUM_NODES]; NUM_NODES];
    for (e, op) in g.edges() {
        m[e.from as usize][e.to as usize] = op;
    }
    m
}

/// The effective cell of `g`: `g` with every edge of a dangling node removed (step 2), i.e.
/// only the ops on paths from the input to the output. It computes the same output as `g`: a
/// removed op's value never reaches node 3.
pub fn effective(g: &Genotype) -> Result<Genotype> {
    let mut m = matrix_of(g);
    remove_dangling(&mut m);
    genotype_of(g.cell(), &m)
}

/// One random cell drawn as SNASNet draws it (steps 1-3, redrawing until accepted).
///
/// Fails when `ops` lacks `zero` (SNASNet's absent edge, needed for the unchosen direction and
/// for dangling nodes) or holds nothing else (no cell could be accepted).
pub fn snasnet_genotype(cell: CellType, ops: &OpSet, rng: &mut impl Rng) -> Result<Genotype> {
    if !ops.contains(Op::Zero) {
        bail!("SNASNet's random search needs the zero op (an absent edge) in the op set {{{ops}}}");
    }
    if ops.len() < 2 {
        bail!("SNASNet's random search needs an op besides zero in the op set {{{ops}}}");
    }
    for _ in 0..MAX_DRAWS {
        let mut m = sample_matrix(cell, ops, rng);
        remove_dangling(&mut m);
        if accepted(&m) {
            return genotype_of(cell, &m);
        }
    }
    bail!("no acceptable SNASNet cell in {MAX_DRAWS} draws over {{{ops}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A matrix from `(from, to, op)` triples.
    fn matrix(edges: &[(usize, usize, Op)]) -> ConnectionMatrix {
        let mut m = [[Op::Zero; NUM_NODES]; NUM_NODES];
        for &(a, b, op) in edges {
            m[a][b] = op;
        }
        m
    }

    #[test]
    fn one_direction_per_pair() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ops: OpSet = "skip,conv3".parse().unwrap();
        let mut backward = 0;
        for _ in 0..200 {
            let m = sample_matrix(CellType::Backward, &ops, &mut rng);
            for a in 0..NUM_NODES {
                assert_eq!(m[a][a], Op::Zero);
                for b in a + 1..NUM_NODES {
                    // Without zero in the set exactly one direction is non-zero.
                    assert!((m[a][b] != Op::Zero) ^ (m[b][a] != Op::Zero), "{m:?}");
                    backward += (m[b][a] != Op::Zero) as usize;
                }
            }
            let f = sample_matrix(CellType::Forward, &ops, &mut rng);
            assert!((0..NUM_NODES).all(|a| (0..=a).all(|b| f[a][b] == Op::Zero)));
        }
        // 1200 fair coins: the backward share is near 1/2.
        assert!(
            (500..700).contains(&backward),
            "{backward} backward edges of 1200"
        );
    }

    #[test]
    fn dangling_nodes_lose_their_edges() {
        // 0 -> 1 -> 3 and 0 -> 3; node 2 only receives from 0 (cannot reach 3): cut.
        let mut m = matrix(&[
            (0, 1, Op::Conv3),
            (1, 3, Op::Skip),
            (0, 3, Op::Conv1),
            (0, 2, Op::Skip),
        ]);
        remove_dangling(&mut m);
        assert_eq!(m[0][2], Op::Zero);
        assert_eq!(
            (m[0][1], m[1][3], m[0][3]),
            (Op::Conv3, Op::Skip, Op::Conv1)
        );
        assert!(accepted(&m));
        // Node 2 feeds 3 but nothing reaches it from 0, except through a backward edge 3 -> 2:
        // reachable, so it stays.
        let mut m = matrix(&[(0, 3, Op::Conv3), (2, 3, Op::Skip), (3, 2, Op::AvgPool)]);
        remove_dangling(&mut m);
        assert_eq!((m[2][3], m[3][2]), (Op::Skip, Op::AvgPool));
        // Without the backward edge node 2 is unreachable from the input: cut.
        let mut m = matrix(&[(0, 3, Op::Conv3), (2, 3, Op::Skip)]);
        remove_dangling(&mut m);
        assert_eq!(m[2][3], Op::Zero);
        assert!(accepted(&m));
        // The output unreachable: everything goes, and the cell is refused.
        let mut m = matrix(&[(0, 1, Op::Conv3), (1, 2, Op::Conv3)]);
        remove_dangling(&mut m);
        assert_eq!(m, matrix(&[]));
        assert!(!accepted(&m));
    }

    #[test]
    fn sampled_genotypes_obey_the_rules() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for cell in [CellType::Backward, CellType::Forward] {
            for _ in 0..300 {
                let g = snasnet_genotype(cell, &OpSet::snasnet(), &mut rng)?;
                let mut m = [[Op::Zero; NUM_NODES]; NUM_NODES];
                for (e, op) in g.edges() {
                    m[e.from as usize][e.to as usize] = op;
                }
                assert_ne!(m[0][3], Op::Zero, "{g}");
                let r = reachability(&m);
                for node in 1..3 {
                    let used =
                        (0..NUM_NODES).any(|k| m[node][k] != Op::Zero || m[k][node] != Op::Zero);
                    if used {
                        assert!(r[0][node] && r[node][3], "{g}: node {node} dangles");
                    }
                }
                for a in 0..NUM_NODES {
                    for b in a + 1..NUM_NODES {
                        assert!(m[a][b] == Op::Zero || m[b][a] == Op::Zero, "{g}");
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn effective_cells_keep_only_input_to_output_paths() {
        // forward cell 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
        let g: Genotype = "conv3,zero,conv3,skip,zero,zero".parse().unwrap();
        // node 2 never reaches node 3, so 2<-1 goes; node 1 then reaches nothing: 1<-0 goes
        assert_eq!(
            effective(&g).unwrap().to_string(),
            "zero,zero,zero,skip,zero,zero"
        );
        let g: Genotype = "zero,conv3,conv3,zero,conv3,conv3".parse().unwrap();
        // node 1 has no input: 2<-1 and 3<-1 go
        assert_eq!(
            effective(&g).unwrap().to_string(),
            "zero,conv3,zero,zero,zero,conv3"
        );
        let full: Genotype = "conv3,conv3,conv3,conv3,conv3,conv3".parse().unwrap();
        assert_eq!(effective(&full).unwrap(), full);
        assert_eq!(matrix_of(&full)[1][3], Op::Conv3);
    }

    #[test]
    fn refuses_op_sets_it_cannot_sample() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let no_zero: OpSet = "skip,conv3".parse().unwrap();
        let only_zero: OpSet = "zero".parse().unwrap();
        for (ops, what) in [(no_zero, "needs the zero op"), (only_zero, "besides zero")] {
            let e = snasnet_genotype(CellType::Backward, &ops, &mut rng).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
    }
}
