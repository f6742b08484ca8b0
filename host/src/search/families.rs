//! Threshold families: the conv ops of an op set that differ only in their LIF's threshold
//! (`conv3@0.5`, `conv3`, `conv3@1.5`), which `--thresholds spread` chooses between in a
//! stage of their own (`super::prune::prune` with a threshold scorer).

use snn_nostd::genotype::{LifClass, Op};

/// The conv ops of `set` that differ from `op` only in their LIF's threshold (`op` among
/// them), in op-set order; just `op` for an op without a LIF.
pub fn threshold_family(op: Op, set: &[Op]) -> Vec<Op> {
    if !op.has_lif() {
        return vec![op];
    }
    set.iter()
        .copied()
        .filter(|o| o.has_lif() && o.kernel() == op.kernel())
        .collect()
}

/// The op that stands for `op`'s threshold family in the first stage of
/// `super::prune::prune`: the family member at the network's threshold if the set has it, else
/// the family's first member.
pub fn family_representative(op: Op, set: &[Op]) -> Op {
    let family = threshold_family(op, set);
    family
        .iter()
        .copied()
        .find(|o| o.lif_class() == Some(LifClass::Th10))
        .unwrap_or(family[0])
}

/// The op kinds of `set`, in op-set order: each op without a LIF, and each threshold family
/// once, as its [`family_representative`] (what the first stage of `--thresholds spread`
/// prunes).
pub fn op_kinds(set: &[Op]) -> Vec<Op> {
    let mut kinds: Vec<Op> = Vec::new();
    for &o in set {
        let r = family_representative(o, set);
        if !kinds.contains(&r) {
            kinds.push(r);
        }
    }
    kinds
}

/// Whether `set` has a threshold family of more than one op (what `--thresholds spread`
/// chooses between).
pub fn has_threshold_families(set: &[Op]) -> bool {
    set.iter().any(|&o| threshold_family(o, set).len() > 1)
}

/// Whether every op of `set` is a member of one threshold family of two or more ops (a space
/// the rate spread alone can search).
pub fn is_one_threshold_family(set: &[Op]) -> bool {
    set.first()
        .is_some_and(|&o| set.len() > 1 && threshold_family(o, set).len() == set.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use snn_nostd::genotype::OpSet;

    #[test]
    fn threshold_families() {
        let bench = OpSet::spikenas_bench();
        let set = bench.ops();
        let convs = [Op::Conv3Th05, Op::Conv3, Op::Conv3Th15];
        for op in convs {
            let mut f = threshold_family(op, set);
            f.sort();
            let mut want = convs.to_vec();
            want.sort();
            assert_eq!(f, want);
            assert_eq!(family_representative(op, set), Op::Conv3);
        }
        assert_eq!(threshold_family(Op::Skip, set), [Op::Skip]);
        assert_eq!(family_representative(Op::Zero, set), Op::Zero);
        assert_eq!(op_kinds(set), [Op::Zero, Op::Skip, Op::Conv3]);
        assert!(has_threshold_families(set));
        assert!(!is_one_threshold_family(set));
        assert!(is_one_threshold_family(&convs));
        // conv1 and conv3 differ in their kernel, not their threshold
        let snasnet = OpSet::snasnet();
        assert!(!has_threshold_families(snasnet.ops()));
        assert_eq!(threshold_family(Op::Conv1, snasnet.ops()), [Op::Conv1]);
        // without conv3 itself, a family stands as its first member
        let odd = [Op::Zero, Op::Conv3Th15, Op::Conv3Th05];
        assert_eq!(family_representative(Op::Conv3Th05, &odd), Op::Conv3Th15);
    }
}
