//! Running an ELF under `qemu-system-arm` with semihosting.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How to run QEMU.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// The emulator binary (default `qemu-system-arm`).
    pub binary: PathBuf,
    /// Board (default `mps2-an386`; `mps2-an500` with `cortex-m7` runs the same ELF).
    pub machine: String,
    /// CPU (default `cortex-m4`).
    pub cpu: String,
    /// Kill the emulator after this long (a hung firmware fails instead of blocking).
    pub timeout: Duration,
    /// A TCG plugin and its arguments (`path,arg=value,...`); its output goes to a log file.
    pub plugin: Option<String>,
}

impl Default for Qemu {
    fn default() -> Self {
        Qemu {
            binary: PathBuf::from("qemu-system-arm"),
            machine: "mps2-an386".into(),
            cpu: "cortex-m4".into(),
            timeout: Duration::from_secs(120),
            plugin: None,
        }
    }
}

/// What a QEMU run produced.
#[derive(Debug)]
pub struct QemuRun {
    /// Exit status: 0 for `EXIT_SUCCESS`, 1 for `EXIT_FAILURE` (semihosting `SYS_EXIT`).
    pub status: i32,
    /// Semihosting stdout: the raw defmt stream.
    pub stdout: Vec<u8>,
    /// QEMU's own stderr.
    pub stderr: String,
    /// The plugin's output (QEMU's `-d plugin` log), empty without a plugin.
    pub plugin_log: String,
}

impl Qemu {
    /// Whether the emulator binary runs (`--version`); tests that need it fail, never skip,
    /// with [`Qemu::MISSING`] where it does not.
    pub fn installed(&self) -> bool {
        Command::new(&self.binary)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// What to do where [`Qemu::installed`] is false.
    pub const MISSING: &'static str =
        "qemu-system-arm is required for the firmware tests: apt-get install -y qemu-system-arm";

    /// Runs `elf` to completion (or to the timeout, which is an error).
    pub fn run(&self, elf: &Path) -> Result<QemuRun> {
        let log = tempfile_path("qemu-plugin", "log");
        let mut cmd = Command::new(&self.binary);
        cmd.args(["-machine", &self.machine, "-cpu", &self.cpu, "-nographic"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(["-icount", "shift=0", "-kernel"])
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(plugin) = &self.plugin {
            cmd.args(["-plugin", plugin, "-d", "plugin", "-D"])
                .arg(&log);
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "starting {} (apt-get install qemu-system-arm)",
                self.binary.display()
            )
        })?;
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            out.read_to_end(&mut v).map(|_| v)
        });
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).map(|_| s)
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if start.elapsed() > self.timeout {
                child.kill().ok();
                child.wait().ok();
                bail!(
                    "QEMU did not exit within {:?} (firmware hung?)",
                    self.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stdout = out_thread.join().unwrap()?;
        let stderr = err_thread.join().unwrap()?;
        let plugin_log = std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::remove_file(&log).ok();
        let Some(status) = status.code() else {
            bail!("QEMU was killed by a signal; stderr: {stderr}");
        };
        Ok(QemuRun {
            status,
            stdout,
            stderr,
            plugin_log,
        })
    }
}

/// A fresh path in the temporary directory.
pub(crate) fn tempfile_path(stem: &str, ext: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "lightsnn-{stem}-{}-{}.{ext}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
