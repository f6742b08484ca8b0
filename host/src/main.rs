//! The `lightsnn` command-line tool.

fn main() {
    if let Err(e) = lightsnn::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
