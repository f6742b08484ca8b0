//! Function address ranges from an ELF's symbol table (the `nm -S` information).

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSymbol, SymbolKind};

/// Address range `[lo, hi)` of a function, with the Thumb bit cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub lo: u64,
    /// One past the last byte.
    pub hi: u64,
}

/// Finds the function named `name`: an exact (mangled) symbol name, or else a unique symbol
/// whose demangled-looking name contains `name` (e.g. `lightsnn_infer` or `device::infer`).
pub fn function_range(elf: &[u8], name: &str) -> Result<Range> {
    let file = object::File::parse(elf).context("parsing the ELF")?;
    let funcs: Vec<_> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.address(), s.size())))
        .collect();
    let hits: Vec<_> = match funcs.iter().find(|(n, _, _)| n == name) {
        Some(hit) => vec![hit],
        None => {
            let words: Vec<&str> = name.split("::").collect();
            funcs
                .iter()
                .filter(|(n, _, _)| {
                    let mut rest = n.as_str();
                    words.iter().all(|w| match rest.find(w) {
                        Some(i) => {
                            rest = &rest[i + w.len()..];
                            true
                        }
                        None => false,
                    })
                })
                .collect()
        }
    };
    match hits.as_slice() {
        [(_, addr, size)] => {
            let lo = addr & !1;
            Ok(Range { lo, hi: lo + size })
        }
        [] => bail!("no function symbol matches {name:?}"),
        many => bail!(
            "{name:?} matches {} functions: {:?}",
            many.len(),
            many.iter().map(|(n, _, _)| n).collect::<Vec<_>>()
        ),
    }
}

/// Function symbols of an ELF, for mapping addresses to (demangled) function names.
#[derive(Debug, Clone)]
pub struct Symbols {
    /// `(lo, hi, name)`, sorted by `lo`.
    funcs: Vec<(u64, u64, String)>,
}

impl Symbols {
    /// Reads the function symbols of `elf` (Thumb bit cleared, names demangled without hashes).
    pub fn new(elf: &[u8]) -> Result<Symbols> {
        let file = object::File::parse(elf).context("parsing the ELF")?;
        let mut funcs: Vec<_> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .filter_map(|s| {
                let lo = s.address() & !1;
                let name = format!("{:#}", rustc_demangle::demangle(s.name().ok()?));
                Some((lo, lo + s.size(), name))
            })
            .collect();
        funcs.sort();
        Ok(Symbols { funcs })
    }

    /// The function containing `addr`.
    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self.funcs.partition_point(|f| f.0 <= addr);
        let (lo, hi, name) = self.funcs.get(i.checked_sub(1)?)?;
        (*lo <= addr && addr < *hi).then_some(name.as_str())
    }
}
