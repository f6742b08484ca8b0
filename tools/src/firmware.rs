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

/// Builds `firmware` in release mode for [`TARGET`] with `LIGHTSNN_MODEL=model` and
/// `LIGHTSNN_IMAGES=images`, in `target_dir`, and copies the ELF to `out_elf`.
///
/// Runs `cargo` (`$CARGO` when set, as under `cargo test`).
pub fn build(model: &Path, images: &Path, target_dir: &Path, out_elf: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["build", "-p", "firmware", "--release", "--target", TARGET])
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
