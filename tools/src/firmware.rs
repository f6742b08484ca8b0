//! Building the firmware for the thumb target with a given model blob and image set.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Cortex-M4F/M7F target.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds `firmware` in release mode for [`TARGET`] with `LIGHTSNN_MODEL=model`,
/// `LIGHTSNN_IMAGES=images` and, if given, `LIGHTSNN_ARENA=arena` (see `firmware/build.rs`), in
/// `target_dir`, with the extra cargo `features` of the firmware (e.g. `dense`), and copies the
/// ELF to `out_elf`.
///
/// Runs `cargo` (`$CARGO` when set, as under `cargo test`). Builds within one process are
/// serialised, so concurrent callers sharing `target_dir` each get their own ELF.
pub fn build(
    model: &Path,
    images: &Path,
    arena: Option<&str>,
    features: &[&str],
    target_dir: &Path,
    out_elf: &Path,
) -> Result<()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    match arena {
        Some(a) => cmd.env("LIGHTSNN_ARENA", a),
        None => cmd.env_remove("LIGHTSNN_ARENA"),
    };
    let output = cmd
        .current_dir(workspace_root())
        .args(["build", "-p", "firmware", "--release", "--target", TARGET])
        .args(["--features", &features.join(",")])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("LIGHTSNN_MODEL", model)
        .env("LIGHTSNN_IMAGES", images)
        // Independent of the caller's cargo settings for the host.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .with_context(|| format!("running {cargo}"))?;
    if !output.status.success() {
        bail!(
            "building the firmware failed (is the target installed? `rustup target add {TARGET}`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let elf = target_dir.join(TARGET).join("release").join("firmware");
    std::fs::copy(&elf, out_elf)
        .with_context(|| format!("copying {} to {}", elf.display(), out_elf.display()))?;
    Ok(())
}

/// Flash and RAM footprint of an ELF, from its allocated sections.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Footprint {
    /// Bytes in flash: code, read-only data (model blob and images included), and the load image
    /// of `.data`.
    pub flash: u64,
    /// Bytes of statically allocated RAM (`.data`, `.bss`, `.uninit`); the stack comes on top.
    pub ram: u64,
    /// `(name, address, size)` of every allocated section.
    pub sections: Vec<(String, u64, u64)>,
}

/// The footprint of `elf` for the MPS2 memory map (RAM from `0x2000_0000`).
pub fn footprint(elf: &[u8]) -> Result<Footprint> {
    use object::{Object, ObjectSection, SectionFlags};
    let file = object::File::parse(elf)?;
    let mut fp = Footprint {
        flash: 0,
        ram: 0,
        sections: Vec::new(),
    };
    for s in file.sections() {
        let alloc = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_ALLOC) != 0,
            _ => false,
        };
        if !alloc || s.size() == 0 {
            continue;
        }
        let name = s.name().unwrap_or("?").to_string();
        let in_ram = s.address() >= 0x2000_0000;
        let has_bits = s.kind() != object::SectionKind::UninitializedData;
        if in_ram {
            fp.ram += s.size();
        }
        if !in_ram || (has_bits && name == ".data") {
            fp.flash += s.size();
        }
        fp.sections.push((name, s.address(), s.size()));
    }
    Ok(fp)
}
