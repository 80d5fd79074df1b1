//! Trial schedulers: per result, continue, pause or stop a trial; choose what runs next.

mod fifo;

pub use fifo::FifoScheduler;

use crate::metrics::Metrics;
use crate::space::Space;
use crate::trial::{TrialId, TrialResult};

/// What a scheduler decides after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep stepping the trial.
    Continue,
    /// Release the trial's resources and keep its instance; it resumes when
    /// [`Scheduler::choose_trial_to_run`] picks it.
    Pause,
    /// End the trial (TERMINATED).
    Stop,
}

/// Decides, result by result, which trials go on, and which waiting trial runs next.
///
/// The runner calls every method from its driver thread. [`FifoScheduler`] is the
/// default; early-stopping schedulers (ASHA, HyperBand) and population-based training
/// implement the same trait.
pub trait Scheduler<C: Space, M: Metrics>: Send {
    /// The name shown in the status block ("Using FIFO scheduling algorithm.").
    fn name(&self) -> &str;

    /// A trial was created with `config`.
    fn on_trial_add(&mut self, trial: TrialId, config: &C) {
        let _ = (trial, config);
    }

    /// Whether [`Scheduler::on_trial_result`] always answers [`Decision::Continue`]. When
    /// true (FIFO), the runner may let a trial run several steps before their results
    /// reach the scheduler (still in order), which saves a driver round trip per result.
    /// Default false.
    fn always_continues(&self) -> bool {
        false
    }

    /// A trial reported `result`: continue, pause or stop it.
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision;

    /// A trial ended (stopped, finished or errored). `last` is its last result.
    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        let _ = (trial, last, error);
    }

    /// Which trial to start or resume when resources are free: one of `pending` (never
    /// started, in creation order) or `paused`. `None` leaves the resources idle for now.
    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        pending.first().or(paused.first()).copied()
    }

    /// The scheduler's state as JSON, saved in the journal for resuming an experiment.
    /// `Null` (the default) means "nothing to save": on a resume the scheduler is told
    /// about every unfinished trial again through [`Scheduler::on_trial_add`].
    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`Scheduler::save_state`] returned.
    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}
