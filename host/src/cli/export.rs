//! `lightsnn export`: a trained checkpoint to a quantised model blob for the device, or to a
//! NIR graph (`--format nir`).

use super::common::{check_preset, load_split, parse_positive};
use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use lightsnn::config::Preset;
use lightsnn::data::Split;
use lightsnn::export::pipeline::export_checkpoint;
use lightsnn::export::{board, check_fit, Bits, BOARDS};
use lightsnn::fsutil::check_output_file;
use lightsnn::search::estimate::{check_network, frames_per_sample};
use lightsnn::search::Pass;
use lightsnn::train::checkpoint::read_checkpoint_meta;
use std::path::{Path, PathBuf};

/// Options of `lightsnn export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint written by `lightsnn train` (e.g. RUN_DIR/best.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Where to write the model blob.
    #[arg(long)]
    out: PathBuf,
    /// Check that the checkpoint is this preset's network (`spikenas-bench`; it carries its
    /// configuration, so nothing else needs the flag). The blob format does not support that
    /// network yet: export it with `--format nir`.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Weight precision.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::ValueParser::new(parse_bits))]
    bits: u8,
    /// Check the footprint against this part (stm32f411, stm32f746, nrf52840, stm32h743) and
    /// fail if the network does not fit.
    #[arg(long)]
    board: Option<String>,
    /// Training data for calibrating the activation scales (default for CIFAR-10: the
    /// built-in sample).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Number of calibration samples.
    #[arg(long, default_value_t = 64, value_parser = parse_positive)]
    calib: usize,
    /// What to write: `blob` (the quantised model for the device) or `nir` (a NIR graph of
    /// the float network, HDF5).
    #[arg(long, value_enum, default_value_t = Format::Blob)]
    format: Format,
    /// NIR: write max pools over analog values as average pools (NIR has no max pool).
    #[arg(long)]
    approx_maxpool: bool,
    /// NIR: also write our network's predictions and per-layer spike counts on the first
    /// `--reference-samples` test samples (of `--data`, default the built-in CIFAR-10 sample)
    /// to this JSON file, for `tools/nir-check.sh`.
    #[arg(long)]
    reference_out: Option<PathBuf>,
    /// NIR: number of test samples in `--reference-out`.
    #[arg(long, default_value_t = 100)]
    reference_samples: usize,
}

/// Output formats of `lightsnn export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Quantised model blob for the device.
    Blob,
    /// NIR graph (HDF5).
    Nir,
}

/// Checks the flags together and the outputs, and that the network and `batch` samples
/// fit, before anything is loaded or written.
fn check_before_work(a: &ExportArgs, batch: usize) -> Result<()> {
    if a.format == Format::Blob {
        for (given, flag, why) in [
            (
                a.approx_maxpool,
                "--approx-maxpool",
                "a blob is exported with the integer max pool of the device",
            ),
            (
                a.reference_out.is_some(),
                "--reference-out",
                "the reference predictions are written for checking a NIR graph",
            ),
        ] {
            if given {
                return Err(super::usage(format!(
                    "{flag} applies to --format nir only; {why}"
                )));
            }
        }
    }
    let mut inputs: Vec<(&str, &Path)> = vec![("--checkpoint", &a.checkpoint)];
    if let Some(d) = &a.data {
        inputs.push(("--data", d));
    }
    check_output_file("--out", &a.out, &inputs)?;
    if let Some(r) = &a.reference_out {
        inputs.push(("--out", &a.out));
        check_output_file("--reference-out", r, &inputs)?;
    }
    let meta = read_checkpoint_meta(&a.checkpoint)?;
    let g = meta
        .genotype()
        .with_context(|| a.checkpoint.display().to_string())?;
    check_network(
        &meta.net,
        &g,
        batch,
        Pass::Eval,
        &Device::Cpu,
        &format!(
            "the network is the one {} describes; lower --calib",
            a.checkpoint.display()
        ),
    )?;
    let [c, h, w] = meta.net.shape.in_chw();
    let sample = lightsnn::limits::product(&[frames_per_sample(&meta.net), c, h, w]);
    lightsnn::limits::check_free(
        4.0 * batch as f64 * sample,
        &format!("{batch} samples of {}", a.checkpoint.display()),
        "",
        "lower --calib or --reference-samples",
    )?;
    Ok(())
}

/// `lightsnn export --format nir`.
fn export_nir(a: &ExportArgs) -> Result<()> {
    use lightsnn::export::nir;
    nir::check_available()?;
    let samples = if a.reference_out.is_some() {
        a.reference_samples
    } else {
        1
    };
    check_before_work(a, samples)?;
    let (net, meta) = lightsnn::train::load_checkpoint(&a.checkpoint, &Device::Cpu)?;
    check_preset(&meta.net, a.preset, &a.checkpoint)?;
    let genotype = meta.genotype()?;
    let fnet = lightsnn::export::from_network(&net, &genotype)?;
    let opts = nir::NirOptions {
        approx_maxpool: a.approx_maxpool,
    };
    let graph = nir::build(&fnet, opts)
        .with_context(|| format!("{} cannot be written as NIR", a.checkpoint.display()))?;
    nir::write(&graph, &a.out)?;
    println!(
        "wrote {} (NIR {}, {} nodes, {} edges, genotype {genotype})",
        a.out.display(),
        nir::NIR_VERSION,
        graph.nodes.len(),
        graph.edges.len()
    );
    if a.approx_maxpool {
        println!("  max pools over analog values written as average pools (approximation)");
    }
    if let Some(path) = &a.reference_out {
        let cfg = &meta.net;
        let whose = format!("the reference of {}: ", a.checkpoint.display());
        let split = Split::Test;
        let (data, _) = load_split(
            cfg.dataset,
            a.data.as_deref(),
            split,
            cfg.shape.timesteps,
            &whose,
        )?;
        let r = nir::reference(&net, &genotype, &data, a.reference_samples)?;
        lightsnn::fsutil::write_atomic(path, serde_json::to_string(&r)?.as_bytes())?;
        println!(
            "wrote {} ({} test samples)",
            path.display(),
            r.samples.len()
        );
    }
    Ok(())
}

/// Runs `lightsnn export`.
pub fn export(a: ExportArgs) -> Result<()> {
    if a.format == Format::Nir {
        return export_nir(&a);
    }
    check_before_work(&a, a.calib)?;
    let (_, meta) = lightsnn::train::load_checkpoint(&a.checkpoint, &Device::Cpu)?;
    check_preset(&meta.net, a.preset, &a.checkpoint)?;
    let cfg = meta.net.clone();
    let whose = format!("calibrating {}: ", a.checkpoint.display());
    let split = Split::Train;
    let (data, _) = load_split(
        cfg.dataset,
        a.data.as_deref(),
        split,
        cfg.shape.timesteps,
        &whose,
    )?;
    let bits = if a.bits == 16 { Bits::B16 } else { Bits::B8 };
    let e = export_checkpoint(&a.checkpoint, &data, bits, a.calib)?;
    let fp = e.footprint;
    println!(
        "model: {} {} cell, genotype {}",
        cfg.dataset, cfg.cell, e.genotype
    );
    println!(
        "  C1/C2 {}/{}, H {}, T {}, {}-bit weights, calibrated on {} samples",
        cfg.shape.c1, cfg.shape.c2, cfg.shape.hidden, cfg.shape.timesteps, a.bits, e.calib
    );
    println!("footprint:");
    println!(
        "  blob (flash)      {:>9} B ({:.1} KiB)",
        fp.blob_bytes,
        fp.blob_bytes as f64 / 1024.0
    );
    println!("  weights           {:>9} B", fp.weight_bytes);
    println!(
        "  activation RAM    {:>9} B ({:.1} KiB: act {} x i16, acc {} x i32, spike bits {} x u64)",
        fp.activation_ram,
        fp.activation_ram as f64 / 1024.0,
        fp.buffers.act,
        fp.buffers.acc,
        fp.buffers.bits
    );
    println!("  input buffer      {:>9} B", fp.input_ram);
    for b in BOARDS.iter() {
        let fit = match check_fit(&fp, b) {
            Ok(()) => "fits".to_string(),
            Err(e) => format!("does not fit: {e}"),
        };
        println!(
            "  {:<10} ({}, {} KiB flash / {} KiB RAM): {fit}",
            b.name,
            b.core,
            b.flash_bytes / 1024,
            b.ram_bytes / 1024
        );
    }
    if let Some(name) = &a.board {
        let b = board(name)?;
        check_fit(&fp, b)
            .with_context(|| format!("the network does not fit {}; nothing written", b.name))?;
    }
    lightsnn::fsutil::write_atomic(&a.out, &e.blob)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

fn parse_bits(s: &str) -> Result<u8, String> {
    match s {
        "8" => Ok(8),
        "16" => Ok(16),
        _ => Err(format!("--bits must be 8 or 16, got {s}")),
    }
}
