//! The `lightsnn` command-line tool: the commands of `cli/`, on the `lightsnn` library.

mod cli;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if cli::wants_serial_elementwise(&args) && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Before any thread exists (see `wants_serial_elementwise`).
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if let Err(e) = cli::run() {
        eprintln!("error: {}", cli::error_text(&e));
        std::process::exit(cli::exit_code(&e));
    }
}
