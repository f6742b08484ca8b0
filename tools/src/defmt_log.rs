//! Decoding the firmware's defmt frames with the ELF's defmt table.

use anyhow::{bail, Context, Result};
use defmt_decoder::{DecodeError, Table};

/// One decoded log line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`; `None` for `defmt::println!`.
    pub level: Option<String>,
    /// The formatted message.
    pub text: String,
}

/// Decodes all complete defmt frames in `bytes` (the raw transport stream, e.g. QEMU's
/// semihosting stdout) using the defmt table in `elf`.
///
/// A malformed frame is an error; trailing bytes of an incomplete frame are ignored (a run that
/// was cut off mid-frame still yields what came before).
pub fn decode(elf: &[u8], bytes: &[u8]) -> Result<Vec<LogLine>> {
    let table = Table::parse(elf)
        .context("reading the defmt table from the ELF")?
        .context("the ELF has no defmt table (was it linked with -Tdefmt.x?)")?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(bytes);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push(LogLine {
                level: frame.level().map(|l| l.as_str().to_string()),
                text: frame.display_message().to_string(),
            }),
            Err(DecodeError::UnexpectedEof) => break,
            Err(DecodeError::Malformed) => {
                bail!(
                    "malformed defmt frame after {} decoded lines (does the ELF match the output?)",
                    lines.len()
                )
            }
        }
    }
    Ok(lines)
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.level {
            Some(level) => write!(f, "{:<5} {}", level.to_uppercase(), self.text),
            None => f.write_str(&self.text),
        }
    }
}
