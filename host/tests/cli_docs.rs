//! `docs/cli.md` cannot drift from the binary: its generated blocks must be exactly the `--help`
//! text of every `lightsnn` command.
//!
//! The commands are found by walking the `Commands:` lists of `lightsnn --help` and its
//! subcommands' help. Each command has one block in `docs/cli.md`, between hand-written prose:
//!
//! ````text
//! <!-- generated: lightsnn search --help -->
//! ```text
//! ...the help text, trailing spaces trimmed...
//! ```
//! <!-- end generated -->
//! ````
//!
//! `LIGHTSNN_BLESS=1 cargo test --release -p lightsnn --test cli_docs` rewrites the blocks in
//! place (the prose around them is kept), drops the blocks of commands that no longer exist and
//! appends a section for each new command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const BEGIN: &str = "<!-- generated: ";
const BEGIN_END: &str = " --help -->";
const END: &str = "<!-- end generated -->";
const REGENERATE: &str = "LIGHTSNN_BLESS=1 cargo test --release -p lightsnn --test cli_docs";

fn cli_md() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md")
}

/// `lightsnn <path> --help`, each line's trailing whitespace trimmed.
fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lightsnn"))
        .args(path)
        .arg("--help")
        .output()
        .expect("run lightsnn");
    assert!(
        out.status.success(),
        "lightsnn {} --help failed: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("help is UTF-8");
    text.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

/// The subcommand names listed under `Commands:` in a help text (without clap's `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// Every command path (`[]` for `lightsnn` itself, `["bench", "search"]`, ...) with its help
/// text, parents before children.
fn all_helps() -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let text = help(&path);
        for sub in subcommands(&text).into_iter().rev() {
            let mut child = path.clone();
            child.push(sub);
            todo.push(child);
        }
        out.push((path, text));
    }
    out
}

/// The name of a command in the markers: `lightsnn`, `lightsnn bench search`.
fn command_name(path: &[String]) -> String {
    std::iter::once("lightsnn".to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn block(name: &str, help: &str) -> String {
    format!("{BEGIN}{name}{BEGIN_END}\n```text\n{help}```\n{END}\n")
}

/// A piece of `docs/cli.md`: prose, or a generated block of one command.
#[derive(Debug)]
enum Piece {
    Prose(String),
    Block { name: String, text: String },
}

/// Splits `docs/cli.md` into prose and generated blocks.
fn parse(doc: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut prose = String::new();
    let mut lines = doc.split_inclusive('\n');
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim_end()
            .strip_prefix(BEGIN)
            .and_then(|l| l.strip_suffix(BEGIN_END))
        else {
            prose.push_str(line);
            continue;
        };
        pieces.push(Piece::Prose(std::mem::take(&mut prose)));
        let mut text = line.to_string();
        loop {
            let Some(l) = lines.next() else {
                return Err(format!("the block of `{name}` has no `{END}` line"));
            };
            text.push_str(l);
            if l.trim_end() == END {
                break;
            }
        }
        pieces.push(Piece::Block {
            name: name.to_string(),
            text,
        });
    }
    pieces.push(Piece::Prose(prose));
    Ok(pieces)
}

#[test]
fn cli_md_is_the_help_of_every_command() {
    let path = cli_md();
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let pieces = parse(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: BTreeMap<String, String> = all_helps()
        .iter()
        .map(|(p, h)| (command_name(p), block(&command_name(p), h)))
        .collect();
    assert!(
        expected.contains_key("lightsnn bench search"),
        "{expected:?}"
    );

    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    let mut regenerated = String::new();
    for piece in &pieces {
        match piece {
            Piece::Prose(p) => regenerated.push_str(p),
            Piece::Block { name, text } => {
                *seen.entry(name.clone()).or_insert(0) += 1;
                match expected.get(name) {
                    None => problems.push(format!("`{name}` is not a command (any more)")),
                    Some(_) if seen[name] > 1 => {
                        problems.push(format!("`{name}` has more than one block"))
                    }
                    Some(want) => {
                        if text != want {
                            problems.push(format!("`{name} --help` has changed"));
                        }
                        regenerated.push_str(want);
                    }
                }
            }
        }
    }
    for (name, want) in &expected {
        if !seen.contains_key(name) {
            problems.push(format!("`{name}` has no block"));
            regenerated.push_str(&format!("\n## `{name}`\n\n{want}"));
        }
    }
    if problems.is_empty() {
        return;
    }
    if std::env::var_os("LIGHTSNN_BLESS").is_some() {
        lightsnn::fsutil::write_atomic(&path, regenerated.as_bytes()).expect("write docs/cli.md");
        eprintln!(
            "rewrote {}: {}; review the prose around the blocks",
            path.display(),
            problems.join("; ")
        );
        return;
    }
    panic!(
        "{} is out of date with the binary's --help:\n  - {}\nregenerate it with\n  {REGENERATE}\n\
         and review the prose around the changed blocks",
        path.display(),
        problems.join("\n  - ")
    );
}

#[test]
fn subcommands_are_read_from_the_commands_list() {
    let text = "About\n\nUsage: x <COMMAND>\n\nCommands:\n  search  Search a cell\n  bench   \
                Benchmarks\n          (continued)\n  help    Print this message\n\nOptions:\n  \
                -h, --help  Print help\n";
    assert_eq!(subcommands(text), ["search", "bench"]);
    assert!(subcommands("Usage: x [OPTIONS]\n\nOptions:\n  --a  A\n").is_empty());
}

#[test]
fn blocks_are_split_from_the_prose() {
    let doc = format!(
        "# T\n\ntext\n{}more\n",
        block("lightsnn score", "Usage: x\n")
    );
    let pieces = parse(&doc).unwrap();
    assert_eq!(pieces.len(), 3);
    assert!(matches!(&pieces[0], Piece::Prose(p) if p == "# T\n\ntext\n"));
    assert!(matches!(&pieces[1], Piece::Block { name, .. } if name == "lightsnn score"));
    assert!(matches!(&pieces[2], Piece::Prose(p) if p == "more\n"));
    let open = format!("{BEGIN}lightsnn score{BEGIN_END}\n```text\n");
    assert!(parse(&open)
        .unwrap_err()
        .contains("no `<!-- end generated -->`"));
}
