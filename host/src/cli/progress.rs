//! The terminal's progress bars: [`Bar`] shows what the library reports through
//! [`lightsnn::progress::Progress`].

use indicatif::{ProgressBar, ProgressStyle};
use lightsnn::progress::Progress;

/// A progress bar on the terminal: each phase restarts it (position, elapsed time, ETA) with
/// its length and shows its description as the bar's message.
pub struct Bar(pub ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64, what: &str) {
        self.0.reset();
        self.0.set_length(total);
        self.0.set_message(what.to_string());
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn note(&self, line: &str) {
        self.0.println(line);
    }
    fn set_message(&self, what: &str) {
        self.0.set_message(what.to_string());
    }
    fn set_prefix(&self, label: &str) {
        self.0.set_prefix(label.to_string());
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A bar drawn with `template` (indicatif's template syntax).
fn styled(template: &str) -> Bar {
    let pb = ProgressBar::new(0);
    pb.set_style(ProgressStyle::with_template(template).expect("valid template"));
    Bar(pb)
}

/// The progress bar of a search (scorings done, ETA).
pub fn scorings_bar() -> Bar {
    styled("{spinner} {prefix} [{elapsed_precise}] {bar:30} {pos}/{len} scorings {msg} (eta {eta})")
}

/// The progress bar of training: one phase per epoch and per validation, batches done.
pub fn batches_bar() -> Bar {
    styled("{spinner} {msg} [{elapsed_precise}] {bar:30} {pos}/{len} batches  (eta {eta})")
}

/// The progress bar of the benchmark commands (steps, what they are, ETA).
pub fn steps_bar() -> Bar {
    styled("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})")
}
