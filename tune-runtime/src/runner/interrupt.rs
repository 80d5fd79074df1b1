//! Ctrl-C: the first SIGINT during a run asks the driver to stop gracefully (checkpoint,
//! flush, print how to resume); the second exits at once (the journal is still readable
//! and the experiment resumable). Outside a run, SIGINT exits as it would without us.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// SIGINTs received since the handler was installed.
static SIGNALS: AtomicU64 = AtomicU64::new(0);
/// Runs in progress that watch for SIGINT.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// `SIGNALS` when the latest run started: the second signal after it exits.
static BASE: AtomicU64 = AtomicU64::new(0);
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// How often a waiting driver looks at the Ctrl-C flag.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Exit status of a process ended by a second Ctrl-C (128 + SIGINT, as a shell reports).
const EXIT_INTERRUPTED: i32 = 130;

fn on_signal() {
    let n = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
    if ACTIVE.load(Ordering::SeqCst) == 0 || n >= BASE.load(Ordering::SeqCst) + 2 {
        // Trials' output captured so far goes to its files, and the terminal gets its
        // descriptors back, before the process ends.
        super::capture::finish_now();
        eprintln!("\nInterrupted again: exiting now. The experiment can still be resumed.");
        std::process::exit(EXIT_INTERRUPTED);
    }
    super::capture::print_err(
        "\nInterrupted: stopping after the current steps and saving checkpoints (press \
         Ctrl-C again to exit at once).",
    );
}

/// Watches SIGINT while a run is in progress; dropped when the run ends.
#[derive(Debug)]
pub(crate) struct Watch {
    base: u64,
    enabled: bool,
}

impl Watch {
    /// Starts watching (installing the process-wide handler once). When another handler
    /// is already installed (the application's own), nothing is watched.
    pub fn start(enabled: bool) -> Self {
        let enabled = enabled && *INSTALLED.get_or_init(|| ctrlc::set_handler(on_signal).is_ok());
        let base = SIGNALS.load(Ordering::SeqCst);
        if enabled {
            BASE.store(base, Ordering::SeqCst);
            ACTIVE.fetch_add(1, Ordering::SeqCst);
        }
        Self { base, enabled }
    }

    /// Whether a SIGINT arrived since this run started.
    pub fn interrupted(&self) -> bool {
        self.enabled && SIGNALS.load(Ordering::Relaxed) > self.base
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.enabled {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
