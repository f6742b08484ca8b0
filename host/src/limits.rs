//! What the machine can hold: its free memory, and the one check every command and data loader
//! runs before it allocates something whose size comes from a flag, a checkpoint's metadata or a
//! data file (see docs/cli.md, "Errors and outputs"). The estimates themselves are
//! [`crate::search::Estimate`] (networks: search, scoring, training, evaluation) and the data
//! loaders' own counts; this module only compares a byte count with what is free.

/// Bytes no request may exceed even where the free memory cannot be read (1 PiB): a size this
/// large is a typo or a hostile value, never a configuration.
pub const ABSURD_BYTES: f64 = (1u64 << 50) as f64;

/// A request for more memory than the machine has free.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{what} needs about {}, but only {} is free{}; {hint}",
    format_bytes(*needed),
    free.map_or("1 PiB".to_string(), |f| format_bytes(f as f64)),
    if detail.is_empty() { String::new() } else { format!(" ({detail})") }
)]
pub struct TooLarge {
    /// What needs the memory, e.g. "this configuration" or "framing data/nmnist".
    pub what: String,
    /// Bytes needed.
    pub needed: f64,
    /// Bytes free (`MemAvailable`, lowered to a cgroup limit); `None`: unknown, and the request
    /// is above [`ABSURD_BYTES`].
    pub free: Option<u64>,
    /// The terms of the estimate, in words (may be empty).
    pub detail: String,
    /// What to do about it, e.g. "lower --batch".
    pub hint: String,
}

/// Refuses `needed` bytes when they are above `free` (or, with `free` unknown, above
/// [`ABSURD_BYTES`]). A NaN or infinite `needed` (an overflowed estimate) is refused too.
pub fn check_fits(
    needed: f64,
    free: Option<u64>,
    what: &str,
    detail: impl Into<String>,
    hint: &str,
) -> Result<(), TooLarge> {
    let limit = free.map_or(ABSURD_BYTES, |f| f as f64);
    if needed.is_finite() && needed <= limit {
        return Ok(());
    }
    Err(TooLarge {
        what: what.to_string(),
        needed,
        free,
        detail: detail.into(),
        hint: hint.to_string(),
    })
}

/// [`check_fits`] against the machine's free memory now ([`available_memory`]).
pub fn check_free(
    needed: f64,
    what: &str,
    detail: impl Into<String>,
    hint: &str,
) -> Result<(), TooLarge> {
    check_fits(needed, available_memory(), what, detail, hint)
}

/// Free host memory in bytes: `MemAvailable` of `/proc/meminfo`, lowered to what a cgroup v2
/// memory limit leaves; `None` when neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let avail = meminfo.as_deref().and_then(mem_available);
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let cgroup = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(cur)) => Some(max.saturating_sub(cur)),
        _ => None,
    };
    match (avail, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut it = line.split_whitespace().skip(1);
    let kb: u64 = it.next()?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// `b` bytes in binary units.
pub fn format_bytes(b: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if !b.is_finite() {
        return "more bytes than can be counted".to_string();
    }
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else if v >= 1e4 {
        format!("{v:.2e} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The product of `factors` as f64: sizes multiplied without the overflow of `usize`.
pub fn product(factors: &[usize]) -> f64 {
    factors.iter().map(|&f| f as f64).product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_units() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23548192 kB\n";
        assert_eq!(mem_available(m), Some(23_548_192 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(
            format_bytes(f64::INFINITY),
            "more bytes than can be counted"
        );
        assert!(
            format_bytes(1e30).ends_with("EiB"),
            "{}",
            format_bytes(1e30)
        );
        assert!(available_memory().is_some(), "Linux exposes MemAvailable");
    }

    #[test]
    fn fits_and_refusals() {
        assert!(check_fits(1000.0, Some(1000), "x", "", "h").is_ok());
        let e = check_fits(
            1001.0,
            Some(1000),
            "training",
            "weights 1 KiB",
            "lower --batch",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "training needs about 1001 B, but only 1000 B is free (weights 1 KiB); lower --batch"
        );
        // unknown free memory: only the absurd is refused
        assert!(check_fits(1e12, None, "x", "", "h").is_ok());
        assert!(check_fits(1e16, None, "x", "", "h").is_err());
        // an overflowed estimate is never accepted
        assert!(check_fits(f64::NAN, Some(u64::MAX), "x", "", "h").is_err());
        assert!(check_fits(f64::INFINITY, None, "x", "", "h").is_err());
        assert_eq!(product(&[usize::MAX, 4]), usize::MAX as f64 * 4.0);
    }
}
