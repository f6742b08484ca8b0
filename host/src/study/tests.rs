//! Study tests: the cell draw, and a small study on the shipped CIFAR-10 sample.

use super::*;
use snn_nostd::genotype::CellType;

fn g(s: &str) -> Genotype {
    s.parse().unwrap()
}

#[test]
fn forward_path_rule() {
    // edge order: 0<-1 0<-2 0<-3 1<-0 1<-2 1<-3 2<-0 2<-1 2<-3 3<-0 3<-1 3<-2
    assert!(has_forward_path(&g(
        "zero,zero,zero,zero,zero,zero,zero,zero,zero,skip,zero,zero"
    )));
    // 0 -> 1 -> 2 -> 3
    assert!(has_forward_path(&g(
        "zero,zero,zero,conv3,zero,zero,zero,conv3,zero,zero,zero,skip"
    )));
    // 0 -> 1, but nothing from 1 or 2 into 3; backward edges cannot help
    assert!(!has_forward_path(&g(
        "conv3,conv3,conv3,conv3,conv3,conv3,zero,zero,conv3,zero,zero,zero"
    )));
    // node 2 feeds 3 but nothing reaches 2
    assert!(!has_forward_path(&g(
        "zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,zero,conv3"
    )));
    // forward cell: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    assert!(has_forward_path(&g("conv3,zero,skip,zero,zero,conv3")));
    assert!(!has_forward_path(&g("conv3,conv3,zero,zero,zero,zero")));
}

#[test]
fn random_cells_are_seeded_distinct_and_connected() {
    let cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &Default::default()).unwrap();
    let a = random_cells(&cfg, 20, 3).unwrap();
    assert_eq!(a, random_cells(&cfg, 20, 3).unwrap());
    assert_ne!(a, random_cells(&cfg, 20, 4).unwrap());
    assert_eq!(a.len(), 20);
    for (i, x) in a.iter().enumerate() {
        assert!(has_forward_path(x), "{x}");
        assert_eq!(x.cell(), CellType::Backward);
        assert!(!a[..i].contains(x), "duplicate {x}");
    }
}
