//! Board sizing: the planned footprint bounds the exported one, a space's bound covers each of
//! its cells, and a sized network fits and is the widest that does.

use super::*;
use crate::config::{DatasetKind, Overrides};
use crate::export::testnet::{random_weights, RandomSpec};
use crate::export::{board, footprint, quantize, Ranges};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The demo genotype (`firmware/assets/trained.bin`).
const DEMO: &str = "conv3 conv3 conv3 conv3 conv3 zero conv3 conv3 conv3 zero conv3 conv3";

fn cifar(c1: usize, hidden: usize, t: usize) -> NetConfig {
    let mut cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &Overrides::default()).unwrap();
    cfg.shape.c1 = c1;
    cfg.shape.c2 = 2 * c1;
    cfg.shape.hidden = hidden;
    cfg.shape.timesteps = t;
    cfg
}

/// A random network of `cfg`'s shape with cell `g`, quantised.
fn exported(cfg: &NetConfig, g: &Genotype, bits: Bits, seed: u64) -> Vec<u8> {
    let spec = RandomSpec {
        shape: cfg.shape,
        genotype: g.clone(),
    };
    let ranges = Ranges {
        input: 2.5,
        cell: [6.0, 9.0],
        post: [3.0, 3.0],
        hidden: 4.0,
        out: 12.0,
    };
    quantize(&random_weights(&spec, seed), bits, &ranges).unwrap()
}

#[test]
fn planned_footprint_bounds_the_exported_one() {
    let genotypes = [
        DEMO,
        "skip zero conv3 conv3 zero skip conv3 conv3 zero skip conv3 conv3",
        "zero conv1 avgpool conv3 skip zero conv3 avgpool conv1 skip conv3 maxpool",
        "conv3 conv1 avgpool skip conv3 maxpool",
    ];
    for (k, geno) in genotypes.iter().enumerate() {
        let g: Genotype = geno.parse().unwrap();
        for bits in [Bits::B8, Bits::B16] {
            // C1 = 4: the stem kept; C1 = 8: recomputed.
            for c1 in [4, 8] {
                let mut cfg = cifar(c1, 32, 3);
                cfg.cell = g.cell();
                let real = footprint(&exported(&cfg, &g, bits, k as u64)).unwrap();
                let plan = planned_footprint(&cfg, Cells::One(&g), bits).unwrap();
                let what = format!("{geno} {bits:?} C1 {c1}");
                // The blob: the same up to the normalisation's variable-length integers.
                assert!(plan.blob_bytes >= real.blob_bytes, "{what}");
                assert!(plan.blob_bytes <= real.blob_bytes + 32, "{what}");
                assert_eq!(plan.weight_bytes, real.weight_bytes, "{what}");
                // RAM: the same, or the general accumulators' ring instead of the i16 lanes'
                // (exactly the same where the lanes are sure).
                let b = (plan.buffers, real.buffers);
                assert!(plan.activation_ram >= real.activation_ram, "{what}: {b:?}");
                assert_eq!((b.0.act, b.0.bits), (b.1.act, b.1.bits), "{what}");
                if lanes16_sure(&cfg, bits) {
                    assert_eq!(b.0, b.1, "{what}");
                }
                assert_eq!(plan.input_ram, real.input_ram, "{what}");
            }
        }
    }
}

#[test]
fn a_space_bound_covers_every_cell_of_the_space() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cfg = cifar(8, 64, 4);
    for (cell, ops) in [
        (CellType::Backward, OpSet::lightsnn()),
        (CellType::Backward, OpSet::snasnet()),
        // every op the integer engine runs (not the thresholded convs)
        (
            CellType::Backward,
            OpSet::new(
                &Op::ALL
                    .into_iter()
                    .filter(|o| !matches!(o, Op::Conv3Th05 | Op::Conv3Th15))
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        ),
        (CellType::Forward, OpSet::snasnet()),
    ] {
        let space = planned_footprint(&cfg, Cells::Space { cell, ops: &ops }, Bits::B8).unwrap();
        let mut worst = (0, 0);
        for _ in 0..200 {
            let g: Vec<Op> = (0..cell.num_edges())
                .map(|_| ops.ops()[rng.gen_range(0..ops.len())])
                .collect();
            let g = Genotype::new(cell, &g).unwrap();
            let one = planned_footprint(&cfg, Cells::One(&g), Bits::B8).unwrap();
            assert!(one.activation_ram <= space.activation_ram, "{g}");
            assert!(one.blob_bytes <= space.blob_bytes, "{g}");
            worst = (worst.0.max(one.activation_ram), worst.1.max(one.blob_bytes));
        }
        // Not a loose bound: some sampled cell comes close (within 10 %).
        assert!(10 * worst.0 >= 9 * space.activation_ram, "{cell} {ops}");
    }
    // Every plan of the lightsnn space is among the enumerated ones (by its buffer counts).
    let plans = space_plans(CellType::Backward, &OpSet::lightsnn());
    for _ in 0..500 {
        let g: Vec<Op> = (0..12)
            .map(|_| [Op::Zero, Op::Conv3, Op::Skip][rng.gen_range(0..3)])
            .collect();
        let p = CellPlan::new(CellType::Backward, &g);
        let key = (p.slots, p.stored_backs(), p.lifs());
        assert!(plans
            .iter()
            .any(|q| (q.slots, q.stored_backs(), q.lifs()) == key));
    }
}

#[test]
fn sized_networks_fit_and_are_the_widest_that_do() {
    let f411 = board("stm32f411").unwrap();
    let base = cifar(256, 1024, 5);
    let ops = OpSet::lightsnn();
    let cells = Cells::Space {
        cell: CellType::Backward,
        ops: &ops,
    };
    let s = size_for_board(f411, &base, Fixed::default(), cells, Bits::B8).unwrap();
    assert!(check_fit(&s.footprint, f411).is_ok());
    assert_eq!((s.cfg.shape.hidden, s.cfg.shape.timesteps), (128, 5));
    assert_eq!(s.cfg.shape.c2, 2 * s.cfg.shape.c1);
    assert!(
        s.cfg.shape.c1 >= 4 && s.cfg.shape.c1.is_multiple_of(4),
        "{}",
        s.why
    );
    let wider = cifar(s.cfg.shape.c1 + 4, 128, 5);
    let fp = planned_footprint(&wider, cells, Bits::B8).unwrap();
    assert!(
        check_fit(&fp, f411).is_err(),
        "C1 {} also fits",
        wider.shape.c1
    );
    assert!(
        s.why.contains("stm32f411") && s.why.contains("C1/C2"),
        "{}",
        s.why
    );
    // One genotype fits at least as wide as the worst case of its space.
    let g: Genotype = DEMO.parse().unwrap();
    let one = size_for_board(f411, &base, Fixed::default(), Cells::One(&g), Bits::B8).unwrap();
    assert!(one.cfg.shape.c1 >= s.cfg.shape.c1);
    // Sizes the user fixed are kept, or refused with the resource they exceed.
    let fixed = Fixed {
        channels: true,
        hidden: true,
        timesteps: true,
    };
    let small = cifar(4, 64, 4);
    let kept = size_for_board(f411, &small, fixed, cells, Bits::B8).unwrap();
    assert_eq!(
        (
            kept.cfg.shape.c1,
            kept.cfg.shape.hidden,
            kept.cfg.shape.timesteps
        ),
        (4, 64, 4)
    );
    match size_for_board(f411, &cifar(64, 64, 4), fixed, cells, Bits::B8) {
        Err(ExportError::NoSizeFits { sizes, cause }) => {
            assert_eq!(sizes, "C1/C2 64/128, H 64, T 4");
            match *cause {
                ExportError::DoesNotFit {
                    resource,
                    need,
                    have,
                    ..
                } => {
                    assert_eq!(resource, "flash");
                    assert!(need > have);
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    // The demo cell: C1 = 8 at H 128 (the engine's RAM per neuron; 4 before).
    assert_eq!(
        (one.cfg.shape.c1, one.cfg.shape.hidden),
        (8, 128),
        "{}",
        one.why
    );
    // A fixed width with the hidden size left open, on a part with little flash: H shrinks
    // until fc1 fits.
    let small_flash = Board {
        name: "small-flash",
        core: "Cortex-M4F",
        flash_bytes: crate::export::FIRMWARE_FLASH_RESERVE + 80 * 1024,
        ram_bytes: 128 * 1024,
    };
    let wide = Fixed {
        channels: true,
        ..Fixed::default()
    };
    let h = size_for_board(
        &small_flash,
        &cifar(8, 1024, 5),
        wide,
        Cells::One(&g),
        Bits::B8,
    )
    .unwrap();
    assert!(h.cfg.shape.hidden < 128, "{}", h.why);
    assert!(check_fit(&h.footprint, &small_flash).is_ok());
    assert!(h.why.contains("halved"), "{}", h.why);
}

/// The search's filter: a cell passes exactly when its planned footprint fits (checked against
/// exported blobs), and `any_fits` over alive op sets agrees with trying every cell.
#[test]
fn fit_filter_agrees_with_the_footprint_and_every_cell() {
    let f411 = board("stm32f411").unwrap();
    // Sized for the all-conv3 cell: 8/16, H 128, T 5; cells with skips may not fit.
    let cfg = cifar(8, 128, 5);
    let filter = FitFilter::new(f411, &cfg, Bits::B8);
    let ops = OpSet::lightsnn();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut fit, mut unfit) = (0, 0);
    for k in 0..24 {
        let pick: Vec<Op> = (0..12)
            .map(|_| ops.ops()[rng.gen_range(0..ops.ops().len())])
            .collect();
        let g = Genotype::new(CellType::Backward, &pick).unwrap();
        let planned = planned_footprint(&cfg, Cells::One(&g), Bits::B8).unwrap();
        let passes = filter.fits(&g).unwrap();
        assert_eq!(passes, check_fit(&planned, f411).is_ok(), "{g}");
        if k < 6 {
            let fp = footprint(&exported(&cfg, &g, Bits::B8, k)).unwrap();
            if passes {
                assert!(check_fit(&fp, f411).is_ok(), "{g}");
            }
        }
        if passes {
            fit += 1;
        } else {
            unfit += 1;
        }
    }
    assert!(fit > 0 && unfit > 0, "{fit} fit, {unfit} do not");
    // any_fits against every cell of small alive sets.
    for _ in 0..40 {
        let alive: Vec<Vec<Op>> = (0..12)
            .map(|e| {
                let mut a: Vec<Op> = ops
                    .ops()
                    .iter()
                    .copied()
                    .filter(|_| rng.gen_bool(0.4))
                    .collect();
                if a.is_empty() || e % 3 != 0 {
                    a = vec![ops.ops()[rng.gen_range(0..ops.ops().len())]];
                }
                a
            })
            .collect();
        let total: usize = alive.iter().map(|a| a.len()).product();
        let mut any = false;
        for mut code in 0..total {
            let cell: Vec<Op> = alive
                .iter()
                .map(|a| {
                    let o = a[code % a.len()];
                    code /= a.len();
                    o
                })
                .collect();
            any |= filter
                .fits(&Genotype::new(CellType::Backward, &cell).unwrap())
                .unwrap();
        }
        assert_eq!(
            filter.any_fits(CellType::Backward, &alive).unwrap(),
            any,
            "{alive:?}"
        );
    }
}
