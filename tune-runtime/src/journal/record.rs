//! The records of the journal: one JSON object per line, tagged by `type`.

use serde::{Deserialize, Serialize};

use crate::trial::TrialStatus;

/// Format version written in the journal's first record. Version 3 added the lineage of
/// checkpoints (`rows` on rollbacks, the restored checkpoint on exploits); journals of
/// version 2 are still read.
pub(crate) const JOURNAL_VERSION: u32 = 3;

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Record {
    /// The first record of a run.
    Experiment {
        /// Journal format version.
        version: u32,
        /// Experiment name (the directory's name).
        name: String,
        /// `TrainableSpec::NAME`.
        trainable: String,
        /// Metric names, in the order of result values.
        metrics: Vec<String>,
        /// The experiment's seed.
        seed: u64,
        /// Unix time of the start.
        started: u64,
        /// A fingerprint of the search space (its dimensions), so that a process with
        /// another space cannot join a shared experiment. Absent before version 3.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        space: Option<String>,
    },
    /// A trial was created.
    Trial {
        /// Creation index.
        trial: u32,
        /// Trial id as shown (`00003`).
        id: String,
        /// Trial directory relative to the experiment directory, when files are written.
        dir: Option<String>,
        /// The config as JSON.
        config: serde_json::Value,
        /// The searcher's state right after it suggested this config. Written by journals
        /// of version 2; version 3 saves searcher state in `state` records only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        searcher: Option<serde_json::Value>,
    },
    /// A trial changed status.
    Status {
        /// Creation index.
        trial: u32,
        /// The new status.
        status: TrialStatus,
        /// The error message, for `ERROR`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A result: metric values then the automatic fields (`training_iteration`,
    /// `time_this_iter_s`, `time_total_s`, `timestamp`).
    Result {
        /// Creation index.
        trial: u32,
        /// The values.
        v: Vec<f64>,
        /// The trial ended after this result by its stop criteria or its scheduler (not
        /// by an interruption, a time budget or an error): a resume does not step it again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        done: bool,
    },
    /// A checkpoint was written. It holds the trial's state after its results so far.
    Checkpoint {
        /// Creation index.
        trial: u32,
        /// Training iteration it holds.
        iteration: u64,
        /// Directory relative to the experiment directory.
        path: String,
    },
    /// A checkpoint was deleted (`keep_checkpoints_num`).
    CheckpointDeleted {
        /// Creation index.
        trial: u32,
        /// Directory relative to the experiment directory.
        path: String,
    },
    /// A trial exploited another (population based training): it restored `source`'s
    /// checkpoint of `source_iteration` and took `new_config`. Its results so far stay;
    /// the ones it reports next continue from `source_iteration`.
    Exploit {
        /// The exploiting trial (creation index).
        trial: u32,
        /// The trial whose checkpoint it restored.
        source: u32,
        /// The trial's iteration before.
        target_iteration: u64,
        /// The iteration it goes on from.
        source_iteration: u64,
        /// Its config before.
        old_config: serde_json::Value,
        /// Its config after.
        new_config: serde_json::Value,
        /// The source's config.
        source_config: serde_json::Value,
        /// The checkpoint the trial goes on from (relative to the experiment directory):
        /// the copy of the source's in the trial's directory, or its own checkpoint when it
        /// exploited itself. Absent in journals of version 2.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<String>,
    },
    /// A trial failed and will be retried (`max_failures`); `attempt` counts from 1.
    Failure {
        /// Creation index.
        trial: u32,
        /// How many times the trial has failed so far.
        attempt: u32,
        /// The error.
        error: String,
    },
    /// The trial goes back to a checkpoint (or to its start): its results after that
    /// checkpoint are discarded. Written on a retry and on a resume.
    Rollback {
        /// Creation index.
        trial: u32,
        /// The iteration the trial goes back to (0: its start).
        iteration: u64,
        /// How many of its results are kept. Absent in journals of version 2, which kept
        /// the results up to `iteration`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<u64>,
        /// The checkpoint it restores (relative to the experiment directory), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<String>,
    },
    /// The searcher's and the scheduler's saved state (for resuming).
    State {
        /// `Searcher::save_state`.
        searcher: serde_json::Value,
        /// `Scheduler::save_state`.
        scheduler: serde_json::Value,
    },
    /// The experiment was resumed from this journal.
    Resume {
        /// Unix time of the resume.
        started: u64,
    },
    /// The run ended.
    End {
        /// Unix time of the end.
        ended: u64,
    },
}

impl Record {
    /// The trial the record is about, if it is about one.
    pub(crate) fn trial(&self) -> Option<u32> {
        match self {
            Record::Trial { trial, .. }
            | Record::Status { trial, .. }
            | Record::Result { trial, .. }
            | Record::Checkpoint { trial, .. }
            | Record::CheckpointDeleted { trial, .. }
            | Record::Exploit { trial, .. }
            | Record::Failure { trial, .. }
            | Record::Rollback { trial, .. } => Some(*trial),
            Record::Experiment { .. }
            | Record::State { .. }
            | Record::Resume { .. }
            | Record::End { .. } => None,
        }
    }
}
