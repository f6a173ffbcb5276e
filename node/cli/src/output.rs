//! Human output by default, JSON with `--json`.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// Prints `value` as JSON, or `human()` otherwise.
pub fn print(json: bool, value: &serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON values serialize")
        );
    } else {
        println!("{}", human());
    }
}

/// A spinner on stderr for long work (hidden with `--json` or when stderr
/// is not a terminal).
pub fn spinner(json: bool, message: &str) -> ProgressBar {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
