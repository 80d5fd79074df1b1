//! Runnable examples: `cargo run --release -p tune-examples --example NAME`. This library
//! only holds what the examples share.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh results directory for one run of an example:
/// `<temp dir>/tune_examples/<example>/<milliseconds since the epoch>`, so that running an
/// example again never collides with an earlier experiment.
pub fn results_dir(example: &str) -> PathBuf {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    std::env::temp_dir().join("tune_examples").join(example).join(stamp.to_string())
}
