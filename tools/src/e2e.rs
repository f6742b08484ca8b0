//! The end-to-end check of the firmware: build it with a blob and images, run it under QEMU,
//! decode its defmt output, compare every result bit for bit with the host integer reference, and
//! count the instructions of the inferences with the `qemu-icount` plugin.

use crate::defmt_log::{self, LogLine};
use crate::elf;
use crate::firmware::{self, Footprint};
use crate::icount::{self, Counts};
use crate::qemu::Qemu;
use crate::reference::{self, Reference};
use crate::report::{self, ImageResult, Summary};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Model blob.
    pub model: PathBuf,
    /// Test-input records for the model (`snn_nostd::model::Shape::record_len`: CIFAR-10
    /// binary records, or event records written by `lightsnn export-records`).
    pub images: PathBuf,
    /// `CARGO_TARGET_DIR` of the firmware build (reused between runs).
    pub target_dir: PathBuf,
    /// Scratch directory for the ELF and the plugin.
    pub work_dir: PathBuf,
    /// The emulator.
    pub qemu: Qemu,
    /// Also count instructions with the plugin (needs gcc).
    pub count_instructions: bool,
    /// Build with feature `dense`: the firmware also runs the dense baseline on every image;
    /// its results are checked too, and counted in their own window.
    pub dense: bool,
}

/// The decoded output of one firmware run.
#[derive(Debug, Clone)]
pub struct DeviceRun {
    /// The firmware ELF that ran.
    pub elf: PathBuf,
    /// QEMU's exit status.
    pub status: i32,
    /// Every decoded line.
    pub lines: Vec<LogLine>,
    /// The per-image results.
    pub images: Vec<ImageResult>,
    /// The summary line, if any.
    pub summary: Option<Summary>,
    /// The stack's high-water mark (`stack_bytes` line), if logged.
    pub stack_bytes: Option<u64>,
    /// DWT cycles per image (`cycles` lines; real boards only, none under QEMU).
    pub cycles: Vec<u64>,
    /// The dense baseline's per-image results (`dense image` lines; feature `dense`).
    pub dense_images: Vec<ImageResult>,
}

impl DeviceRun {
    /// The text of the error-level lines.
    pub fn errors(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.level.as_deref() == Some("error"))
            .map(|l| l.text.as_str())
            .collect()
    }
}

/// Instruction counts of the inferences (window between the firmware's inference markers).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cost {
    /// Raw plugin counts (`range`: instructions inside `infer_one` itself, callees excluded).
    pub counts: Counts,
    /// Mean instructions per inference (input quantisation + T timesteps).
    pub per_inference: f64,
    /// Instructions per neuron update (all inference instructions / LIF neuron-timesteps).
    pub per_neuron_update: f64,
    /// Instructions per synaptic event (all inference instructions / synaptic operations).
    pub per_synaptic_event: f64,
    /// Instructions per function over the whole run (all images), largest first.
    pub profile: Vec<(String, u64)>,
}

/// Bytes of static RAM the firmware may use beyond the engine's arenas and input buffer.
pub const OTHER_STATIC_RAM: u64 = 256;

/// Everything the check measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The device run.
    pub device: DeviceRun,
    /// The host reference.
    pub reference: Reference,
    /// Flash / RAM footprint of the ELF.
    pub footprint: Footprint,
    /// Instruction counts, when asked for.
    pub cost: Option<Cost>,
    /// Instruction counts of the dense baseline (feature `dense`), when asked for.
    pub dense_cost: Option<Cost>,
}

/// Bytes of the RTT buffer of a real board's defmt transport (not in the QEMU build).
pub const RTT_BUFFER: u64 = 1024;

impl Outcome {
    /// RAM a real board needs for this firmware: the ELF's static RAM, the measured stack peak
    /// and the RTT buffer ([`RTT_BUFFER`]); `None` if the firmware did not log its stack.
    pub fn ram_needed_with_rtt(&self) -> Option<u64> {
        let stack = self.device.stack_bytes?;
        Some(self.footprint.ram + stack + RTT_BUFFER)
    }
}

/// Builds the firmware (`arena`: optional `LIGHTSNN_ARENA`), runs it under QEMU and decodes it.
pub fn build_and_run(
    cfg: &Config,
    model: &Path,
    arena: Option<&str>,
    name: &str,
) -> Result<DeviceRun> {
    std::fs::create_dir_all(&cfg.work_dir)?;
    let elf = cfg.work_dir.join(name);
    let features: &[&str] = if cfg.dense { &["dense"] } else { &[] };
    firmware::build(model, &cfg.images, arena, features, &cfg.target_dir, &elf)?;
    let run = cfg.qemu.run(&elf)?;
    let lines = defmt_log::decode(&std::fs::read(&elf)?, &run.stdout)?;
    let mut images = Vec::new();
    let mut summary = None;
    let mut stack_bytes = None;
    let mut cycles = Vec::new();
    let mut dense_images = Vec::new();
    for l in &lines {
        if let Some(r) = l.text.strip_prefix("dense ") {
            if let Some(r) = report::parse_image(r)? {
                dense_images.push(r);
            }
        } else if let Some(r) = report::parse_image(&l.text)? {
            images.push(r);
        } else if let Some(s) = report::parse_summary(&l.text)? {
            summary = Some(s);
        } else if let Some(n) = report::parse_count(&l.text, "stack_bytes")? {
            stack_bytes = Some(n);
        } else if let Some(n) = report::parse_count(&l.text, "cycles")? {
            cycles.push(n);
        }
    }
    Ok(DeviceRun {
        elf,
        status: run.status,
        lines,
        images,
        summary,
        stack_bytes,
        cycles,
        dense_images,
    })
}

/// Runs the whole check; an error describes the first difference found.
pub fn run(cfg: &Config) -> Result<Outcome> {
    let blob =
        std::fs::read(&cfg.model).with_context(|| format!("reading {}", cfg.model.display()))?;
    let images =
        std::fs::read(&cfg.images).with_context(|| format!("reading {}", cfg.images.display()))?;
    let reference = reference::run(&blob, &images)?;
    let device = build_and_run(cfg, &cfg.model, None, "firmware.elf")?;
    let log = || {
        device
            .lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    ensure!(
        device.status == 0,
        "firmware exited with status {}:\n{}",
        device.status,
        log()
    );
    ensure!(
        device.images.len() == reference.images.len(),
        "firmware reported {} images, the reference ran {}:\n{}",
        device.images.len(),
        reference.images.len(),
        log()
    );
    for (d, r) in device.images.iter().zip(&reference.images) {
        if d != r {
            bail!("image {}: firmware and host reference differ\n  firmware:  {d:?}\n  reference: {r:?}", r.image);
        }
    }
    if cfg.dense {
        ensure!(
            device.dense_images == reference.images,
            "the dense baseline differs from the host reference:\n  dense:     {:?}\n  reference: {:?}",
            device.dense_images,
            reference.images
        );
    }
    ensure!(
        device.summary.as_ref() == Some(&reference.summary),
        "summary differs: firmware {:?}, reference {:?}",
        device.summary,
        reference.summary
    );
    let elf_bytes = std::fs::read(&device.elf)?;
    let footprint = firmware::footprint(&elf_bytes)?;
    // The footprint `lightsnn export` reports (engine arenas + input) is the ELF's static RAM
    // less the firmware's own few statics (defmt and marker state).
    let dense_bytes = if cfg.dense { reference.dense_bytes } else { 0 };
    let other = footprint.ram as i64 - (reference.arena_bytes + dense_bytes) as i64;
    ensure!(
        (0..=OTHER_STATIC_RAM as i64).contains(&other),
        "static RAM {} B of the ELF vs engine arenas + input {} B: {other} B of other statics, \
         expected 0..={OTHER_STATIC_RAM}",
        footprint.ram,
        reference.arena_bytes
    );
    let (cost, dense_cost) = if cfg.count_instructions {
        let markers = ("lightsnn_infer_begin", "lightsnn_infer_end");
        let cost = count(cfg, &device.elf, &elf_bytes, &reference, markers)?;
        let dense = if cfg.dense {
            let markers = ("lightsnn_dense_begin", "lightsnn_dense_end");
            Some(count(cfg, &device.elf, &elf_bytes, &reference, markers)?)
        } else {
            None
        };
        (Some(cost), dense)
    } else {
        (None, None)
    };
    Ok(Outcome {
        device,
        reference,
        footprint,
        cost,
        dense_cost,
    })
}

/// Counts the instructions of every inference of `elf` between the marker functions
/// `(begin, end)` (one plugin run).
pub fn count(
    cfg: &Config,
    elf_path: &Path,
    elf_bytes: &[u8],
    reference: &Reference,
    (begin, end): (&str, &str),
) -> Result<Cost> {
    let plugin = icount::build_plugin(&cfg.work_dir.join("libicount.so"))?;
    let f = elf::function_range(elf_bytes, "device::infer_one")?;
    let begin = elf::function_range(elf_bytes, begin)?;
    let end = elf::function_range(elf_bytes, end)?;
    let qemu = Qemu {
        plugin: Some(icount::plugin_arg(
            &plugin,
            Some((f.lo, f.hi)),
            Some((begin.lo, end.lo)),
            true,
        )),
        ..cfg.qemu.clone()
    };
    let run = qemu.run(elf_path)?;
    ensure!(
        run.status == 0,
        "firmware exited with status {} under the plugin",
        run.status
    );
    let counts = icount::parse(&run.plugin_log)?;
    let profile = icount::profile(&run.plugin_log, &elf::Symbols::new(elf_bytes)?)?;
    let n = reference.images.len() as u64;
    ensure!(
        counts.windows == n,
        "{} inference windows counted, expected {n}",
        counts.windows
    );
    let updates: u64 = reference.neuron_updates.iter().sum();
    let synops: u64 = reference.images.iter().map(|r| r.synops).sum();
    Ok(Cost {
        counts,
        per_inference: counts.window as f64 / n as f64,
        per_neuron_update: counts.window as f64 / updates.max(1) as f64,
        per_synaptic_event: counts.window as f64 / synops.max(1) as f64,
        profile,
    })
}

/// A human-readable report of an [`Outcome`].
pub fn describe(o: &Outcome) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let r = &o.reference;
    writeln!(s, "firmware matches the host integer reference on {} images (bit for bit: predictions, per-layer spikes, SAR, synops, scores)", r.images.len()).unwrap();
    writeln!(
        s,
        "layers: {}",
        r.layers
            .iter()
            .map(|l| format!("{} ({})", l.name, l.neurons))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    for i in &r.images {
        writeln!(
            s,
            "  image {} label {} pred {} sar {:.2}% synops {} spikes {:?}",
            i.image,
            i.label,
            i.pred,
            i.sar_ppm as f64 / 1e4,
            i.synops,
            i.spikes
        )
        .unwrap();
    }
    writeln!(s, "correct {}/{}", r.summary.correct, r.summary.images).unwrap();
    writeln!(
        s,
        "footprint: flash {} B ({:.1} KiB), static RAM {} B ({:.1} KiB) = engine arenas + input {} B (lightsnn export's footprint) + {} B other statics; stack peak {}",
        o.footprint.flash,
        o.footprint.flash as f64 / 1024.0,
        o.footprint.ram,
        o.footprint.ram as f64 / 1024.0,
        r.arena_bytes,
        o.footprint.ram - r.arena_bytes as u64 - if o.device.dense_images.is_empty() { 0 } else { r.dense_bytes as u64 },
        match o.device.stack_bytes {
            Some(b) => format!(
                "{b} B: RAM needed {} B ({:.1} KiB, + 1 KiB with the RTT transport)",
                o.footprint.ram + b,
                (o.footprint.ram + b) as f64 / 1024.0
            ),
            None => "not logged".into(),
        }
    )
    .unwrap();
    if let (Some(e), Some(d)) = (&o.cost, &o.dense_cost) {
        writeln!(s, "dense baseline (SMLAD direct convolution, same results bit for bit): {:.0} instructions per inference, {:.2} per synaptic event, {:.2} per neuron update", d.per_inference, d.per_synaptic_event, d.per_neuron_update).unwrap();
        writeln!(
            s,
            "event-driven / dense: {:.3} (instructions per inference, same images, same run; mean SAR {:.2}%)",
            e.per_inference / d.per_inference,
            r.images.iter().map(|i| i.sar_ppm as f64).sum::<f64>() / r.images.len() as f64 / 1e4
        )
        .unwrap();
    }
    if let Some(c) = &o.cost {
        let updates: u64 = r.neuron_updates.iter().sum::<u64>() / r.images.len() as u64;
        let synops: u64 = r.images.iter().map(|i| i.synops).sum::<u64>() / r.images.len() as u64;
        writeln!(s, "instructions (event-driven): {:.0} per inference (mean of {}; total run {}), {:.2} per neuron update ({} updates/inference), {:.2} per synaptic event ({} synops/inference); infer_one's own body {}",
            c.per_inference, c.counts.windows, c.counts.total, c.per_neuron_update, updates, c.per_synaptic_event, synops, c.counts.range).unwrap();
        writeln!(s, "profile (instructions per function, whole run):").unwrap();
        for (name, n) in c.profile.iter().take(12) {
            writeln!(
                s,
                "  {:>6.2}% {:>12} {name}",
                100.0 * *n as f64 / c.counts.total as f64,
                n
            )
            .unwrap();
        }
    }
    s
}
