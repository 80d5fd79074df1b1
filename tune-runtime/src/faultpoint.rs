//! Fault injection for crash tests: `TUNE_FAULT_INJECT=<point>:<n>` makes the process kill
//! itself with SIGKILL at the `n`-th event of that kind (counted from 1), in the middle of
//! the work (half a journal line written, a checkpoint's files written but not published).
//!
//! Points: `journal` (a journal append), `checkpoint` (a checkpoint write), `result` (a
//! result written to the per-trial files, before the journal sees it), `pause_checkpoint`
//! (a trial's pause checkpoint is on disk, the driver has not journaled it yet), `paused`
//! (a trial paused to disk, its checkpoint and PAUSED status journaled). One point does not
//! kill: `result_full:<n>` makes the `n`-th and every later write of a result to the
//! per-trial files fail as on a full disk (the journal still works). Unset, each check
//! costs one load of a once-initialised static.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable read once per process.
pub(crate) const ENV: &str = "TUNE_FAULT_INJECT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    Journal,
    Checkpoint,
    Result,
    ResultFull,
    PauseCheckpoint,
    Paused,
}

static TARGET: OnceLock<Option<(Point, u64)>> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

fn target() -> Option<(Point, u64)> {
    *TARGET.get_or_init(|| {
        let value = std::env::var(ENV).ok()?;
        let (point, n) = value.split_once(':')?;
        let point = match point {
            "journal" => Point::Journal,
            "checkpoint" => Point::Checkpoint,
            "result" => Point::Result,
            "result_full" => Point::ResultFull,
            "pause_checkpoint" => Point::PauseCheckpoint,
            "paused" => Point::Paused,
            _ => return None,
        };
        Some((point, n.parse().ok()?))
    })
}

/// Whether the process must die now, at an event of kind `point`.
pub(crate) fn hit(point: Point) -> bool {
    match target() {
        Some((p, n)) if p == point => COUNT.fetch_add(1, Ordering::Relaxed) + 1 == n,
        _ => false,
    }
}

/// Whether the `n`-th event of kind `point` has come (this one or an earlier one).
pub(crate) fn reached(point: Point) -> bool {
    match target() {
        Some((p, n)) if p == point => COUNT.fetch_add(1, Ordering::Relaxed) + 1 >= n,
        _ => false,
    }
}

/// Kills this process with SIGKILL (no destructor, no flush), like an OOM kill or `kill -9`.
pub(crate) fn die() -> ! {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
    std::process::abort()
}
