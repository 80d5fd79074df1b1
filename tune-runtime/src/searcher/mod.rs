//! Searchers: where the configs of new trials come from.

mod basic;

pub use basic::BasicVariantGenerator;

use crate::metrics::Metrics;
use crate::space::Space;
use crate::trial::{TrialId, TrialResult};

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

    /// Observes the end of a trial: its last result, `None` when it errored before any.
    fn on_trial_complete(&mut self, trial: TrialId, last: Option<&TrialResult<M>>, error: bool) {
        let _ = (trial, last, error);
    }

    /// The searcher's state as JSON, for resuming an experiment.
    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`Searcher::save_state`] returned.
    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}
