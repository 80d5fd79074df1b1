//! What the driver keeps of each trial: its record and, until it ends, its live state with
//! the phase it is in.
//!
//! A trial's phase is one value of [`Phase`], never a combination of flags: pending (with
//! the checkpoint it starts from), busy on a worker, paused in memory (holding its
//! instance), pausing to disk (the pause checkpoint being written), paused on disk (with
//! the checkpoint it resumes from), or finishing (with how it ends). Its lineage is the
//! list of checkpoints in its record ([`TrialLog::checkpoints`]): each knows how many of the
//! trial's results it follows and the config epoch it belongs to, so "which checkpoint does
//! this trial continue from, and which of its rows are still valid" has one answer:
//! [`Trial::restore_point`].

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use super::model::{Instance, Results};
use crate::journal::{CheckpointInfo, TrialLog};
use crate::resources::Grant;
use crate::scheduler::Decision;
use crate::trainable::Resources;

/// How a trial ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum End {
    /// TERMINATED: its stop criteria, its scheduler, the time budget, or it finished.
    Terminated,
    /// ERROR, with the message (retried while it has `max_failures` left).
    Error(String),
    /// Stopped by Ctrl-C or a failed write: left PENDING (or PAUSED) for a resume.
    Suspended,
}

/// What a trial does once its pause checkpoint is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterPause {
    /// Wait, paused, until the scheduler resumes it.
    Wait,
    /// End: the scheduler gave up on it, or the run is stopping.
    Stop,
}

/// Where a trial is in its life.
pub(crate) enum Phase {
    /// Waiting for resources; it starts from the checkpoint `from` (a retry or a resume),
    /// or from scratch (or the run's `restore` checkpoint).
    Pending { from: Option<PathBuf> },
    /// A `Start` or `Run` task for it is on a worker.
    Busy,
    /// Paused by the scheduler, its instance kept in memory.
    PausedInMemory(Box<dyn Instance>),
    /// Paused by the scheduler; its pause checkpoint is being written.
    PausingToDisk { then: AfterPause },
    /// Paused by the scheduler; it resumes from the checkpoint `from`.
    PausedOnDisk { from: PathBuf },
    /// A `Finish` task for it is on a worker; it then ends as said.
    Finishing(End),
}

/// Driver-side state of a trial that has not ended.
pub(crate) struct Live {
    pub phase: Phase,
    pub resources: Resources,
    pub grant: Option<Grant>,
    /// Its id and config as callbacks see them (cached: every result is an event).
    pub view: Option<(String, serde_json::Value)>,
    pub dir: PathBuf,
    pub rel_dir: String,
    /// Its iteration and total training time, at its latest result.
    pub iteration: u64,
    pub time_total: f64,
    /// Counts the tasks sent for the trial; a worker's answer carries the ticket of its
    /// task, so an answer to a task the driver gave up on (a hung step) is recognized.
    pub ticket: u64,
    /// When its current task was sent (for the step timeout).
    pub sent: Option<Instant>,
    /// Failed attempts retried so far (`max_failures`).
    pub retries: u32,
    /// After a resume rolled it back: its results up to `seen_upto` are in the
    /// scheduler's restored state (or were given back to it) and get the decision the run
    /// made then, `then` at `seen_upto` (see `model::Ask`).
    pub seen_upto: u64,
    pub then: Decision,
    /// The iterations up to `seen_upto` after which the run checkpointed the trial because
    /// its scheduler asked (population based training, at its perturbations), as the
    /// replay found (`None` when the replay gave it none of them): it checkpoints there
    /// again.
    pub checkpoints_then: Option<Vec<u64>>,
    /// The trial ends once its task returns: set when a result or a checkpoint failed
    /// (an error) or Ctrl-C came (suspended) while a task was in flight.
    pub ending: Option<End>,
    /// A checkpoint that failed to restore: a retry goes back to one before it.
    pub rejected: Option<PathBuf>,
    /// The configs of its earlier epochs (before each exploit), oldest first.
    pub earlier: Vec<Value>,
    /// Result buffers lent to workers, reused from task to task.
    pub batch: Option<Results>,
}

impl Live {
    pub fn new(resources: Resources, dir: PathBuf, rel_dir: String, phase: Phase) -> Self {
        Live {
            phase,
            resources,
            grant: None,
            view: None,
            dir,
            rel_dir,
            iteration: 0,
            time_total: 0.0,
            ticket: 0,
            sent: None,
            retries: 0,
            seen_upto: 0,
            then: Decision::Continue,
            checkpoints_then: None,
            ending: None,
            rejected: None,
            earlier: Vec::new(),
            batch: None,
        }
    }

    /// The directory of its checkpoint at `iteration`.
    pub fn checkpoint_dir(&self, iteration: u64) -> PathBuf {
        self.dir.join(checkpoint_name(iteration))
    }

    /// The same, relative to the experiment directory (as the journal records it).
    pub fn checkpoint_rel(&self, iteration: u64) -> String {
        format!("{}/{}", self.rel_dir, checkpoint_name(iteration))
    }
}

/// The name of a trial's checkpoint directory at `iteration` (zero-padded, so that names
/// sort by iteration as text).
pub(crate) fn checkpoint_name(iteration: u64) -> String {
    crate::logger::checkpoint_dir_name(iteration)
}

/// A trial as the driver keeps it: the record that becomes the analysis, and the live
/// state while it has not ended.
pub(crate) struct Trial {
    pub log: TrialLog<()>,
    pub live: Option<Box<Live>>,
    /// The status the driver's counts hold for it (`None` before it is counted).
    pub counted: Option<crate::trial::TrialStatus>,
}

impl Trial {
    /// The checkpoint the trial continues from after a failure or a resume: the latest of
    /// its lineage (journal order), which follows only results it still has.
    pub fn restore_point(&self) -> Option<&CheckpointInfo> {
        self.log.checkpoints.last()
    }
}
