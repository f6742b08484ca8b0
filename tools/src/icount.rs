//! Exact instruction counts with the `tools/qemu-icount` TCG plugin.

use crate::elf::Symbols;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Source of the plugin, relative to this crate.
pub const PLUGIN_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/qemu-icount/icount.c");

/// Builds the plugin with `gcc -O2 -shared -fPIC` (or `$CC`) into `out`.
pub fn build_plugin(out: &Path) -> Result<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-shared", "-fPIC", "-o"])
        .arg(out)
        .arg(PLUGIN_SOURCE)
        .status()
        .with_context(|| format!("running {cc} to build the QEMU plugin"))?;
    if !status.success() {
        bail!("{cc} failed to build {PLUGIN_SOURCE}");
    }
    Ok(out.to_path_buf())
}

/// The plugin's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Counts {
    /// All executed instructions.
    pub total: u64,
    /// Instructions executed with the PC in `[lo, hi)`.
    pub range: u64,
    /// Instructions executed inside closed `begin`..`end` windows (callees included).
    pub window: u64,
    /// Number of closed windows.
    pub windows: u64,
}

/// Parses the plugin's `icount total=.. range=.. window=.. windows=..` line from QEMU's log.
pub fn parse(log: &str) -> Result<Counts> {
    let line = log
        .lines()
        .find(|l| l.starts_with("icount "))
        .with_context(|| format!("no icount line in the plugin log {log:?}"))?;
    let mut c = Counts::default();
    for word in line.split_whitespace().skip(1) {
        let (k, v) = word.split_once('=').context("malformed icount line")?;
        let v: u64 = v.parse()?;
        match k {
            "total" => c.total = v,
            "range" => c.range = v,
            "window" => c.window = v,
            "windows" => c.windows = v,
            _ => bail!("unknown icount field {k}"),
        }
    }
    Ok(c)
}

/// Instructions executed per function over a whole run, largest first, from the plugin's
/// `tb` lines (run with `profile=1`). Addresses outside every function symbol count as `?`.
pub fn profile(log: &str, symbols: &Symbols) -> Result<Vec<(String, u64)>> {
    let mut per: HashMap<&str, u64> = HashMap::new();
    for line in log.lines().filter(|l| l.starts_with("tb ")) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [_, addr, n, execs] = w[..] else {
            bail!("malformed plugin line {line:?}")
        };
        let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16)?;
        let insns = n.parse::<u64>()? * execs.parse::<u64>()?;
        *per.entry(symbols.lookup(addr).unwrap_or("?")).or_default() += insns;
    }
    let mut v: Vec<_> = per.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(v)
}

/// Plugin argument string `path,lo=..,hi=..,begin=..,end=..[,profile=1]` for
/// [`crate::qemu::Qemu::plugin`].
pub fn plugin_arg(
    plugin: &Path,
    range: Option<(u64, u64)>,
    window: Option<(u64, u64)>,
    profile: bool,
) -> String {
    let mut s = plugin.display().to_string();
    if profile {
        s += ",profile=1";
    }
    if let Some((lo, hi)) = range {
        s += &format!(",lo={lo:#x},hi={hi:#x}");
    }
    if let Some((begin, end)) = window {
        s += &format!(",begin={begin:#x},end={end:#x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plugin_output() {
        let log = "icount total=10 range=2 window=7 windows=1\ntb 0x100 3 2\ntb 0x200 4 1\n";
        assert_eq!(
            parse(log).unwrap(),
            Counts {
                total: 10,
                range: 2,
                window: 7,
                windows: 1
            }
        );
        assert!(parse("nothing").is_err());
        assert_eq!(
            plugin_arg(Path::new("/p.so"), Some((1, 2)), Some((16, 32)), true),
            "/p.so,profile=1,lo=0x1,hi=0x2,begin=0x10,end=0x20"
        );
    }
}
