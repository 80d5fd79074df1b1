//! The seam between the typed and the untyped halves of a run.
//!
//! The driver is compiled once, in this crate: it knows trials by id, configs as JSON and
//! results as rows of `f64`. Everything that needs the user's types (the config and
//! metrics structs, the trainable, the searcher and scheduler over them, the stop
//! criteria) sits behind the two object-safe traits of this file, implemented once per
//! trainable by the small adapters of `typed.rs`. That keeps what a user's crate
//! monomorphizes down to those adapters.

use std::any::Any;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::checkpoint::{CheckpointStore, SaveError};
use crate::error::TrainResult;
use crate::journal::TrialLog;
use crate::scheduler::Decision;
use crate::trainable::{Resources, TrialContext};
use crate::trial::TrialId;

/// A config of the user's type, on its way to a worker.
pub(crate) type AnyConfig = Box<dyn Any + Send>;
/// Results of a task: a queue of metrics of the user's type (`VecDeque<M>`), made by the
/// model and reused from task to task, so that a result costs no allocation.
pub(crate) type AnyBatch = Box<dyn Any + Send>;

/// The results of a task and the time each step took, lent to a worker and given back.
pub(crate) struct Results {
    pub metrics: AnyBatch,
    pub dts: Vec<f64>,
}

/// Where and what to checkpoint after a step (or at the end of a trial).
#[derive(Debug, Clone)]
pub(crate) struct CheckpointRequest {
    pub dir: PathBuf,
    pub iteration: u64,
    /// Total training time before the steps of the task; the worker adds their time.
    pub time_total_s: f64,
    /// The trial's id, recorded in the checkpoint's metadata.
    pub trial: String,
    /// Whether the checkpoint's files are synced (`Tuner::durability`).
    pub durability: crate::checkpoint::Durability,
}

/// A trainable instance, type-erased, as workers hold it.
pub(crate) trait Instance: Send {
    /// Runs a step and appends its metrics to `out` (a batch the model made).
    fn step(&mut self, out: &mut (dyn Any + Send)) -> TrainResult<()>;
    /// `reset_config` with a config of the trainable's type (`reuse_actors`).
    fn reset_config(&mut self, config: &(dyn Any + Send), ctx: &TrialContext) -> TrainResult<bool>;
    /// Writes a checkpoint (state, own files, metadata, manifest) through `store`;
    /// `elapsed` is the time of the task's steps, added to the request's total.
    fn save(
        &self,
        store: &dyn CheckpointStore,
        req: &CheckpointRequest,
        elapsed: f64,
    ) -> Result<(), SaveError>;
    /// Restores a verified checkpoint directory.
    fn restore(&mut self, dir: &Path) -> Result<(), String>;
    fn cleanup(&mut self);
}

/// Builds instances of one trainable.
pub(crate) trait Factory: Send + Sync {
    fn setup(
        &self,
        config: &(dyn Any + Send),
        ctx: &TrialContext,
    ) -> TrainResult<Box<dyn Instance>>;
}

/// What a searcher answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suggested {
    /// A config for the trial, now held by the model.
    Config,
    NotNow,
    Finished,
}

/// The automatic fields of a result, as the driver computed them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AutoFields {
    pub iteration: u64,
    pub dt: f64,
    pub time_total: f64,
    pub timestamp: u64,
}

/// How the decision on a result is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    /// The whole run is stopping (time budget, Ctrl-C, a failed write): the trial stops
    /// and the scheduler is not asked.
    pub stopping: bool,
    /// After a resume rolled the trial back, its results up to this iteration are already
    /// in the scheduler's restored state (or were given back to it by the replay): they get
    /// the decision the run made then without asking the scheduler again: Continue before
    /// `seen_upto`, `then` at it.
    pub seen_upto: u64,
    pub then: Decision,
}

/// What the typed half made of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub decision: Decision,
    /// The stop criteria ended the trial (as opposed to the scheduler or the run).
    pub natural: bool,
}

/// Everything the driver asks of the user's types: the searcher, the scheduler, the stop
/// criteria, the configs and the last result of each live trial.
pub(crate) trait Model: Send {
    fn trainable(&self) -> &'static str;
    fn metric_names(&self) -> &'static [&'static str];
    fn scheduler_name(&self) -> &str;
    /// The scheduler's own lines in the status table (HyperBand's brackets).
    fn scheduler_lines(&self) -> Vec<String>;
    /// Seeds the searcher and the scheduler and tells the searcher its objective.
    fn setup(&mut self, num_samples: usize, seed: u64);
    fn total_trials(&self) -> Option<usize>;

    // Configs, by trial id (trials are created in id order).
    fn suggest(&mut self, id: TrialId) -> Suggested;
    /// A config read back from the journal (a resume); the error says why it does not fit.
    fn add_config(&mut self, id: TrialId, json: Value) -> Result<(), String>;
    fn set_config(&mut self, id: TrialId, json: Value) -> Result<(), String>;
    fn override_config(&mut self, id: TrialId, over: &Map<String, Value>) -> Result<(), String>;
    fn config_json(&self, id: TrialId) -> Value;
    fn resources(&self, id: TrialId) -> Resources;
    fn start_config(&self, id: TrialId) -> AnyConfig;
    fn on_trial_add(&mut self, id: TrialId);
    /// Another process of a shared experiment created trial `id` with `config`: the
    /// searcher learns of it, the scheduler too when it shares trials.
    fn foreign_added(&mut self, id: TrialId, config: Value) -> Result<(), String>;
    /// Whether the scheduler is given other processes' trials (see
    /// `Scheduler::shares_trials`).
    fn shares_trials(&self) -> bool;

    // Results.
    /// An empty batch of results of the trainable's metrics type.
    fn new_batch(&self) -> AnyBatch;
    /// Drops what is left in a batch.
    fn clear_batch(&self, batch: &mut (dyn Any + Send));
    /// Applies the next result of the batch `metrics`: writes its row (metrics then the automatic fields) into `row`,
    /// asks the stop criteria and the scheduler (as `ask` says), tells the searcher, and
    /// keeps it as the trial's last result. `Err` names a non-finite metric.
    fn on_result(
        &mut self,
        id: TrialId,
        metrics: &mut (dyn Any + Send),
        auto: AutoFields,
        ask: Ask,
        row: &mut Vec<f64>,
    ) -> Result<Verdict, String>;
    /// Forgets the trial's last result (a retry).
    fn clear_last(&mut self, id: TrialId);
    /// Sets the trial's last result from a row (a resume); false when the metrics type
    /// cannot be rebuilt from its values.
    fn set_last(&mut self, id: TrialId, row: &[f64], done: bool) -> bool;
    /// Tells the scheduler and the searcher that the trial ended, with its last result.
    fn on_trial_complete(&mut self, id: TrialId, failed: bool);

    // The scheduler.
    /// How many results the trial may produce before the driver must see one (the
    /// scheduler's `safe_steps` and the stop criteria); `None`: one at a time.
    fn safe_steps(&self, id: TrialId, iteration: u64) -> Option<u64>;
    /// After how many more results the stop criteria end a trial at `iteration`, whatever
    /// its metrics (iteration criteria only).
    fn ends_after(&self, iteration: u64) -> Option<u64>;
    fn always_continues(&self) -> bool;
    fn wants_checkpoint(&self, id: TrialId, iteration: u64) -> bool;
    fn on_no_more_trials(&mut self);
    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId>;
    fn take_stops(&mut self, out: &mut Vec<TrialId>);
    /// The exploit the scheduler asked for: the source trial and the new config (JSON);
    /// the typed config waits until [`Model::apply_exploit`].
    fn take_exploit(&mut self, id: TrialId) -> Option<(TrialId, Value)>;
    fn apply_exploit(&mut self, id: TrialId);
    fn on_exploit_failed(&mut self, id: TrialId, source: TrialId, why: &str);

    // Saved state.
    fn save_state(&self) -> (Value, Value);
    fn restore_searcher(&mut self, state: Value) -> Result<(), String>;
    fn restore_scheduler(&mut self, state: Value) -> Result<(), String>;

    // A resume gives back what the journal records after the saved states.
    /// `config` is the one the trial was created with.
    fn replay_added(
        &mut self,
        id: TrialId,
        config: Value,
        suggest: bool,
        scheduler: bool,
    ) -> Result<(), String>;
    /// Returns the scheduler's decision (Continue when it is not given the result), or
    /// `None` when the metrics type cannot be rebuilt from the row.
    fn replay_result(
        &mut self,
        id: TrialId,
        row: &[f64],
        done: bool,
        scheduler: bool,
        searcher: bool,
        exploit_carried_out: bool,
    ) -> Option<Decision>;
    fn replay_end(
        &mut self,
        id: TrialId,
        last: Option<(&[f64], bool)>,
        error: bool,
        scheduler: bool,
        searcher: bool,
    ) -> bool;

    /// The typed analysis of the run (`Analysis<C, M>` boxed), from the trials' records.
    fn into_analysis(self: Box<Self>, dir: &Path, trials: Vec<TrialLog<()>>) -> Box<dyn Any>;
}
