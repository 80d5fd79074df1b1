//! Trial schedulers: per result, continue, pause, stop or exploit a trial; choose what runs
//! next.

mod asha;
mod bracket;
mod fifo;
mod hyperband;
mod median;
mod patient;
mod pb2;
mod pbt;
mod percentile;
mod replay;
mod rung;
mod wilcoxon;

pub use asha::{Asha, AshaBuilder};
pub use fifo::FifoScheduler;
pub use hyperband::{BracketEvent, HyperBand, HyperBandBuilder, HyperBandForBohb};
pub use median::{MedianStopping, MedianStoppingBuilder};
pub use patient::{Patient, PatientBuilder};
pub use pb2::{Pb2, Pb2Builder};
pub use pbt::{Explore, Mutation, PBT_LOG_FILE, Pbt, PbtBuilder, PbtLogEntry};
pub use percentile::{
    PercentilePruner, PercentilePrunerBuilder, ThresholdPruner, ThresholdPrunerBuilder,
};
pub use replay::{PbtReplay, ReplayError};
pub use wilcoxon::{WilcoxonPruner, WilcoxonPrunerBuilder};

use crate::metrics::Metrics;
use crate::space::Space;
use crate::state::StateError;
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// What a scheduler decides after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep stepping the trial.
    Continue,
    /// Release the trial's resources and keep its state (in memory or in a checkpoint, see
    /// [`Pausing`]); it resumes, at the same iteration and state, when
    /// [`Scheduler::choose_trial_to_run`] picks it.
    Pause,
    /// End the trial (TERMINATED).
    Stop,
    /// Replace the trial's state and config: the runner calls
    /// [`Scheduler::take_exploit`] for the details, copies the source trial's latest
    /// checkpoint into the trial's directory, restores it under the new config and goes
    /// on stepping (population based training). Without details it continues.
    Exploit,
}

/// What an exploiting trial takes over (see [`Decision::Exploit`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Exploit<C> {
    /// The trial whose latest checkpoint is restored into the exploiting trial (it may be
    /// the trial itself: then only the config changes, from its own latest checkpoint).
    pub source: TrialId,
    /// The exploiting trial's new config.
    pub config: C,
}

/// Where a paused trial's state waits for its resumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pausing {
    /// The instance stays in memory: resuming costs nothing.
    Memory,
    /// The instance is checkpointed (`checkpoint_<iteration>/`) and dropped; resuming
    /// builds a new one and restores the checkpoint.
    Disk,
    /// In memory while fewer than `max_in_memory` paused trials are held in memory, on disk
    /// beyond. The default is `Auto { max_in_memory: 8 }`.
    Auto {
        /// How many paused instances may stay in memory.
        max_in_memory: usize,
    },
}

impl Default for Pausing {
    fn default() -> Self {
        Pausing::Auto { max_in_memory: 8 }
    }
}

/// Decides, result by result, which trials go on, and which waiting trial runs next.
///
/// The runner calls every method from its driver thread. [`FifoScheduler`] is the
/// default; [`Asha`], [`HyperBand`], [`HyperBandForBohb`], [`MedianStopping`], [`Pbt`],
/// [`Pb2`] and [`PbtReplay`] implement the same trait.
pub trait Scheduler<C: Space, M: Metrics>: Send {
    /// The name shown in the status block ("Using FIFO scheduling algorithm.").
    fn name(&self) -> &str;

    /// Called once before the first trial with the experiment's seed: seed every random
    /// choice from it so that a seeded experiment is reproducible.
    fn setup(&mut self, seed: u64) {
        let _ = seed;
    }

    /// A trial was created with `config`.
    fn on_trial_add(&mut self, trial: TrialId, config: &C) {
        let _ = (trial, config);
    }

    /// Lines the status table shows under the scheduler's name (HyperBand's brackets).
    /// Default: none.
    fn status_lines(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether, in an experiment shared by several processes, this scheduler is also given
    /// the other processes' trials (their creation, results and ends), to decide on this
    /// process's trials with the whole experiment's data (ASHA's rungs, the median rule,
    /// PBT's population). Its decisions on other processes' trials are not acted on.
    /// `false` keeps it to this process's trials (HyperBand's brackets). Default true.
    fn shares_trials(&self) -> bool {
        true
    }

    /// Whether [`Scheduler::on_trial_result`] always answers [`Decision::Continue`]. When
    /// true (FIFO), the runner may let a trial run several steps before their results
    /// reach the scheduler (still in order), which saves a driver round trip per result.
    /// Default false.
    fn always_continues(&self) -> bool {
        false
    }

    /// How many more results a trial at `iteration` may produce such that only the last of
    /// them can get another answer than [`Decision::Continue`] (as `Stop::safe_steps`):
    /// the runner then lets a worker run that many steps in one task, and hands every
    /// result to [`Scheduler::on_trial_result`] in order afterwards. `None` (the default
    /// unless [`Scheduler::always_continues`]) means one step at a time. A scheduler that
    /// asks for checkpoints through [`Scheduler::wants_checkpoint`] must answer `None`.
    fn safe_steps(&self, trial: TrialId, iteration: u64) -> Option<u64> {
        let _ = (trial, iteration);
        self.always_continues().then_some(u64::MAX)
    }

    /// A trial reported `result`: continue, pause, stop or exploit it.
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision;

    /// A trial ended (stopped, finished or errored). `last` is its last result.
    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        let _ = (trial, last, error);
    }

    /// The searcher will create no more trials: a scheduler waiting for more trials (a
    /// synchronous HyperBand bracket that is not full) decides with those it has.
    fn on_no_more_trials(&mut self) {}

    /// Which trial to start or resume when resources are free: one of `pending` (never
    /// started, in creation order) or `paused`. `None` leaves the resources idle for now.
    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        pending.first().or(paused.first()).copied()
    }

    /// The scheduler's state as JSON, saved in the journal for resuming an experiment. On
    /// a resume the state is restored, then the scheduler is given again, in order, what
    /// the journal records after it: [`Scheduler::on_trial_add`],
    /// [`Scheduler::on_trial_result`] (the answer is ignored) and
    /// [`Scheduler::on_trial_complete`]. `Null` (the default) means "nothing to save":
    /// the scheduler is given the whole experiment that way.
    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`Scheduler::save_state`] returned.
    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), StateError> {
        let _ = state;
        Ok(())
    }

    /// Trials to end now although they are not reporting (paused or pending trials that
    /// lost a HyperBand rung). The runner asks after every other call; the default has
    /// none.
    fn take_stops(&mut self, out: &mut Vec<TrialId>) {
        let _ = out;
    }

    /// Whether the trial should be checkpointed together with the result of iteration
    /// `iteration` (population based training checkpoints at every perturbation, so that
    /// others can exploit the state). Checkpoints asked by `checkpoint_freq` are written
    /// anyway.
    fn wants_checkpoint(&self, trial: TrialId, iteration: u64) -> bool {
        let _ = (trial, iteration);
        false
    }

    /// The details of a [`Decision::Exploit`] just returned for `trial`.
    fn take_exploit(&mut self, trial: TrialId) -> Option<Exploit<C>> {
        let _ = trial;
        None
    }

    /// The exploit of `trial` from `source` could not be carried out (the source has no
    /// checkpoint, or copying it failed): the trial goes on with its own state and config.
    fn on_exploit_failed(&mut self, trial: TrialId, source: TrialId, why: &str) {
        let _ = (trial, source, why);
    }
}

/// `metric` of `result`, turned so that larger is better.
#[inline]
pub(crate) fn signed<M: Metrics>(key: Key<M>, mode: Mode, result: &TrialResult<M>) -> f64 {
    let v = result.get(key);
    match mode {
        Mode::Max => v,
        Mode::Min => -v,
    }
}

/// Why a scheduler's builder refused its options. Each message says what to change.
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// An option is out of range.
    #[error("{scheduler}: {message}")]
    Invalid {
        /// The scheduler being built.
        scheduler: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

pub(crate) fn invalid(scheduler: &'static str, message: impl Into<String>) -> SchedulerError {
    SchedulerError::Invalid { scheduler, message: message.into() }
}
