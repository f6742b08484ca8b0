use crate::data::{train_val_split, Dataset, DatasetKind, Event};

#[test]
fn deterministic_disjoint_and_complete() {
    let (t1, v1) = train_val_split(1000, 0.1, 5);
    let (t2, v2) = train_val_split(1000, 0.1, 5);
    assert_eq!((&t1, &v1), (&t2, &v2));
    assert_eq!((t1.len(), v1.len()), (900, 100));
    let mut all: Vec<usize> = t1.iter().chain(&v1).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert!(v1.windows(2).all(|w| w[0] < w[1]));
    let (_, v3) = train_val_split(1000, 0.1, 6);
    assert_ne!(v1, v3);
    // The validation set is spread out, not a prefix.
    assert!(v1.iter().any(|&i| i > 500));
}

#[test]
fn rounding_and_edges() {
    assert_eq!(train_val_split(10, 0.25, 0).1.len(), 3); // 2.5 rounds to 3
    assert_eq!(train_val_split(10, 0.24, 0).1.len(), 2);
    assert_eq!(train_val_split(0, 0.5, 0), (vec![], vec![]));
    assert_eq!(train_val_split(4, 0.0, 0), (vec![0, 1, 2, 3], vec![]));
    assert_eq!(train_val_split(4, 1.0, 0), (vec![], vec![0, 1, 2, 3]));
    assert_eq!(train_val_split(4, 7.0, 0).1.len(), 4);
    assert_eq!(train_val_split(4, -1.0, 0).1.len(), 0);
    assert_eq!(train_val_split(4, f64::NAN, 0).1.len(), 0);
}

#[test]
fn subset_of_event_data() {
    let ev = |x: u16, n: usize| {
        vec![
            Event {
                t: 0,
                x,
                y: 0,
                p: 0
            };
            n
        ]
    };
    let ds = Dataset::from_events(
        DatasetKind::Nmnist,
        &[(ev(0, 1), 0), (ev(1, 2), 1), (ev(2, 3), 2)],
        2,
    )
    .unwrap();
    let sub = ds.subset(&[2, 0, 2]);
    assert_eq!(sub.labels(), &[2, 0, 2]);
    assert_eq!(sub.frames(), 2);
    let counts: Vec<_> = (0..3).map(|i| sub.event_count(i).unwrap()).collect();
    assert_eq!(counts, vec![3, 1, 3]);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    sub.fill_batch(&[0], None, &mut a);
    ds.fill_batch(&[2], None, &mut b);
    assert_eq!(a, b);
    assert!(ds.subset(&[]).is_empty());
    assert_eq!(ds.coarse_labels(), None);
}

#[test]
fn kinds_parse_and_display() {
    for k in DatasetKind::ALL {
        assert_eq!(k.to_string().parse::<DatasetKind>().unwrap(), k);
    }
    assert_eq!(
        "CIFAR-10".parse::<DatasetKind>().unwrap(),
        DatasetKind::Cifar10
    );
    assert_eq!(
        "n_mnist".parse::<DatasetKind>().unwrap(),
        DatasetKind::Nmnist
    );
    assert!("mnist".parse::<DatasetKind>().is_err());
    assert_eq!(DatasetKind::Dvs128.num_classes(), 11);
    assert_eq!(DatasetKind::Cifar100.num_classes(), 100);
    assert_eq!(
        (DatasetKind::Nmnist.height(), DatasetKind::Nmnist.width()),
        (34, 34)
    );
    assert_eq!(DatasetKind::Dvs128.channels(), 2);
    assert_eq!(DatasetKind::Cifar10.channels(), 3);
    assert!(DatasetKind::Dvs128.is_event() && !DatasetKind::Cifar100.is_event());
    assert_eq!(
        "Test".parse::<crate::data::Split>().unwrap(),
        crate::data::Split::Test
    );
    // every kind reads back from its name and from its Display
    for k in DatasetKind::ALL {
        assert_eq!(k.name().parse::<DatasetKind>(), Ok(k));
        assert_eq!(k.to_string(), k.name());
    }
}
