//! `lightsnn-tools`: command-line front end of the firmware helpers (see `--help`).

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use lightsnn_tools::testblob::{self, TestModelSpec};
use lightsnn_tools::{
    defmt_log, e2e, elf, firmware, icount, qemu::Qemu, reference, report, sar, CIFAR_RECORD,
};
use snn_nostd::model::Bits;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Host-side tools for the lightsnn firmware")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the firmware ELF under QEMU (or read a captured stream) and decode its defmt output.
    /// Exits with the firmware's exit status.
    Defmt {
        /// The firmware ELF (holds the defmt table).
        #[arg(long)]
        elf: PathBuf,
        /// Decode these captured bytes (`-` for stdin) instead of running QEMU.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Print JSON lines: one object per image result and one for the summary.
        #[arg(long)]
        json: bool,
        /// QEMU board.
        #[arg(long, default_value = "mps2-an386")]
        machine: String,
        /// QEMU CPU.
        #[arg(long, default_value = "cortex-m4")]
        cpu: String,
    },
    /// Count executed instructions with the qemu-icount plugin: all, those inside FUNCTION, and
    /// those between the firmware's inference markers (one window per inference).
    Icount {
        /// The firmware ELF.
        #[arg(long)]
        elf: PathBuf,
        /// Function whose own instructions are counted (symbol or `::`-separated name parts).
        #[arg(long, default_value = "device::infer_one")]
        function: String,
        /// Window start symbol.
        #[arg(long, default_value = "lightsnn_infer_begin")]
        begin: String,
        /// Window end symbol.
        #[arg(long, default_value = "lightsnn_infer_end")]
        end: String,
        /// Prebuilt plugin (default: built with gcc into a temporary file).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Also print the N functions that executed the most instructions.
        #[arg(long, value_name = "N")]
        profile: Option<usize>,
    },
    /// Print a function's address range `lo hi` (hex) from the ELF symbol table.
    Symbol {
        /// The ELF.
        #[arg(long)]
        elf: PathBuf,
        /// Symbol name or `::`-separated name parts.
        name: String,
    },
    /// Write a random test model blob (the firmware's default is `firmware/assets/model.bin`).
    GenBlob {
        /// Output file.
        #[arg(long, default_value = "firmware/assets/model.bin")]
        out: PathBuf,
        /// Seed of the weights.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Channels of cell 1 (cell 2 has twice as many).
        #[arg(long, default_value_t = 8)]
        c1: usize,
        /// Hidden units.
        #[arg(long, default_value_t = 64)]
        hidden: usize,
        /// Timesteps.
        #[arg(long, default_value_t = 5)]
        t: usize,
        /// Weight bits (8 or 16).
        #[arg(long, default_value_t = 8)]
        bits: u32,
        /// Genotype: 12 ops in canonical edge order.
        #[arg(long, default_value = testblob::LIGHTSNN_GENOTYPE)]
        genotype: String,
    },
    /// Run the host integer reference (snn-nostd on the host) and print JSON lines like
    /// `defmt --json`.
    Reference {
        /// Model blob.
        #[arg(long, default_value = "firmware/assets/model.bin")]
        model: PathBuf,
        /// Test-input records for the model: 1 label byte + its raw input sample each (CIFAR-10
        /// binary records; event records from `lightsnn export-records`).
        #[arg(long, default_value = "firmware/assets/images.bin")]
        images: PathBuf,
    },
    /// The end-to-end check: build the firmware, run it under QEMU, compare with the host
    /// reference bit for bit, count instructions. Exits non-zero on any difference.
    E2e {
        /// Model blob.
        #[arg(long, default_value = "firmware/assets/model.bin")]
        model: PathBuf,
        /// Test-input records for the model: 1 label byte + its raw input sample each (CIFAR-10
        /// binary records; event records from `lightsnn export-records`).
        #[arg(long, default_value = "firmware/assets/images.bin")]
        images: PathBuf,
        /// Firmware build directory.
        #[arg(long, default_value = "target/firmware-e2e")]
        target_dir: PathBuf,
        /// Skip the instruction count.
        #[arg(long)]
        no_count: bool,
        /// Also run and count the dense baseline (firmware feature `dense`) and print the
        /// event-driven / dense ratio.
        #[arg(long)]
        dense: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The SAR curve: rescale every LIF's input (as dividing the thresholds) by each scale, run
    /// the event-driven engine and the dense baseline on the same images (both checked bit for
    /// bit against the host reference), print instructions per inference and the crossover SAR.
    SarSweep {
        /// Model blob.
        #[arg(long, default_value = "firmware/assets/trained.bin")]
        model: PathBuf,
        /// Test-input records for the model: 1 label byte + its raw input sample each (CIFAR-10
        /// binary records; event records from `lightsnn export-records`).
        #[arg(long, default_value = "firmware/assets/images.bin")]
        images: PathBuf,
        /// Firmware build directory.
        #[arg(long, default_value = "target/firmware-e2e")]
        target_dir: PathBuf,
        /// Drive scales (comma-separated, each > 0; 1 is the blob as it is).
        #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,4,8")]
        scales: Vec<f64>,
        /// Print the points as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy CIFAR-10 binary records (label + 3072 bytes) from a batch file (records of other
    /// datasets, e.g. N-MNIST event frames: `lightsnn export-records`).
    Images {
        /// Source batch file, e.g. `$LIGHTSNN_DATA/cifar10-lossless-subset/test_batch.bin`.
        #[arg(long)]
        from: PathBuf,
        /// First record.
        #[arg(long, default_value_t = 0)]
        skip: usize,
        /// Number of records.
        #[arg(long, default_value_t = 4)]
        count: usize,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Defmt {
            elf,
            input,
            json,
            machine,
            cpu,
        } => {
            let elf_bytes =
                std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
            let (bytes, status) = match input {
                Some(p) if p.as_os_str() == "-" => {
                    let mut v = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                    (v, 0)
                }
                Some(p) => (
                    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
                    0,
                ),
                None => {
                    let run = Qemu {
                        machine,
                        cpu,
                        ..Qemu::default()
                    }
                    .run(&elf)?;
                    eprint!("{}", run.stderr);
                    (run.stdout, run.status)
                }
            };
            for line in defmt_log::decode(&elf_bytes, &bytes)? {
                if !json {
                    println!("{line}");
                } else if let Some(r) = report::parse_image(&line.text)? {
                    println!("{}", serde_json::to_string(&r)?);
                } else if let Some(s) = report::parse_summary(&line.text)? {
                    println!("{}", serde_json::json!({ "summary": s }));
                } else if line.level.as_deref() == Some("error") {
                    println!("{}", serde_json::json!({ "error": line.text }));
                }
            }
            std::process::exit(status);
        }
        Cmd::Icount {
            elf,
            function,
            begin,
            end,
            plugin,
            profile,
        } => {
            let bytes = std::fs::read(&elf)?;
            let f = elf::function_range(&bytes, &function)?;
            let b = elf::function_range(&bytes, &begin)?;
            let e = elf::function_range(&bytes, &end)?;
            let plugin = match plugin {
                Some(p) => p,
                None => icount::build_plugin(&std::env::temp_dir().join("lightsnn-libicount.so"))?,
            };
            let run = Qemu {
                plugin: Some(icount::plugin_arg(
                    &plugin,
                    Some((f.lo, f.hi)),
                    Some((b.lo, e.lo)),
                    profile.is_some(),
                )),
                ..Qemu::default()
            }
            .run(&elf)?;
            if run.status != 0 {
                bail!("firmware exited with status {}", run.status);
            }
            let c = icount::parse(&run.plugin_log)?;
            println!("{}", serde_json::to_string(&c)?);
            if let Some(top) = profile {
                let symbols = elf::Symbols::new(&bytes)?;
                for (name, n) in icount::profile(&run.plugin_log, &symbols)?.iter().take(top) {
                    println!(
                        "{:>6.2}% {n:>12} {name}",
                        100.0 * *n as f64 / c.total as f64
                    );
                }
            }
        }
        Cmd::GenBlob {
            out,
            seed,
            c1,
            hidden,
            t,
            bits,
            genotype,
        } => {
            let bits = Bits::from_bits(bits).context("--bits must be 8 or 16")?;
            let spec = TestModelSpec::cifar(c1, hidden, t, &genotype, bits, seed)?;
            let blob = testblob::random_blob(&spec)?;
            std::fs::write(&out, &blob).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {} ({} bytes)", out.display(), blob.len());
        }
        Cmd::Reference { model, images } => {
            let r = reference::run(&std::fs::read(&model)?, &std::fs::read(&images)?)?;
            for i in &r.images {
                println!("{}", serde_json::to_string(i)?);
            }
            println!("{}", serde_json::json!({ "summary": r.summary }));
        }
        Cmd::E2e {
            model,
            images,
            target_dir,
            no_count,
            dense,
            json,
        } => {
            let root = firmware::workspace_root();
            let cfg = e2e::Config {
                model: root.join(model),
                images: root.join(images),
                work_dir: root.join(&target_dir).join("work"),
                target_dir: root.join(target_dir),
                qemu: Qemu::default(),
                count_instructions: !no_count,
                dense,
            };
            let o = e2e::run(&cfg)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "images": o.device.images,
                        "summary": o.reference.summary,
                        "layers": o.reference.layers,
                        "footprint": o.footprint,
                        "cost": o.cost,
                    })
                );
            } else {
                print!("{}", e2e::describe(&o));
            }
        }
        Cmd::SarSweep {
            model,
            images,
            target_dir,
            scales,
            json,
        } => {
            if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                bail!("--scales: every scale must be positive, got {s}");
            }
            let root = firmware::workspace_root();
            let cfg = e2e::Config {
                model: root.join(&model),
                images: root.join(images),
                work_dir: root.join(&target_dir).join("sar"),
                target_dir: root.join(target_dir),
                qemu: Qemu::default(),
                count_instructions: true,
                dense: true,
            };
            let points = sar::sweep_file(&cfg, &root.join(model), &scales)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "points": points, "crossover": sar::crossover(&points) })
                );
            } else {
                print!("{}", sar::describe(&points));
            }
        }
        Cmd::Symbol { elf, name } => {
            let r = elf::function_range(&std::fs::read(&elf)?, &name)?;
            println!("{:#x} {:#x}", r.lo, r.hi);
        }
        Cmd::Images {
            from,
            skip,
            count,
            out,
        } => {
            let data =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            let range = skip * CIFAR_RECORD..(skip + count) * CIFAR_RECORD;
            let Some(records) = data.get(range) else {
                bail!(
                    "{} holds only {} records",
                    from.display(),
                    data.len() / CIFAR_RECORD
                );
            };
            std::fs::write(&out, records)?;
        }
    }
    Ok(())
}
