//! Small file-system helpers.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Refuses to start a new `what` (e.g. "training run") in `dir` when `dir/state_file` shows
/// one is already there, pointing at `--resume`.
pub fn refuse_existing(dir: &Path, state_file: &str, what: &str) -> Result<()> {
    let sp = dir.join(state_file);
    if sp.exists() {
        bail!(
            "{} already holds a {what} ({}); continue it with --resume {} or choose another --out",
            dir.display(),
            sp.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed and synced,
/// then renamed over `path`. A crash or error never leaves a half-written `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", path.display()))
}

/// Reads `dir/name`, a JSON file whose `format` field must be `format`, into `T`. Every error
/// names the file; a missing or unreadable file also asks whether `dir` is `what` (e.g. "a
/// training run folder").
pub fn read_format_json<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    format: &str,
    what: &str,
) -> Result<T> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (is {} {what}?)",
            path.display(),
            dir.display()
        )
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let found = v.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if found != format {
        bail!("{}: format {found:?}, expected {format:?}", path.display());
    }
    serde_json::from_value(v).with_context(|| format!("{}: malformed", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() -> Result<()> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("out.json");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(std::fs::read(&p)?, b"two");
        assert_eq!(std::fs::read_dir(d.path())?.count(), 1);
        // a folder in the way fails cleanly
        let bad = d.path().join("out.json").join("x");
        assert!(write_atomic(&bad, b"x").is_err());
        Ok(())
    }
}
