use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::engine::{quantize_input_f32, quantize_input_u8, Engine};
use snn_nostd::genotype::Genotype;

/// Every op, forward and backward edges.
const ALL_OPS: &str = "conv3 avgpool conv1 conv3 zero skip conv1 maxpool conv3 skip avgpool conv3";

fn spec(input: InputKind, genotype: &str) -> RandomSpec {
    let g: Genotype = genotype.parse().unwrap();
    match input {
        InputKind::Static => RandomSpec {
            input,
            in_chw: (3, 8, 8),
            stem_pool: false,
            t: 4,
            c1: 4,
            c2: 8,
            p: 2,
            h: 16,
            classes: 5,
            v: 2,
            genotype: g,
        },
        InputKind::Events => RandomSpec {
            input,
            in_chw: (2, 12, 12),
            stem_pool: true,
            t: 4,
            c1: 4,
            c2: 8,
            p: 1,
            h: 16,
            classes: 4,
            v: 3,
            genotype: g,
        },
    }
}

/// Random samples: raw bytes (u8 pixels or event counts) and their float form.
fn samples(net: &FloatNetwork, n: usize, seed: u64) -> Vec<(Vec<u8>, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let plane = net.in_h * net.in_w;
    (0..n)
        .map(|_| {
            let raw: Vec<u8> = (0..net.input_len())
                .map(|_| match net.input {
                    InputKind::Static => rng.gen(),
                    InputKind::Events => {
                        if rng.gen_bool(0.3) {
                            rng.gen_range(1..5)
                        } else {
                            0
                        }
                    }
                })
                .collect();
            let x = raw
                .iter()
                .enumerate()
                .map(|(i, &r)| match &net.normalization {
                    Some(nm) => {
                        let c = (i % net.frame_len()) / plane;
                        (r as f32 / 255.0 - nm.mean[c]) / nm.std[c]
                    }
                    None => r as f32,
                })
                .collect();
            (raw, x)
        })
        .collect()
}

struct Agreement {
    prediction: f64,
    sar_diff: f64,
}

fn run(net: &FloatNetwork, bits: Bits, seed: u64, use_u8: bool) -> Agreement {
    let calib: Vec<Vec<f32>> = samples(net, 16, seed).into_iter().map(|s| s.1).collect();
    let (blob, report) = quantize_with_report(net, bits, &calib).unwrap();
    let model = snn_nostd::model::decode(&blob).unwrap();
    let s = snn_nostd::engine::buffer_sizes(&model);
    let (mut act, mut acc, mut bt) = (vec![0i16; s.act], vec![0i32; s.acc], vec![0u64; s.bits]);
    let mut eng = Engine::new(&model, &mut act, &mut acc, &mut bt).unwrap();
    let test = samples(net, 24, seed + 77);
    let mut same = 0;
    let mut fspk: Vec<(u64, usize)> = Vec::new();
    for (raw, x) in &test {
        let f = forward(net, x, &mut Ranges::default()).unwrap();
        let mut q = vec![0i16; x.len()];
        if use_u8 {
            quantize_input_u8(&model, raw, &mut q).unwrap();
        } else {
            quantize_input_f32(&model, x, &mut q).unwrap();
        }
        let pred = eng.infer(&q, &mut ()).unwrap();
        if pred == f.prediction {
            same += 1;
        }
        if fspk.is_empty() {
            fspk = vec![(0, 0); f.spikes.len()];
        }
        for (acc, (_, n, k)) in fspk.iter_mut().zip(&f.spikes) {
            acc.0 += k;
            acc.1 = *n;
        }
    }
    let stats = eng.stats();
    assert_eq!(stats.len(), fspk.len());
    // The convenience runner gives the same results.
    let ir = if use_u8 {
        run_integer_u8(&blob, &test.iter().map(|s| s.0.clone()).collect::<Vec<_>>()).unwrap()
    } else {
        run_integer(&blob, &test.iter().map(|s| s.1.clone()).collect::<Vec<_>>()).unwrap()
    };
    assert_eq!(ir.stats, stats);
    assert_eq!(ir.synops, eng.synops());
    let mut sar_diff = 0f64;
    for (st, &(k, n)) in stats.iter().zip(&fspk) {
        let fs = k as f64 / (n * net.t * test.len()) as f64;
        println!(
            "  {}: engine SAR {:.3}, float SAR {:.3}",
            st.layer,
            st.sar(),
            fs
        );
        assert_eq!(st.neurons as usize, n);
        sar_diff = sar_diff.max((st.sar() as f64 - fs).abs());
    }
    let a = Agreement {
        prediction: same as f64 / test.len() as f64,
        sar_diff,
    };
    println!(
        "{:?} {bits:?} seed {seed}: prediction agreement {:.2}, max SAR diff {:.3}, formats {:?}",
        net.input, a.prediction, a.sar_diff, report
    );
    a
}

fn check(input: InputKind, geno: &str, bits: Bits, use_u8: bool, min_pred: f64, max_sar: f64) {
    let sp = spec(input, geno);
    let (mut pred, mut sar) = (0.0, 0f64);
    let seeds = 3;
    for seed in 0..seeds {
        let net = FloatNetwork::random(&sp, seed);
        let a = run(&net, bits, seed, use_u8);
        pred += a.prediction;
        sar = sar.max(a.sar_diff);
    }
    pred /= seeds as f64;
    assert!(pred >= min_pred, "prediction agreement {pred}");
    assert!(sar <= max_sar, "SAR difference {sar}");
}

#[test]
fn quantised_engine_matches_float_static_i16() {
    check(InputKind::Static, ALL_OPS, Bits::B16, false, 0.8, 0.03);
}

#[test]
fn quantised_engine_matches_float_static_i8_raw_pixels() {
    check(InputKind::Static, ALL_OPS, Bits::B8, true, 0.75, 0.05);
}

#[test]
fn quantised_engine_matches_float_events() {
    check(InputKind::Events, ALL_OPS, Bits::B8, true, 0.75, 0.05);
    check(InputKind::Events, ALL_OPS, Bits::B16, false, 0.8, 0.03);
}

#[test]
fn quantised_engine_matches_float_lightsnn_forward_cell() {
    check(
        InputKind::Static,
        "conv3 skip zero conv3 conv3 skip",
        Bits::B16,
        false,
        0.8,
        0.03,
    );
}

#[test]
fn validate_and_calibration_errors() {
    let sp = spec(InputKind::Static, ALL_OPS);
    let net = FloatNetwork::random(&sp, 1);
    assert!(net.validate().is_ok());
    let none: [Vec<f32>; 0] = [];
    assert!(matches!(
        quantize(&net, Bits::B8, &none),
        Err(ExportError::NoCalibration)
    ));
    assert!(matches!(
        quantize(&net, Bits::B8, &[vec![0.0; 3]]),
        Err(ExportError::InputLength { .. })
    ));
    let mut bad = net.clone();
    bad.fc1.pop();
    assert!(matches!(bad.validate(), Err(ExportError::Shape(_))));
    let mut bad = net.clone();
    bad.cell1.convs[0] = None;
    assert!(bad.validate().is_err());
    let mut bad = net.clone();
    bad.cell2.convs[1] = bad.cell2.convs[0].clone();
    assert!(bad.validate().is_err());
    let mut bad = net.clone();
    bad.bn_cell1.var.pop();
    assert!(bad.validate().is_err());
    let mut bad = net.clone();
    bad.p = 5;
    assert!(bad.validate().is_err());
}

#[test]
fn footprint_and_board_fit() {
    let sp = spec(InputKind::Static, ALL_OPS);
    let net = FloatNetwork::random(&sp, 2);
    let calib: Vec<Vec<f32>> = samples(&net, 2, 0).into_iter().map(|s| s.1).collect();
    let blob8 = quantize(&net, Bits::B8, &calib).unwrap();
    let blob16 = quantize(&net, Bits::B16, &calib).unwrap();
    let f8 = footprint(&blob8).unwrap();
    let f16 = footprint(&blob16).unwrap();
    assert_eq!(f8.blob_bytes, blob8.len());
    assert!(f8.weight_bytes < f16.weight_bytes);
    // Same arenas, except that the conv ring of an all-`i16`-lane network (8-bit weights) is
    // half as large.
    assert!(f8.activation_ram <= f16.activation_ram);
    assert_eq!(f8.buffers.act, f16.buffers.act);
    assert_eq!(f8.buffers.input, 3 * 8 * 8);
    // The engine holds a static input itself (a node buffer), as the firmware uses it.
    assert!(f8.buffers.input_staged);
    assert_eq!(f8.input_ram, 0);
    for b in &BOARDS {
        check_fit(&f8, b).unwrap();
    }
    assert_eq!(board("STM32F411").unwrap().ram_bytes, 128 * 1024);
    assert_eq!(board("f746").unwrap().flash_bytes, 1024 * 1024);
    assert!(matches!(board("esp32"), Err(ExportError::UnknownBoard(_))));

    // A CIFAR-size network with C1 = 32 fits 512 KiB of flash but not 128 KiB of RAM.
    let big = RandomSpec {
        in_chw: (3, 32, 32),
        c1: 32,
        c2: 64,
        h: 64,
        p: 4,
        ..spec(InputKind::Static, ALL_OPS)
    };
    let net = FloatNetwork::random(&big, 3);
    let calib: Vec<Vec<f32>> = samples(&net, 1, 0).into_iter().map(|s| s.1).collect();
    let blob = quantize(&net, Bits::B8, &calib).unwrap();
    let fp = footprint(&blob).unwrap();
    let err = check_fit(&fp, board("stm32f411").unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("stm32f411") && msg.contains("RAM"), "{msg}");
    println!("{msg}; footprint {fp:?}");
    assert!(fp.flash_needed() <= 512 * 1024);
    assert!(footprint(&blob[..10]).is_err());
}

/// The converter keeps every weight in place: the export's f32 forward of the converted network
/// matches the Candle network in eval mode (running-stat BN) on random inputs.
#[test]
fn converted_network_matches_candle() {
    use crate::config::{DatasetKind, NetConfig, Overrides};
    use crate::model::{Forward, Mixing, Mode, Network, NoSink};
    use candle_core::{Device, Tensor};
    use rand::{Rng, SeedableRng};
    let o = Overrides {
        width: Some(6.0 / 256.0),
        timesteps: Some(3),
        hidden: Some(32),
        votes: Some(2),
    };
    let cfg = NetConfig::for_dataset(DatasetKind::Cifar10, &o).unwrap();
    let g: snn_nostd::genotype::Genotype =
        "zero,skip,conv3,conv3,zero,skip,conv3,conv3,zero,skip,conv3,conv3"
            .parse()
            .unwrap();
    let alive: Vec<Vec<_>> = g.ops().iter().map(|&op| vec![op]).collect();
    let net = Network::new(&cfg, &alive, 5, &Device::Cpu).unwrap();
    // make the classifier and running stats non-trivial
    net.fc1.set(&(net.fc1.as_tensor() * 40.0).unwrap()).unwrap();
    net.fc2.set(&(net.fc2.as_tensor() * 40.0).unwrap()).unwrap();
    let n = 4;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let data: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    let x = Tensor::from_vec(data.clone(), (n, 1, 3, 32, 32), &Device::Cpu).unwrap();
    let mix = Mixing::single_path(&g);
    let out = net
        .forward(
            &x,
            Forward {
                mixing: &mix,
                mode: Mode::Eval,
                sink: &mut NoSink,
                dropout_rng: None,
            },
        )
        .unwrap();
    let want: Vec<Vec<f32>> = out.logits.to_vec2().unwrap();
    let fnet = super::from_network(&net, &g).unwrap();
    let mut agree = 0;
    for i in 0..n {
        let mut ranges = super::Ranges::default();
        let got = super::forward(&fnet, &data[i * 3072..(i + 1) * 3072], &mut ranges).unwrap();
        let close = got
            .scores
            .iter()
            .zip(&want[i])
            .all(|(a, b)| (a - b).abs() <= 1e-3 * b.abs().max(1.0));
        agree += close as usize;
    }
    assert_eq!(agree, n, "export float forward and Candle disagree");
}
