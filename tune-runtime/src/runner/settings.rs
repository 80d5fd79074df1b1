//! The run's options, as [`crate::Tuner::run`] validated them, in the untyped form the
//! driver uses (metrics by column, configs as JSON).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{CheckpointMeta, CheckpointStore};
use crate::journal::JournalStore;
use crate::scheduler::Pausing;
use crate::trial::Mode;

/// What happens to trials that ended in ERROR when an experiment is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Errored {
    /// They stay ERROR.
    #[default]
    Keep,
    /// They continue from their latest checkpoint.
    Resume,
    /// They start again from scratch.
    Restart,
}

/// The fault-tolerance options of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultSettings {
    pub max_failures: u32,
    /// `Some` when the experiment is resumed from its journal (if it has one).
    pub resume: Option<Errored>,
    pub handle_sigint: bool,
    /// A step that runs longer fails its trial (an isolated trial's process is killed).
    pub step_timeout: Option<Duration>,
    /// After Ctrl-C (or SIGTERM), how long running steps get to return before the run
    /// gives up on them and stops anyway.
    pub interrupt_grace: Duration,
}

/// A metric the driver reads from result rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Column {
    pub index: usize,
    pub name: &'static str,
    pub mode: Mode,
}

/// Everything the driver needs to know about a run.
pub(crate) struct Settings {
    pub num_samples: usize,
    pub overrides: Option<serde_json::Map<String, serde_json::Value>>,
    pub time_budget: Option<Duration>,
    pub max_concurrent: usize,
    pub total_cpus: f64,
    pub gpu_ids: Vec<usize>,
    pub custom_totals: BTreeMap<String, f64>,
    pub reuse_actors: bool,
    /// Each trial's code runs in a rayon pool of its CPU grant (`Tuner::cpu_budgets`).
    pub cpu_budgets: bool,
    /// Checkpoints are synced to the disk before they count (`Tuner::durability`).
    pub durability: crate::checkpoint::Durability,
    pub checkpoint_freq: u64,
    pub checkpoint_at_end: bool,
    pub keep_checkpoints_num: Option<usize>,
    pub checkpoint_score: Option<Column>,
    pub restore: Option<(PathBuf, CheckpointMeta)>,
    pub experiment_dir: PathBuf,
    pub name: String,
    pub seed: u64,
    pub verbosity: u8,
    pub pausing: Pausing,
    /// The experiment's main metric (status table, summary).
    pub metric: Option<Column>,
    pub file_logging: bool,
    pub status_interval: Duration,
    pub journal_store: Option<Box<dyn JournalStore>>,
    pub checkpoint_store: Arc<dyn CheckpointStore>,
    pub faults: FaultSettings,
    /// A journal shared with other processes (the experiment spans machines), and the
    /// lease this process keeps on it.
    pub shared: Option<Box<dyn crate::journal::shared::SharedJournal>>,
    pub lease: Duration,
    /// A fingerprint of the search space, recorded in the experiment's first record.
    pub space: String,
    /// The user's callbacks, TensorBoard files, the status table's columns.
    pub results: crate::callback::ResultOptions,
    /// The data every trial's context shares (`Tuner::with_data`).
    pub data: crate::trainable::SharedData,
    /// `Tuner::capture_output` (`None`: the default).
    pub capture: Option<bool>,
    /// Trials run in child processes (`Tuner::isolate_trials`).
    pub isolate: bool,
}
