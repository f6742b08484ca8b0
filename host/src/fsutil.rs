//! Small file-system helpers: atomic writes, and the checks every command runs on its outputs
//! before it starts work (see docs/cli.md, "Errors and outputs").
//!
//! Outputs follow one policy:
//! - an output that resolves to an input of the same command is refused: the same path after
//!   resolving symlinks, the same file through a hard link, an input folder itself, or a file or
//!   folder that already exists inside an input folder (a new file there is allowed);
//! - a symlink at the output path is written through: its target is replaced atomically and
//!   the link stays; a symlink to a missing file is refused;
//! - an existing output that is not a regular file (a folder, FIFO, device node or socket) is
//!   refused, never replaced;
//! - the folder that will hold the output must be writable before the work starts;
//! - temporary files (and folders written whole) are named `.<name>.lightsnn-<pid>.tmp`; one
//!   left behind by a killed run (its process gone) is removed by the next write into the same
//!   folder.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

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

/// The marker of our temporary files: `.<name>.lightsnn-<pid>.tmp`.
const TEMP_MARK: &str = ".lightsnn-";

/// What kind of file system object `m` is, in words (for refusals).
fn kind_of(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "a regular file"
    }
}

/// The file an output path really names: a symlink's target (written through), else the path
/// itself. Refuses a symlink to a missing file and an existing object that is not a regular
/// file.
fn output_target(path: &Path) -> std::io::Result<PathBuf> {
    let bad = |msg: String| std::io::Error::other(msg);
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|_| {
            bad(format!(
                "{} is a symlink to a missing file ({}); remove it or point it at a file",
                path.display(),
                std::fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default()
            ))
        })?,
        _ => path.to_path_buf(),
    };
    if let Ok(m) = std::fs::metadata(&target) {
        if !m.file_type().is_file() {
            return Err(bad(format!(
                "{} is {}, not a regular file; give the path of a file",
                target.display(),
                kind_of(&m)
            )));
        }
    }
    Ok(target)
}

/// The folder holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether process `pid` is alive; `None` where that cannot be told (no `/proc`).
fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.is_dir().then(|| proc.join(pid.to_string()).exists())
}

/// The process id in one of our temporary file names (`.<name>.lightsnn-<pid>.tmp`).
fn temp_pid(file_name: &OsStr) -> Option<u32> {
    let s = file_name.to_str()?;
    let rest = s.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = rest.rsplit_once(TEMP_MARK)?;
    pid.parse().ok()
}

/// The temporary name of `target` (a file, or a folder written whole and then renamed) for
/// this process: `.<name>.lightsnn-<pid>.tmp` in the same folder.
pub fn temp_path(target: &Path) -> std::io::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} is not a file path", target.display())))?;
    Ok(parent_dir(target).join(format!(
        ".{}{TEMP_MARK}{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Removes the temporary files (and folders) of our naming pattern in `dir` whose process is
/// gone (left by a run that was killed). Returns how many were removed; unreadable entries are
/// skipped.
pub fn clean_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = temp_pid(&entry.file_name()) else {
            continue;
        };
        if pid == me || process_alive(pid) != Some(false) {
            continue;
        }
        let gone = match entry.file_type() {
            Ok(t) if t.is_file() => std::fs::remove_file(entry.path()).is_ok(),
            // a folder written whole before its rename (a `--dump-codes` dump)
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(entry.path()).is_ok(),
            _ => false,
        };
        removed += usize::from(gone);
    }
    removed
}

/// An output file being written: a temporary file beside its target, renamed over the target
/// by [`PendingOutput::commit`] and removed if dropped uncommitted.
pub struct PendingOutput {
    target: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl PendingOutput {
    /// Prepares writing `path`: resolves a symlink (written through), refuses a non-regular
    /// file, creates the folder, removes stale temporary files there and names the temporary
    /// file. Errors carry the reason; the caller names `path`.
    pub fn new(path: &Path) -> std::io::Result<PendingOutput> {
        let target = output_target(path)?;
        let dir = parent_dir(&target);
        std::fs::create_dir_all(dir)?;
        clean_stale_temps(dir);
        let tmp = temp_path(&target)?;
        Ok(PendingOutput {
            target,
            tmp,
            committed: false,
        })
    }

    /// The temporary file to write.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Renames the temporary file over the target (checked again to be no special file).
    pub fn commit(mut self) -> std::io::Result<()> {
        output_target(&self.target)?;
        std::fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed and synced,
/// then renamed over `path`. A crash or error never leaves a half-written `path`. A symlink at
/// `path` is written through; a folder, FIFO or device node there is refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let res = (|| -> std::io::Result<()> {
        let out = PendingOutput::new(path)?;
        let mut f = std::fs::File::create(out.tmp())?;
        f.write_all(bytes)?;
        f.sync_all()?;
        out.commit()
    })();
    res.with_context(|| format!("cannot write {}", path.display()))
}

/// `path` made absolute with its symlinks resolved, also when it does not exist yet: the
/// nearest existing ancestor is resolved and the rest appended.
fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(p), Some(name)) => {
                rest.push(name.to_os_string());
                cur = p;
            }
            _ => return abs,
        }
    }
}

/// The nearest existing ancestor of `path` (itself if it exists).
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    abs.ancestors().find(|a| a.exists()).map(Path::to_path_buf)
}

/// Whether a file can be created in folder `dir` (tried: a probe file created and removed).
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".probe{TEMP_MARK}{}.tmp", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// Searches folder `dir` (and its subfolders, 3 levels deep) for a file with the device and
/// inode of `m`: a hard link of it.
fn find_hard_link(dir: &Path, m: &std::fs::Metadata, depth: usize) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(em) = entry.metadata() else { continue };
        if em.is_file() && (em.dev(), em.ino()) == (m.dev(), m.ino()) {
            return Some(entry.path());
        }
        if em.is_dir() && depth > 0 {
            if let Some(p) = find_hard_link(&entry.path(), m, depth - 1) {
                return Some(p);
            }
        }
    }
    None
}

/// Whether `path` has a `..` component (its resolved form cannot be compared by prefix).
fn has_parent_dir(path: &Path) -> bool {
    path.components().any(|c| c == Component::ParentDir)
}

/// Refuses an output `out` (given by `flag`) that resolves to one of `inputs` (`(flag, path)`:
/// files, or folders whose files the command reads): the same path, the same file (device and
/// inode: a hard link), or something that already exists inside an input folder.
fn refuse_inputs(flag: &str, out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let out_res = resolve(out);
    let out_meta = std::fs::metadata(&out_res).ok();
    for &(in_flag, input) in inputs {
        let Ok(in_meta) = std::fs::metadata(input) else {
            continue;
        };
        let in_res = resolve(input);
        let same_file = out_meta
            .as_ref()
            .is_some_and(|m| (m.dev(), m.ino()) == (in_meta.dev(), in_meta.ino()));
        if out_res == in_res || same_file {
            bail!(
                "{flag} {} is the {in_flag} input ({}); writing it would destroy the input: \
                 choose another {flag}",
                out.display(),
                input.display()
            );
        }
        if in_meta.is_dir() {
            if out_meta.is_some() && out_res.starts_with(&in_res) && !has_parent_dir(&out_res) {
                bail!(
                    "{flag} {} already exists inside the {in_flag} folder {}, an input of this \
                     command; write the output elsewhere",
                    out.display(),
                    input.display()
                );
            }
            if let Some(m) = out_meta.as_ref().filter(|m| m.is_file() && m.nlink() > 1) {
                if let Some(link) = find_hard_link(&in_res, m, 3) {
                    bail!(
                        "{flag} {} is a hard link of {}, an input of this command; \
                         choose another {flag}",
                        out.display(),
                        link.display()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Checks the folder that will hold output `out` (given by `flag`): it, or the nearest
/// existing ancestor it will be created in, must be a writable folder.
fn check_writable(flag: &str, folder: &Path) -> Result<()> {
    let Some(existing) = existing_ancestor(folder) else {
        bail!("{flag}: cannot resolve {}", folder.display());
    };
    if !existing.is_dir() {
        bail!(
            "{flag}: {} is not a folder, so {} cannot be created",
            existing.display(),
            folder.display()
        );
    }
    writable(&existing).with_context(|| {
        format!(
            "{flag}: cannot write in {}{}",
            existing.display(),
            if std::path::absolute(folder).is_ok_and(|f| f == existing) {
                String::new()
            } else {
                format!(" (to create {})", folder.display())
            }
        )
    })
}

/// Checks an output file before the work that produces it: not one of `inputs`
/// ([`refuse_inputs`]), a regular file if it exists (a symlink is written through, to an
/// existing target), and a writable folder to hold it.
pub fn check_output_file(flag: &str, out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let target = output_target(out).with_context(|| flag.to_string())?;
    refuse_inputs(flag, out, inputs)?;
    check_writable(flag, parent_dir(&target))
}

/// Checks an output folder before the work that fills it: a folder if it exists, not an input
/// and not inside an input folder, no input file in it under one of the names `writes` (the
/// files the command writes there), and writable (or creatable).
pub fn check_output_dir(
    flag: &str,
    dir: &Path,
    writes: &[&str],
    inputs: &[(&str, &Path)],
) -> Result<()> {
    if let Ok(m) = std::fs::metadata(dir) {
        if !m.is_dir() {
            bail!(
                "{flag} {} is {}, not a folder; give a folder path",
                dir.display(),
                kind_of(&m)
            );
        }
    }
    refuse_inputs(flag, dir, inputs)?;
    for name in writes {
        refuse_inputs(flag, &dir.join(name), inputs)?;
    }
    check_writable(flag, dir)
}

/// Reads the input file `path` whole, refusing what is not a regular file (a FIFO would block
/// and a device never end) and a file larger than the free memory. The caller names `path`.
pub fn read_input(path: &Path) -> std::io::Result<Vec<u8>> {
    let m = std::fs::metadata(path)?;
    if !m.is_file() {
        return Err(std::io::Error::other(format!(
            "it is {}, not a regular file",
            kind_of(&m)
        )));
    }
    crate::limits::check_free(m.len() as f64, "the file", "", "free some memory")
        .map_err(std::io::Error::other)?;
    std::fs::read(path)
}

/// [`read_input`] as UTF-8 text; `path` is named in errors.
pub fn read_input_text(path: &Path) -> Result<String> {
    let bytes = read_input(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", path.display()))
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
    if !path.exists() {
        bail!(
            "cannot read {} (is {} {what}?): no such file",
            path.display(),
            dir.display()
        );
    }
    let text = read_input_text(&path)?;
    parse_format_json(&path, &text, format)
}

/// Parses `text`, the JSON file `path` whose `format` field must be `format`, into `T`; every
/// error names the file.
pub fn parse_format_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    format: &str,
) -> Result<T> {
    let v: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{}: not JSON", path.display()))?;
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

    #[test]
    fn symlinks_are_written_through_and_special_files_refused() -> Result<()> {
        let d = tempfile::tempdir()?;
        let target = d.path().join("target.json");
        std::fs::write(&target, "old")?;
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link)?;
        write_atomic(&link, b"new")?;
        assert!(std::fs::symlink_metadata(&link)?.file_type().is_symlink());
        assert_eq!(std::fs::read(&target)?, b"new");
        // a dangling link is refused
        let dangling = d.path().join("dangling.json");
        std::os::unix::fs::symlink(d.path().join("missing"), &dangling)?;
        let e = format!("{:#}", write_atomic(&dangling, b"x").unwrap_err());
        assert!(e.contains("missing file"), "{e}");
        // a FIFO and a folder are refused, and stay
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()?
            .success());
        let e = format!("{:#}", write_atomic(&fifo, b"x").unwrap_err());
        assert!(e.contains("a FIFO, not a regular file"), "{e}");
        assert!(std::fs::symlink_metadata(&fifo)?.file_type().is_fifo());
        let e = format!("{:#}", write_atomic(d.path(), b"x").unwrap_err());
        assert!(e.contains("a folder"), "{e}");
        let e = format!("{:#}", check_output_file("--out", &fifo, &[]).unwrap_err());
        assert!(e.contains("--out") && e.contains("FIFO"), "{e}");
        let e = format!(
            "{:#}",
            check_output_file("--out", &char_device(), &[]).unwrap_err()
        );
        assert!(e.contains("character device"), "{e}");
        Ok(())
    }

    /// A character device of this machine (the first of /dev/null, /dev/zero, /dev/full that
    /// still is one: on a shared machine a careless program running as root can replace one).
    fn char_device() -> PathBuf {
        ["/dev/null", "/dev/zero", "/dev/full"]
            .iter()
            .map(PathBuf::from)
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device()))
            .expect("a character device in /dev")
    }

    #[test]
    fn outputs_that_are_inputs_are_refused() -> Result<()> {
        let d = tempfile::tempdir()?;
        let data = d.path().join("data");
        std::fs::create_dir(&data)?;
        let list = data.join("train1K.txt");
        std::fs::write(&list, "x")?;
        let ck = d.path().join("ck.safetensors");
        std::fs::write(&ck, "x")?;
        let inputs: [(&str, &Path); 2] = [("--data", &data), ("--checkpoint", &ck)];
        let err = |out: &Path| {
            format!(
                "{:#}",
                check_output_file("--out", out, &inputs).unwrap_err()
            )
        };
        assert!(err(&list).contains("inside the --data folder"));
        // a new file beside the data is allowed
        check_output_file("--out", &data.join("new.json"), &inputs)?;
        assert!(err(&ck).contains("is the --checkpoint input"));
        // the same file through another spelling, a symlink and a hard link
        let dotted = d.path().join(".").join("ck.safetensors");
        assert!(err(&dotted).contains("--checkpoint"));
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&ck, &link)?;
        assert!(err(&link).contains("--checkpoint"));
        let hard = d.path().join("hard");
        std::fs::hard_link(&ck, &hard)?;
        assert!(err(&hard).contains("--checkpoint"));
        let hard_list = d.path().join("hard_list");
        std::fs::hard_link(&list, &hard_list)?;
        assert!(err(&hard_list).contains("hard link"), "{}", err(&hard_list));
        // elsewhere is fine, also in folders still to be created
        check_output_file("--out", &d.path().join("out.blob"), &inputs)?;
        check_output_file("--out", &d.path().join("a/b/out.blob"), &inputs)?;
        // folders: the data folder itself, a file path, an input under a written name
        let e = format!(
            "{:#}",
            check_output_dir("--out", &data, &[], &inputs).unwrap_err()
        );
        assert!(e.contains("--data"), "{e}");
        let e = format!(
            "{:#}",
            check_output_dir("--out", &ck, &[], &inputs).unwrap_err()
        );
        assert!(e.contains("not a folder"), "{e}");
        let arch = d.path().join("run").join("state.json");
        std::fs::create_dir(d.path().join("run"))?;
        std::fs::write(&arch, "x")?;
        let e = format!(
            "{:#}",
            check_output_dir(
                "--out",
                &d.path().join("run"),
                &["state.json"],
                &[("--arch", &arch)]
            )
            .unwrap_err()
        );
        assert!(e.contains("--arch"), "{e}");
        check_output_dir("--out", &d.path().join("run2"), &["state.json"], &inputs)?;
        assert!(!d.path().join("run2").exists(), "checking creates nothing");
        Ok(())
    }

    #[test]
    fn inputs_must_be_regular_files() -> Result<()> {
        let d = tempfile::tempdir()?;
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()?
            .success());
        // refused at once instead of blocking on the FIFO or reading a device forever
        let e = read_input(&fifo).unwrap_err().to_string();
        assert!(e.contains("a FIFO, not a regular file"), "{e}");
        let e = read_input(&char_device()).unwrap_err().to_string();
        assert!(e.contains("character device"), "{e}");
        let e = format!("{:#}", read_input_text(d.path()).unwrap_err());
        assert!(e.contains("a folder"), "{e}");
        let f = d.path().join("f.json");
        std::fs::write(&f, [0xFF, 0xFE])?;
        let e = format!("{:#}", read_input_text(&f).unwrap_err());
        assert!(e.contains("f.json: not UTF-8"), "{e}");
        Ok(())
    }

    #[test]
    fn unwritable_folders_are_found_before_work() -> Result<()> {
        let d = tempfile::tempdir()?;
        let file = d.path().join("file");
        std::fs::write(&file, "x")?;
        let e = format!(
            "{:#}",
            check_output_file("--out", &file.join("x.json"), &[]).unwrap_err()
        );
        assert!(e.contains("not a folder"), "{e}");
        let e = format!(
            "{:#}",
            check_output_file("--out", Path::new("/proc/x.json"), &[]).unwrap_err()
        );
        assert!(e.contains("--out: cannot write in /proc"), "{e}");
        Ok(())
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed() -> Result<()> {
        let d = tempfile::tempdir()?;
        // pid 2^31 - 1 cannot be alive (above Linux's pid_max)
        let stale = d.path().join(".out.json.lightsnn-2147483647.tmp");
        let ours = d
            .path()
            .join(format!(".x.lightsnn-{}.tmp", std::process::id()));
        let foreign = d.path().join(".notes.1234.tmp");
        for p in [&stale, &ours, &foreign] {
            std::fs::write(p, "x")?;
        }
        // a folder of a killed `--dump-codes` write, and a foreign folder of the same shape
        let stale_dir = d.path().join(".codes.lightsnn-2147483647.tmp");
        std::fs::create_dir_all(stale_dir.join("r0"))?;
        std::fs::write(stale_dir.join("r0/kernel.npy"), "x")?;
        let foreign_dir = d.path().join(".codes.2147483647.tmp");
        std::fs::create_dir(&foreign_dir)?;
        write_atomic(&d.path().join("other.json"), b"{}")?;
        assert!(!stale.exists(), "stale temp removed");
        assert!(!stale_dir.exists(), "stale temp folder removed");
        assert!(foreign_dir.exists(), "foreign folder kept");
        assert_eq!(
            temp_path(Path::new("a/codes"))?,
            Path::new("a").join(format!(".codes.lightsnn-{}.tmp", std::process::id()))
        );
        assert!(
            ours.exists() && foreign.exists(),
            "live and foreign files kept"
        );
        assert_eq!(temp_pid(OsStr::new(".a.b.lightsnn-17.tmp")), Some(17));
        assert_eq!(temp_pid(OsStr::new(".a.17.tmp")), None);
        Ok(())
    }
}
