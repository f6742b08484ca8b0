use super::testnet::{random_network, random_weights, RandomSpec};
use super::*;
use crate::model::{Forward, Mixing, Mode, Network, SpikeSink};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_nostd::engine::{quantize_input_f32, quantize_input_u8, Engine, LayerId};
use snn_nostd::genotype::Genotype;
use snn_nostd::shape::Shape;

/// Every op, forward and backward edges.
const ALL_OPS: &str = "conv3 avgpool conv1 conv3 zero skip conv1 maxpool conv3 skip avgpool conv3";

fn spec(input: InputKind, genotype: &str) -> RandomSpec {
    RandomSpec::tiny(input, genotype.parse().unwrap())
}

/// Random samples: raw bytes (u8 pixels or event counts) and their float form.
fn samples(net: &FloatNetwork, n: usize, seed: u64) -> Vec<(Vec<u8>, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let plane = net.shape.in_h * net.shape.in_w;
    (0..n)
        .map(|_| {
            let raw: Vec<u8> = (0..net.shape.input_len())
                .map(|_| match net.shape.input {
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
                        let c = (i % net.shape.frame_len()) / plane;
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

/// Counts the spikes of every LIF layer of the Candle network (each layer once, whatever its
/// multiplicity).
#[derive(Default)]
struct SpikeCounts(Vec<(LayerId, usize, u64)>);

impl SpikeSink for SpikeCounts {
    fn record(
        &mut self,
        layer: LayerId,
        _t: usize,
        spikes: &Tensor,
        _multiplicity: u32,
    ) -> anyhow::Result<()> {
        let id = layer;
        let neurons = spikes.dims()[1..].iter().product();
        let n = spikes.sum_all()?.to_scalar::<f32>()? as u64;
        match self.0.iter_mut().find(|e| e.0 == id) {
            Some(e) => e.2 += n,
            None => self.0.push((id, neurons, n)),
        }
        Ok(())
    }
}

/// The Candle network's float forward (eval mode) on `inputs`: per sample the top-1 class
/// (first on ties), and the spikes per LIF layer over all samples.
fn candle_forward(
    net: &Network,
    fnet: &FloatNetwork,
    inputs: &[Vec<f32>],
) -> (Vec<usize>, SpikeCounts) {
    let frames = match fnet.shape.input {
        InputKind::Static => 1,
        InputKind::Events => fnet.shape.timesteps,
    };
    let x = Tensor::from_vec(
        inputs.concat(),
        (
            inputs.len(),
            frames,
            fnet.shape.in_c,
            fnet.shape.in_h,
            fnet.shape.in_w,
        ),
        &Device::Cpu,
    )
    .unwrap();
    let mut counts = SpikeCounts::default();
    let out = net
        .forward(
            &x,
            Forward {
                mixing: &Mixing::single_path(&fnet.genotype),
                mode: Mode::Eval,
                sink: &mut counts,
                dropout_rng: None,
            },
        )
        .unwrap();
    let logits: Vec<Vec<f32>> = out.logits.to_vec2().unwrap();
    let top1 = logits
        .iter()
        .map(|s| (0..s.len()).fold(0, |b, i| if s[i] > s[b] { i } else { b }))
        .collect();
    (top1, counts)
}

/// Calibrates and quantises the random network of `sp` and `seed`, and runs the integer engine
/// and the Candle network (the float reference) on the same random test samples.
fn run(sp: &RandomSpec, bits: Bits, seed: u64, use_u8: bool) -> Agreement {
    let (cnet, net) = random_network(sp, seed);
    let calib: Vec<Vec<f32>> = samples(&net, 16, seed).into_iter().map(|s| s.1).collect();
    let ranges = calibrate(&cnet, &net.genotype, &calib).unwrap();
    let (blob, report) = quantize_with_report(&net, bits, &ranges).unwrap();
    let model = snn_nostd::model::decode(&blob).unwrap();
    let s = snn_nostd::engine::buffer_sizes(&model);
    let (mut act, mut acc, mut bt) = (vec![0i16; s.act], vec![0i32; s.acc], vec![0u64; s.bits]);
    let mut eng = Engine::new(&model, &mut act, &mut acc, &mut bt).unwrap();
    let test = samples(&net, 24, seed + 77);
    let floats: Vec<Vec<f32>> = test.iter().map(|s| s.1.clone()).collect();
    let (float_top1, fspk) = candle_forward(&cnet, &net, &floats);
    let mut same = 0;
    for ((raw, x), &f) in test.iter().zip(&float_top1) {
        let mut q = vec![0i16; x.len()];
        if use_u8 {
            quantize_input_u8(&model, raw, &mut q).unwrap();
        } else {
            quantize_input_f32(&model, x, &mut q).unwrap();
        }
        let pred = eng.infer(&q, &mut ()).unwrap();
        if pred == f {
            same += 1;
        }
    }
    let stats = eng.stats();
    assert_eq!(stats.len(), fspk.0.len());
    // The convenience runner gives the same results.
    let ir = if use_u8 {
        run_integer_u8(&blob, &test.iter().map(|s| s.0.clone()).collect::<Vec<_>>()).unwrap()
    } else {
        run_integer(&blob, &floats).unwrap()
    };
    assert_eq!(ir.stats, stats);
    assert_eq!(ir.synops, eng.synops());
    let mut sar_diff = 0f64;
    for st in stats {
        let &(_, n, k) = fspk
            .0
            .iter()
            .find(|e| e.0 == st.layer)
            .unwrap_or_else(|| panic!("{} has no float counterpart", st.layer));
        let fs = k as f64 / (n * net.shape.timesteps * test.len()) as f64;
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
        net.shape.input, a.prediction, a.sar_diff, report
    );
    a
}

fn check(input: InputKind, geno: &str, bits: Bits, use_u8: bool, min_pred: f64, max_sar: f64) {
    let sp = spec(input, geno);
    let (mut pred, mut sar) = (0.0, 0f64);
    let seeds = 3;
    for seed in 0..seeds {
        let a = run(&sp, bits, seed, use_u8);
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
    let (cnet, net) = random_network(&sp, 1);
    assert!(net.validate().is_ok());
    let none: [Vec<f32>; 0] = [];
    assert!(matches!(
        calibrate(&cnet, &net.genotype, &none),
        Err(ExportError::NoCalibration)
    ));
    assert!(matches!(
        calibrate(&cnet, &net.genotype, &[vec![0.0; 3]]),
        Err(ExportError::InputLength {
            expected: 192,
            got: 3
        })
    ));
    // A genotype the network has no weights for fails in the forward pass.
    let other: Genotype =
        "conv1 avgpool conv1 conv3 zero skip conv1 maxpool conv3 skip avgpool conv3"
            .parse()
            .unwrap();
    let e = calibrate(&cnet, &other, &[vec![0.0; 192]]).unwrap_err();
    assert!(matches!(e, ExportError::Forward(_)), "{e}");
    let ranges = calibrate(&cnet, &net.genotype, &[vec![0.0; 192]]).unwrap();
    let mut bad = net.clone();
    bad.fc1.pop();
    assert!(matches!(bad.validate(), Err(ExportError::Shape(_))));
    assert!(matches!(
        quantize(&bad, Bits::B8, &ranges),
        Err(ExportError::Shape(_))
    ));
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
    bad.shape.pool = 5;
    assert!(bad.validate().is_err());
}

/// Calibration through the Candle network sees the input, the cell input (the stem output) and
/// every later stage, and its result does not depend on how the samples are batched.
#[test]
fn calibration_sees_every_stage() {
    for input in [InputKind::Static, InputKind::Events] {
        let sp = spec(input, ALL_OPS);
        let (cnet, net) = random_network(&sp, 4);
        // More samples than one calibration pass takes.
        let xs: Vec<Vec<f32>> = samples(&net, 40, 5).into_iter().map(|s| s.1).collect();
        let all = calibrate(&cnet, &net.genotype, &xs).unwrap();
        let max_in = xs.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
        assert_eq!(all.input, max_in);
        let frames = if input == InputKind::Events {
            net.shape.timesteps
        } else {
            1
        };
        let x = Tensor::from_vec(
            xs.concat(),
            (
                xs.len(),
                frames,
                net.shape.in_c,
                net.shape.in_h,
                net.shape.in_w,
            ),
            &Device::Cpu,
        )
        .unwrap();
        let mut stem_max = 0f32;
        for f in 0..frames {
            let frame = x.narrow(1, f, 1).unwrap().squeeze(1).unwrap();
            let s = cnet.stem(&frame, Mode::Eval).unwrap();
            stem_max = stem_max.max(s.abs().unwrap().max_all().unwrap().to_scalar().unwrap());
        }
        assert!(all.cell[0] >= stem_max && stem_max > 0.0, "{all:?}");
        for m in [all.cell[1], all.post[0], all.post[1], all.hidden, all.out] {
            assert!(m > 0.0 && m.is_finite(), "{all:?}");
        }
        let mut each = Ranges::default();
        for x in &xs {
            let r = calibrate(&cnet, &net.genotype, std::slice::from_ref(x)).unwrap();
            each.input = each.input.max(r.input);
            each.hidden = each.hidden.max(r.hidden);
            each.out = each.out.max(r.out);
            for k in 0..2 {
                each.cell[k] = each.cell[k].max(r.cell[k]);
                each.post[k] = each.post[k].max(r.post[k]);
            }
        }
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * a.abs().max(1.0);
        let (a, e) = (all, each);
        assert!(
            close(a.input, e.input)
                && close(a.hidden, e.hidden)
                && close(a.out, e.out)
                && (0..2).all(|k| close(a.cell[k], e.cell[k]) && close(a.post[k], e.post[k])),
            "batched {a:?}, one by one {e:?}"
        );
    }
}

#[test]
fn footprint_and_board_fit() {
    let sp = spec(InputKind::Static, ALL_OPS);
    let (cnet, net) = random_network(&sp, 2);
    let calib: Vec<Vec<f32>> = samples(&net, 2, 0).into_iter().map(|s| s.1).collect();
    let ranges = calibrate(&cnet, &net.genotype, &calib).unwrap();
    let blob8 = quantize(&net, Bits::B8, &ranges).unwrap();
    let blob16 = quantize(&net, Bits::B16, &ranges).unwrap();
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
    let small = spec(InputKind::Static, ALL_OPS);
    let big = RandomSpec {
        shape: Shape {
            in_h: 32,
            in_w: 32,
            c1: 32,
            c2: 64,
            hidden: 64,
            pool: 4,
            ..small.shape
        },
        ..small
    };
    let (cnet, net) = random_network(&big, 3);
    let calib: Vec<Vec<f32>> = samples(&net, 1, 0).into_iter().map(|s| s.1).collect();
    let ranges = calibrate(&cnet, &net.genotype, &calib).unwrap();
    let blob = quantize(&net, Bits::B8, &ranges).unwrap();
    let fp = footprint(&blob).unwrap();
    let err = check_fit(&fp, board("stm32f411").unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("stm32f411") && msg.contains("RAM"), "{msg}");
    println!("{msg}; footprint {fp:?}");
    assert!(fp.flash_needed() <= 512 * 1024);
    assert!(footprint(&blob[..10]).is_err());
}

/// The converter keeps every weight in place: the weights written into a Candle network come
/// back from [`from_network`] unchanged (the integer-vs-float tests above then compare the
/// integer engine with the Candle forward of exactly the network that was quantised).
#[test]
fn converter_reads_back_every_weight() {
    for input in [InputKind::Static, InputKind::Events] {
        for geno in [ALL_OPS, "conv3 skip zero conv3 conv3 skip"] {
            let sp = spec(input, geno);
            let (cnet, back) = random_network(&sp, 6);
            assert_eq!(back, random_weights(&sp, 6), "{input:?} {geno}");
            // A genotype of the other cell type is refused.
            let other: Genotype = if geno == ALL_OPS {
                "conv3 skip zero conv3 conv3 skip".parse().unwrap()
            } else {
                ALL_OPS.parse().unwrap()
            };
            assert!(from_network(&cnet, &other).is_err());
        }
    }
}

/// LIF constants the integer engine does not implement are refused, naming them.
#[test]
fn export_refuses_lif_constants_it_cannot_represent() {
    let sp = spec(InputKind::Static, ALL_OPS);
    let g: Genotype = ALL_OPS.parse().unwrap();
    let (mut cnet, _) = random_network(&sp, 6);
    assert!(from_network(&cnet, &g).is_ok());
    cnet.cfg.lif.tau = 2.0;
    let e = format!("{:#}", from_network(&cnet, &g).unwrap_err());
    assert!(
        e.contains("tau 2") && e.contains("cannot be exported"),
        "{e}"
    );
    cnet.cfg.lif.tau = 4.0 / 3.0;
    cnet.cfg.lif.v_threshold = 0.5;
    assert!(from_network(&cnet, &g).is_err());
    // The surrogate's steepness only shapes training: not refused.
    cnet.cfg.lif.v_threshold = 1.0;
    cnet.cfg.lif.alpha = 4.0;
    assert!(from_network(&cnet, &g).is_ok());
}

/// The model blob refuses what the integer engine cannot run yet, by name: average-pool
/// downsampling and thresholded convs (the SpikeNAS-Bench network). The float conversion
/// reads their weights; only the blob is refused.
#[test]
fn blob_refuses_the_spikenas_bench_network() {
    let bench = "conv3@0.5 conv3 conv3@1.5 conv3@1.5 skip conv3@0.5";
    let sp = spec(InputKind::Static, bench);
    let (cnet, net) = random_network(&sp, 3);
    assert_eq!(
        net,
        random_weights(&sp, 3),
        "every thresholded conv read back"
    );
    let ranges = calibrate(&cnet, &net.genotype, &[vec![0.0; 192]]).unwrap();
    let e = quantize(&net, Bits::B8, &ranges).unwrap_err();
    assert!(
        matches!(&e, ExportError::Unsupported(w) if w.contains("conv3@0.5")),
        "{e}"
    );
    assert!(e.to_string().contains("--format nir"), "{e}");
    let mut avg = random_weights(
        &spec(InputKind::Static, "conv3 skip zero conv3 conv3 skip"),
        3,
    );
    assert!(avg.check_blob_support().is_ok());
    avg.downsample = crate::config::PoolKind::Avg;
    let e = quantize(&avg, Bits::B8, &ranges).unwrap_err();
    assert!(
        matches!(&e, ExportError::Unsupported(w) if w.contains("average-pool")),
        "{e}"
    );
}
