//! The child process of the crash test: opens the store at the given path,
//! then commits the deterministic blocks that follow its latest version,
//! printing `<version> <root hex>` after each commit returns, until killed.
//!
//! `stele-state-crash <path> [<last version>]`

#[path = "../../tests/support/crash_blocks.rs"]
mod crash_blocks;

use std::io::Write;

use stele_state::{StateConfig, StateDb};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: stele-state-crash <path> [<last version>]");
    let last: u64 = args
        .next()
        .map(|text| text.parse().expect("a version"))
        .unwrap_or(u64::MAX);
    let mut config = StateConfig::new(path);
    config.retention = stele_state::Retention::Window(20);
    // Small commit log segments, so that kills also land while segments
    // roll, flushes are asked for and flushed segments go.
    config.log_segment_bytes = 256 * 1024;
    let state = StateDb::open(config).expect("the store opens");
    let mut stdout = std::io::stdout().lock();
    let mut version = state.latest_version().unwrap_or(0) + 1;
    while version <= last {
        let root = state
            .commit(version, &crash_blocks::block(version))
            .expect("commit");
        let hex: String = root.iter().map(|byte| format!("{byte:02x}")).collect();
        writeln!(stdout, "{version} {hex}").expect("stdout");
        stdout.flush().expect("stdout");
        version += 1;
    }
}
