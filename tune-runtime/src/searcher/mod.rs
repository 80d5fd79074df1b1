//! Searchers: where the configs of new trials come from.

mod ask_tell;
mod basic;
mod bohb;
mod cmaes;
pub(crate) mod core;
pub(crate) mod gp;
mod grid;
pub(crate) mod importance;
mod limiter;
mod macros;
mod nsga;
pub(crate) mod pareto;
pub(crate) mod parzen;
mod qmc;
mod random;
mod repeater;
mod tpe;
pub(crate) mod unit;
pub(crate) mod warm;

#[cfg(test)]
mod test_support;

pub use ask_tell::{AskTell, Asked};
pub use basic::BasicVariantGenerator;
pub use bohb::Bohb;
pub use cmaes::CmaEs;
pub use gp::GpBo;
pub use grid::GridSearch;
pub use limiter::ConcurrencyLimiter;
pub use nsga::Nsga2;
pub use qmc::SobolSearch;
pub use random::{LatinHypercube, RandomSearch};
pub use repeater::Repeater;
pub use tpe::Tpe;

use crate::metrics::Metrics;
use crate::objectives::Objectives;
use crate::space::Space;
use crate::state::StateError;
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// A searcher that cannot optimize the experiment's objectives (several of them, or
/// constraints), reported by [`Tuner::run`](crate::Tuner::run) before any trial starts.
#[derive(Clone, PartialEq, thiserror::Error)]
#[error("{searcher} cannot optimize these objectives: {reason}")]
pub struct UnsupportedObjectives {
    /// The searcher, e.g. `CmaEs`.
    pub searcher: &'static str,
    /// Why, and what to use instead.
    pub reason: String,
}

/// A searcher that cannot work on a space, reported when it is built.
#[derive(Clone, PartialEq, thiserror::Error)]
#[error("{searcher} cannot search dimension `{dim}`: {reason}")]
pub struct UnsupportedSpace {
    /// The searcher, e.g. `CmaEs`.
    pub searcher: &'static str,
    /// The dimension it cannot handle.
    pub dim: String,
    /// Why, and what to use instead.
    pub reason: String,
}

/// A searcher's answer to "config for a new trial?".
#[derive(Debug, Clone, PartialEq)]
pub enum Suggestion<C> {
    /// Run a trial with this config.
    Config(C),
    /// Nothing now (e.g. a model-based searcher waits for results); ask again later.
    NotNow,
    /// The searcher will suggest nothing more: the experiment ends once running trials end.
    Finished,
}

/// Chooses the configs of new trials and learns from their results.
///
/// The runner calls every method from its driver thread. The default is
/// [`BasicVariantGenerator`] (random sampling and grid search); model-based searchers
/// implement the same trait, using [`Space::encode`]/[`Space::decode`] and the results
/// they observe.
pub trait Searcher<C: Space, M: Metrics>: Send {
    /// Called once before the first suggestion with the experiment's number of samples
    /// and seed.
    fn setup(&mut self, num_samples: usize, seed: u64) {
        let _ = (num_samples, seed);
    }

    /// Called once after [`Searcher::setup`] with the experiment's metric and mode (the
    /// tuner's `metric(...)`, else its first metric maximized): what model-based searchers
    /// optimize.
    fn set_objective(&mut self, metric: Key<M>, mode: Mode) {
        let _ = (metric, mode);
    }

    /// Called after [`Searcher::set_objective`] when the experiment has several objectives
    /// or constraints ([`Tuner::objectives`](crate::Tuner::objectives)); the first
    /// objective is the one given to `set_objective`. A searcher that cannot optimize them
    /// says so and the experiment does not start. The default accepts them and optimizes
    /// the first objective alone.
    fn set_objectives(&mut self, objectives: &Objectives<M>) -> Result<(), UnsupportedObjectives> {
        let _ = objectives;
        Ok(())
    }

    /// A config for the new trial `trial`, or why there is none.
    fn suggest(&mut self, trial: TrialId) -> Suggestion<C>;

    /// How many trials this searcher will suggest in all, when known (for the progress bar).
    fn total_trials(&self) -> Option<usize> {
        None
    }

    /// Observes an intermediate result.
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) {
        let _ = (trial, result);
    }

    /// A trial this searcher did not suggest was created with `config`: in an experiment
    /// shared by several processes, another process's trial (or the one that won when two
    /// processes created the same trial at once, replacing this searcher's suggestion for
    /// that id). Its results and end follow through the other methods. A model-based
    /// searcher counts it as pending (so that this process suggests something else) and
    /// towards `num_samples`. Default: nothing.
    fn on_trial_added(&mut self, trial: TrialId, config: &C) {
        let _ = (trial, config);
    }

    /// Observes the end of a trial: its last result, `None` when it errored before any.
    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        let _ = (trial, last, error);
    }

    /// Observes the end of a trial through one value of the objective metric instead of a
    /// result (`None`: it failed). Wrappers that summarize several trials, such as
    /// [`Repeater`], report this way; the runner itself calls
    /// [`Searcher::on_trial_complete`].
    fn on_trial_complete_value(&mut self, trial: TrialId, value: Option<f64>) {
        let _ = (trial, value);
    }

    /// The searcher's whole state as JSON, for resuming an experiment: restored into a
    /// searcher built and set up the same way, it suggests what this one would have. On a
    /// resume it is then given, in order, the results and trial ends the journal records
    /// after the state was saved. With `Null` (the default) it is given the whole
    /// experiment instead, with a [`Searcher::suggest`] call (whose answer is ignored) for
    /// each trial created.
    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`Searcher::save_state`] returned.
    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), StateError> {
        let _ = state;
        Ok(())
    }
}
